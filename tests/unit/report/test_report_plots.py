"""Report plots: the light curve's time axis and the cutouts' display levels."""

from __future__ import annotations

import numpy as np
import pytest
from matplotlib.image import imread

from alertprod.report.plots import (
    NO_DATA_COLOR,
    cutout_display,
    light_curve_xlim,
    plot_light_curve,
    save_cutout,
)

pytestmark = pytest.mark.unit


def test_one_point_light_curve_spans_days_not_thousands_of_days():
    lo, hi = light_curve_xlim(np.array([60958.1]))
    assert lo < 60958.1 < hi and hi - lo == pytest.approx(2.0)
    lo, hi = light_curve_xlim(np.array([60000.0, np.nan, 60100.0]))
    assert (lo, hi) == pytest.approx((59995.0, 60105.0))
    assert light_curve_xlim(np.array([np.nan])) == (0.0, 1.0)


def test_light_curve_png_of_one_detection_draws_its_point_near_the_middle(tmp_path):
    alert = {"diaSource": {"midpointMjdTai": 60958.1, "psfFlux": 1e5, "psfFluxErr": 300.0,
                           "band": "r"}}
    png = imread(plot_light_curve(alert, tmp_path / "lc.png"))
    red = (png[..., 0] > 0.6) & (png[..., 1] < 0.3) & (png[..., 2] < 0.3)
    width = png.shape[1]
    cols = np.flatnonzero(red[:, : int(0.83 * width)].any(axis=0))  # the axes, not the legend
    # the axes span 13 %–83 % of the width; the point sits in their middle
    assert cols.size and 0.4 < cols.mean() / width < 0.56


def _star(peak: float, sigma_noise: float = 100.0, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:31, :31] - 15.0
    return peak * np.exp(-(xx**2 + yy**2) / (2 * 2.0**2)) + rng.normal(0, sigma_noise, (31, 31))


def test_bright_source_keeps_its_profile_instead_of_a_white_disc():
    shown = cutout_display(_star(1e6))
    assert np.sum(shown >= 0.999) <= 1  # only the peak pixel reaches white
    ring = [shown[15, 15], shown[15, 17], shown[15, 19], shown[15, 21]]  # 0, 1σ, 2σ, 3σ of the PSF
    assert all(a > b for a, b in zip(ring, ring[1:], strict=False))
    background = shown[:5, :5]
    assert 0.02 < background.mean() < 0.5 and background.std() > 0.01  # noise visible, not black


def test_faint_source_stands_out_of_the_noise():
    shown = cutout_display(_star(2000.0))
    assert shown[15, 15] > np.percentile(shown.filled(0.0)[:8, :], 99)


def test_pixels_without_data_are_drawn_in_their_own_colour(tmp_path):
    img = _star(1e5)
    img[:10, :] = np.nan  # off the detector
    rgba = imread(save_cutout(img, tmp_path / "c.png"))
    expected = np.array([int(NO_DATA_COLOR[i:i + 2], 16) / 255 for i in (1, 3, 5)])
    # PNG rows are top-down; FITS row 0 (no data) is drawn at the bottom
    np.testing.assert_allclose(rgba[-1, 0, :3], expected, atol=1 / 255)
    assert not np.allclose(rgba[0, 0, :3], expected, atol=1 / 255)
    assert cutout_display(np.full((5, 5), np.nan)).mask.all()


def test_negative_source_on_a_difference_is_dark_with_its_profile_on_a_mid_grey_background():
    shown = cutout_display(-_star(2e5))
    assert 0.4 < np.median(shown) < 0.6
    ring = [shown[15, 15], shown[15, 17], shown[15, 19], shown[15, 21]]
    assert ring[0] <= 0.001 and all(a < b for a, b in zip(ring, ring[1:], strict=False))

"""Re-created difference images: ZOGY on tiles equals ZOGY of the whole CCD where it is measured
(alertprod.imaging.recreate). The pulls against the simulator's truth are in
tests/unit/photometry/test_recreated.py."""

from __future__ import annotations

import numpy as np
import pytest
from synthetic import make_wcs

from alertprod.errors import ImageError, PsfError
from alertprod.formats import Exposure, ExposureInfo, MaskBit
from alertprod.imaging.psf import add_point_sources, moffat_psf
from alertprod.imaging.recreate import (
    recreate_difference,
    recreation_tiles,
    recreation_windows,
    zogy_kernel_size_pix,
)
from alertprod.imaging.subtraction import estimate_flux_scale, zogy_subtract
from alertprod.photometry import ForcedFlag, forced_psf_photometry

pytestmark = pytest.mark.unit

INFO = ExposureInfo(visit=42, detector=7, band="i", mjd_mid_tai=60400.3, exptime_s=30.0)
N = 512
SIG_N, SIG_R = 80.0, 25.0
PSF_N, PSF_R = moffat_psf(4.2), moffat_psf(3.0)
PSF_SIZE = max(PSF_N.shape[0], PSF_R.shape[0])


def _pair(seed: int, *, n: int = N, n_stars: int = 60, template_scale: float = 1.0,
          transients: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None) -> tuple[Exposure, Exposure]:
    """Science and template (flat noise) of the same stars; transients in the science only."""
    rng = np.random.default_rng(seed)
    sx, sy, sf = rng.uniform(0, n, n_stars), rng.uniform(0, n, n_stars), 10 ** rng.uniform(3.5, 5.5, n_stars)
    sci = rng.standard_normal((n, n), dtype=np.float32) * np.float32(SIG_N)
    tmp = rng.standard_normal((n, n), dtype=np.float32) * np.float32(SIG_R)
    add_point_sources(sci, PSF_N, sx, sy, sf)
    add_point_sources(tmp, PSF_R, sx, sy, template_scale * sf)
    if transients is not None:
        add_point_sources(sci, PSF_N, *transients)
    wcs = make_wcs(nx=n, ny=n)
    return (Exposure(sci, np.full((n, n), SIG_N**2, np.float32), np.zeros((n, n), np.int32), PSF_N, wcs, INFO),
            Exposure(tmp, np.full((n, n), SIG_R**2, np.float32), np.zeros((n, n), np.int32), PSF_R, wcs, INFO))


def _whole(sci: Exposure, tmp: Exposure, flux_scale: float = 1.0) -> Exposure:
    """The difference the upstream pipeline caches: ZOGY of the whole CCD."""
    return zogy_subtract(sci, tmp, flux_scale=flux_scale, compute_score=False).difference


def _forced(d: Exposure, x, y):
    return forced_psf_photometry(d.image, d.variance, d.mask, d.psf, np.asarray(x, float), np.asarray(y, float))


def _only_windows(exp: Exposure, windows) -> Exposure:
    """As a windowed read returns an exposure: full shape, NaN and NO_DATA outside the windows."""
    keep = np.zeros(exp.shape, dtype=bool)
    for y0, y1, x0, x1 in windows:
        keep[y0:y1, x0:x1] = True
    return Exposure(np.where(keep, exp.image, np.float32(np.nan)), np.where(keep, exp.variance, np.float32(np.nan)),
                    np.where(keep, exp.mask, int(MaskBit.NO_DATA)).astype(np.int32), exp.psf, exp.wcs, exp.info)


def test_each_stamp_lies_in_its_tile_core_with_the_whole_kernel_around_it():
    rng = np.random.default_rng(0)
    x, y = rng.uniform(-0.5, N - 0.6, 40), rng.uniform(-0.5, N - 0.6, 40)
    ksize = zogy_kernel_size_pix(PSF_SIZE)
    margin, h = ksize // 2, PSF_SIZE // 2
    tiles = recreation_tiles(x, y, (N, N), psf_size_pix=PSF_SIZE, tile_pix=200)
    assert len(tiles) > 4
    served = np.sort(np.concatenate([t.positions for t in tiles]))
    assert np.array_equal(served, np.arange(40))
    for (wy0, wy1, wx0, wx1), (cy0, cy1, cx0, cx1), idx in tiles:
        assert wy1 - wy0 <= 200 and wx1 - wx0 <= 200
        # the kernel half-width around the core is inside the window, or off the CCD
        assert wy0 == max(cy0 - margin, 0) and wy1 == min(cy1 + margin, N)
        assert wx0 == max(cx0 - margin, 0) and wx1 == min(cx1 + margin, N)
        ix, iy = np.floor(x[idx] + 0.5), np.floor(y[idx] + 0.5)
        assert np.all(np.maximum(iy - h, 0) >= cy0) and np.all(np.minimum(iy + h + 1, N) <= cy1)
        assert np.all(np.maximum(ix - h, 0) >= cx0) and np.all(np.minimum(ix + h + 1, N) <= cx1)
    assert recreation_windows(x, y, (N, N), psf_size_pix=PSF_SIZE, tile_pix=200) == [t.window for t in tiles]


def test_recreated_pixels_equal_the_whole_ccd_difference_in_every_core():
    rng = np.random.default_rng(1)
    x, y = rng.uniform(0, N, 12), rng.uniform(0, N, 12)
    sci, tmp = _pair(1, transients=(x, y, rng.uniform(2e3, 2e4, 12)))
    rec = recreate_difference(sci, tmp, x, y, tile_pix=160)
    whole = _whole(sci, tmp)
    tiles = recreation_tiles(x, y, sci.shape, psf_size_pix=PSF_SIZE, tile_pix=160)
    core = np.zeros(sci.shape, dtype=bool)
    for _, (y0, y1, x0, x1), _ in tiles:
        core[y0:y1, x0:x1] = True
    assert 0 < core.mean() < 0.5
    # equal to float32 rounding of the FFTs: flat noise gives every tile the CCD's noise levels
    assert np.abs(rec.image[core] - whole.image[core]).max() < 1e-4 * SIG_N
    assert np.allclose(rec.variance[core], whole.variance[core], rtol=1e-5)
    assert np.array_equal(rec.mask[core], whole.mask[core])
    assert np.isnan(rec.image[~core]).all() and np.isnan(rec.variance[~core]).all()
    assert (rec.mask[~core] == int(MaskBit.NO_DATA)).all()
    assert np.abs(rec.psf - whole.psf).max() < 1e-12
    assert rec.header["RECREATE"] is True and rec.info == sci.info and rec.shape == sci.shape
    a, b = _forced(whole, x, y), _forced(rec, x, y)
    assert np.all(np.abs(a.flux - b.flux) < 1e-4 * a.flux_err) and np.array_equal(a.flags, b.flags)


def test_positions_at_the_ccd_edge_measure_as_on_the_whole_ccd_difference():
    x = np.array([0.0, -0.4, N - 1.0, N - 0.6, 250.3, 251.0, 3.2, N - 2.5, -0.6, N - 0.5])
    y = np.array([200.0, 400.0, 100.0, 300.0, 0.0, N - 1.0, 2.7, N - 3.1, 100.0, 50.0])
    sci, tmp = _pair(2, transients=(x, y, np.full(x.size, 8e3)))
    rec = recreate_difference(sci, tmp, x, y, tile_pix=160)
    a, b = _forced(_whole(sci, tmp), x, y), _forced(rec, x, y)
    on = np.arange(8)
    assert np.all(np.abs(a.flux[on] - b.flux[on]) < 1e-4 * a.flux_err[on])
    assert np.array_equal(a.flags, b.flags)
    assert np.all(b.flags[on] & ForcedFlag.EDGE)
    assert np.all(b.flags[8:] & ForcedFlag.OFF_IMAGE) and np.isnan(b.flux[8:]).all()
    served = np.concatenate([t.positions for t in recreation_tiles(x, y, sci.shape, psf_size_pix=PSF_SIZE,
                                                                   tile_pix=160)])
    assert sorted(served) == list(on)  # no tile for a centre off the CCD


def test_a_tile_without_data_stays_nan_and_no_data():
    x, y = np.array([60.0, 400.0, 300.0]), np.array([60.0, 400.0, 80.0])
    sci, tmp = _pair(3)
    sci.image[:200, :200] = np.nan  # vignetted: the whole first tile
    sci.mask[:200, :200] |= int(MaskBit.NO_DATA)
    tmp.mask[:, 240:360] |= int(MaskBit.NO_DATA)  # the template does not cover the third
    rec = recreate_difference(sci, tmp, x, y, tile_pix=160)
    res = _forced(rec, x, y)
    assert np.isnan(res.flux[[0, 2]]).all() and np.all(res.flags[[0, 2]] & ForcedFlag.NO_DATA)
    assert np.isfinite(res.flux[1]) and res.flags[1] == 0
    assert np.isnan(rec.image[40:80, 40:80]).all() and (rec.mask[40:80, 40:80] & int(MaskBit.NO_DATA)).all()
    # nothing at all to subtract: an all-NaN image, still a valid exposure
    empty = recreate_difference(sci, tmp, x[:1], y[:1], tile_pix=160)
    assert np.isnan(empty.image).all() and (empty.mask == int(MaskBit.NO_DATA)).all()
    assert empty.psf.sum() == pytest.approx(1.0)


def test_masked_and_missing_pixels_are_treated_as_on_the_whole_ccd():
    x, y = np.array([100.0, 300.4, 420.0]), np.array([100.0, 250.7, 400.0])
    sci, tmp = _pair(4, transients=(x, y, np.full(3, 1e4)))
    sci.mask[101, 99:102] |= int(MaskBit.CR)  # under the first position
    tmp.mask[248:252, 301] |= int(MaskBit.SAT)  # under the second
    sci.image[405:409, 430:434] = np.nan  # within the kernel reach of the third, outside its stamp
    tmp.mask[380, 380:400] |= int(MaskBit.NO_DATA)
    rec = recreate_difference(sci, tmp, x, y, tile_pix=160)
    whole = _whole(sci, tmp)
    a, b = _forced(whole, x, y), _forced(rec, x, y)
    assert np.array_equal(a.flags, b.flags)
    assert b.flags[0] & ForcedFlag.MASKED and b.flags[1] & ForcedFlag.MASKED
    assert np.all(np.abs(a.flux - b.flux) < 1e-4 * a.flux_err)
    core = np.isfinite(rec.image)
    assert np.array_equal(rec.mask[core], whole.mask[core])
    assert (rec.mask[395:405, 425:435] & int(MaskBit.EDGE)).any()


def test_inputs_nan_outside_the_windows_give_the_same_difference():
    rng = np.random.default_rng(5)
    x, y = rng.uniform(0, N, 9), rng.uniform(0, N, 9)
    sci, tmp = _pair(5, transients=(x, y, np.full(9, 5e3)))
    windows = recreation_windows(x, y, sci.shape, psf_size_pix=PSF_SIZE, tile_pix=160)
    full = recreate_difference(sci, tmp, x, y, tile_pix=160)
    part = recreate_difference(_only_windows(sci, windows), _only_windows(tmp, windows), x, y, tile_pix=160)
    assert np.array_equal(full.image, part.image, equal_nan=True)
    assert np.array_equal(full.variance, part.variance, equal_nan=True)
    assert np.array_equal(full.mask, part.mask) and np.array_equal(full.psf, part.psf)


def test_isolated_positions_get_small_tiles_and_dense_ones_share_tiles_up_to_tile_pix():
    ksize = zogy_kernel_size_pix(PSF_SIZE)
    smallest = PSF_SIZE + 2 * (ksize // 2)
    x, y = np.array([100.0, 400.0, 100.0, 410.0]), np.array([100.0, 100.0, 400.0, 405.0])
    tiles = recreation_tiles(x, y, (N, N), psf_size_pix=PSF_SIZE, tile_pix=N)
    assert len(tiles) == 4  # one cell, but four small tiles cost less than one of 300 × 300
    for (wy0, wy1, wx0, wx1), _, (i,) in tiles:
        assert wy1 - wy0 == wx1 - wx0 == smallest
        assert (wy0 + wy1 - 1) / 2 == y[i] and (wx0 + wx1 - 1) / 2 == x[i]
    rng = np.random.default_rng(6)
    x, y = rng.uniform(0, N, 300), rng.uniform(0, N, 300)
    dense = recreation_tiles(x, y, (N, N), psf_size_pix=PSF_SIZE, tile_pix=200)
    assert 1 < len(dense) < 300 and all(w[1] - w[0] <= 200 and w[3] - w[2] <= 200 for w, _, _ in dense)
    assert any(t.positions.size > 1 for t in dense)
    # a tile_pix beyond the CCD: one tile, the whole CCD, the whole-CCD difference itself
    one = recreation_tiles(x, y, (N, N), psf_size_pix=PSF_SIZE, tile_pix=N + ksize + PSF_SIZE)
    assert len(one) == 1 and one[0].window == (0, N, 0, N)
    sci, tmp = _pair(6)
    rec = recreate_difference(sci, tmp, x, y, tile_pix=N + ksize + PSF_SIZE)
    whole = _whole(sci, tmp)
    core = np.isfinite(rec.image)
    assert core.mean() > 0.9
    assert np.array_equal(rec.image[core], whole.image[core]) and np.array_equal(rec.mask[core], whole.mask[core])


def test_flux_scale_is_given_because_a_tile_cannot_estimate_it():
    # a template in other units (2 per science nJy): the whole CCD has the stars to measure it,
    # a tile around one position has not, and estimate_flux_scale returns 1 there
    x, y = np.array([256.0]), np.array([256.0])
    sci, tmp = _pair(7, n_stars=150, template_scale=2.0)
    assert estimate_flux_scale(sci, tmp) == pytest.approx(2.0, rel=0.02)
    (wy0, wy1, wx0, wx1), = recreation_windows(x, y, sci.shape, psf_size_pix=PSF_SIZE, tile_pix=160)
    crop = [Exposure(e.image[wy0:wy1, wx0:wx1], e.variance[wy0:wy1, wx0:wx1], e.mask[wy0:wy1, wx0:wx1],
                     e.psf, e.wcs, e.info) for e in (sci, tmp)]
    assert estimate_flux_scale(*crop) == 1.0
    xs = np.arange(30.0, N, 60.0)
    gx, gy = (a.ravel() for a in np.meshgrid(xs, xs))
    right = recreate_difference(sci, tmp, gx, gy, flux_scale=2.0, tile_pix=160)
    a, b = _forced(_whole(sci, tmp, 2.0), gx, gy), _forced(right, gx, gy)
    assert np.all(np.abs(a.flux - b.flux) < 1e-3 * a.flux_err)


@pytest.mark.parametrize("kwargs, match", [
    ({"tile_pix": 100}, "tile_pix"),
    ({"tile_pix": 200.5}, "tile_pix"),
    ({"tile_pix": "large"}, "tile_pix"),
    ({"flux_scale": -1.0}, "flux_scale"),
    ({"flux_scale": float("nan")}, "flux_scale"),
    ({"flux_scale": None}, "flux_scale"),
])
def test_bad_options_are_refused_by_name(kwargs, match):
    sci, tmp = _pair(8, n=128, n_stars=0)
    with pytest.raises(ImageError, match=match):
        recreate_difference(sci, tmp, [60.0], [60.0], **kwargs)


def test_bad_inputs_are_refused_by_name():
    sci, tmp = _pair(9, n=128, n_stars=0)
    with pytest.raises(ImageError, match="x_pix and y_pix"):
        recreate_difference(sci, tmp, [1.0, 2.0], [1.0])
    with pytest.raises(ImageError, match="x_pix and y_pix"):
        recreate_difference(sci, tmp, [np.nan], [1.0])
    with pytest.raises(ImageError, match="science"):
        recreate_difference(sci.image, tmp, [1.0], [1.0])
    small = Exposure(tmp.image[:64], tmp.variance[:64], tmp.mask[:64], tmp.psf, tmp.wcs, tmp.info)
    with pytest.raises(ImageError, match="template shape"):
        recreate_difference(sci, small, [1.0], [1.0])
    bad_psf = Exposure(sci.image, sci.variance, sci.mask, sci.psf * 2, sci.wcs, sci.info)
    with pytest.raises(PsfError, match="science.psf"):
        recreate_difference(bad_psf, tmp, [1.0], [1.0])
    with pytest.raises(ImageError, match="psf_size_pix"):
        recreation_windows([1.0], [1.0], (128, 128), psf_size_pix=20)
    with pytest.raises(ImageError, match="shape"):
        recreation_windows([1.0], [1.0], (128,), psf_size_pix=21)
    with pytest.raises(ImageError, match="kernel_size_pix"):
        recreation_windows([1.0], [1.0], (128, 128), psf_size_pix=21, kernel_size_pix=0)

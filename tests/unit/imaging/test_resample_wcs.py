"""WCS resampling of templates onto the science grid (alertprod.imaging.resample)."""

from __future__ import annotations

import numpy as np
import pytest
from astropy.wcs import WCS

from alertprod.errors import ImageError
from alertprod.formats import Exposure, ExposureInfo, MaskBit
from alertprod.imaging.psf import add_point_sources, gaussian_psf
from alertprod.imaging.resample import pixel_mapping, resample_exposure
from alertprod.imaging.subtraction import zogy_subtract

INFO = ExposureInfo(visit=9, detector=1, band="g", mjd_mid_tai=60001.5, exptime_s=30.0)


def _wcs(crpix: tuple[float, float], scale_arcsec: float = 0.2, rot_deg: float = 0.0) -> WCS:
    w = WCS(naxis=2)
    w.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    w.wcs.crval = [150.0, 2.0]
    w.wcs.crpix = list(crpix)
    c, s = np.cos(np.radians(rot_deg)), np.sin(np.radians(rot_deg))
    w.wcs.cd = scale_arcsec / 3600 * np.array([[-c, s], [s, c]])
    return w


def _scene(wcs: WCS, shape, psf, sigma, ra, dec, flux, rng) -> Exposure:
    img = rng.normal(0, sigma, shape)
    x, y = wcs.all_world2pix(ra, dec, 0)
    add_point_sources(img, psf, x, y, flux)
    return Exposure(img.astype(np.float32), np.full(shape, sigma**2, np.float32),
                    np.zeros(shape, np.int32), psf, wcs, INFO)


def _stars(wcs: WCS, shape, n, rng):
    x = rng.uniform(25, shape[1] - 25, n)
    y = rng.uniform(25, shape[0] - 25, n)
    return wcs.all_pix2world(x, y, 0)


@pytest.mark.parametrize("order", [3, "lanczos3"])
def test_misaligned_template_is_aligned_by_wcs_then_subtracts_cleanly(order):
    rng = np.random.default_rng(11)
    shape = (240, 280)
    w_sci = _wcs((140.0, 120.0))
    w_tmp = _wcs((140.0 + 3.37, 120.0 - 5.81), rot_deg=0.3)  # shifted and slightly rotated
    ra, dec = _stars(w_sci, shape, 40, rng)
    flux = rng.uniform(5e4, 5e5, ra.size)
    sci = _scene(w_sci, shape, gaussian_psf(4.0), 50.0, ra, dec, flux, rng)
    tmp = _scene(w_tmp, shape, gaussian_psf(3.0), 10.0, ra, dec, flux, rng)
    aligned = resample_exposure(tmp, w_sci, shape, order=order)
    res = zogy_subtract(sci, aligned)
    d = res.difference
    z = (d.image / np.sqrt(d.variance))[d.mask == 0]
    assert res.flux_scale == pytest.approx(1.0, rel=0.01)
    assert abs(z.std() - 1.0) < 0.05
    assert np.abs(z).max() < 6.0
    # without alignment the same stars leave strong dipoles
    raw = zogy_subtract(sci, Exposure(tmp.image, tmp.variance, tmp.mask, tmp.psf, w_sci, INFO), flux_scale=1.0)
    assert np.abs(raw.difference.image / np.sqrt(raw.difference.variance)).max() > 50


def test_flux_is_conserved_across_a_pixel_scale_change():
    rng = np.random.default_rng(12)
    w_in = _wcs((100.0, 100.0), scale_arcsec=0.3)
    w_out = _wcs((150.0, 150.0), scale_arcsec=0.2)
    ra, dec = w_in.all_pix2world([100.2], [99.7], 0)
    src = _scene(w_in, (200, 200), gaussian_psf(3.0), 1e-3, ra, dec, np.array([1e5]), rng)
    out = resample_exposure(src, w_out, (300, 300))
    assert out.image.sum() == pytest.approx(1e5, rel=2e-3)
    # the PSF is carried in output pixels: 1.5× wider, still summing to 1
    assert out.psf.sum() == pytest.approx(1.0)
    assert out.psf.max() < src.psf.max() / 2.0
    # variance scales as the area ratio squared (flat input variance 1e-6 nJy²)
    assert np.median(out.variance[out.mask == 0]) == pytest.approx(1e-6 * (0.2 / 0.3) ** 4, rel=0.02)


def test_pixels_off_the_input_are_no_data_and_masks_dilate():
    shape = (100, 100)
    w_in = _wcs((50.0, 50.0))
    w_out = _wcs((50.0 + 20.5, 50.0))  # target sees 20.5 columns left of the input's edge
    img = np.ones(shape, np.float32)
    mask = np.zeros(shape, np.int32)
    mask[40, 60] = int(MaskBit.CR)
    img[10, 10] = np.nan
    exp = Exposure(img, np.ones(shape, np.float32), mask, gaussian_psf(3.0), w_in, INFO)
    out = resample_exposure(exp, w_out, shape, order=1)
    nodata = (out.mask & int(MaskBit.NO_DATA)) != 0
    assert nodata[:, :19].all() and not nodata[50, 25:].any()
    assert np.all(out.image[nodata] == 0) and np.all(np.isfinite(out.image))
    assert nodata[10, 30] and nodata[10, 31] and not nodata[10, 32]  # NaN input pixel at x = 10
    cr = (out.mask[40, 78:83] & int(MaskBit.CR)) != 0  # the CR at input x = 60 → 80.5
    assert cr.tolist() == [False, False, True, True, False]
    assert out.image[60, 60] == pytest.approx(1.0, abs=1e-5)


def test_coarse_wcs_mapping_matches_the_exact_one():
    w_in = _wcs((64.0, 64.0), rot_deg=10.0)
    w_in.wcs.ctype = ["RA---ZEA", "DEC--ZEA"]
    w_out = _wcs((70.0, 50.0), scale_arcsec=0.21)
    x_in, y_in = pixel_mapping(w_in, w_out, (130, 150), grid_step_pix=32)
    yy, xx = np.mgrid[0:130, 0:150]
    xe, ye = w_in.all_world2pix(*w_out.all_pix2world(xx.ravel(), yy.ravel(), 0), 0)
    assert np.abs(x_in.ravel() - xe).max() < 1e-3 and np.abs(y_in.ravel() - ye).max() < 1e-3


def test_unknown_order_raises():
    exp = Exposure(np.zeros((8, 8), np.float32), np.ones((8, 8), np.float32),
                   np.zeros((8, 8), np.int32), gaussian_psf(2.0), _wcs((4.0, 4.0)), INFO)
    with pytest.raises(ImageError, match="order"):
        resample_exposure(exp, exp.wcs, (8, 8), order=2)

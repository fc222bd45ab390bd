"""ZOGY subtraction: whiteness, unbiased fluxes, flux scaling, masking (alertprod.imaging.subtraction)."""

from __future__ import annotations

import numpy as np
import pytest
from astropy.wcs import WCS

from alertprod.errors import ImageError
from alertprod.formats import Exposure, ExposureInfo, MaskBit
from alertprod.imaging.psf import add_point_sources, gaussian_psf, psf_stamps
from alertprod.imaging.subtraction import estimate_flux_scale, zogy_kernels, zogy_subtract

INFO = ExposureInfo(visit=7, detector=3, band="r", mjd_mid_tai=60000.25, exptime_s=30.0)


def _wcs(ny: int, nx: int) -> WCS:
    w = WCS(naxis=2)
    w.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    w.wcs.crval = [150.0, 2.0]
    w.wcs.crpix = [(nx + 1) / 2, (ny + 1) / 2]
    w.wcs.cd = np.array([[-0.2 / 3600, 0], [0, 0.2 / 3600]])
    return w


def _exposure(image: np.ndarray, sigma: float, psf: np.ndarray) -> Exposure:
    ny, nx = image.shape
    return Exposure(image.astype(np.float32), np.full((ny, nx), sigma**2, np.float32),
                    np.zeros((ny, nx), np.int32), psf, _wcs(ny, nx), INFO)


def _grid(ny: int, nx: int, step: float, rng) -> tuple[np.ndarray, np.ndarray]:
    gx, gy = np.meshgrid(np.arange(step, nx - step / 2, step), np.arange(step, ny - step / 2, step))
    return gx.ravel() + rng.uniform(-0.5, 0.5, gx.size), gy.ravel() + rng.uniform(-0.5, 0.5, gx.size)


def _forced_flux(exp: Exposure, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Reference weighted PSF fit F = Σ P d / V / Σ P² / V at fixed positions."""
    h = exp.psf.shape[0] // 2
    ix, iy = np.rint(x).astype(int), np.rint(y).astype(int)
    stamps = psf_stamps(exp.psf, x - ix, y - iy)
    flux, err = [], []
    for p, i, j in zip(stamps, ix, iy, strict=True):
        d = exp.image[j - h:j + h + 1, i - h:i + h + 1]
        v = exp.variance[j - h:j + h + 1, i - h:i + h + 1]
        a = (p * p / v).sum()
        flux.append((p * d / v).sum() / a)
        err.append(1 / np.sqrt(a))
    return np.array(flux), np.array(err)


SIG_N, SIG_R = 100.0, 30.0


def _pair(ny=300, nx=400, seed=0, flux_scale=2.0):
    rng = np.random.default_rng(seed)
    psf_n, psf_r = gaussian_psf(4.2), gaussian_psf(2.6)
    n_img = rng.normal(0, SIG_N, (ny, nx))
    r_img = rng.normal(0, SIG_R, (ny, nx))
    return rng, psf_n, psf_r, n_img, r_img


def test_blank_sky_difference_is_white_unit_normal():
    _, psf_n, psf_r, n_img, r_img = _pair(ny=300, nx=448, seed=1)
    res = zogy_subtract(_exposure(n_img, SIG_N, psf_n), _exposure(r_img, SIG_R, psf_r), flux_scale=2.0)
    d = res.difference
    z = (d.image / np.sqrt(d.variance))[(d.mask & int(MaskBit.EDGE)) == 0]
    assert abs(z.std() - 1.0) < 0.03
    assert abs(z.mean()) < 0.02
    # the propagated variance is the ZOGY prediction σ_n² + σ_r²/F_r² for flat noise
    assert np.median(d.variance) == pytest.approx(SIG_N**2 + SIG_R**2 / 4.0, rel=1e-3)
    score = res.score[(d.mask & int(MaskBit.EDGE)) == 0]
    assert abs(score.std() - 1.0) < 0.05
    assert d.image.shape == (300, 448) and d.psf.shape[0] % 2 == 1
    assert d.psf.sum() == pytest.approx(1.0)


def test_science_only_sources_are_recovered_without_bias_by_forced_photometry():
    pulls = []
    for seed in (2, 3):
        rng, psf_n, psf_r, n_img, r_img = _pair(ny=400, nx=400, seed=seed)
        x, y = _grid(400, 400, 26.0, rng)
        true = rng.uniform(3000, 20000, x.size)
        add_point_sources(n_img, psf_n, x, y, true)
        res = zogy_subtract(_exposure(n_img, SIG_N, psf_n), _exposure(r_img, SIG_R, psf_r), flux_scale=2.0)
        flux, err = _forced_flux(res.difference, x, y)
        pulls.append((flux - true) / err)
    pull = np.concatenate(pulls)
    assert pull.size > 300
    assert abs(pull.mean()) < 0.1
    assert abs(pull.std() - 1.0) < 0.1


def test_constant_star_in_both_subtracts_to_zero_with_flux_scaling():
    rng, psf_n, psf_r, n_img, r_img = _pair(ny=256, nx=320, seed=4)
    x, y = _grid(256, 320, 40.0, rng)
    flux = rng.uniform(2e5, 2e6, x.size)  # science nJy; S/N up to ~2000
    scale = 3.0
    add_point_sources(n_img, psf_n, x, y, flux)
    add_point_sources(r_img, psf_r, x, y, scale * flux)
    sci = _exposure(n_img, SIG_N, psf_n)
    res = zogy_subtract(sci, _exposure(r_img, SIG_R, psf_r))
    assert res.flux_scale == pytest.approx(scale, rel=0.01)
    d = res.difference
    resid, err = _forced_flux(d, x, y)
    assert np.all(np.abs(resid / err) < 5.0)
    assert np.all(np.abs(resid) < 2e-3 * flux + 5 * err)


def test_estimated_flux_scale_falls_back_to_one_without_stars():
    _, psf_n, psf_r, n_img, r_img = _pair(ny=128, nx=128, seed=5)
    assert estimate_flux_scale(_exposure(n_img, SIG_N, psf_n), _exposure(r_img, SIG_R, psf_r)) == 1.0


def test_nan_pixels_are_masked_not_propagated():
    rng, psf_n, psf_r, n_img, r_img = _pair(ny=200, nx=240, seed=6)
    n_img[50:53, 60:64] = np.nan
    r_img[120, :] = np.nan
    tmpl = _exposure(r_img, SIG_R, psf_r)
    tmpl.mask[150:160, 10:20] |= int(MaskBit.NO_DATA)
    res = zogy_subtract(_exposure(n_img, SIG_N, psf_n), tmpl, flux_scale=2.0)
    d = res.difference
    assert np.all(np.isfinite(d.image)) and np.all(np.isfinite(d.variance)) and np.all(np.isfinite(res.score))
    nodata = (d.mask & int(MaskBit.NO_DATA)) != 0
    assert nodata[50:53, 60:64].all() and nodata[120, :].all() and nodata[150:160, 10:20].all()
    assert (d.mask[48, 60] & int(MaskBit.EDGE)) != 0  # next to the hole: the kernel reached it
    clean = d.mask == 0
    assert abs((d.image / np.sqrt(d.variance))[clean].std() - 1.0) < 0.05


def test_masks_are_united_and_detection_bits_dropped():
    _, psf_n, psf_r, n_img, r_img = _pair(ny=96, nx=96, seed=7)
    sci, tmpl = _exposure(n_img, SIG_N, psf_n), _exposure(r_img, SIG_R, psf_r)
    sci.mask[40, 40] = int(MaskBit.CR | MaskBit.DETECTED)
    tmpl.mask[41, 41] = int(MaskBit.SAT)
    d = zogy_subtract(sci, tmpl, flux_scale=2.0).difference
    assert d.mask[40, 40] == int(MaskBit.CR) and d.mask[41, 41] == int(MaskBit.SAT)


def test_difference_psf_matches_science_psf_when_template_is_noiseless():
    psf_n, psf_r = gaussian_psf(4.0), gaussian_psf(2.5)
    k = zogy_kernels(psf_n, psf_r, 100.0, 1e-6, 1.0)
    h = (k.psf_d.shape[0] - psf_n.shape[0]) // 2
    core = k.psf_d[h:h + psf_n.shape[0], h:h + psf_n.shape[0]] if h > 0 else k.psf_d
    assert np.abs(core - psf_n).max() < 1e-3


def test_mismatched_shapes_and_bad_flux_scale_raise():
    _, psf_n, psf_r, n_img, r_img = _pair(ny=64, nx=64, seed=8)
    sci = _exposure(n_img, SIG_N, psf_n)
    with pytest.raises(ImageError, match="resample"):
        zogy_subtract(sci, _exposure(r_img[:, :60], SIG_R, psf_r), flux_scale=1.0)
    with pytest.raises(ImageError, match="flux_scale"):
        zogy_subtract(sci, _exposure(r_img, SIG_R, psf_r), flux_scale=-1.0)

"""Forced PSF photometry: unbiased fluxes with honest errors, flags, and agreement with photutils."""

import warnings

import numpy as np
import pytest
from astropy.wcs import WCS

from alertprod.errors import ImageError, PsfError
from alertprod.formats import Exposure, ExposureInfo, MaskBit
from alertprod.imaging.psf import gaussian_psf, moffat_psf, psf_stamps
from alertprod.photometry import (
    ForcedFlag,
    ForcedPhotometryResult,
    forced_photometry_exposure,
    forced_psf_photometry,
)

N_SOURCES = 4000


def _truth_stamp(model, fwhm_pix, k, dx, dy, pad):
    """Exact rendering at an offset (wings beyond k included), normalised like the model."""
    big = model(fwhm_pix, size_pix=k + 2 * pad, dx_pix=dx, dy_pix=dy)
    return big / _central_fraction(model, fwhm_pix, k, pad)


def _central_fraction(model, fwhm_pix, k, pad, _cache={}):  # noqa: B006 - a deliberate memo
    key = (model, fwhm_pix, k, pad)
    if key not in _cache:
        _cache[key] = model(fwhm_pix, size_pix=k + 2 * pad)[pad:-pad, pad:-pad].sum()
    return _cache[key]


def _field(model, fwhm_pix, k, *, n=N_SOURCES, seed=0, flux_snr=(3.0, 100.0), blank=False):
    """Isolated sources on a grid with exact sub-pixel renderings, plus known noise."""
    rng = np.random.default_rng(seed)
    pad = 3
    spacing = k + 2 * pad + 2
    side = int(np.ceil(np.sqrt(n)))
    ny = nx = side * spacing
    gx, gy = np.meshgrid(np.arange(side), np.arange(side))
    x = gx.ravel()[:n] * spacing + spacing // 2 + rng.uniform(-0.5, 0.5, n)
    y = gy.ravel()[:n] * spacing + spacing // 2 + rng.uniform(-0.5, 0.5, n)
    yy, xx = np.mgrid[0:ny, 0:nx]
    variance = (50.0 * (1.0 + xx / nx + 0.5 * yy / ny)).astype(np.float32)  # known, varying
    psf = model(fwhm_pix, size_pix=k)
    ix, iy = np.floor(x + 0.5).astype(int), np.floor(y + 0.5).astype(int)
    sigma_f = np.sqrt(variance[iy, ix] / np.sum(psf**2))  # approximate 1-σ flux error
    snr = np.exp(rng.uniform(*np.log(flux_snr), n))
    flux = np.zeros(n) if blank else snr * sigma_f
    image = np.zeros((ny, nx))
    h = k // 2 + pad
    for s in range(n):
        stamp = _truth_stamp(model, fwhm_pix, k, x[s] - ix[s], y[s] - iy[s], pad)
        image[iy[s] - h:iy[s] + h + 1, ix[s] - h:ix[s] + h + 1] += flux[s] * stamp
    image += rng.normal(size=image.shape) * np.sqrt(variance)
    mask = np.zeros(image.shape, dtype=np.int32)
    return image.astype(np.float32), variance, mask, psf, x, y, flux


@pytest.mark.parametrize(("model", "fwhm_pix", "k"), [(gaussian_psf, 3.0, 15), (moffat_psf, 3.5, 21)])
def test_pull_distribution_is_unit_normal_for_injected_sources(model, fwhm_pix, k):
    image, variance, mask, psf, x, y, flux = _field(model, fwhm_pix, k)
    res = forced_psf_photometry(image, variance, mask, psf, x, y)
    assert np.all(res.flags == 0) and np.all(res.npix == k * k)
    pull = (res.flux - flux) / res.flux_err
    assert abs(pull.mean()) < 0.05
    assert abs(pull.std() - 1.0) < 0.05
    bright = flux / res.flux_err > 30
    assert abs(pull[bright].mean()) < 0.1  # no flux-proportional bias at high S/N
    assert np.mean(res.chi2 / (res.npix - 1)) == pytest.approx(1.0, abs=0.02)


def test_pull_distribution_is_unit_normal_on_blank_sky():
    image, variance, mask, psf, x, y, flux = _field(gaussian_psf, 3.0, 15, seed=1, blank=True)
    assert not flux.any()
    res = forced_psf_photometry(image, variance, mask, psf, x, y)
    pull = res.flux / res.flux_err
    assert abs(pull.mean()) < 0.05
    assert abs(pull.std() - 1.0) < 0.05


def _photutils_fixed(image, error, mask, psf_model, x, y, fit_shape):
    """photutils PSFPhotometry with positions held fixed: only the flux is fitted."""
    from astropy.table import Table
    from photutils.psf import PSFPhotometry

    psf_model.x_0.fixed = True
    psf_model.y_0.fixed = True
    phot = PSFPhotometry(psf_model, fit_shape)
    init = Table({"x_init": x, "y_init": y, "flux_init": np.full(len(x), 100.0)})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        table = phot(image, error=error, mask=mask, init_params=init)
    return np.asarray(table["flux_fit"], dtype=float)


def test_flux_agrees_with_photutils_psf_photometry_at_fixed_positions():
    """Same image, same PSF, same pixels: |ours - photutils| < 0.001 σ per source.

    photutils' ImagePSF interpolates the PSF with a cubic spline, we shift it with sinc
    interpolation; at integer positions both models are the PSF image itself. At sub-pixel
    positions photutils gets our shifted stamp as an ImagePSF placed on the integer pixel,
    so both fit the identical model.
    """
    from photutils.psf import ImagePSF

    image, variance, mask, psf, x, y, flux = _field(gaussian_psf, 3.0, 15, n=36, seed=2)
    error = np.sqrt(variance)
    mask[int(y[3]) + 1, int(x[3])] = MaskBit.BAD  # masked pixels are excluded by both
    bad = (mask & int(MaskBit.BAD)) != 0
    xi, yi = np.floor(x + 0.5), np.floor(y + 0.5)
    ours = forced_psf_photometry(image, variance, mask, psf, xi, yi)
    theirs = _photutils_fixed(image, error, bad, ImagePSF(psf), xi, yi, 15)
    assert ours.flags[3] == ForcedFlag.MASKED
    assert np.all(np.abs(ours.flux - theirs) < 1e-3 * ours.flux_err)

    ours = forced_psf_photometry(image, variance, mask, psf, x[:8], y[:8])
    stamps = psf_stamps(psf, x[:8] - xi[:8], y[:8] - yi[:8])
    for s in range(8):
        theirs = _photutils_fixed(image, error, bad, ImagePSF(stamps[s], flux=1.0), xi[s:s + 1],
                                  yi[s:s + 1], 15)
        assert abs(ours.flux[s] - theirs[0]) < 1e-3 * ours.flux_err[s]


def _one_source(flux=5000.0, shape=(41, 41), seed=4):
    rng = np.random.default_rng(seed)
    psf = gaussian_psf(3.0, size_pix=11)
    image = np.zeros(shape)
    y0, x0 = (shape[0] - 1) / 2 + 0.2, (shape[1] - 1) / 2 - 0.3
    image[15:26, 15:26] += flux * psf_stamps(psf, [x0 - 20], [y0 - 20])[0]
    variance = np.full(shape, 25.0)
    image += rng.normal(size=shape) * 5.0
    return image, variance, np.zeros(shape, dtype=np.int32), psf, x0, y0


def test_masked_pixels_get_zero_weight_and_are_flagged():
    image, variance, mask, psf, x0, y0 = _one_source()
    clean = forced_psf_photometry(image, variance, mask, psf, [x0], [y0])
    hit = image.copy()
    hit[20, 21] += 1e6  # a cosmic ray in the core
    mask[20, 21] = MaskBit.CR
    res = forced_psf_photometry(hit, variance, mask, psf, [x0], [y0])
    assert res.flags[0] == ForcedFlag.MASKED and res.npix[0] == 11 * 11 - 1
    assert abs(res.flux[0] - clean.flux[0]) < 2 * clean.flux_err[0]
    assert res.flux_err[0] > clean.flux_err[0]
    mask[20, 21] = MaskBit.DETECTED  # not an unusable bit: the pixel counts
    assert forced_psf_photometry(hit, variance, mask, psf, [x0], [y0]).flags[0] == 0


def test_nan_pixels_get_zero_weight_and_are_flagged():
    image, variance, mask, psf, x0, y0 = _one_source()
    image[19, 20] = np.nan
    variance[21, 19] = 0.0
    res = forced_psf_photometry(image, variance, mask, psf, [x0], [y0])
    assert res.flags[0] == ForcedFlag.NAN_PIXELS and res.npix[0] == 11 * 11 - 2
    assert np.isfinite(res.flux[0]) and abs(res.flux[0] - 5000) < 5 * res.flux_err[0]


def test_fully_masked_stamp_has_no_data_and_nan_flux():
    image, variance, mask, psf, x0, y0 = _one_source()
    mask[:] = MaskBit.NO_DATA
    res = forced_psf_photometry(image, variance, mask, psf, [x0], [y0])
    assert res.flags[0] & ForcedFlag.NO_DATA and res.flags[0] & ForcedFlag.MASKED
    assert np.isnan(res.flux[0]) and res.npix[0] == 0


def test_positions_off_and_at_the_edge_of_the_image_are_flagged_not_guessed():
    image, variance, mask, psf, x0, y0 = _one_source(shape=(41, 41))
    image[:, :] = np.random.default_rng(5).normal(size=image.shape) * 5.0
    image[0:6, 0:11] += 5000 * psf[5:, :]  # a source centred at (5, 0)
    res = forced_psf_photometry(image, variance, mask, psf, [5.0, -0.6, 41.2, 20.0], [0.0, 3, 3, -9])
    assert res.flags[0] == ForcedFlag.EDGE and res.npix[0] == 11 * 6
    assert abs(res.flux[0] - 5000) < 5 * res.flux_err[0]
    assert list(res.flags[1:]) == [ForcedFlag.OFF_IMAGE] * 3
    assert np.all(np.isnan(res.flux[1:])) and np.all(res.npix[1:] == 0)


def test_invalid_psf_and_inputs_raise_clear_errors():
    image, variance, mask, psf, x0, y0 = _one_source()
    with pytest.raises(PsfError, match="not 1"):
        forced_psf_photometry(image, variance, mask, psf * 2, [x0], [y0])
    with pytest.raises(PsfError, match="odd"):
        forced_psf_photometry(image, variance, mask, np.ones((4, 4)) / 16, [x0], [y0])
    with pytest.raises(ImageError, match="variance"):
        forced_psf_photometry(image, variance[1:], mask, psf, [x0], [y0])
    with pytest.raises(ImageError, match="finite"):
        forced_psf_photometry(image, variance, mask, psf, [np.nan], [y0])


def test_results_do_not_depend_on_the_batch_size():
    image, variance, mask, psf, x, y, flux = _field(gaussian_psf, 3.0, 15, n=100, seed=6)
    x = np.concatenate([x, [1.0, -5.0]])
    y = np.concatenate([y, [1.0, 2.0]])
    a = forced_psf_photometry(image, variance, mask, psf, x, y)
    b = forced_psf_photometry(image, variance, mask, psf, x, y, chunk_size=7)
    for f in a._fields:
        np.testing.assert_allclose(getattr(a, f), getattr(b, f), rtol=1e-12, equal_nan=True)


def test_exposure_forced_photometry_goes_through_the_wcs():
    image, variance, mask, psf, x0, y0 = _one_source()
    wcs = WCS(naxis=2)
    wcs.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    wcs.wcs.crval = [210.0, -30.0]
    wcs.wcs.crpix = [10.0, 12.0]
    wcs.wcs.cd = [[-0.2 / 3600, 0.0], [0.0, 0.2 / 3600]]
    exposure = Exposure(image.astype(np.float32), variance.astype(np.float32), mask, psf, wcs,
                        ExposureInfo(1, 0, "g", 60000.0, 30.0))
    ra, dec = wcs.all_pix2world([x0, 500.0], [y0, 0.0], 0)
    res = forced_photometry_exposure(exposure, ra, dec)
    direct = forced_psf_photometry(image, variance, mask, psf, [x0], [y0])
    assert res.x[0] == pytest.approx(x0, abs=1e-8) and res.y[0] == pytest.approx(y0, abs=1e-8)
    assert res.flux[0] == pytest.approx(direct.flux[0], rel=1e-6)
    assert res.flags[1] == ForcedFlag.OFF_IMAGE and np.isnan(res.flux[1])


def _defective_field():
    """A Moffat field with masked, NaN, zero/negative/infinite-variance pixels and edge sources."""
    image, variance, mask, psf, x, y, flux = _field(moffat_psf, 3.5, 21, n=64, seed=8,
                                                    flux_snr=(3.0, 3000.0))
    image, variance = image.copy(), variance.copy()
    iy, ix = np.floor(y + 0.5).astype(int), np.floor(x + 0.5).astype(int)
    mask[iy[0] + 2, ix[0] - 1] |= MaskBit.CR
    mask[iy[1], ix[1]] |= MaskBit.SAT
    image[iy[2] - 3, ix[2] + 4] = np.nan
    variance[iy[3] + 1, ix[3]] = 0.0
    variance[iy[4] - 2, ix[4]] = -1.0
    variance[iy[5], ix[5] + 5] = np.inf
    mask[iy[6] - 10:iy[6] + 11, ix[6] - 10:ix[6] + 11] |= MaskBit.BAD
    ny, nx = image.shape
    x = np.concatenate([x, [2.0, nx - 3.4, 100.0, -3.0]])
    y = np.concatenate([y, [50.3, 9.0, ny - 1.2, 4.0]])
    return image, variance, mask, psf, x, y


def test_many_positions_at_once_match_positions_measured_one_by_one():
    # Many positions use whole-image weights and a table of unusable pixels; a few positions
    # screen stamp by stamp. Both must give the same numbers and flags.
    image, variance, mask, psf, x, y = _defective_field()
    reps = 3  # each position three times, so the stamps cover more pixels than the image has
    assert reps * x.size * psf.size >= image.size
    many = forced_psf_photometry(image, variance, mask, psf, np.tile(x, reps), np.tile(y, reps))
    for f in many._fields:
        np.testing.assert_array_equal(getattr(many, f)[:x.size], getattr(many, f)[-x.size:])
    many = ForcedPhotometryResult(*(v[:x.size] for v in many))
    one = [forced_psf_photometry(image, variance, mask, psf, [x[i]], [y[i]]) for i in range(x.size)]
    np.testing.assert_array_equal(many.flags, [r.flags[0] for r in one])
    np.testing.assert_array_equal(many.npix, [r.npix[0] for r in one])
    for f in ("flux", "flux_err", "chi2"):
        np.testing.assert_allclose(getattr(many, f), [getattr(r, f)[0] for r in one],
                                   rtol=1e-5, atol=0, equal_nan=True)
    assert many.flags[0] == ForcedFlag.MASKED and many.flags[2] == ForcedFlag.NAN_PIXELS
    assert all(many.flags[i] == ForcedFlag.NAN_PIXELS for i in (3, 4, 5))
    assert many.flags[6] == ForcedFlag.MASKED | ForcedFlag.NO_DATA and np.isnan(many.flux[6])
    assert np.all(many.flags[-4:-1] == ForcedFlag.EDGE) and many.flags[-1] == ForcedFlag.OFF_IMAGE


def test_flux_and_chi2_match_a_float64_evaluation_of_the_estimator():
    # Faint and bright (S/N up to 3000) sources: χ² keeps its precision where the fitted part
    # dominates Σ d²/σ².
    image, variance, mask, psf, x, y, _ = _field(moffat_psf, 3.5, 21, n=64, seed=9,
                                                 flux_snr=(3.0, 3000.0))
    res = forced_psf_photometry(image, variance, mask, psf, x, y)
    ix, iy = np.floor(x + 0.5).astype(int), np.floor(y + 0.5).astype(int)
    model = psf_stamps(psf, x - ix, y - iy)
    for s in range(x.size):
        d = image[iy[s] - 10:iy[s] + 11, ix[s] - 10:ix[s] + 11].astype(np.float64)
        w = 1.0 / variance[iy[s] - 10:iy[s] + 11, ix[s] - 10:ix[s] + 11].astype(np.float64)
        b = np.sum(w * model[s] ** 2)
        flux = np.sum(w * model[s] * d) / b
        chi2 = np.sum(w * (d - flux * model[s]) ** 2)
        assert abs(res.flux[s] - flux) < 1e-4 / np.sqrt(b) + 1e-6 * abs(flux)
        assert res.flux_err[s] == pytest.approx(1 / np.sqrt(b), rel=1e-5)
        assert res.chi2[s] == pytest.approx(chi2, rel=2e-5)

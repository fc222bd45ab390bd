"""Positions refined on the measured image: bright sources measured off-centre get their flux back."""

import numpy as np
import pytest
from astropy.wcs import WCS

from alertprod.errors import ImageError
from alertprod.formats import Exposure, ExposureInfo, MaskBit
from alertprod.imaging.psf import moffat_psf
from alertprod.photometry import forced_photometry_exposure
from alertprod.photometry.positions import (
    fit_psf_positions,
    fitted_position_flux,
    refine_positions,
)

PIXEL_ARCSEC = 0.2
FWHM_PIX = 3.5
K = 21
SKY_SIGMA = 10.0


def _wcs(n: int) -> WCS:
    w = WCS(naxis=2)
    w.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    w.wcs.crval = [150.0, 2.0]
    w.wcs.crpix = [(n + 1) / 2, (n + 1) / 2]
    w.wcs.cd = np.array([[-PIXEL_ARCSEC / 3600, 0], [0, PIXEL_ARCSEC / 3600]])
    return w


def _field(snr, *, seed=0, spacing=31):
    """Isolated Moffat sources on a grid, each rendered exactly at its sub-pixel position (pixel
    integrals, not our sinc shift), on sky noise plus the sources' own photon noise."""
    rng = np.random.default_rng(seed)
    snr = np.asarray(snr, float)
    n = snr.size
    side = int(np.ceil(np.sqrt(n)))
    size = side * spacing
    gx, gy = np.meshgrid(np.arange(side), np.arange(side))
    x = gx.ravel()[:n] * spacing + spacing // 2 + rng.uniform(-0.5, 0.5, n)
    y = gy.ravel()[:n] * spacing + spacing // 2 + rng.uniform(-0.5, 0.5, n)
    psf = moffat_psf(FWHM_PIX, size_pix=K)
    flux = snr * SKY_SIGMA / np.sqrt(np.sum(psf**2))  # S/N of sky-limited noise
    model = np.zeros((size, size))
    ix, iy, h = np.floor(x + 0.5).astype(int), np.floor(y + 0.5).astype(int), K // 2
    for s in range(n):
        stamp = moffat_psf(FWHM_PIX, size_pix=K, dx_pix=x[s] - ix[s], dy_pix=y[s] - iy[s])
        model[iy[s] - h:iy[s] + h + 1, ix[s] - h:ix[s] + h + 1] += flux[s] * stamp
    variance = SKY_SIGMA**2 + 0.01 * model  # a little photon noise of the sources
    image = model + rng.normal(size=model.shape) * np.sqrt(variance)
    exp = Exposure(image.astype(np.float32), variance.astype(np.float32),
                   np.zeros(model.shape, np.int32), psf, _wcs(size),
                   ExposureInfo(1, 0, "r", 60000.1, 30.0))
    ra, dec = exp.wcs.all_pix2world(x, y, 0)
    return exp, x, y, np.asarray(ra), np.asarray(dec), flux


def _offset(ra, dec, arcsec, rng):
    """Positions ``arcsec`` away in random directions, like a DiaObject's mean of faint detections."""
    angle = rng.uniform(0, 2 * np.pi, ra.size)
    return (ra + arcsec * np.cos(angle) / 3600 / np.cos(np.deg2rad(dec)),
            dec + arcsec * np.sin(angle) / 3600)


def test_bright_sources_measured_off_centre_get_their_flux_back():
    """Paired with the measurement at the true position (same noise): the offset loses many σ,
    the refined position gains σ_F/F (the noise the fitted position absorbs, +1/SNR), and
    :func:`fitted_position_flux` takes exactly that off."""
    rng = np.random.default_rng(1)
    snr = np.exp(rng.uniform(np.log(10), np.log(3000), 2400))
    exp, _, _, ra, dec, flux = _field(snr, seed=1)
    ora, odec = _offset(ra, dec, rng.uniform(0.05, 0.3, snr.size), rng)
    at_truth = forced_photometry_exposure(exp, ra, dec)
    before = forced_photometry_exposure(exp, ora, odec)
    pos = refine_positions(exp, ora, odec)
    after = forced_photometry_exposure(exp, pos.ra_deg, pos.dec_deg)
    corrected = fitted_position_flux(after.flux, after.flux_err)
    assert pos.refined[snr >= 30].all() and pos.refined.mean() > 0.95  # S/N < 10 at the offset: kept
    truth_pull = (at_truth.flux - flux) / at_truth.flux_err
    for lo, hi in ((10, 30), (30, 100), (100, np.inf)):
        m = (snr >= lo) & (snr < hi) & pos.refined
        lost = (before.flux[m] - at_truth.flux[m]) / at_truth.flux_err[m]
        gained = (after.flux[m] - at_truth.flux[m]) / at_truth.flux_err[m]
        left = (corrected[m] - at_truth.flux[m]) / at_truth.flux_err[m]
        if lo >= 30:
            assert np.mean(lost) < -1.0  # the cause: flux lost at the offset position
        assert abs(np.mean(gained) - np.mean(1 / snr[m])) < 0.01, (lo, np.mean(gained))
        assert abs(np.mean(left)) < 0.01, (lo, np.mean(left))
        pull = (corrected[m] - flux[m]) / after.flux_err[m]
        assert abs(np.std(pull) - np.std(truth_pull[m])) < 0.01
        assert abs(np.mean(pull)) < 0.1 and abs(np.std(pull) - 1) < 0.08


@pytest.mark.parametrize("offset_arcsec", [0.2, 0.36, 0.42])
def test_sources_of_snr_8_to_15_under_a_far_diaobject_are_refined_and_unbiased(offset_arcsec):
    """A DiaObject 0.2–0.42″ off (0.7″ seeing) a source of S/N 8–15 measures a much lower S/N
    there; were it left there (S/N < 10 refined nothing, the first rule), it would lose up
    to 5σ. Refined from S/N 5 (2.5 if the fit finds 5), the rows come out unbiased."""
    rng = np.random.default_rng(7)
    snr = rng.uniform(8, 15, 1600)
    exp, _, _, ra, dec, flux = _field(snr, seed=7)
    ora, odec = _offset(ra, dec, offset_arcsec, rng)
    before = forced_photometry_exposure(exp, ora, odec)
    assert np.mean(before.flux / before.flux_err < 10) > 0.3  # the offset hides their S/N
    pos = refine_positions(exp, ora, odec)
    assert pos.refined.mean() > 0.95
    after = forced_photometry_exposure(exp, pos.ra_deg, pos.dec_deg)
    corrected = np.where(pos.refined, fitted_position_flux(after.flux, after.flux_err), after.flux)
    pull = (corrected - flux) / after.flux_err
    assert abs(np.mean(pull)) < 0.06 and abs(np.std(pull) - 1) < 0.15
    left_at_offset = (before.flux - flux) / before.flux_err
    assert np.std(pull) < np.std(left_at_offset) or np.mean(left_at_offset) < -0.5


def test_sources_of_snr_4_to_8_at_their_position_stay_unbiased_when_refined():
    """Refining from S/N 5 follows some noise; the σ²/F correction keeps the flux unbiased."""
    snr = np.random.default_rng(8).uniform(4, 8, 1600)
    exp, _, _, ra, dec, flux = _field(snr, seed=8)
    at_truth = forced_photometry_exposure(exp, ra, dec)
    pos = refine_positions(exp, ra, dec)
    assert 0.4 < pos.refined.mean() < 0.95
    after = forced_photometry_exposure(exp, pos.ra_deg, pos.dec_deg)
    corrected = np.where(pos.refined, fitted_position_flux(after.flux, after.flux_err), after.flux)
    paired = (corrected - at_truth.flux) / at_truth.flux_err  # same noise: what refining adds
    assert abs(np.mean(paired)) < 0.03 and np.std(paired) < 0.3
    pull = (corrected - flux) / after.flux_err
    assert abs(np.mean(pull)) < 0.08 and abs(np.std(pull) - 1) < 0.06


def test_refined_positions_scatter_as_their_errors_say():
    rng = np.random.default_rng(2)
    snr = np.exp(rng.uniform(np.log(20), np.log(500), 1600))
    exp, x, y, _, _, flux = _field(snr, seed=2)
    fit = fit_psf_positions(exp.image, exp.variance, exp.mask, exp.psf,
                            x + rng.normal(0, 0.7, x.size), y + rng.normal(0, 0.7, y.size))
    assert fit.converged.mean() > 0.99
    c = fit.converged
    assert abs(np.std((fit.x - x)[c] / fit.x_err[c]) - 1) < 0.06
    assert abs(np.std((fit.y - y)[c] / fit.y_err[c]) - 1) < 0.06
    assert np.median(np.abs(fit.flux[c] / flux[c] - 1)) < 0.02


def test_faint_object_keeps_its_diaobject_position():
    rng = np.random.default_rng(3)
    exp, _, _, ra, dec, _ = _field(np.full(100, 1.5), seed=3)
    ora, odec = _offset(ra, dec, 0.1, rng)
    pos = refine_positions(exp, ora, odec)
    assert not pos.refined.any()
    np.testing.assert_array_equal(pos.ra_deg, ora)
    np.testing.assert_array_equal(pos.dec_deg, odec)
    assert np.all(pos.snr < 5)


def test_transient_absent_from_the_image_is_not_moved_onto_noise():
    exp, _, _, ra, dec, _ = _field(np.zeros(400), seed=4)
    pos = refine_positions(exp, ra, dec)
    assert pos.refined.sum() <= 1  # a 10σ noise peak is a ~1e-23 event per position


def test_source_beyond_the_association_radius_is_not_taken():
    exp, _, _, ra, dec, _ = _field(np.full(9, 5000.0), seed=5)
    far_dec = dec + 1.4 / 3600  # 1.4″ (7 pixels) north: the wings still give S/N ≫ 10
    pos = refine_positions(exp, ra, far_dec)
    assert np.all(pos.snr > 10)
    assert not pos.refined.any()
    np.testing.assert_allclose(pos.shift_arcsec, 1.4, atol=0.02)  # the fit found the star
    np.testing.assert_array_equal(pos.dec_deg, far_dec)
    assert refine_positions(exp, ra, far_dec, max_shift_arcsec=2.0).refined.all()


def test_objects_off_the_image_or_under_a_mask_keep_their_position():
    exp, x, y, ra, dec, _ = _field(np.full(4, 500.0), seed=6)
    iy, ix = int(round(y[0])), int(round(x[0]))
    exp.mask[iy - 12:iy + 13, ix - 12:ix + 13] |= int(MaskBit.SAT)
    off_ra, off_dec = exp.wcs.all_pix2world([-40.0], [-40.0], 0)
    pos = refine_positions(exp, np.r_[ra, off_ra], np.r_[dec, off_dec])
    assert pos.refined.tolist() == [False, True, True, True, False]
    assert np.isnan(pos.snr[0]) and np.isnan(pos.snr[4])


def test_no_objects_is_no_work():
    exp, _, _, _, _, _ = _field(np.full(1, 100.0), seed=7)
    pos = refine_positions(exp, np.zeros(0), np.zeros(0))
    assert pos.ra_deg.shape == (0,) and pos.refined.dtype == bool


@pytest.mark.parametrize("ra, dec, kwargs", [
    ([150.0, 150.0], [2.0], {}),
    ([np.nan], [2.0], {}),
    ([150.0], [2.0], {"min_snr": 0.0}),
    ([150.0], [2.0], {"max_shift_arcsec": -1.0}),
])
def test_bad_inputs_are_refused_naming_the_argument(ra, dec, kwargs):
    exp, _, _, _, _, _ = _field(np.full(1, 100.0), seed=8)
    with pytest.raises(ImageError):
        refine_positions(exp, ra, dec, **kwargs)


def test_fit_refuses_mismatched_planes_and_bad_iterations():
    exp, x, y, _, _, _ = _field(np.full(1, 100.0), seed=9)
    with pytest.raises(ImageError):
        fit_psf_positions(exp.image, exp.variance[:-1], None, exp.psf, x, y)
    with pytest.raises(ImageError):
        fit_psf_positions(exp.image, exp.variance, None, exp.psf, x, y, max_iter=0)

"""DiaForcedSource rows: scienceFlux where the science image puts a bright object, psfFlux at the DiaObject."""

import numpy as np
import pytest
from astropy.wcs import WCS

from alertprod.formats import Exposure, ExposureInfo
from alertprod.imaging.psf import add_point_sources, moffat_psf
from alertprod.photometry import forced_photometry_exposure
from alertprod.photometry.dia_forced import VisitImages, dia_forced_rows

N_PIX = 200
SIGMA = 10.0


def _exposure(x, y, flux, seed):
    w = WCS(naxis=2)
    w.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    w.wcs.crval = [150.0, 2.0]
    w.wcs.crpix = [(N_PIX + 1) / 2, (N_PIX + 1) / 2]
    w.wcs.cd = np.array([[-0.2 / 3600, 0], [0, 0.2 / 3600]])
    psf = moffat_psf(3.5, size_pix=21)
    rng = np.random.default_rng(seed)
    image = add_point_sources(np.zeros((N_PIX, N_PIX)), psf, np.asarray(x, float),
                              np.asarray(y, float), np.asarray(flux, float))
    image += rng.normal(0, SIGMA, image.shape)
    return Exposure(image.astype(np.float32), np.full(image.shape, SIGMA**2, np.float32),
                    np.zeros(image.shape, np.int32), psf, w, ExposureInfo(7, 3, "r", 60000.1, 30.0))


def _objects():
    """A bright static variable and a faint transient, their DiaObjects 0.2″ (1 pixel) off."""
    x, y = np.array([60.3, 140.6]), np.array([70.2, 120.4])
    science = _exposure(x, y, [2.0e5, 300.0], seed=1)  # S/N ≈ 2000 and ≈ 3
    difference = _exposure(x, y, [1.0e3, 300.0], seed=2)
    ra, dec = science.wcs.all_pix2world(x, y, 0)
    ora, odec = science.wcs.all_pix2world(x + 1.0, y, 0)
    return science, difference, np.asarray(ra), np.asarray(dec), np.asarray(ora), np.asarray(odec)


def test_bright_variable_is_measured_where_the_science_image_puts_it_psf_flux_at_the_diaobject():
    science, difference, ra, dec, ora, odec = _objects()
    images = VisitImages(7, 3, "r", 60000.1, difference, science)
    rows = dia_forced_rows(np.array([11, 12]), ora, odec, images, processed_mjd_tai=60001.0,
                           is_precovery=False)
    # psfFlux exactly as before: measured on the difference image at the DiaObject position
    at_object = forced_photometry_exposure(difference, ora, odec)
    np.testing.assert_array_equal(rows["psfFlux"], at_object.flux)
    np.testing.assert_array_equal(rows["psfFluxErr"], at_object.flux_err)
    # the bright one: the row records the refined position, within 0.005″ of the truth, and
    # the flux measured there less the σ²/F the fitted position adds
    cosd = np.cos(np.deg2rad(dec[0]))
    at_refined = forced_photometry_exposure(science, rows["ra"][:1], rows["dec"][:1])
    assert rows["scienceFlux"][0] == pytest.approx(
        at_refined.flux[0] - at_refined.flux_err[0] ** 2 / at_refined.flux[0], rel=1e-12)
    assert np.hypot((rows["ra"][0] - ra[0]) * cosd, rows["dec"][0] - dec[0]) * 3600 < 0.005
    assert abs(rows["scienceFlux"][0] - 2.0e5) < 4 * rows["scienceFluxErr"][0]
    lost = forced_photometry_exposure(science, ora[:1], odec[:1]).flux[0]
    assert (2.0e5 - lost) > 20 * rows["scienceFluxErr"][0]  # what the DiaObject position cost
    # the faint one keeps its DiaObject position
    assert rows["ra"][1] == ora[1] and rows["dec"][1] == odec[1]
    np.testing.assert_array_equal(rows["scienceFlux"][1:],
                                  forced_photometry_exposure(science, ora[1:], odec[1:]).flux)


def test_row_without_a_science_image_stays_at_the_diaobject():
    _, difference, _, _, ora, odec = _objects()
    images = VisitImages(7, 3, "r", 60000.1, difference)
    rows = dia_forced_rows(np.array([11, 12]), ora, odec, images, processed_mjd_tai=60001.0,
                           is_precovery=True)
    np.testing.assert_array_equal(rows["ra"], ora)
    np.testing.assert_array_equal(rows["dec"], odec)
    assert np.all(np.isnan(rows["scienceFlux"])) and np.all(rows["isPrecovery"])

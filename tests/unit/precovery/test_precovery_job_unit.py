"""One unit of a precovery-service job measured from the cache, or re-created from the archive."""

from __future__ import annotations

import numpy as np
import pytest
from synthetic import make_wcs

from alertprod.archive import archive_key
from alertprod.aws import MemoryBlobStore
from alertprod.formats import Exposure, ExposureInfo, image_key, write_exposure
from alertprod.formats.compression import compress_exposure
from alertprod.imaging.psf import add_point_sources, gaussian_psf
from alertprod.precovery.job_plan import JobUnit
from alertprod.precovery.job_unit import measure_job_unit

pytestmark = pytest.mark.unit

N, SIGMA = 512, 20.0
FLUXES = np.array([5000.0, 2000.0, 800.0])  # three transients, nJy


@pytest.fixture(scope="module")
def stores():
    """One CCD-visit: a science image with three transients on a static star field, its template
    (the star field alone), their difference in the cache, science and template in the archive."""
    rng = np.random.default_rng(7)
    wcs, psf = make_wcs(nx=N, ny=N), gaussian_psf(3.0, size_pix=21)
    stars = (rng.uniform(30, N - 30, 40), rng.uniform(30, N - 30, 40), rng.uniform(2e3, 5e4, 40))
    x, y = np.array([100.3, 260.7, 400.2]), np.array([120.6, 300.1, 410.9])
    static = np.zeros((N, N))
    add_point_sources(static, psf, *stars)
    science_img = static.copy()
    add_point_sources(science_img, psf, x, y, FLUXES)
    var = np.full((N, N), SIGMA**2, np.float32)
    mask = np.zeros((N, N), np.int32)
    info = ExposureInfo(42, 3, "r", 60500.2, 30.0)

    def exp(pixels):
        return Exposure(np.asarray(pixels, np.float32), var, mask, psf, wcs, info)

    science = exp(science_img + rng.normal(0, SIGMA, (N, N)))
    template = exp(static + rng.normal(0, SIGMA / 5, (N, N)))  # a deep coadd
    difference = Exposure(science.image - template.image, var + np.float32((SIGMA / 5) ** 2), mask,
                          psf, wcs, info)
    images, archive = MemoryBlobStore(), MemoryBlobStore()
    images.put(image_key(42, 3, "difference"), write_exposure(difference))
    images.put(image_key(42, 3, "science"), write_exposure(science))
    archive.put(archive_key(42, 3, "science"), compress_exposure(science))
    archive.put(archive_key(42, 3, "template"), compress_exposure(template))
    ra, dec = wcs.all_pix2world(x, y, 0)
    return images, archive, np.asarray(ra), np.asarray(dec)


def _unit(source):
    return JobUnit(42, 3, "r", 60500.2, source, (0, 1, 2))


@pytest.mark.parametrize("source", ["cache", "archive"])
def test_a_unit_measures_each_covered_position_at_its_true_flux(stores, source):
    images, archive, ra, dec = stores
    rows = measure_job_unit(_unit(source), ra, dec, images=images, archive=archive,
                            processed_mjd_tai=60600.0)
    assert list(rows["target"]) == [0, 1, 2] and list(rows["visit"]) == [42] * 3
    pulls = (np.asarray(rows["psfFlux"]) - FLUXES) / np.asarray(rows["psfFluxErr"])
    assert np.all(np.abs(pulls) < 4), pulls
    assert bool(np.all(rows["recreated"])) == (source == "archive")


def test_cached_and_recreated_measurements_agree(stores):
    images, archive, ra, dec = stores
    cached = measure_job_unit(_unit("cache"), ra, dec, images=images, archive=archive,
                              processed_mjd_tai=60600.0)
    recreated = measure_job_unit(_unit("archive"), ra, dec, images=images, archive=archive,
                                 processed_mjd_tai=60600.0)
    diff = np.asarray(cached["psfFlux"]) - np.asarray(recreated["psfFlux"])
    assert np.all(np.abs(diff) < 2.5 * np.asarray(cached["psfFluxErr"]))


def test_an_expired_cached_difference_falls_back_to_the_archive(stores):
    images, archive, ra, dec = stores
    empty = MemoryBlobStore()
    rows = measure_job_unit(_unit("cache"), ra, dec, images=empty, archive=archive,
                            processed_mjd_tai=60600.0)
    assert len(rows) == 3 and np.all(rows["recreated"])

"""Scenes shared by the precovery-service tests."""

from __future__ import annotations

import numpy as np
import pytest
from synthetic import make_wcs

from alertprod.archive import archive_key
from alertprod.aws import MemoryBlobStore
from alertprod.formats import Exposure, ExposureInfo, image_key, write_exposure
from alertprod.formats.compression import compress_exposure
from alertprod.imaging.psf import add_point_sources, gaussian_psf

N, SIGMA = 512, 20.0
#: The true fluxes of the scene's three transients (nJy), in the order of their positions.
FLUXES = np.array([5000.0, 2000.0, 800.0])


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


@pytest.fixture(scope="module")
def true_fluxes():
    """:data:`FLUXES`, the scene's transients' true fluxes (nJy), for the tests."""
    return FLUXES

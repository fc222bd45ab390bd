"""Exposure files read by ranged GETs from S3 on the embedded stack (moto server)."""

from __future__ import annotations

import numpy as np
import pytest
from synthetic import make_wcs

from alertprod.aws import Services
from alertprod.errors import NotFoundError
from alertprod.formats import (
    BlobSource,
    Exposure,
    ExposureFile,
    ExposureInfo,
    ReadCost,
    image_key,
    read_exposure,
    write_exposure,
)
from alertprod.formats.compression import CompressionSpec, compress_exposure
from alertprod.imaging.psf import add_point_sources, moffat_psf
from alertprod.local.stack import EmbeddedStack
from alertprod.photometry.forced import forced_photometry_exposure
from alertprod.photometry.stamps import forced_half_size_pix, sky_windows

pytestmark = pytest.mark.integration

NY, NX = 2048, 256


@pytest.fixture(scope="module")
def images():
    with EmbeddedStack(stack_name="exposure-files") as stack:
        yield Services.from_resources(stack.resources).images


@pytest.fixture(scope="module")
def stored(images):
    rng = np.random.default_rng(11)
    psf = moffat_psf(3.5, size_pix=21)
    image = rng.standard_normal((NY, NX), dtype=np.float32) * np.float32(25.0)
    x, y = rng.uniform(15, NX - 15, 12), rng.uniform(15, NY - 15, 12)
    add_point_sources(image, psf, x, y, rng.uniform(1e3, 5e4, 12))
    wcs = make_wcs(nx=NX, ny=NY)
    exp = Exposure(image, np.full((NY, NX), 625.0, np.float32), np.zeros((NY, NX), np.int32), psf,
                   wcs, ExposureInfo(12, 4, "g", 60010.3, 30.0))
    keys = {"plain": image_key(12, 4, "difference"), "packed": image_key(12, 5, "difference")}
    images.put(keys["plain"], write_exposure(exp))
    images.put(keys["packed"], compress_exposure(exp, CompressionSpec((32, 32), 16.0)))
    ra, dec = wcs.all_pix2world(x, y, 0)
    return keys, np.asarray(ra), np.asarray(dec)


@pytest.mark.parametrize("form", ["plain", "packed"])
def test_forced_flux_through_ranged_gets_equals_the_whole_object(images, stored, form):
    keys, ra, dec = stored
    source = BlobSource(images, keys[form])
    # GETs modelled with a 0.2 ms wait read gaps over 18 kB through no more (these files are small)
    f = ExposureFile.open(source, what="difference", cost=ReadCost(first_byte_s=0.0002))
    assert f.compressed == (form == "packed")
    windows = sky_windows(f.wcs, f.shape, ra, dec, forced_half_size_pix(f.psf))
    got = forced_photometry_exposure(f.read_windows(windows, whole=False), ra, dec)
    expect = forced_photometry_exposure(read_exposure(images.get(keys[form])), ra, dec)
    assert np.array_equal(got.flux, expect.flux) and np.array_equal(got.flux_err, expect.flux_err)
    stats = source.stats.snapshot()
    assert stats["heads"] == 1 and 4 <= stats["gets"] <= 40
    assert stats["bytes"] < 0.5 * images.size(keys[form])


def test_whole_read_is_a_few_parallel_gets(images, stored):
    keys, _, _ = stored
    source = BlobSource(images, keys["plain"], parallelism=4)
    f = ExposureFile.open(source)
    before = source.stats.gets
    whole = f.read_all()
    assert source.stats.gets - before == 8  # ReadCost's parallelism: equal ranges
    assert np.array_equal(whole.image, read_exposure(images.get(keys["plain"])).image)


def test_missing_object_is_not_found(images):
    with pytest.raises(NotFoundError):
        ExposureFile.open(BlobSource(images, image_key(99, 9, "science")))

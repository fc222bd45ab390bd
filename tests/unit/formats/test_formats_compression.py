"""Tile compression of exposures: lossless masks, bounded quantisation, identical re-writes."""

from __future__ import annotations

import itertools
import time

import numpy as np
from synthetic import make_wcs

from alertprod.formats import Exposure, ExposureInfo, MaskBit, read_exposure
from alertprod.formats.compression import ARCHIVE_COMPRESSION, compress_exposure


def _exposure() -> Exposure:
    rng = np.random.default_rng(8)
    image = rng.normal(0.0, 20.0, (300, 260)).astype(np.float32)
    mask = np.where(rng.random(image.shape) < 0.01, int(MaskBit.SAT), 0).astype(np.int32)
    psf = np.zeros((5, 5))
    psf[2, 2] = 1.0
    # a constant variance: tiles astropy cannot quantise, stored through gzip instead
    return Exposure(image, np.full(image.shape, 400.0, np.float32), mask, psf,
                    make_wcs(nx=260, ny=300), ExposureInfo(3, 1, "z", 60100.2, 30.0))


def test_recompressing_gives_identical_bytes_even_seconds_apart(monkeypatch):
    clock = itertools.count(1_700_000_000, 10)  # every call of time.time() ten seconds later
    monkeypatch.setattr(time, "time", lambda: float(next(clock)))
    exp = _exposure()
    assert compress_exposure(exp) == compress_exposure(exp)


def test_archive_compression_keeps_the_mask_and_bounds_the_quantisation():
    exp = _exposure()
    back = read_exposure(compress_exposure(exp))
    assert np.array_equal(back.mask, exp.mask)
    assert np.array_equal(back.variance, exp.variance)  # constant tiles are kept exactly
    step = 20.0 / ARCHIVE_COMPRESSION.quantize_level  # quantised to σ/q
    assert np.max(np.abs(back.image - exp.image)) <= step

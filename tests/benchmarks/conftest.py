"""Scene builders shared by the benchmarks: one core, a CCD's WCS and exposures, the site, timing.

Before these, benchmarks carried copies of each other: the TAN WCS of 0.2″ pixels (pipeline,
precovery, detection, subtraction), the noise-plus-stars exposure (pipeline, precovery,
subtraction), the one-thread setup (pipeline, precovery, forced), the Rubin site (pipeline,
ephemeris) and a best-of timer (alert build, association, ephemeris, forced, subtraction).
``tests/`` is not a package, so they are fixtures, handed to each benchmark by name as
``tests/conftest.py`` hands out ``upload_factory``; the builders are factories so that a
benchmark states its scene where it is measured.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any, NamedTuple

import numpy as np
import pytest
from astropy.wcs import WCS
from threadpoolctl import threadpool_limits

from alertprod.formats import Exposure, ExposureInfo
from alertprod.imaging.psf import add_point_sources

#: Environment variables that size the thread pools of BLAS, OpenMP and numexpr.
THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS")

#: Rubin Observatory (Cerro Pachón): geodetic longitude and latitude [deg], height [m].
RUBIN_SITE = {"obs_lon_deg": -70.749417, "obs_lat_deg": -30.244639, "obs_height_m": 2663.0}


class Timing(NamedTuple):
    """Best of repeated calls: the last result, and the smallest wall and CPU seconds."""

    result: Any
    wall_s: float
    cpu_s: float


@pytest.fixture
def one_core(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Run the test on one thread, as one function instance gets it.

    Sets the thread-pool variables (for libraries that read them when they start) and limits
    the pools already running with threadpoolctl, for the whole test.
    """
    for var in THREAD_VARS:
        monkeypatch.setenv(var, "1")
    with threadpool_limits(limits=1):
        yield


@pytest.fixture
def rubin_site() -> dict[str, float]:
    """The observatory keywords of :func:`alertprod.orbits.predict_positions` for Rubin."""
    return dict(RUBIN_SITE)


@pytest.fixture
def tan_wcs() -> Callable[..., WCS]:
    """Factory of a gnomonic (TAN) WCS centred on a square CCD, north up, east left.

    ``tan_wcs(ra_deg, dec_deg, n_pix, *, scale_arcsec=0.2)``: the reference pixel is the
    centre of the ``n_pix`` × ``n_pix`` detector (FITS 1-based ``(n_pix + 1) / 2``), pixels
    ``scale_arcsec`` on a side (0.2″: LSST).
    """

    def make(ra_deg: float, dec_deg: float, n_pix: int, *, scale_arcsec: float = 0.2) -> WCS:
        w = WCS(naxis=2)
        w.wcs.ctype = ["RA---TAN", "DEC--TAN"]
        w.wcs.crval = [ra_deg, dec_deg]
        w.wcs.crpix = [(n_pix + 1) / 2, (n_pix + 1) / 2]
        w.wcs.cd = np.array([[-scale_arcsec / 3600, 0.0], [0.0, scale_arcsec / 3600]])
        return w

    return make


@pytest.fixture
def ccd_exposure() -> Callable[..., Exposure]:
    """Factory of a square exposure: Gaussian sky noise plus point sources, nothing masked.

    ``ccd_exposure(rng, n_pix, sigma_njy, psf, wcs, info, *, sources=())``: float32 noise of
    standard deviation ``sigma_njy`` [nJy] drawn from ``rng``, then each ``(x_pix, y_pix,
    flux_njy)`` group of ``sources`` added through ``psf`` in order (0-based pixel positions);
    variance ``sigma_njy²`` everywhere, mask all zero.
    """

    def make(rng: np.random.Generator, n_pix: int, sigma_njy: float, psf: np.ndarray, wcs: WCS,
             info: ExposureInfo, *,
             sources: Sequence[tuple[np.ndarray, np.ndarray, np.ndarray | float]] = ()) -> Exposure:
        image = rng.standard_normal((n_pix, n_pix), dtype=np.float32) * np.float32(sigma_njy)
        for x, y, flux in sources:
            add_point_sources(image, psf, x, y, flux)
        return Exposure(image, np.full((n_pix, n_pix), sigma_njy**2, np.float32),
                        np.zeros((n_pix, n_pix), np.int32), psf, wcs, info)

    return make


@pytest.fixture
def best_of() -> Callable[..., Timing]:
    """Factory timing ``fn()`` ``repeat`` times: ``best_of(fn, repeat=3) -> Timing``.

    Wall (``time.perf_counter``) and CPU (``time.process_time``) minima are taken separately;
    the result is that of the last call.
    """

    def time_it(fn: Callable[[], Any], repeat: int = 3) -> Timing:
        wall = cpu = float("inf")
        result = None
        for _ in range(repeat):
            c0, w0 = time.process_time(), time.perf_counter()
            result = fn()
            wall = min(wall, time.perf_counter() - w0)
            cpu = min(cpu, time.process_time() - c0)
        return Timing(result, wall, cpu)

    return time_it

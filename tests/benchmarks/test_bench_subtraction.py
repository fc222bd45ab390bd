"""Benchmark: ZOGY subtraction of a 4k × 4k CCD, and beside it SFFT's numpy backend at 1k × 1k.

SFFT (Hu et al. 2022) is run through ``Customized_Packet.CP`` with ``BACKEND_4SUBTRACT='Numpy'``
on the same science/template pair written to FITS; its numba functions are compiled on a small
warm-up pair first so that the timing is of the subtraction itself. SFFT's numpy backend needs
~30 s at 1k × 1k, so the 4k × 4k comparison is made at 1k and our 4k time is reported alone.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pytest
import scipy.fft as sfft_mod
from astropy.io import fits
from astropy.wcs import WCS

from alertprod.formats import Exposure, ExposureInfo
from alertprod.imaging.psf import add_point_sources, gaussian_psf
from alertprod.imaging.subtraction import zogy_subtract

RESULTS = Path(__file__).parent / "results"
INFO = ExposureInfo(visit=1, detector=0, band="r", mjd_mid_tai=60000.0, exptime_s=30.0)


def _pair(n: int, seed: int = 0) -> tuple[Exposure, Exposure]:
    rng = np.random.default_rng(seed)
    w = WCS(naxis=2)
    w.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    w.wcs.crval = [150.0, 2.0]
    w.wcs.crpix = [n / 2, n / 2]
    w.wcs.cd = np.array([[-0.2 / 3600, 0], [0, 0.2 / 3600]])
    psf_n, psf_r = gaussian_psf(4.0), gaussian_psf(2.8)
    nstar = n * n // 4000
    x, y = rng.uniform(10, n - 10, nstar), rng.uniform(10, n - 10, nstar)
    flux = 10 ** rng.uniform(3.5, 6, nstar)
    sci = rng.normal(0, 100.0, (n, n)).astype(np.float32)
    tmp = rng.normal(0, 30.0, (n, n)).astype(np.float32)
    add_point_sources(sci, psf_n, x, y, flux)
    add_point_sources(tmp, psf_r, x, y, flux)
    add_point_sources(sci, psf_n, rng.uniform(10, n - 10, 50), rng.uniform(10, n - 10, 50), 5e4)

    def exp(img, sig, psf):
        return Exposure(img, np.full((n, n), sig**2, np.float32), np.zeros((n, n), np.int32), psf, w, INFO)

    return exp(sci, 100.0, psf_n), exp(tmp, 30.0, psf_r)


def _time_zogy(n: int, repeat: int = 3) -> float:
    sci, tmp = _pair(n)
    zogy_subtract(sci, tmp)  # warm caches
    best = np.inf
    for _ in range(repeat):
        t0 = time.perf_counter()
        zogy_subtract(sci, tmp)
        best = min(best, time.perf_counter() - t0)
    return best


def _time_fft_pair(n: int, repeat: int = 3) -> float:
    """Reference: one float32 rfft2 + irfft2 of an n × n image (workers=2), to read the machine's load."""
    a = np.random.default_rng(0).normal(size=(n, n)).astype(np.float32)
    best = np.inf
    for _ in range(repeat):
        t0 = time.perf_counter()
        sfft_mod.irfft2(sfft_mod.rfft2(a, workers=2), s=a.shape, workers=2)
        best = min(best, time.perf_counter() - t0)
    return best


def _time_sfft(n: int, tmp_path: Path) -> float:
    from sfft.CustomizedPacket import Customized_Packet

    def run(size: int) -> float:
        sci, tmp = _pair(size, seed=1)
        paths = {}
        for name, arr in (("sci", sci.image), ("ref", tmp.image)):
            p = tmp_path / f"{name}{size}.fits"
            fits.PrimaryHDU(arr.astype(np.float64)).writeto(p, overwrite=True)
            paths[name] = str(p)
        t0 = time.perf_counter()
        Customized_Packet.CP(FITS_REF=paths["ref"], FITS_SCI=paths["sci"], FITS_mREF=paths["ref"],
                             FITS_mSCI=paths["sci"], ForceConv="REF", GKerHW=8, KerPolyOrder=2,
                             BGPolyOrder=2, ConstPhotRatio=True, BACKEND_4SUBTRACT="Numpy",
                             NUM_CPU_THREADS_4SUBTRACT=2, VERBOSE_LEVEL=0,
                             FITS_DIFF=str(tmp_path / f"diff{size}.fits"))
        return time.perf_counter() - t0

    run(128)  # numba compilation
    return run(n)


@pytest.mark.bench
def test_zogy_4k_ccd_subtraction_time_against_sfft(tmp_path):
    pytest.importorskip("sfft")
    fft_4k = _time_fft_pair(4096)
    ours_4k = _time_zogy(4096)
    ours_1k = _time_zogy(1024)
    sfft_1k = _time_sfft(1024, tmp_path)
    rows = [("alertprod zogy_subtract", "4096x4096", ours_4k), ("alertprod zogy_subtract", "1024x1024", ours_1k),
            ("sfft numpy backend (CP)", "1024x1024", sfft_1k),
            ("reference: one rfft2+irfft2 pair", "4096x4096", fft_4k)]
    print("\n| method | image | wall time (s) |\n|---|---|---|")
    for name, size, sec in rows:
        print(f"| {name} | {size} | {sec:.3f} |")
    print(f"ratio sfft / ours at 1k x 1k: {sfft_1k / ours_1k:.1f}x; target 4k <= 5 s: {ours_4k:.2f} s "
          f"(= {ours_4k / fft_4k:.1f} FFT pairs of this machine now)")
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "subtraction.json").write_text(json.dumps({
        "zogy_4096_s": ours_4k, "zogy_1024_s": ours_1k, "sfft_numpy_1024_s": sfft_1k,
        "ratio_sfft_over_zogy_1024": sfft_1k / ours_1k, "fft_pair_4096_s": fft_4k,
        "zogy_4096_in_fft_pairs": ours_4k / fft_4k, "workers": 2}, indent=2))
    assert ours_4k <= 5.0

"""Benchmark: forced PSF photometry throughput, ours against photutils ``PSFPhotometry``.

Both measure fluxes at fixed positions on the same 2048 × 2048 image with 21 × 21 stamps (a
Moffat PSF of FWHM 3.5 px, the Rubin median seeing): photutils on a subset (it fits each
source with an iterative least-squares fitter), ours on 10⁵ positions; rates are per source,
single thread (BLAS/OpenMP limited to one thread). Figures are CPU seconds of this process,
best of three, so that other load on the machine inflates them as little as possible; wall
seconds are printed beside them.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest

from alertprod.imaging.psf import add_point_sources, moffat_psf
from alertprod.photometry import forced_psf_photometry

RESULTS = Path(__file__).parent / "results"
N_OURS = 100_000
N_PHOTUTILS = 300


@pytest.mark.bench
def test_forced_photometry_rate_against_photutils(one_core, best_of):
    from astropy.table import Table
    from photutils.psf import ImagePSF, PSFPhotometry

    rng = np.random.default_rng(42)
    n = 2048
    psf = moffat_psf(3.5, size_pix=21)
    image = rng.normal(0.0, 10.0, (n, n))
    x, y = rng.uniform(0, n - 1, N_OURS), rng.uniform(0, n - 1, N_OURS)
    add_point_sources(image, psf, x[:2000], y[:2000], rng.uniform(100, 5000, 2000))
    image = image.astype(np.float32)
    variance = np.full((n, n), 100.0, np.float32)
    mask = np.zeros((n, n), np.int32)
    # photutils' subset at integer positions: its spline model and our sinc shift then both
    # reproduce the PSF image exactly, so the two fits can also be compared.
    xs, ys = np.round(x[:N_PHOTUTILS]), np.round(y[:N_PHOTUTILS])
    inner = (xs > 10) & (xs < n - 11) & (ys > 10) & (ys < n - 11)
    xs, ys = xs[inner], ys[inner]

    _, wall_ours, cpu_ours = best_of(
        lambda: forced_psf_photometry(image, variance, mask, psf, x, y), repeat=3)
    model = ImagePSF(psf)
    model.x_0.fixed = True
    model.y_0.fixed = True
    phot = PSFPhotometry(model, 21)
    init = Table({"x_init": xs, "y_init": ys, "flux_init": np.full(xs.size, 100.0)})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        table, wall_pu, cpu_pu = best_of(
            lambda: phot(image, error=np.sqrt(variance), init_params=init), repeat=1)
    sub = forced_psf_photometry(image, variance, mask, psf, xs, ys)

    diff_sigma = np.abs(sub.flux - np.asarray(table["flux_fit"])) / sub.flux_err
    rate_ours = N_OURS / cpu_ours
    rate_pu = xs.size / cpu_pu
    figures = {
        "image_pix": [n, n],
        "stamp_pix": 21,
        "threads": 1,
        "ours_sources": N_OURS,
        "ours_cpu_s": round(cpu_ours, 4),
        "ours_wall_s": round(wall_ours, 4),
        "ours_sources_per_s": round(rate_ours, 1),
        "photutils_sources": int(xs.size),
        "photutils_cpu_s": round(cpu_pu, 4),
        "photutils_wall_s": round(wall_pu, 4),
        "photutils_sources_per_s": round(rate_pu, 1),
        "speedup": round(rate_ours / rate_pu, 1),
        "max_flux_difference_sigma": float(diff_sigma.max()),
    }
    print()
    print(f"{'forced PSF photometry, 21x21 stamps, 1 thread':<48}{'sources':>9}{'CPU s':>9}"
          f"{'wall s':>9}{'sources/s':>12}")
    print(f"{'alertprod forced_psf_photometry':<48}{N_OURS:>9}{cpu_ours:>9.3f}{wall_ours:>9.3f}"
          f"{rate_ours:>12.0f}")
    print(f"{'photutils PSFPhotometry (fixed x, y)':<48}{xs.size:>9}{cpu_pu:>9.3f}{wall_pu:>9.3f}"
          f"{rate_pu:>12.1f}")
    print(f"speed-up {rate_ours / rate_pu:.0f}x; max |ours - photutils| = {diff_sigma.max():.2e} sigma")
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "forced.json").write_text(json.dumps(figures, indent=2) + "\n")

    assert diff_sigma.max() < 1e-3
    assert rate_ours >= 1e5
    assert rate_ours / rate_pu >= 1000

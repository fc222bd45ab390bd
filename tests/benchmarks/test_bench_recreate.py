"""Benchmark: re-creating one 4096 × 4096 epoch's difference around 10 and 1,000 positions.

Against whole-CCD ZOGY (``zogy_subtract(..., compute_score=False)``, what a re-creation of the
cached image would run) in the same run, one thread (FFTs with ``workers=1``, BLAS/OpenMP
limited to one). The tile size is chosen from a scan: for each ``tile_pix`` the time of
:func:`~alertprod.imaging.recreate.recreate_difference` at 10 and 1,000 positions, and the
quality of the 1,000 transients' ``psfFlux``: pulls against the truth and the largest difference
from the whole-CCD measurement, in σ (the last ``tile_pix`` exceeds the CCD: one cell). Then the
full measurement at the default tile size (:func:`~alertprod.photometry.recreated.measure_recreated`:
re-creation, ``psfFlux``, ``scienceFlux`` with its position refinement, rows). CPU seconds of
the process, best of two or three. Figures in ``results/recreate.json``; docs/images.md, "Re-created difference images"
quotes them.
"""

from __future__ import annotations

import json
import tracemalloc
from pathlib import Path

import numpy as np
import pytest

from alertprod.formats import ExposureInfo
from alertprod.imaging.psf import psf_effective_area_pix
from alertprod.imaging.recreate import DEFAULT_TILE_PIX, recreate_difference, recreation_tiles
from alertprod.imaging.subtraction import zogy_subtract
from alertprod.photometry import forced_psf_photometry, measure_recreated
from alertprod.sky.render import make_psf

RESULTS = Path(__file__).parent / "results"
INFO = ExposureInfo(visit=1, detector=0, band="r", mjd_mid_tai=60000.0, exptime_s=30.0)
N_PIX = 4096
TILE_SIZES = (145, 256, 512, 768, 1024, 1536, 2048, 4096 + 200)
SIG_N, SIG_R = 60.0, 60.0 / np.sqrt(20)


def _epoch(tan_wcs, ccd_exposure, rng):
    """Science (Moffat FWHM 4 px: 0.8″) and template (3 px) of ~4,200 stars; 1,000 transients of
    difference S/N 5–50 in the science only, on a jittered 128-px grid (so that no two overlap),
    in random order."""
    w = tan_wcs(150.0, 2.0, N_PIX)
    psf_n, psf_r = make_psf(4.0), make_psf(3.0)
    nstar = N_PIX * N_PIX // 4000
    stars = (rng.uniform(0, N_PIX, nstar), rng.uniform(0, N_PIX, nstar), 10 ** rng.uniform(3.5, 5.5, nstar))
    err = np.sqrt(SIG_N**2 + SIG_R**2) * np.sqrt(psf_effective_area_pix(psf_n))
    g = np.arange(64.0, N_PIX, 128.0)
    gx, gy = (a.ravel() + rng.uniform(-60, 60, a.size) for a in np.meshgrid(g, g))
    pick = rng.permutation(gx.size)[:1000]
    tx, ty = gx[pick], gy[pick]
    tflux = err * 10 ** rng.uniform(np.log10(5), np.log10(50), 1000)
    sci = ccd_exposure(rng, N_PIX, SIG_N, psf_n, w, INFO, sources=[stars, (tx, ty, tflux)])
    tmp = ccd_exposure(rng, N_PIX, SIG_R, psf_r, w, INFO, sources=[stars])
    return sci, tmp, tx, ty, tflux


def _quality(diff, whole_res, x, y, flux):
    res = forced_psf_photometry(diff.image, diff.variance, diff.mask, diff.psf, x, y)
    ok = np.isfinite(res.flux) & np.isfinite(whole_res.flux)
    pull = (res.flux[ok] - flux[ok]) / res.flux_err[ok]
    dev = np.abs(res.flux[ok] - whole_res.flux[ok]) / whole_res.flux_err[ok]
    return {"n": int(ok.sum()), "pull_mean": round(float(pull.mean()), 4), "pull_std": round(float(pull.std()), 4),
            "max_diff_from_whole_sigma": float(dev.max())}


@pytest.mark.bench
def test_recreated_epoch_time_against_whole_ccd_zogy(one_core, tan_wcs, ccd_exposure, best_of):
    rng = np.random.default_rng(7)
    sci, tmp, tx, ty, tflux = _epoch(tan_wcs, ccd_exposure, rng)
    psf_size = max(sci.psf.shape[0], tmp.psf.shape[0])
    whole = best_of(lambda: zogy_subtract(sci, tmp, flux_scale=1.0, workers=1, compute_score=False), repeat=2)
    whole_res = forced_psf_photometry(whole.result.difference.image, whole.result.difference.variance,
                                      whole.result.difference.mask, whole.result.difference.psf, tx, ty)
    scan = []
    for tile in TILE_SIZES:
        row = {"tile_pix": tile}
        for n_pos, repeat in ((10, 3), (1000, 2)):
            x, y = tx[:n_pos], ty[:n_pos]
            tiles = recreation_tiles(x, y, sci.shape, psf_size_pix=psf_size, tile_pix=tile)
            t = best_of(lambda x=x, y=y, tile=tile: recreate_difference(sci, tmp, x, y, tile_pix=tile),
                        repeat=repeat)
            row[f"tiles_{n_pos}"] = len(tiles)
            row[f"window_mpix_{n_pos}"] = round(sum((w[1] - w[0]) * (w[3] - w[2]) for w, _, _ in tiles) / 1e6, 3)
            row[f"cpu_s_{n_pos}"] = round(t.cpu_s, 4)
            if n_pos == 1000:
                row.update(_quality(t.result, whole_res, tx, ty, tflux))
        scan.append(row)
    default = {}
    for n_pos in (1, 10, 1000):
        x, y = tx[:n_pos], ty[:n_pos]
        ra, dec = sci.wcs.all_pix2world(x, y, 0)
        rec = best_of(lambda x=x, y=y: recreate_difference(sci, tmp, x, y), repeat=2 if n_pos > 10 else 3)
        assert np.isfinite(rec.result.image).any()
        rows = best_of(lambda ra=ra, dec=dec: measure_recreated(sci, tmp, ra, dec, processed_mjd_tai=60001.0),
                       repeat=2 if n_pos > 10 else 3)
        tracemalloc.start()
        measure_recreated(sci, tmp, ra, dec, processed_mjd_tai=60001.0)
        peak_mb = tracemalloc.get_traced_memory()[1] / 1e6
        tracemalloc.stop()
        default[n_pos] = {"tiles": len(recreation_tiles(x, y, sci.shape, psf_size_pix=psf_size)),
                          "measure_peak_mb_beyond_inputs": round(peak_mb, 1),
                          "recreate_cpu_s": round(rec.cpu_s, 4), "measure_cpu_s": round(rows.cpu_s, 4),
                          "ratio_recreate_over_whole": round(rec.cpu_s / whole.cpu_s, 4),
                          "ratio_measure_over_whole": round(rows.cpu_s / whole.cpu_s, 4), "rows": len(rows.result)}

    # the full-shape output planes alone (image, variance, mask filled with NaN / NO_DATA)
    alloc = best_of(lambda: [np.full((N_PIX, N_PIX), np.nan, np.float32), np.full((N_PIX, N_PIX), np.nan, np.float32),
                             np.full((N_PIX, N_PIX), 256, np.int32)], repeat=3)
    print(f"\nwhole-CCD ZOGY {N_PIX}² (no score), one thread: {whole.cpu_s:.2f} CPU s ({whole.wall_s:.2f} wall)")
    print("| tile_pix | tiles@10 | CPU s@10 | tiles@1000 | Mpix read@1000 | CPU s@1000 | pull mean | pull std "
          "| max Δ vs whole (σ) |\n|---|---|---|---|---|---|---|---|---|")
    for r in scan:
        print(f"| {r['tile_pix']} | {r['tiles_10']} | {r['cpu_s_10']:.3f} | {r['tiles_1000']} | "
              f"{r['window_mpix_1000']:.1f} | {r['cpu_s_1000']:.2f} | {r['pull_mean']:+.3f} | {r['pull_std']:.3f} | "
              f"{r['max_diff_from_whole_sigma']:.1e} |")
    for n_pos, d in default.items():
        print(f"default (tile_pix {DEFAULT_TILE_PIX}) at {n_pos} positions: {d['tiles']} tile(s), "
              f"re-create {d['recreate_cpu_s']:.3f} s ({d['ratio_recreate_over_whole']:.3f} × whole), "
              f"with rows {d['measure_cpu_s']:.3f} s ({d['ratio_measure_over_whole']:.3f} × whole), {d['rows']} rows, "
              f"peak {d['measure_peak_mb_beyond_inputs']:.0f} MB beyond the inputs")
    print(f"filling the three full-shape output planes alone: {alloc.cpu_s:.3f} CPU s")
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "recreate.json").write_text(json.dumps({
        "image_pix": [N_PIX, N_PIX], "threads": 1, "psf_fwhm_pix": [4.0, 3.0], "psf_size_pix": psf_size,
        "whole_ccd_zogy_cpu_s": round(whole.cpu_s, 4), "whole_ccd_zogy_wall_s": round(whole.wall_s, 4),
        "default_tile_pix": DEFAULT_TILE_PIX, "scan": scan, "full_shape_output_fill_cpu_s": round(alloc.cpu_s, 4),
        "default": {str(k): v for k, v in default.items()}}, indent=2))
    for r in scan:
        assert r["n"] >= 990 and abs(r["pull_mean"]) < 0.1 and abs(r["pull_std"] - 1) < 0.06
        assert r["max_diff_from_whole_sigma"] < 1e-3
    assert default[10]["ratio_measure_over_whole"] < 0.1
    assert default[1000]["ratio_recreate_over_whole"] < 1.2

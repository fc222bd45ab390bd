"""Benchmark: detection completeness versus S/N, and false detections per 4k × 4k CCD of blank sky.

Sources are injected on a grid into white noise with a Gaussian PSF (FWHM 4 px) at fixed PSF
S/N values; a source counts as found when a detection lies within 2 pixels. With a 5σ threshold
the completeness at S/N ν is bounded by Φ(ν − 5) for an ideal matched filter (84 % at ν = 6,
98 % at ν = 7), which the table shows beside the measurement.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pytest
from scipy.spatial import cKDTree
from scipy.stats import norm

from alertprod.formats import Exposure, ExposureInfo
from alertprod.imaging.detection import detect_dia_sources
from alertprod.imaging.psf import add_point_sources, gaussian_psf

RESULTS = Path(__file__).parent / "results"
INFO = ExposureInfo(visit=1, detector=0, band="r", mjd_mid_tai=60000.0, exptime_s=30.0)
PSF = gaussian_psf(4.0)
SIGMA = 100.0


@pytest.mark.bench
def test_detection_completeness_by_snr_and_false_detections_per_ccd(tan_wcs):
    rng = np.random.default_rng(0)

    def blank_sky(n: int) -> Exposure:
        # white noise only, drawn in float64 as for the figures of docs/imaging.md (the
        # ccd_exposure fixture draws float32: another realisation, other false-detection counts)
        return Exposure(rng.normal(0, SIGMA, (n, n)).astype(np.float32),
                        np.full((n, n), SIGMA**2, np.float32), np.zeros((n, n), np.int32), PSF,
                        tan_wcs(150.0, 2.0, n), INFO)

    snr_per_njy = np.sqrt((PSF**2).sum()) / SIGMA
    rows = []
    for snr in (4.0, 5.0, 6.0, 7.0, 8.0, 10.0, 15.0, 25.0):
        found = total = 0
        for _ in range(2):
            exp = blank_sky(1024)
            g = np.arange(20.0, 1010, 25)
            gx, gy = np.meshgrid(g, g)
            x, y = gx.ravel() + rng.uniform(-0.5, 0.5, gx.size), gy.ravel() + rng.uniform(-0.5, 0.5, gx.size)
            add_point_sources(exp.image, PSF, x, y, snr / snr_per_njy)
            tab = detect_dia_sources(exp)
            d, _ = cKDTree(np.c_[tab["x"], tab["y"]]).query(np.c_[x, y])
            found, total = found + int((d < 2).sum()), total + x.size
        rows.append({"snr": snr, "completeness": found / total, "ideal": float(norm.cdf(snr - 5.0)), "n": total})
    blank = blank_sky(4096)
    t0 = time.perf_counter()
    tab = detect_dia_sources(blank)
    seconds = time.perf_counter() - t0
    n_false = len(tab)
    print("\n| PSF S/N | completeness | ideal Φ(S/N − 5) | injected |\n|---|---|---|---|")
    for r in rows:
        print(f"| {r['snr']:.0f} | {r['completeness']:.3f} | {r['ideal']:.3f} | {r['n']} |")
    print(f"false detections at 5σ on a blank 4096×4096 CCD: {n_false} "
          f"({n_false / 16.777216:.2f} per Mpix); detection time {seconds:.2f} s")
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "detection.json").write_text(json.dumps({
        "completeness": rows, "false_per_ccd_4096": n_false, "false_per_mpix": n_false / 16.777216,
        "detect_4096_blank_s": seconds}, indent=2))
    assert all(r["completeness"] >= 0.95 for r in rows if r["snr"] >= 7)

"""Benchmark: what the daily orbit refresh costs per night, measured on 10⁴ orbits, for 10⁶.

One chunk of 10⁴ orbits (the template's ``OrbitRefreshChunkOrbits``) goes through the worker's
path as :func:`alertprod.orbitrefresh.run_refresh_inline` runs it — parse its MPCORB.DAT
lines, integrate to the night (n-body), the NEO rule's extra day of integration, encode and
stage its elements, the fan-in — on one core, with base elements 1, 30 and 150 days older than
the night (the MPC keeps one standard epoch for months, so the span grows until the next
epoch). The catalog is 97.5 % main-belt and 2.5 % near-Earth orbits (MPCORB's share).

Extrapolation to 10⁶ orbits: 100 chunks, one worker invocation each at 1,769 MB (one full
vCPU: its duration is its measured wall time), priced by :func:`alertprod.orbitrefresh.refresh_cost`
(Lambda arm64, SQS, S3 and DynamoDB list prices), the night's catalog stored compressed as the
APDB stores it. Also: what a function container pays to load a night's catalog, and what an
exposure pays for the close approachers integrated to its time. Peer: the two-body refresh the
catalog had before (no cost per night, arcseconds of error after months: docs/solar-system.md).
"""

from __future__ import annotations

import json
import zlib
from pathlib import Path

import numpy as np
import pytest

from alertprod.apdb import MemoryApdb
from alertprod.aws import MemoryBlobStore
from alertprod.orbitrefresh import (
    RefreshConfig,
    decode_night_elements,
    elements_at_exposure,
    night_catalog,
    night_drift_arcsec,
    refresh_cost,
    refresh_elements,
    run_refresh_inline,
)
from alertprod.orbits import OrbitCatalog, read_mpcorb, write_mpcorb
from alertprod.orbits.kepler import Elements

N_ORBITS = 10_000
N_CATALOG = 1_000_000
NIGHT = 61000
SPANS_DAYS = (1, 30, 150)
WORKER_MB = 1769
RESULTS = Path(__file__).parent / "results" / "orbit_refresh.json"


def _catalog(n: int, epoch: float, seed: int = 0) -> str:
    """MPCORB.DAT of n orbits at ``epoch``: 97.5 % main belt, 2.5 % near-Earth."""
    rng = np.random.default_rng(seed)
    n_neo = n // 40
    a = np.concatenate([rng.uniform(2.1, 3.3, n - n_neo), rng.uniform(0.9, 2.5, n_neo)])
    e = np.concatenate([rng.uniform(0, 0.3, n - n_neo), rng.uniform(0.1, 0.7, n_neo)])
    i = np.concatenate([rng.uniform(0, 30, n - n_neo), rng.uniform(0, 40, n_neo)])
    elements = Elements(a, e, i, rng.uniform(0, 360, n), rng.uniform(0, 360, n),
                        rng.uniform(0, 360, n), np.full(n, epoch))
    names = np.array([f"~{k:04d}" for k in range(n)])  # fake packed numbers, unique below 10⁴
    return write_mpcorb(OrbitCatalog.from_elements(elements, names, h=17.0, designation=names),
                        header=True)


@pytest.mark.bench
def test_bench_orbit_refresh_cost_per_night_for_1e6_orbits(best_of, one_core):
    figures = {"orbits": N_ORBITS, "catalog": N_CATALOG, "chunk_orbits": N_ORBITS,
               "worker_memory_mb": WORKER_MB, "spans": {}}
    chunks = N_CATALOG // N_ORBITS
    print(f"\norbit refresh of {N_ORBITS} orbits (one chunk), one core; 10⁶ orbits = {chunks} chunks")
    print(f"{'span d':>6}{'parse s':>9}{'n-body s':>10}{'NEO rule s':>11}{'chunk CPU s':>12}"
          f"{'chunk wall s':>13}{'1e6 CPU s':>11}{'1e6 GB-s':>10}{'$/night':>9}{'$/month':>9}")
    for span in SPANS_DAYS:
        text = _catalog(N_ORBITS, NIGHT + 1.0 - span)
        catalog = read_mpcorb(text)
        refresh_elements(catalog[:10], NIGHT)  # warm astropy (ephemeris, tables)
        parse = best_of(lambda text=text: read_mpcorb(text), repeat=1)
        science = best_of(lambda catalog=catalog: refresh_elements(catalog, NIGHT), repeat=1)
        moved = science.result.catalog
        rule = best_of(lambda moved=moved: night_drift_arcsec(moved, NIGHT + 1.0), repeat=1)
        apdb, staging = MemoryApdb(), MemoryBlobStore()
        apdb.store_orbit_catalog(text)
        report = run_refresh_inline(apdb, staging, night_mjd=NIGHT,
                                    config=RefreshConfig(chunk_orbits=N_ORBITS + 10,
                                                         worker_memory_mb=WORKER_MB))
        assert report.status == "refreshed" and report.orbits == N_ORBITS
        night_bytes = apdb.get_orbit_catalog(night_mjd=NIGHT)
        stored_bytes = len(zlib.compress(night_bytes, 6))  # as the APDB stores it
        cost = refresh_cost(chunks=chunks, cpu_seconds=report.cost.cpu_seconds * chunks,
                            wall_seconds=report.cost.wall_seconds * chunks, memory_mb=WORKER_MB,
                            night_bytes=stored_bytes * chunks,
                            base_bytes=len(zlib.compress(text.encode(), 6)) * chunks)
        figures["spans"][f"{span}_days"] = {
            "parse_cpu_seconds": parse.cpu_s,
            "nbody_to_night_cpu_seconds": science.cpu_s - rule.cpu_s,
            "neo_rule_cpu_seconds": rule.cpu_s,
            "chunk_cpu_seconds": report.cost.cpu_seconds,
            "chunk_wall_seconds": report.cost.wall_seconds,
            "close_approachers": report.close_approachers,
            "night_bytes_per_1e4": len(night_bytes),
            "night_bytes_stored_per_1e4": stored_bytes,
            "catalog_1e6": cost.as_dict(),
            "usd_per_month_30_nights": 30 * cost.total_usd,
        }
        print(f"{span:>6}{parse.cpu_s:>9.2f}{science.cpu_s - rule.cpu_s:>10.2f}{rule.cpu_s:>11.2f}"
              f"{report.cost.cpu_seconds:>12.2f}{report.cost.wall_seconds:>13.2f}"
              f"{cost.cpu_seconds:>11.0f}{cost.lambda_gb_seconds:>10.0f}{cost.total_usd:>9.3f}"
              f"{30 * cost.total_usd:>9.2f}")
    # what the nightly side pays: a container loads the night (decode + merge), scaled to 10⁶,
    # and an exposure integrates the close approachers (the 10⁶ catalog has ~10–100)
    base = read_mpcorb(_catalog(N_ORBITS, NIGHT + 1.0 - 30))
    load = best_of(lambda: night_catalog(base, decode_night_elements(night_bytes)), repeat=3)
    merged = load.result
    close = np.zeros(len(base), bool)
    close[np.flatnonzero(base.a < 2.5)[:100]] = True  # 100 orbits integrated to the exposure
    exposure = best_of(lambda: elements_at_exposure(merged.catalog, close, NIGHT + 1.2), repeat=3)
    figures["nightly"] = {
        "night_load_cpu_seconds_per_1e6": load.cpu_s * N_CATALOG / N_ORBITS,
        "night_load_read_units_per_1e6": int(stored_bytes * chunks / 4096) + 1,
        "close_approachers_100_at_exposure_cpu_seconds": exposure.cpu_s,
    }
    print(f"nightly: load a night's 10⁶ elements {load.cpu_s * 100:.1f} CPU s per container "
          f"({stored_bytes * chunks / 1e6:.0f} MB stored), 100 close approachers integrated to "
          f"an exposure {exposure.cpu_s * 1e3:.0f} ms")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(figures, indent=2) + "\n")


N_PREDICT = 20_000


@pytest.mark.bench
def test_bench_ccd_prediction_before_and_after_the_refresh(best_of, one_core):
    """What one CCD pays to predict the asteroids in its footprint, before and after issue 9.

    Before: two-body from the MPCORB epoch (150 days old), every orbit predicted, then the
    footprint selection — the step as it was. After: the night's elements from the cache
    (decoded once per container, so not timed per CCD), the close approachers integrated to
    the exposure, two-body from the night, the footprint selection, then each prediction's σ
    and radius from its U. Both on one core, several exposure times of the night, best of 3.
    """
    from astropy.table import Table

    from alertprod.association import predicted_table, select_in_region
    from alertprod.formats import ExposureInfo
    from alertprod.orbits import predict_positions
    from alertprod.pipeline import steps
    from alertprod.pipeline.orbit_cache import OrbitCache

    site = {"obs_lon_deg": -70.749417, "obs_lat_deg": -30.244639, "obs_height_m": 2663.0}
    text = _catalog(N_PREDICT, NIGHT + 1.0 - 150, seed=3)
    base = read_mpcorb(text)
    apdb, staging = MemoryApdb(), MemoryBlobStore()
    apdb.store_orbit_catalog(text)
    report = run_refresh_inline(apdb, staging, night_mjd=NIGHT,
                                config=RefreshConfig(chunk_orbits=N_PREDICT + 10))
    assert report.status == "refreshed"
    cache = OrbitCache(apdb)
    times = NIGHT + np.array([0.55, 0.7, 0.85, 1.0])  # exposures across the night (TAI MJD)
    eph0 = predict_positions(base, float(times[0]), **site)
    ra0, dec0 = float(eph0.ra_deg[0]), float(eph0.dec_deg[0])
    half = 0.5  # a 1° box: enough objects inside to exercise the per-object steps
    corners = np.array([[ra0 - half, dec0 - half], [ra0 + half, dec0 - half],
                        [ra0 + half, dec0 + half], [ra0 - half, dec0 + half]])

    def before(t: float):
        eph = predict_positions(base, t, **site)
        ok = np.isfinite(eph.ra_deg) & np.isfinite(eph.dec_deg)
        table = predicted_table(eph.select(ok))
        keep = select_in_region(Table({"i": np.arange(len(table)), "ra": table["ra"],
                                       "dec": table["dec"]}), corners, margin_arcsec=60.0)["i"]
        return table[np.asarray(keep, int)]

    def after(t: float):
        info = ExposureInfo(1, 0, "r", t, 30.0)
        return steps.predict_solar_system(cache.get(t), info, corners, margin_arcsec=60.0)[0]

    after(float(times[0]))  # the container's one-time load of the night (measured above)
    rows = []
    for t in times:
        old = best_of(lambda t=float(t): before(t), repeat=3)
        new = best_of(lambda t=float(t): after(t), repeat=3)
        assert new.result is not None and len(new.result) == len(old.result)
        rows.append((float(t), len(new.result), old.cpu_s, new.cpu_s))
    old_s = float(np.median([r[2] for r in rows]))
    new_s = float(np.median([r[3] for r in rows]))
    ratio = new_s / old_s
    print(f"\nper-CCD asteroid prediction, {N_PREDICT} orbits, one core "
          f"({rows[0][1]} in a 1° footprint):")
    for t, n, o, w in rows:
        print(f"  t = {t:.2f}: before {o * 1e3:.1f} ms, after {w * 1e3:.1f} ms ({n} in footprint)")
    print(f"median: before {old_s * 1e3:.1f} ms, after {new_s * 1e3:.1f} ms, ratio {ratio:.2f} "
          f"(10⁶ orbits: {old_s * 50:.1f} s → {new_s * 50:.1f} s)")
    figures = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    figures["ccd_prediction"] = {"orbits": N_PREDICT, "before_cpu_seconds": old_s,
                                 "after_cpu_seconds": new_s, "ratio_after_over_before": ratio,
                                 "in_footprint": rows[0][1]}
    RESULTS.write_text(json.dumps(figures, indent=2) + "\n")
    assert ratio <= 1.25, "the nightly prediction must cost no more than before (noise allowed)"

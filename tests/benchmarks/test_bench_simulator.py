"""Benchmark: the survey simulator's presets, and its FITS writers beside the ``formats`` writers.

``tiny`` (the test suite's survey) must take ≤ 5 s and ``night`` (the demo) ≤ 60 s wall on two
cores; the figures are printed with the CPU seconds of the parent and the worker processes, so
that a loaded machine (wall ≫ CPU / 2) can be told from a slow simulator. The peers of the fast
writers (:mod:`alertprod.sky.fastfits`) are :func:`alertprod.formats.write_exposure` and
:func:`alertprod.formats.write_diasource_catalog` on the same objects; their bytes are equal
(asserted here too).
"""

from __future__ import annotations

import json
import os
import resource
import time
from pathlib import Path

import numpy as np
import pytest
from astropy.table import Table

from alertprod.formats import (
    read_diasource_catalog,
    read_exposure,
    write_diasource_catalog,
    write_exposure,
)
from alertprod.sky import simulate_survey
from alertprod.sky.fastfits import diasource_catalog_bytes, exposure_bytes

RESULTS = Path(__file__).parent / "results"


def _cpu() -> tuple[float, float]:
    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime, kids.ru_utime + kids.ru_stime


def _simulate(preset: str, out: Path) -> dict:
    cpu0 = _cpu()
    t0 = time.perf_counter()
    s = simulate_survey(out, preset=preset, seed=0, progress=False)
    wall = time.perf_counter() - t0
    cpu1 = _cpu()
    return {"preset": preset, "wall_s": round(wall, 2), "cpu_parent_s": round(cpu1[0] - cpu0[0], 2),
            "cpu_workers_s": round(cpu1[1] - cpu0[1], 2), "ccd_visits": s.n_ccd_visits,
            "nights": s.n_nights, "diasources": s.n_diasources, "real": s.n_real, "bogus": s.n_bogus,
            "load_avg_1min": round(os.getloadavg()[0], 2)}


def _best(fn, *args, repeat: int = 5) -> float:
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn(*args)
        best = min(best, time.perf_counter() - t0)
    return best


@pytest.mark.bench
def test_bench_simulator_presets_and_fits_writers(tmp_path):
    rows = [_simulate("tiny", tmp_path / "tiny")]
    if os.environ.get("ALERTPROD_BENCH_NIGHT", "1") != "0":
        rows.append(_simulate("night", tmp_path / "night"))
    out = tmp_path / "tiny"
    exp = read_exposure(next((out / "images").rglob("science.fits")).read_bytes())
    cat = max((read_diasource_catalog(p.read_bytes()) for p in (out / "diasources").rglob("*.fits")),
              key=lambda c: len(c.table))
    # as detection returns it: plain columns (reading FITS back masks the NaNs)
    plain = Table({name: np.ma.getdata(cat.table[name]) for name in cat.table.colnames})
    cat_args = (plain, cat.info, cat.wcs, cat.detsize)
    assert exposure_bytes(exp) == write_exposure(exp)
    assert diasource_catalog_bytes(*cat_args) == write_diasource_catalog(*cat_args)
    writers = {
        "exposure_256": (_best(exposure_bytes, exp), _best(write_exposure, exp)),
        f"catalog_{len(cat.table)}_rows": (_best(diasource_catalog_bytes, *cat_args),
                                           _best(write_diasource_catalog, *cat_args)),
    }
    print()
    print(f"{'preset':8s} {'wall s':>7s} {'cpu parent':>10s} {'cpu workers':>11s} {'ccd-visits':>10s} "
          f"{'DiaSources':>10s} {'real':>6s} {'bogus':>6s} {'load':>5s}")
    for r in rows:
        print(f"{r['preset']:8s} {r['wall_s']:7.2f} {r['cpu_parent_s']:10.2f} {r['cpu_workers_s']:11.2f} "
              f"{r['ccd_visits']:10d} {r['diasources']:10d} {r['real']:6d} {r['bogus']:6d} "
              f"{r['load_avg_1min']:5.2f}")
    print(f"{'writer':22s} {'sky.fastfits ms':>15s} {'formats ms':>10s} {'speed-up':>8s}")
    for name, (ours, peer) in writers.items():
        print(f"{name:22s} {ours * 1e3:15.2f} {peer * 1e3:10.2f} {peer / ours:8.1f}")
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "simulator.json").write_text(json.dumps({
        "presets": rows,
        "writers_s": {k: {"fastfits": round(a, 5), "formats": round(b, 5), "ratio": round(b / a, 2)}
                      for k, (a, b) in writers.items()},
    }, indent=2) + "\n")
    assert all(r["real"] > 0 for r in rows)

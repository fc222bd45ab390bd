"""Benchmark: building alert records from Level 1 tables, column-wise converters against the original.

Inputs are one CCD's worth of typical alerts, as the nightly pipeline holds them: APDB-shaped
astropy Tables (all ~100 DiaSource columns, nulls masked, ~20% of nullable floats NaN), each
alert with 30 prvDiaSources and 30 prvDiaForcedSources (Table slices) and two ~30 KB cutouts.
Compared on the same inputs in the same run:

- ``reference``: the row-by-row implementation alert building had before (kept in
  ``tests/unit/alerts/test_alerts_packet_equivalence.py``), called per DiaSource;
- ``build_alert``: today's implementation, called the same way (astropy Row + Table slices);
- ``build_alerts``: the batch API, all DiaSources of the CCD in one call;
- ``build_alert (dicts)``: today's implementation on plain dict rows, for reference.

Target: >= 2,000 alerts/s for ``build_alert`` on one core, with byte-identical packets.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
from astropy.table import MaskedColumn, Table

from alertprod.alerts import build_alert, serialize_alert
from alertprod.alerts.examples import example_alert
from alertprod.alerts.packet import build_alerts
from alertprod.alerts.schema import record_spec
from alertprod.apdb.schema import conform

pytestmark = pytest.mark.bench

N_ALERTS = 60
REPEATS = 5
RESULTS = Path(__file__).parent / "results" / "alert_build.json"
_REFERENCE_FILE = Path(__file__).parents[1] / "unit" / "alerts" / "test_alerts_packet_equivalence.py"


def _reference_build_alert():
    spec = importlib.util.spec_from_file_location("_alert_build_reference", _REFERENCE_FILE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module._ref_build_alert


def _table(rows: list[dict], name: str, rng: np.random.Generator) -> Table:
    nullable = {s.name for r in ("diaSource", "diaObject", "diaForcedSource") for s in record_spec(r)
                if s.nullable}
    cols = {}
    for key in rows[0]:
        values = [r[key] for r in rows]
        mask = np.array([v is None for v in values])
        fill = next((v for v in values if v is not None), 0)
        col = MaskedColumn([fill if v is None else v for v in values], mask=mask)
        if col.dtype.kind == "f" and key in nullable:
            col[rng.random(len(rows)) < 0.2] = np.nan
        cols[key] = col
    return conform(Table(cols), name)


def _ccd(n_alerts: int):
    """Sources, objects and history tables of ``n_alerts`` typical alerts, plus their cutouts."""
    rng = np.random.default_rng(1)
    alerts = [example_alert(seed) for seed in range(n_alerts)]
    sources = _table([a["diaSource"] for a in alerts], "DiaSource", rng)
    objects = _table([a["diaObject"] for a in alerts], "DiaObject", rng)
    # each alert's history oldest first, as the pipeline's grouping (and build_alerts) orders it
    history = _table([r for a in alerts for r in a["prvDiaSources"][::-1]], "DiaSource", rng)
    forced = _table([r for a in alerts for r in a["prvDiaForcedSources"][::-1]], "DiaForcedSource", rng)
    return alerts, sources, objects, history, forced


def test_bench_alert_build_against_the_row_by_row_reference(best_of):
    reference = _reference_build_alert()
    alerts, sources, objects, history, forced = _ccd(N_ALERTS)
    n_prv = len(alerts[0]["prvDiaSources"])
    n_forced = len(alerts[0]["prvDiaForcedSources"])
    # the pipeline's inputs: a Row per source and object, Table slices of history
    calls = [(sources[k], objects[k], history[k * n_prv:(k + 1) * n_prv],
              forced[k * n_forced:(k + 1) * n_forced], a["cutoutDifference"], a["cutoutTemplate"])
             for k, a in enumerate(alerts)]

    def per_source(func):
        return [func(s, dia_object=o, prv_dia_sources=p, prv_dia_forced_sources=f,
                     cutout_difference=d, cutout_template=t) for s, o, p, f, d, t in calls]

    def batch():
        return build_alerts(sources, dia_objects=objects, prv_dia_sources=history,
                            prv_dia_forced_sources=forced,
                            cutouts_difference=[a["cutoutDifference"] for a in alerts],
                            cutouts_template=[a["cutoutTemplate"] for a in alerts])

    dict_calls = [(a["diaSource"], a["diaObject"], a["prvDiaSources"], a["prvDiaForcedSources"],
                   a["cutoutDifference"], a["cutoutTemplate"]) for a in alerts]

    def dicts():
        return [build_alert(s, dia_object=o, prv_dia_sources=p, prv_dia_forced_sources=f,
                            cutout_difference=d, cutout_template=t) for s, o, p, f, d, t in dict_calls]

    # same packets, byte for byte, before any timing
    expected = [serialize_alert(a) for a in per_source(reference)]
    assert [serialize_alert(a) for a in per_source(build_alert)] == expected
    assert [serialize_alert(a) for a in batch()] == expected

    rate_ref = N_ALERTS / best_of(lambda: per_source(reference), repeat=1).wall_s
    rate_new = N_ALERTS / best_of(lambda: per_source(build_alert), repeat=REPEATS).wall_s
    rate_batch = N_ALERTS / best_of(batch, repeat=REPEATS).wall_s
    rate_dicts = N_ALERTS / best_of(dicts, repeat=REPEATS).wall_s

    result = {
        "n_alerts": N_ALERTS,
        "alert": f"all DiaSource/DiaObject columns of APDB tables, {n_prv} prvDiaSources, "
                 f"{n_forced} prvDiaForcedSources, 2 cutouts of ~30 KB",
        "alerts_per_s": {"reference": round(rate_ref, 1), "build_alert": round(rate_new, 1),
                         "build_alerts": round(rate_batch, 1),
                         "build_alert_dict_rows": round(rate_dicts, 1)},
        "ratio_vs_reference": {"build_alert": round(rate_new / rate_ref, 1),
                               "build_alerts": round(rate_batch / rate_ref, 1)},
        "byte_identical": True,
        "target_2000_per_s": {"build_alert": bool(rate_new >= 2000),
                              "build_alerts": bool(rate_batch >= 2000)},
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")

    print(f"\nalert building, same {N_ALERTS} typical alerts (alerts/s, best of {REPEATS}; "
          "reference: 1 run)")
    print(f"{'':34} {'alerts/s':>10} {'ms/alert':>9} {'vs reference':>13}")
    for name, rate in (("reference (row by row)", rate_ref), ("build_alert (Row + Table slices)", rate_new),
                       ("build_alerts (whole CCD)", rate_batch), ("build_alert (dict rows)", rate_dicts)):
        print(f"{name:34} {rate:10.1f} {1000 / rate:9.3f} {rate / rate_ref:12.1f}x")
    print("packets byte-identical to the reference: yes")

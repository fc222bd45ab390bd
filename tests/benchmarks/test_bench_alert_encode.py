"""Benchmark: the column-wise alert encoder against fastavro's ``schemaless_writer``, same alerts.

200 typical alerts (one CCD's worth: full diaSource, 30 prvDiaSources, 30 prvDiaForcedSources,
a diaObject, two ~30 KB cutouts), one thread. The peer is the fastavro path that
``serialize_alert`` used before (union branches tagged, Rubin schema 11.1). Target: ≥ 2× the
peer's alerts/s, with byte-identical output for every alert.
"""

from __future__ import annotations

import io
import json
import time
from pathlib import Path

import fastavro
import pytest

from alertprod.alerts._fastencode import encode_alert
from alertprod.alerts.examples import example_alert
from alertprod.alerts.schema import parsed_schema
from alertprod.alerts.serialize import _tagged, serialize_alert

pytestmark = pytest.mark.bench

N_ALERTS = 200
REPEATS = 5
RESULTS = Path(__file__).parent / "results" / "alert_encode.json"


def _fastavro_payload(alert) -> bytes:
    buf = io.BytesIO()
    fastavro.schemaless_writer(buf, parsed_schema(), _tagged(alert))
    return buf.getvalue()


def _rates(funcs, items, repeats=REPEATS) -> list[float]:
    """Best-of-``repeats`` throughputs (items/s) of each function, timed alternately on ``items``."""
    best = [float("inf")] * len(funcs)
    for _ in range(repeats):
        for k, func in enumerate(funcs):
            t0 = time.perf_counter()
            for item in items:
                func(item)
            best[k] = min(best[k], time.perf_counter() - t0)
    return [len(items) / b for b in best]


def test_bench_alert_encode_against_fastavro():
    alerts = [example_alert(seed) for seed in range(N_ALERTS)]
    payloads = [_fastavro_payload(a) for a in alerts]
    assert all(encode_alert(a) == p for a, p in zip(alerts, payloads, strict=True))
    assert all(serialize_alert(a)[5:] == p for a, p in zip(alerts, payloads, strict=True))

    ours, framed, peer = _rates([encode_alert, serialize_alert, _fastavro_payload], alerts)
    result = {
        "n_alerts": N_ALERTS,
        "record": "all fields, 30 prvDiaSources, 30 prvDiaForcedSources, 2 cutouts of ~30 KB",
        "alerts_per_s": {
            "fastencode.encode_alert": round(ours, 1),
            "serialize_alert (framed, with fast path)": round(framed, 1),
            "fastavro.schemaless_writer": round(peer, 1),
        },
        "ratio": round(ours / peer, 3),
        "ratio_serialize_alert": round(framed / peer, 3),
        "ms_per_alert": {"ours": round(1e3 / ours, 3), "fastavro": round(1e3 / peer, 3)},
        "byte_identical": True,
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print(f"\n{'encoder':<42}{'alerts/s':>10}{'ms/alert':>10}")
    for name, rate in result["alerts_per_s"].items():
        print(f"{name:<42}{rate:>10.1f}{1e3 / rate:>10.3f}")
    print(f"{'ratio encode_alert / fastavro':<42}{result['ratio']:>10.2f}")
    print(f"{'ratio serialize_alert / fastavro':<42}{result['ratio_serialize_alert']:>10.2f}")

"""Benchmark: our alert serialiser against lsst-alert-packet's own, and the packet size distribution.

Same realistic records for both (every schema field filled, 30 prvDiaSources, 30 forced sources,
difference and template cutouts of ~30 KB each). Targets: at least as fast as
``lsst.alert.packet.Schema.serialize``; median framed packet ≤ 82 KB (DMTN-102 budget).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pytest
from lsst.alert.packet import Schema

from alertprod.alerts import build_alert, deserialize_alert, serialize_alert
from alertprod.alerts.examples import example_alert

pytestmark = pytest.mark.bench

N_ALERTS = 100
REPEATS = 3
RESULTS = Path(__file__).parent / "results" / "alert_serialize.json"


def _rates(ours, peer, items, repeats=REPEATS) -> tuple[float, float]:
    """Best-of-``repeats`` throughputs (items/s) of two functions, timed alternately on ``items``."""
    best = [float("inf"), float("inf")]
    for _ in range(repeats):
        for k, func in enumerate((ours, peer)):
            t0 = time.perf_counter()
            for item in items:
                func(item)
            best[k] = min(best[k], time.perf_counter() - t0)
    return len(items) / best[0], len(items) / best[1]


def test_bench_alert_serialize_against_lsst_alert_packet():
    alerts = [example_alert(seed) for seed in range(N_ALERTS)]
    lsst_schema = Schema.from_file()

    ours, peer = _rates(serialize_alert, lsst_schema.serialize, alerts)
    packets = [serialize_alert(a) for a in alerts]
    payloads = [p[5:] for p in packets]
    # lsst-alert-packet's deserialize takes the payload without the 5-byte header
    ours_decode, peer_decode = _rates(deserialize_alert, lambda p: lsst_schema.deserialize(p[5:]), packets)
    assert all(lsst_schema.serialize(a) == p for a, p in zip(alerts, payloads, strict=True))

    rows = [(a["diaSource"], a["diaObject"], a["prvDiaSources"], a["prvDiaForcedSources"],
             a["cutoutDifference"], a["cutoutTemplate"]) for a in alerts]
    build_rate, _ = _rates(lambda r: build_alert(r[0], dia_object=r[1], prv_dia_sources=r[2],
                                             prv_dia_forced_sources=r[3], cutout_difference=r[4],
                                             cutout_template=r[5]), len, rows, repeats=2)

    sizes_kb = np.array([len(p) for p in packets]) / 1024
    cutout_kb = np.array([len(a["cutoutDifference"]) for a in alerts]) / 1024
    result = {
        "n_alerts": N_ALERTS,
        "record": "all fields, 30 prvDiaSources, 30 prvDiaForcedSources, 2 cutouts",
        "cutout_kb_median": round(float(np.median(cutout_kb)), 2),
        "serialize_alerts_per_s": {"alertprod": round(ours, 1), "lsst.alert.packet": round(peer, 1),
                                   "ratio": round(ours / peer, 3)},
        "deserialize_alerts_per_s": {"alertprod": round(ours_decode, 1),
                                     "lsst.alert.packet": round(peer_decode, 1),
                                     "ratio": round(ours_decode / peer_decode, 3)},
        "build_alert_per_s": round(build_rate, 1),
        "packet_kb": {"min": round(float(sizes_kb.min()), 2), "median": round(float(np.median(sizes_kb)), 2),
                      "p95": round(float(np.percentile(sizes_kb, 95)), 2), "max": round(float(sizes_kb.max()), 2)},
        "targets": {"serialize_at_least_as_fast": bool(ours >= peer),
                    "median_packet_le_82kb": bool(np.median(sizes_kb) <= 82)},
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")

    print(f"\nalert serialisation, same records for both (alerts/s, best of {REPEATS})")
    print(f"{'':24} {'alertprod':>12} {'lsst.alert.packet':>18} {'ratio':>7}")
    print(f"{'serialize':24} {ours:12.1f} {peer:18.1f} {ours / peer:7.2f}")
    print(f"{'deserialize':24} {ours_decode:12.1f} {peer_decode:18.1f} {ours_decode / peer_decode:7.2f}")
    print(f"{'build_alert (rows->rec)':24} {build_rate:12.1f}")
    p = result["packet_kb"]
    print(f"packet size KB: min {p['min']}  median {p['median']}  p95 {p['p95']}  max {p['max']} "
          f"(cutouts {result['cutout_kb_median']} KB each; budget 82 KB)")
    assert np.median(sizes_kb) <= 82

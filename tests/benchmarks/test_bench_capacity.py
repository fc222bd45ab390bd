"""A full focal plane through the embedded stack, every AWS request counted: the capacity plan's data.

Two visits of 189 CCDs (a 14 × 14 grid of 256² CCDs less its last seven) are uploaded as an
upstream pipeline would (images, then the catalog) and processed by the template's functions
on moto's server (ingest, archive, the filter service; schedules do not fire). Visit 1 puts
``SOURCES_PER_CCD`` new DiaSources on each CCD; visit 2, 29 minutes later (an LSST pair),
detects half of them again, misses the other half (force-measured) and adds as many new
ones. The density is low (LSST averages 53 DiaSources per CCD) to keep the run inside the
benchmark budget on two cores; the extrapolation scales what grows with DiaSources.

botocore's ``BaseClient._make_api_call`` is wrapped to observe every request — nothing is
changed or stubbed — with the function that made it (``AWS_LAMBDA_FUNCTION_NAME``; requests
made outside a function are the upstream uploads or the event-source pollers). For each
request the recorder keeps its service, operation, bytes sent and received, seconds, and for
DynamoDB the capacity units DynamoDB would charge, estimated from item sizes: a write costs
``ceil(KB)`` units of the item (after an update, read back with an uncounted ``GetItem``),
twice inside a transaction; a read ``ceil(size / 4 KB)``, half when eventually consistent,
twice in a transaction; a missing key 1 unit (DynamoDB's pricing rules). Units are kept per
partition key, for the partition-heat table.

The measurement is then extrapolated to LSST (``lsst`` section) with the scaling written out
in ``capacity_model.lsst_extrapolation`` (beside this file; ``python test_bench_capacity.py``
re-derives it from the recorded measurement after an assumption changes): per-CCD figures at
full size come from the other benchmarks' results (``pipeline.json``, ``apdb.json``,
``image_reads.json``, ``archive.json``), request counts per DiaSource from this run. docs/capacity.md is written from ``results/capacity.json``.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections import Counter, defaultdict
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import botocore.client
import numpy as np
import pytest
from astropy.wcs import WCS

from alertprod.apdb import CcdState, dynamo_level1
from alertprod.local.stack import EmbeddedStack
from alertprod.replay.runner import mjd_tai_to_datetime

pytestmark = pytest.mark.bench

RESULTS = Path(__file__).parent / "results"
GRID = 14                 #: CCDs along each side of the grid
N_CCDS = 189              #: LSST's science CCDs: the grid's first 189 detectors
NPIX = 256                #: pixels along each side of a CCD (4096 at LSST)
SOURCES_PER_CCD = 12      #: DiaSources per CCD and visit (visit 2: 6 again, 6 missed, 6 new)
MJD_VISIT = (60000.10, 60000.10 + 29 / 1440)


def _ccdsky_grid():
    """``ccdsky.CcdSky`` laid out as a square grid of CCDs on one tangent plane."""
    from large_ccd import load_ccdsky  # beside this folder: the sky of the integration tests

    ccdsky = load_ccdsky()

    class GridSky(ccdsky.CcdSky):
        def wcs(self, detector: int) -> WCS:
            ix, iy = detector % GRID, detector // GRID
            w = WCS(naxis=2)
            w.wcs.ctype = ["RA---TAN", "DEC--TAN"]
            w.wcs.crval = [self.ra0, self.dec0]
            half = self.npix * GRID / 2 + 0.5
            w.wcs.crpix = [half - ix * self.npix, half - iy * self.npix]
            scale = ccdsky.SCALE_ARCSEC / 3600
            w.wcs.cd = np.array([[-scale, 0.0], [0.0, scale]])
            return w

    return ccdsky, GridSky(npix=NPIX, n_detectors=N_CCDS)


# ---------------------------------------------------------------- DynamoDB item sizes and units

def _value_bytes(v: Any) -> int:
    """Bytes of one attribute value as DynamoDB sizes it (wire form or Python form)."""
    if isinstance(v, dict) and len(v) == 1:
        (t, x), = v.items()
        if t == "S":
            return len(x.encode())
        if t == "N":
            return len(str(x).lstrip("-").replace(".", "")) // 2 + 2
        if t == "B":
            return len(x)
        if t in ("BOOL", "NULL"):
            return 1
        if t in ("SS", "NS", "BS"):
            return sum(_value_bytes({t[0]: e}) for e in x)
        if t == "L":
            return 3 + sum(1 + _value_bytes(e) for e in x)
        if t == "M":
            return 3 + sum(len(k.encode()) + 1 + _value_bytes(e) for k, e in x.items())
    if isinstance(v, str):
        return len(v.encode())
    if isinstance(v, bytes | bytearray):
        return len(v)
    if isinstance(v, bool) or v is None:
        return 1
    if isinstance(v, int | float | Decimal):
        return len(str(v).lstrip("-").replace(".", "")) // 2 + 2
    if isinstance(v, set | frozenset):
        return sum(_value_bytes(e) for e in v)
    if isinstance(v, list | tuple):
        return 3 + sum(1 + _value_bytes(e) for e in v)
    if isinstance(v, dict):
        return 3 + sum(len(k.encode()) + 1 + _value_bytes(e) for k, e in v.items())
    return len(str(v))


def item_bytes(item: dict[str, Any] | None) -> int:
    """An item's size: attribute names plus values."""
    return sum(len(k.encode()) + _value_bytes(v) for k, v in (item or {}).items())


def _pk(key: dict[str, Any]) -> str:
    """The partition key's value of an item or key (the first of ``pk``/``PK``/the first attribute)."""
    for name in ("pk", "PK"):
        if name in key:
            v = key[name]
            return str(v.get("S", v.get("N", v))) if isinstance(v, dict) else str(v)
    return "?"


def key_family(pk: str) -> str:
    """A partition key with its instance-specific parts (digits) replaced: ``NEWOBJ#d#s`` → family."""
    out, digit = [], False
    for ch in pk:
        if ch.isdigit():
            if not digit:
                out.append("N")
            digit = True
        else:
            out.append(ch)
            digit = False
    return "".join(out)


class Recorder:
    """Every AWS request, with its function, bytes, seconds and DynamoDB units (observation only)."""

    def __init__(self) -> None:
        self.original = botocore.client.BaseClient._make_api_call
        self.rows: list[dict[str, Any]] = []
        self.units_by_key: dict[tuple[str, str], Counter] = defaultdict(Counter)

    def __enter__(self) -> Recorder:
        recorder = self

        def recording(client, operation, params):
            t0 = time.perf_counter()
            response = recorder.original(client, operation, params)
            seconds = time.perf_counter() - t0
            recorder.observe(client, operation, params, response, seconds)
            return response

        botocore.client.BaseClient._make_api_call = recording
        return self

    def __exit__(self, *exc: object) -> None:
        botocore.client.BaseClient._make_api_call = self.original

    def _read_back(self, client, table: str, key: dict[str, Any]) -> dict[str, Any] | None:
        return self.original(client, "GetItem", {"TableName": table, "Key": key,
                                                 "ConsistentRead": True}).get("Item")

    def _write(self, client, table: str, key: dict, item: dict | None, factor: int) -> float:
        if item is None:
            item = self._read_back(client, table, key)
        units = factor * max(1, math.ceil(item_bytes(item) / 1024))
        self.units_by_key[("W", key_family(_pk(key)))][_pk(key)] += units
        return units

    def _read(self, items: list, missing: int, consistent: bool, keys: list[str], *,
              factor: float = 1.0, once: bool = False) -> float:
        sizes = [item_bytes(i) for i in items]
        if once:  # a Query is charged on the sum of the items it returns
            units = max(1, math.ceil(sum(sizes) / 4096))
        else:
            units = sum(max(1, math.ceil(s / 4096)) for s in sizes) + missing
        units *= factor * (1.0 if consistent else 0.5)
        for pk in keys:  # attributed to the keys asked for, evenly
            self.units_by_key[("R", key_family(pk))][pk] += units / len(keys)
        return units

    def dynamodb_units(self, client, op: str, p: dict, r: dict) -> tuple[float, float]:
        """(write units, read units) DynamoDB would charge for one request."""
        if op == "PutItem":
            return self._write(client, p["TableName"], p["Item"], p["Item"], 1), 0.0
        if op in ("UpdateItem", "DeleteItem"):
            item = None if op == "UpdateItem" else {}
            return self._write(client, p["TableName"], p["Key"], item, 1), 0.0
        if op == "TransactWriteItems":
            wru = 0.0
            for entry in p["TransactItems"]:
                (kind, body), = entry.items()
                key = body.get("Key") or body.get("Item")
                item = body.get("Item") if kind == "Put" else ({} if kind == "Delete" else None)
                wru += self._write(client, body["TableName"], key, item, 2)
            return wru, 0.0
        if op == "BatchWriteItem":
            wru = 0.0
            for table, reqs in p["RequestItems"].items():
                for req in reqs:
                    if "PutRequest" in req:
                        it = req["PutRequest"]["Item"]
                        wru += self._write(client, table, it, it, 1)
                    else:
                        wru += self._write(client, table, req["DeleteRequest"]["Key"], {}, 1)
            return wru, 0.0
        if op == "GetItem":
            item = r.get("Item")
            return 0.0, self._read([item] if item else [], 0 if item else 1,
                                   bool(p.get("ConsistentRead")), [_pk(p["Key"])])
        if op == "BatchGetItem":
            rru = 0.0
            for table, spec in p["RequestItems"].items():
                got = r.get("Responses", {}).get(table, [])
                rru += self._read(got, max(0, len(spec["Keys"]) - len(got)),
                                  bool(spec.get("ConsistentRead")), [_pk(k) for k in spec["Keys"]])
            return 0.0, rru
        if op in ("Query", "Scan"):
            values = p.get("ExpressionAttributeValues") or {}
            pk = _pk({"pk": values[sorted(values)[0]]}) if values else "SCAN"
            return 0.0, self._read(r.get("Items", []), 0, bool(p.get("ConsistentRead")), [pk],
                                   once=True)
        if op == "TransactGetItems":
            got = [x.get("Item") for x in r.get("Responses", [])]
            keys = [_pk(next(iter(e.values()))["Key"]) for e in p["TransactItems"]]
            return 0.0, self._read([g for g in got if g], sum(g is None for g in got), True, keys,
                                   factor=2.0)
        return 0.0, 0.0

    def observe(self, client, op: str, p: dict, r: dict, seconds: float) -> None:
        service = client.meta.service_model.endpoint_prefix
        fn = os.environ.get("AWS_LAMBDA_FUNCTION_NAME") or "outside"
        sent = received = 0
        wru = rru = 0.0
        if service == "s3":
            sent = _body_bytes(p.get("Body"))
            received = int(r.get("ContentLength") or 0) if op == "GetObject" else 0
        elif service == "sns":
            if op == "Publish":
                sent = len(str(p.get("Message", "")).encode())
            elif op == "PublishBatch":
                sent = sum(len(str(e.get("Message", "")).encode())
                           for e in p["PublishBatchRequestEntries"])
        elif service == "sqs":
            sent = len(str(p.get("MessageBody", "")).encode())
            received = sum(len(m.get("Body", "").encode()) for m in r.get("Messages", []))
        elif service == "dynamodb":
            wru, rru = self.dynamodb_units(client, op, p, r)
        n_msgs = len(p.get("PublishBatchRequestEntries", [])) if op == "PublishBatch" else 1
        if service == "sns":  # SNS bills each 64 KB chunk of a message as one request
            entries = p.get("PublishBatchRequestEntries") or [p]
            n_msgs = sum(max(1, math.ceil(len(str(e.get("Message", "")).encode()) / 65536))
                         for e in entries)
        self.rows.append({"fn": fn, "service": service, "op": op, "sent": sent,
                          "received": received, "s": seconds, "wru": wru, "rru": rru,
                          "messages": n_msgs})


def _body_bytes(body: Any) -> int:
    """Bytes of an S3 request body (bytes, str or a seekable file object)."""
    if body is None:
        return 0
    if isinstance(body, bytes | bytearray | memoryview):
        return len(body)
    if isinstance(body, str):
        return len(body.encode())
    if hasattr(body, "getbuffer"):
        return body.getbuffer().nbytes
    if hasattr(body, "seek") and hasattr(body, "tell"):
        here = body.tell()
        end = body.seek(0, 2)
        body.seek(here)
        return end - here
    return 0


# ---------------------------------------------------------------- driving the stack

def _visit_sources(sky, visit: int, rng: np.random.Generator, previous: list | None):
    """``{detector: [(ra, dec, flux, detected), ...]}`` of one visit."""
    out = {}
    for d in range(N_CCDS):
        xy = rng.uniform(20, NPIX - 20, (SOURCES_PER_CCD, 2))
        ra, dec = sky.wcs(d).all_pix2world(xy[:, 0], xy[:, 1], 0)
        new = [(float(a), float(b), float(f), True)
               for a, b, f in zip(ra, dec, rng.uniform(3000, 8000, SOURCES_PER_CCD), strict=True)]
        if previous is None:
            out[d] = new
        else:  # half of the last visit's detected again, half missed; as many new ones
            old = previous[d]
            half = len(old) // 2
            out[d] = ([(a, b, f, True) for a, b, f, _ in old[:half]]
                      + [(a, b, f, False) for a, b, f, _ in old[half:]] + new[: len(old) - half])
    return out


def _run_visit(stack, sky, visit: int, sources: dict, recorder: Recorder) -> dict[str, Any]:
    s3, res = stack.clients.s3, stack.resources
    first_row, first_inv = len(recorder.rows), len(stack.invocations)
    stack.advance_clock(to=mjd_tai_to_datetime(MJD_VISIT[visit - 1]) + timedelta(seconds=45))
    t0 = time.perf_counter()
    for d in range(N_CCDS):
        key, cat, images = sky.upload(visit, d, MJD_VISIT[visit - 1], sources[d])
        for ikey, data in images.items():
            s3.put_object(Bucket=res.image_bucket, Key=ikey, Body=data)
        s3.put_object(Bucket=res.upload_bucket, Key=key, Body=cat)
    upload_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    stack.run_until_idle(timeout_s=1800)
    process_s = time.perf_counter() - t0
    return {"rows": recorder.rows[first_row:], "invocations": stack.invocations[first_inv:],
            "upload_s": upload_s, "process_s": process_s}


def _pct(values: list[float]) -> dict[str, float]:
    a = np.asarray(values, float)
    return {"p50": round(float(np.percentile(a, 50)), 4), "p95": round(float(np.percentile(a, 95)), 4),
            "p99": round(float(np.percentile(a, 99)), 4), "max": round(float(a.max()), 4), "n": int(a.size)}


def _visit_figures(run: dict[str, Any], ccd_seconds: list[float]) -> dict[str, Any]:
    """Per-CCD figures of one visit: durations, requests by service and operation, units, bytes."""
    rows, invs = run["rows"], run["invocations"]
    by_fn_op: Counter = Counter()
    seconds_by_op: Counter = Counter()
    for r in rows:
        by_fn_op[(r["fn"], r["service"], r["op"])] += 1
        seconds_by_op[f'{r["service"]}:{r["op"]}'] += r["s"]
    per_fn: dict[str, Any] = {}
    for inv in invs:
        f = per_fn.setdefault(inv.function_id, {"invocations": 0, "records": 0, "seconds": 0.0,
                                                "errors": 0})
        f["invocations"] += 1
        f["records"] += len(inv.event.get("Records", [])) if isinstance(inv.event, dict) else 0
        f["seconds"] += inv.duration_s
        f["errors"] += inv.outcome != "ok"
    ingest = [inv for inv in invs if inv.function_id == "IngestFunction"]
    per_ccd_invocation_s = [inv.duration_s / max(1, len(inv.event.get("Records", [])))
                            for inv in ingest]
    by_service: dict[str, dict[str, Any]] = {}
    for r in rows:
        s = by_service.setdefault(r["service"], {"requests": 0, "bytes_sent": 0, "bytes_received": 0,
                                                 "seconds": 0.0})
        s["requests"] += 1
        s["bytes_sent"] += r["sent"]
        s["bytes_received"] += r["received"]
        s["seconds"] += r["s"]
    n = N_CCDS
    ops = defaultdict(dict)
    for (fn, service, op), c in sorted(by_fn_op.items()):
        ops[fn][f"{service}:{op}"] = round(c / n, 3)

    def per_ccd(pred, field):
        return round(sum(r[field] for r in rows if pred(r)) / n, 2)

    dyn = lambda r: r["service"] == "dynamodb"  # noqa: E731
    return {
        "ccds": n,
        "upload_s": round(run["upload_s"], 1), "process_s": round(run["process_s"], 1),
        "ccd_seconds_in_ledger": _pct(ccd_seconds),
        "ingest_invocation_s_per_ccd": _pct(per_ccd_invocation_s),
        "ingest_invocation_s": _pct([inv.duration_s for inv in ingest]),
        "ingest_aws_seconds_per_ccd": per_ccd(lambda r: r["fn"].endswith("ingestfunction")
                                              or "ingest" in r["fn"], "s"),
        "functions": {k: {**v, "seconds": round(v["seconds"], 2)} for k, v in per_fn.items()},
        "requests_per_ccd_by_function": dict(ops),
        "aws_seconds_per_ccd_by_operation": {k: round(v / n, 3) for k, v in seconds_by_op.most_common()},
        "per_ccd": {
            svc: {"requests": round(v["requests"] / n, 2), "bytes_sent": round(v["bytes_sent"] / n),
                  "bytes_received": round(v["bytes_received"] / n)} for svc, v in by_service.items()},
        "dynamodb_wru_per_ccd": per_ccd(dyn, "wru"), "dynamodb_rru_per_ccd": per_ccd(dyn, "rru"),
        "s3_get_per_ccd": round(sum(r["op"] == "GetObject" for r in rows) / n, 2),
        "s3_put_per_ccd": round(sum(r["op"] == "PutObject" for r in rows) / n, 2),
        "s3_get_bytes_per_ccd": per_ccd(lambda r: r["op"] == "GetObject", "received"),
        "s3_put_bytes_per_ccd": per_ccd(lambda r: r["op"] == "PutObject", "sent"),
        "sns_publish_requests_per_ccd": round(sum(r["service"] == "sns" for r in rows) / n, 2),
        "lambda_invocations_per_ccd": round(len(invs) / n, 2),
        "sns_billed_64kb_requests_per_ccd": per_ccd(lambda r: r["service"] == "sns", "messages"),
        "sns_bytes_per_ccd": per_ccd(lambda r: r["service"] == "sns", "sent"),
        "sqs_requests_per_ccd": round(sum(r["service"] == "sqs" for r in rows) / n, 2),
    }


def _partition_heat(recorder: Recorder, visit_rows_wru: float) -> list[dict[str, Any]]:
    """Hottest partition key of each key family, units in the measured visit."""
    out = []
    for (kind, family), keys in recorder.units_by_key.items():
        hottest, units = max(keys.items(), key=lambda kv: kv[1])
        out.append({"units": "WRU" if kind == "W" else "RRU", "family": family,
                    "keys": len(keys), "total": round(sum(keys.values()), 1),
                    "hottest_key": hottest, "hottest_key_units": round(units, 1)})
    return sorted(out, key=lambda x: -x["hottest_key_units"])


def test_bench_capacity_full_focal_plane_on_the_embedded_stack():
    from capacity_model import lsst_extrapolation  # beside this file: the scaling to LSST

    ccdsky, sky = _ccdsky_grid()
    rng = np.random.default_rng(2026)
    v1 = _visit_sources(sky, 1, rng, None)
    v2 = _visit_sources(sky, 2, rng, v1)
    t_start = time.perf_counter()
    with EmbeddedStack(stack_name="capacity", clock_start=mjd_tai_to_datetime(MJD_VISIT[0])) as stack:
        with Recorder() as rec:
            run1 = _run_visit(stack, sky, 1, v1, rec)
            rec.units_by_key.clear()  # partition heat of the steady-state visit alone
            run2 = _run_visit(stack, sky, 2, v2, rec)
        ledger = dynamo_level1(stack.clients.dynamodb, stack.resources.level1_table).ledger
        records = {v: [ledger.get_ccd_record(v, d) or {} for d in range(N_CCDS)] for v in (1, 2)}
        fn_config = {f.logical_id: {"memory_mb": f.memory_mb, "timeout_s": f.timeout_s}
                     for f in stack.lambdas.functions.values()}
        batch = int(stack.template["Parameters"]["IngestBatchSize"]["Default"])
    states = {v: Counter(str(r.get("state")) for r in recs) for v, recs in records.items()}
    seconds = {v: [float(r["seconds"]) for r in recs if r.get("seconds") is not None]
               for v, recs in records.items()}
    visits = {str(v): _visit_figures(run, seconds[v]) for v, run in ((1, run1), (2, run2))}
    measured = {
        "scene": {"ccds_per_visit": N_CCDS, "grid": f"{GRID}x{GRID} less 7", "ccd_pixels": f"{NPIX}x{NPIX}",
                  "visits": 2, "dia_sources_per_ccd": SOURCES_PER_CCD,
                  "visit2": "6 re-detected, 6 missed (forced), 6 new per CCD",
                  "ingest_batch_size": batch},
        "functions": fn_config,
        "visits": visits,
        "partition_heat_visit2": _partition_heat(rec, visits["2"]["dynamodb_wru_per_ccd"]),
        "wall_s": round(time.perf_counter() - t_start, 1),
    }
    result = {"measured": measured, "lsst": lsst_extrapolation(measured, RESULTS)}
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "capacity.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result["lsst"], indent=2))
    done = str(CcdState.DONE)
    assert states[1][done] == N_CCDS and states[2][done] == N_CCDS, states
    assert visits["2"]["dynamodb_wru_per_ccd"] > 0 and visits["2"]["sns_billed_64kb_requests_per_ccd"] > 0
    assert result["lsst"]["cost"]["total_usd_per_month"] > 0


if __name__ == "__main__":  # the extrapolation again, from the recorded measurement
    from capacity_model import lsst_extrapolation

    _path = RESULTS / "capacity.json"
    _doc = json.loads(_path.read_text())
    _doc["lsst"] = lsst_extrapolation(_doc["measured"], RESULTS)
    _path.write_text(json.dumps(_doc, indent=2) + "\n")
    print(json.dumps(_doc["lsst"]["cost"], indent=2))


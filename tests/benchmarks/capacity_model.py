"""The capacity benchmark's measurement carried to an LSST night: each scaling written out.

``test_bench_capacity.py`` measures a scaled focal plane on the embedded stack; this module
turns its per-CCD figures, with the full-size per-CCD figures of the other benchmarks
(``pipeline.json``, ``apdb.json``, ``image_reads.json``, ``archive.json``), into what an LSST
night needs — Lambda concurrency, DynamoDB units and partition heat, the latency budget — and
one monthly cost (docs/capacity.md, docs/deployment.md). Kept apart from the benchmark so that
an assumption can be changed and the extrapolation re-derived without re-running the stack.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

__all__ = ["LSST", "LATENCY_S", "PRICE", "lsst_extrapolation"]

#: LSST's night (issue figures): CCDs per visit, seconds between visits, visits and alerts a
#: night, the peak visit's alerts, nights a month (300 a year), DiaObjects in a CCD's footprint
#: a year into the survey (as the APDB benchmark).
LSST_CCDS = 189
LSST = {"ccds_per_visit": LSST_CCDS, "visit_interval_s": 40.0, "visits_per_night": 1000,
        "alerts_per_night": 1.0e7, "peak_alerts_per_visit": 40000, "nights_per_month": 25,
        "objects_per_footprint": 5000}
#: Service latencies assumed per request on AWS (same region; published typical figures,
#: rounded up): DynamoDB single-item and batch requests, transactions, an S3 PUT, an SNS
#: publish batch.
LATENCY_S = {"dynamodb": 0.010, "dynamodb_transaction": 0.025, "s3_put": 0.030, "sns": 0.020,
             "sqs_event_source": 0.5}
#: Alert-archive PUTs in flight at once (``AlertPublisher``'s ``max_workers``).
PUT_WORKERS = 8
#: On-demand list prices, us-east-1, arm64 Lambda (USD).
PRICE = {"lambda_gb_s": 0.0000133334, "lambda_request": 0.20e-6, "wru": 0.625e-6,
         "rru": 0.125e-6, "s3_put": 5e-6, "s3_get": 0.4e-6, "sns_request": 0.50e-6,
         "sqs_request": 0.40e-6, "s3_gb_month": 0.021}
#: History items grow through a 30-day bucket (apdb.md "Costs"): an append costs ~3 units
#: a month on average where the scaled run's fresh items cost 2.
HISTORY_GROWTH = 1.5
#: CCDs of one LSST visit that can write one partition key of a family: every CCD writes the
#: night's ``NEWOBJ#<day>`` partition; a 13.6′ CCD meets at most ~4 HEALPix order-8 cells
#: (13.7′: lease, image index) and fewer order-9/10 ones (archive index, pixel index).
CCDS_SHARING_A_KEY = {"NEWOBJ": LSST_CCDS, "LEASE": 4, "IMG": 4, "ARC": 4, "PIX": 4}
#: Monthly lines of docs/deployment.md this benchmark does not measure, with their source.
FIXED_MONTHLY_USD = {
    "Lambda precovery (deployment.md: 2 s × 1 GB per CCD)": None,  # computed below
    "DynamoDB storage, first month (apdb.md: ~0.12 KB per forced row)": None,
    "S3 alert archive, first month (250 M × 80 KB)": 300.0,
    "S3 long-term image archive, first month (archive.json)": 940.0,
    "Lambda archive (archive.json: ~5 s × 2 GB per image)": None,
    "archive requests and index (deployment.md)": 350.0,
    "orbit refresh (solar-system.md)": 3.0,
    "filtering service (filters.json; deployment.md)": 200.0,
    "HTTP API": 1.0,
}


def _json(results: Path, name: str) -> dict[str, Any]:
    path = results / f"{name}.json"
    return json.loads(path.read_text()) if path.exists() else {}


def _family_driver(family: str, units: str = "WRU") -> str:
    """What a key family's load grows with: history rows, DiaSources, objects, or the CCD.

    History items are written for every row (detections and forced measurements) but read
    for the detected objects only.
    """
    if family.startswith("HIST"):
        return "history_rows" if units == "WRU" else "dia_sources"
    if family.startswith(("OBJ", "SRC", "NEWOBJ", "SSO")):
        return "dia_sources"
    return "ccd"


def lsst_extrapolation(measured: dict[str, Any], results: Path) -> dict[str, Any]:
    """The scaled run carried to LSST's night, each scaling written out.

    Per CCD, full size: compute from ``pipeline.json`` (4k², 5,000 objects); image reads from
    ``image_reads.json``; APDB requests from ``apdb.json``; capacity units per key family
    from this run's visit 2, each family scaled by its driver (history rows, DiaSources, or
    one per CCD); S3, SNS and SQS requests per DiaSource from this run.
    """
    v2 = measured["visits"]["2"]
    n_ccds_run = measured["scene"]["ccds_per_visit"]
    n_src_run = measured["scene"]["dia_sources_per_ccd"]
    rows_run = n_src_run + n_src_run // 2  # visit 2: 50 DiaSources + 25 forced rows
    ccds_night = LSST["ccds_per_visit"] * LSST["visits_per_night"]
    out: dict[str, Any] = {"assumptions": {**LSST, "latency_s": LATENCY_S, "price_usd": PRICE,
                                           "history_growth": HISTORY_GROWTH}}
    pipeline, apdb, reads = _json(results, "pipeline"), _json(results, "apdb"), _json(results, "image_reads")
    compute_s = pipeline["total_cpu_s"]["pipeline_plus_image_parse"]
    read = min(reads["nightly_ccd"]["plain"], key=lambda e: abs(e["objects"] - LSST["objects_per_footprint"]))
    req = apdb["ours_requests"]
    tx = apdb["store_transactions"]

    def per_ccd(n_src: float) -> dict[str, Any]:
        forced = LSST["objects_per_footprint"] - n_src
        scale = {"history_rows": (n_src + forced) / rows_run * HISTORY_GROWTH,
                 "dia_sources": n_src / n_src_run, "ccd": 1.0}
        wru = rru = 0.0
        for h in measured["partition_heat_visit2"]:
            units = h["total"] / n_ccds_run * scale[_family_driver(h["family"], h["units"])]
            if h["family"].startswith("OBJ") and h["units"] == "RRU":
                # The scaled plane lies within a few index pixels, so each CCD read the objects
                # of its neighbours too: at LSST, one strongly consistent unit per object of the
                # footprint (a 0.45 KB Last record) and two more per detected one (apdb.md).
                units = LSST["objects_per_footprint"] + 2 * n_src
            wru += units if h["units"] == "WRU" else 0.0
            rru += units if h["units"] == "RRU" else 0.0
        src = n_src / n_src_run
        s3_put = v2["s3_put_per_ccd"] * src
        sns = v2["sns_publish_requests_per_ccd"] * src
        stages = {"compute (pipeline.json, 4k², 5,000 objects)": compute_s,
                  "image reads (image_reads.json, modelled)": read["modelled_s"],
                  "APDB requests (apdb.json)": (req["total"] - tx) * LATENCY_S["dynamodb"]
                  + tx * LATENCY_S["dynamodb_transaction"],
                  "S3 PUTs, alert archive 8 at a time (this run, per DiaSource)":
                      s3_put * LATENCY_S["s3_put"] / PUT_WORKERS,
                  "SNS publishes (this run, per DiaSource)": sns * LATENCY_S["sns"]}
        return {"dia_sources": round(n_src, 1), "forced": round(forced), "wru": round(wru),
                "rru": round(rru), "s3_put": round(s3_put, 1),
                "s3_get": read["gets"] + v2["s3_get_per_ccd"] - 0,  # full-size image reads + the rest
                "s3_get_bytes": read["bytes"],
                "sns_billed": round(v2["sns_billed_64kb_requests_per_ccd"] * src, 1),
                "sqs_requests": round(v2["sqs_requests_per_ccd"] * src, 1),
                "ingest_stage_s": {k: round(v, 3) for k, v in stages.items()},
                "ingest_s": round(sum(stages.values()), 2)}

    mean = per_ccd(LSST["alerts_per_night"] / ccds_night)
    peak = per_ccd(LSST["peak_alerts_per_visit"] / LSST["ccds_per_visit"])
    out["per_ccd"] = {"mean": mean, "peak": peak}
    rate = LSST["ccds_per_visit"] / LSST["visit_interval_s"]  # CCDs per second
    ingest_mem_gb = measured["functions"]["IngestFunction"]["memory_mb"] / 1024
    arch_s = 5.0
    out["lambda"] = {
        "ccds_per_s": round(rate, 3),
        "ingest_concurrency_mean": round(rate * mean["ingest_s"], 1),
        "ingest_concurrency_peak": round(rate * peak["ingest_s"], 1),
        "ingest_memory_mb": measured["functions"]["IngestFunction"]["memory_mb"],
        "archive_concurrency": round(2 * rate * arch_s, 1),
        "ccd_memory_peak_rss_mb": _json(results, "ccd_memory").get("peak_rss_mb"),
    }
    out["dynamodb_peak_per_s"] = {"wru": round(rate * peak["wru"]), "rru": round(rate * peak["rru"]),
                                  "mean_wru": round(rate * mean["wru"]), "mean_rru": round(rate * mean["rru"])}
    heat = []
    for h in measured["partition_heat_visit2"]:
        driver = _family_driver(h["family"], h["units"])
        grow = peak["dia_sources"] / n_src_run if driver == "dia_sources" else (
            (peak["dia_sources"] + peak["forced"]) / rows_run * HISTORY_GROWTH
            if driver == "history_rows" else 1.0)
        sharing = next((n for prefix, n in CCDS_SHARING_A_KEY.items()
                        if h["family"].startswith(prefix)), None)
        if sharing is None:  # a key of one object or one CCD: one visit's units, items grown
            grown = HISTORY_GROWTH if driver == "history_rows" else 1.0
            peak_rate = h["hottest_key_units"] * grown / LSST["visit_interval_s"]
        else:  # the scaled plane fits in a few sky cells: every CCD touched the hottest key
            peak_rate = h["hottest_key_units"] / n_ccds_run * grow * sharing / LSST["visit_interval_s"]
        limit = 1000 if h["units"] == "WRU" else 3000
        heat.append({**h, "driver": driver, "lsst_ccds_sharing_a_key": sharing or 1,
                     "lsst_peak_units_per_s": round(peak_rate, 2),
                     "partition_limit_per_s": limit, "fraction_of_limit": round(peak_rate / limit, 4)})
    out["partition_heat"] = sorted(heat, key=lambda x: -x["fraction_of_limit"])
    out["latency_budget_s"] = {
        "target_s": 60.0,
        "S3 event → SQS → ingest poller": LATENCY_S["sqs_event_source"],
        "waiting in an ingest batch (worst: 4 CCDs ahead)": round(4 * peak["ingest_s"], 2),
        **{f"ingest: {k}": v for k, v in peak["ingest_stage_s"].items()},
    }
    out["latency_budget_s"]["total_worst_s"] = round(sum(
        v for k, v in out["latency_budget_s"].items() if k != "target_s"), 2)
    # monthly cost
    ccds_month = ccds_night * LSST["nights_per_month"]
    cost = {
        "Lambda ingest": ccds_month * mean["ingest_s"] * ingest_mem_gb * PRICE["lambda_gb_s"],
        "Lambda precovery (deployment.md: 2 s × 1 GB per CCD)": ccds_month * 2 * 1 * PRICE["lambda_gb_s"],
        "Lambda archive (archive.json: ~5 s × 2 GB per image)": 2 * ccds_month * arch_s * 2 * PRICE["lambda_gb_s"],
        "Lambda requests": ccds_month * v2["lambda_invocations_per_ccd"] * PRICE["lambda_request"],
        "DynamoDB writes": ccds_month * mean["wru"] * PRICE["wru"],
        "DynamoDB reads": ccds_month * mean["rru"] * PRICE["rru"],
        "DynamoDB storage, first month (apdb.md: ~0.12 KB per forced row)":
            ccds_month * (mean["forced"] * 0.12 + mean["dia_sources"] * 0.84) / 1e6 * 0.25,
        "S3 image cache (30 days, 150 MB per CCD)": ccds_night * 30 * 0.150 * PRICE["s3_gb_month"],
        "S3 requests": ccds_month * ((mean["s3_put"] + 4) * PRICE["s3_put"] + mean["s3_get"] * PRICE["s3_get"]),
        "SNS": ccds_month * mean["sns_billed"] * PRICE["sns_request"],
        "SQS": ccds_month * mean["sqs_requests"] * PRICE["sqs_request"],
    }
    for k, v in FIXED_MONTHLY_USD.items():
        if v is not None:
            cost[k] = v
    out["cost"] = {"lines_usd_per_month": {k: round(v) for k, v in cost.items()},
                   "total_usd_per_month": round(sum(cost.values()), -2)}
    return out

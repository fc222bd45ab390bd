"""``alertprod replay``: a survey directory through a fresh embedded stack, in time order.

Every upload goes where an upstream pipeline would put it (images first, then the catalog);
the stack's clock follows the visits, so the daily schedules fire at each day boundary — the
orbit refresh at 12:00 UTC, before the next night's visits, and precovery at 15:00 — and the
image cache expires as it would on AWS (after ``ImageCacheDays``, 30 unless
``image_cache_days`` shortens it) while ArchiveFunction keeps every science and template image
in the long-term archive. The orbit catalog is uploaded first, at the first visit's time: its
upload refreshes the first night. Then the Level 1 database, the alerts, the quarantine
records and every message left in a dead-letter queue are exported (docs/formats.md §6), so
that no upload disappears without a record.
"""

from __future__ import annotations

import json
import math
import shutil
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
from astropy.time import Time
from tqdm import tqdm

from alertprod.apdb import CcdState, Level1, dynamo_level1, write_export
from alertprod.archive import ARCHIVE_PREFIX
from alertprod.aws import S3BlobStore
from alertprod.errors import ConfigError, EventError
from alertprod.formats.layout import MPCORB_PREFIX
from alertprod.ingest import s3_objects_from_sqs_body
from alertprod.local.stack import EmbeddedStack
from alertprod.orbitrefresh import night_of, staged_report
from alertprod.replay.survey_dir import VisitUpload, scan_survey_dir

__all__ = ["ReplayResult", "replay", "mjd_tai_to_datetime"]


def mjd_tai_to_datetime(mjd_tai: float) -> datetime:
    """UTC datetime (aware) of a TAI MJD."""
    return Time(mjd_tai, format="mjd", scale="tai").utc.to_datetime(timezone=UTC)


@dataclass
class ReplayResult:
    """Everything a replay produced, for the summary, the report and the tests."""

    out_dir: Path
    summary: dict[str, Any] = field(default_factory=dict)
    exported: dict[str, str] = field(default_factory=dict)
    precovery_days: int = 0
    wall_seconds: float = 0.0


def _precovery_days(fired: list) -> int:
    """Precovery planner runs among the schedule firings of one ``advance_clock``."""
    return sum(inv.function_id == "PrecoveryPlannerFunction" for inv in fired)


def _upload_visit(stack: EmbeddedStack, visit: VisitUpload) -> None:
    s3 = stack.clients.s3
    res = stack.resources
    for ccd in visit.ccds:  # images first: the catalog is the trigger
        for kind, path in ccd.image_paths.items():
            s3.put_object(Bucket=res.image_bucket, Key=ccd.image_keys()[kind], Body=path.read_bytes())
    for ccd in visit.ccds:
        s3.put_object(Bucket=res.upload_bucket, Key=ccd.catalog_key, Body=ccd.catalog_path.read_bytes())


def replay(survey_dir: str | Path, out_dir: str | Path, *, progress: bool = True,
           timeout_s: float = 600.0, export: bool = True,
           before_export: Callable[[EmbeddedStack], None] | None = None,
           log_level: str = "WARNING", image_cache_days: int | None = None,
           on_start: Callable[[EmbeddedStack], None] | None = None,
           parameter_overrides: Mapping[str, Any] | None = None) -> ReplayResult:
    """Replay a survey directory through a fresh embedded stack and export the results.

    Parameters
    ----------
    survey_dir : path
        Laid out as ``alertprod simulate`` writes it.
    out_dir : path
        Export destination (created; existing export files are replaced).
    progress : bool
        Show a progress bar over visits.
    timeout_s : float
        Longest wait for the functions to drain their queues after one visit.
    export : bool
        Write the export (tables, alerts, quarantine records).
    before_export : callable, optional
        Called with the running stack after the last day's precovery, before the export
        (tests use it to redeliver events or rerun functions on the final state).
    log_level : str
        Log level of the functions (the template's ``LogLevel`` parameter).
    image_cache_days : int, optional
        Days a cached image is kept (the template's ``ImageCacheDays``, default 30): fewer
        make older epochs expire from the cache during the replay; the archive keeps them.
        The lifecycle is applied before each new day's visits and once more at the end.
    on_start : callable, optional
        Called with the running stack before the first upload (the demo registers its
        example filters there).
    parameter_overrides : Mapping, optional
        More template parameters (e.g. ``WebhookAllowPrivate`` for the demo's loopback
        webhook receiver).
    """
    if image_cache_days is not None and (isinstance(image_cache_days, bool)
                                         or not isinstance(image_cache_days, int)
                                         or image_cache_days < 1):
        raise ConfigError(f"image_cache_days must be a whole number of days >= 1, got "
                          f"{image_cache_days!r}")
    overrides: dict[str, Any] = {"LogLevel": log_level, **(parameter_overrides or {})}
    if image_cache_days is not None:
        overrides["ImageCacheDays"] = image_cache_days
    t0 = time.perf_counter()
    visits, mpcorb = scan_survey_dir(survey_dir)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    result = ReplayResult(out)
    dated = [v.mjd_tai for v in visits if math.isfinite(v.mjd_tai)]
    first = mjd_tai_to_datetime(dated[0]) if dated else datetime.now(UTC)
    # the functions' structured INFO logs would drown the progress bar: warnings and errors show
    expired = 0
    with EmbeddedStack(clock_start=first - timedelta(minutes=5),
                       parameter_overrides=overrides) as stack:
        res = stack.resources
        if on_start is not None:
            on_start(stack)
        if mpcorb is not None:
            stack.clients.s3.put_object(Bucket=res.upload_bucket, Key=f"{MPCORB_PREFIX}mpcorb.dat",
                                        Body=mpcorb.read_bytes())
            stack.run_until_idle(timeout_s=timeout_s)
        if (Path(survey_dir) / "dr_templates").is_dir():  # as `alertprod templates load` does
            from alertprod.archive.data_release import load_data_release

            load_data_release(Path(survey_dir) / "dr_templates",
                              S3BlobStore(stack.clients.s3, res.archive_bucket))
        bar = tqdm(visits, desc="replay", unit="visit", disable=not progress)
        for visit in bar:
            # a visit without a readable time (only broken catalogs) comes last, at the clock's
            # time: uploaded and quarantined like any other
            when = mjd_tai_to_datetime(visit.mjd_tai) if math.isfinite(visit.mjd_tai) else stack.clock
            if when > stack.clock:
                # crossing 12:00 UTC refreshes the orbits for the night about to start
                result.precovery_days += _precovery_days(stack.advance_clock(to=when))
                expired += len(stack.apply_lifecycle().get("ImageBucket", []))
                stack.run_until_idle(timeout_s=timeout_s)
            _upload_visit(stack, visit)
            stack.run_until_idle(timeout_s=timeout_s)
            bar.set_postfix(ccds=len(visit.ccds))
        if visits:  # the day after the last night: its precovery too
            result.precovery_days += _precovery_days(
                stack.advance_clock(to=stack.clock + timedelta(days=1)))
            stack.run_until_idle(timeout_s=timeout_s)
            expired += len(stack.apply_lifecycle().get("ImageBucket", []))
        if before_export is not None:
            before_export(stack)
        level1 = dynamo_level1(stack.clients.dynamodb, res.level1_table)
        if export:
            result.exported = export_all(stack, level1, out)
        result.summary = summarize(stack, level1, visits, out)
        result.summary["orbitRefresh"] = orbit_refresh_summary(stack, level1, visits)
        result.summary["imageArchive"] = archive_summary(stack, expired)
    result.wall_seconds = time.perf_counter() - t0
    result.summary["precoveryDays"] = result.precovery_days
    result.summary["wallSeconds"] = round(result.wall_seconds, 2)
    (out / "summary.json").write_text(json.dumps(result.summary, indent=1))
    return result


def export_all(stack: EmbeddedStack, level1: Level1, out: Path) -> dict[str, str]:
    """Write the Level 1 tables, every archived alert and the quarantine records into ``out``."""
    res = stack.resources
    written = dict(write_export(level1.apdb.export(), out))
    alerts_dir = out / "alerts"
    if alerts_dir.exists():
        shutil.rmtree(alerts_dir)
    alerts_dir.mkdir()
    s3 = stack.clients.s3
    archive = _list(s3, res.alert_bucket, "alerts/")
    for key in archive:
        name = key[len("alerts/"):].replace("/", "_")
        (alerts_dir / name).write_bytes(s3.get_object(Bucket=res.alert_bucket, Key=key)["Body"].read())
    written["alerts"] = str(alerts_dir)
    records = [json.loads(s3.get_object(Bucket=res.upload_bucket, Key=k)["Body"].read())
               for k in _list(s3, res.upload_bucket, "quarantine/")]
    (out / "quarantine.json").write_text(json.dumps(records, indent=1))
    written["quarantine"] = str(out / "quarantine.json")
    (out / "dead_letters.json").write_text(json.dumps(dead_letters(stack), indent=1))
    written["dead_letters"] = str(out / "dead_letters.json")
    return written


def dead_letter_queues(stack: EmbeddedStack) -> list[str]:
    """Logical ids of the template's dead-letter queues: every queue a ``RedrivePolicy`` names
    as its ``deadLetterTargetArn``, and the queues the functions write failures to directly
    (``DeliveryDLQ``: a queue whose logical id ends in ``DLQ``)."""
    resources = stack.template["Resources"]
    queues = _created_queues(stack)
    arns = {stack.attribute(lid, "Arn"): lid for lid in queues}
    out = {lid for lid in queues if lid.endswith("DLQ")}
    for lid in queues:
        redrive = resources[lid].get("Properties", {}).get("RedrivePolicy")
        if redrive:
            target = stack.resolver.resolve(redrive).get("deadLetterTargetArn")
            if target in arns:
                out.add(arns[target])
    return sorted(out)


def _created_queues(stack: EmbeddedStack) -> list[str]:
    """Logical ids of the template's queues that exist on this stack (conditions applied)."""
    resources = stack.template["Resources"]
    return sorted(lid for lid, spec in resources.items() if spec["Type"] == "AWS::SQS::Queue"
                  and ("Condition" not in spec or stack.resolver.condition(spec["Condition"])))


def dead_letters(stack: EmbeddedStack) -> list[dict[str, Any]]:
    """Every message waiting in a dead-letter queue, with its queue and body (left in place).

    Messages are received with a long visibility timeout (the stack's clock stands still
    during the export, so none is received twice), then made visible again.
    """
    sqs = stack.clients.sqs
    records: list[dict[str, Any]] = []
    for lid in dead_letter_queues(stack):
        url = stack.physical_id(lid)
        handles = []
        while True:
            got = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=3600,
                                      AttributeNames=["All"]).get("Messages", [])
            if not got:
                break
            for m in got:
                handles.append(m["ReceiptHandle"])
                attrs = m.get("Attributes", {})
                records.append({"queue": lid, "messageId": m["MessageId"], "body": m["Body"],
                                "receiveCount": int(attrs.get("ApproximateReceiveCount", 0)),
                                "sentTimestampMs": int(attrs.get("SentTimestamp", 0)),
                                "keys": _s3_keys(m["Body"])})
        for handle in handles:
            sqs.change_message_visibility(QueueUrl=url, ReceiptHandle=handle, VisibilityTimeout=0)
    return records


def _s3_keys(body: str) -> list[str]:
    """The object keys an S3 notification body names ([] for any other body)."""
    try:
        return [obj.key for obj in s3_objects_from_sqs_body(body)]
    except EventError:
        return []


def _list(s3, bucket: str, prefix: str) -> list[str]:
    keys: list[str] = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        keys.extend(o["Key"] for o in page.get("Contents", []))
    return sorted(keys)


def archive_summary(stack: EmbeddedStack, expired_cache_images: int) -> dict[str, Any]:
    """The image cache's expiry and the long-term archive at the end of a replay."""
    res = stack.resources
    cache_days = stack.resolver.parameters["ImageCacheDays"]
    sizes = [o["Size"] for page in stack.clients.s3.get_paginator("list_objects_v2").paginate(
        Bucket=res.archive_bucket, Prefix=ARCHIVE_PREFIX + "visits/")  # not data-release coadds
        for o in page.get("Contents", [])]
    return {"imageCacheDays": int(cache_days), "expiredCacheImages": int(expired_cache_images),
            "archivedImages": len(sizes), "archivedBytes": int(sum(sizes))}


def orbit_refresh_summary(stack: EmbeddedStack, level1: Level1,
                          visits: list[VisitUpload]) -> list[dict[str, Any]]:
    """Per night of the visits: the refreshed orbit catalog its visits used, and its cost."""
    base = level1.apdb.get_orbit_catalog_version()
    staging = S3BlobStore(stack.clients.s3, stack.resources.alert_bucket)
    out = []
    for night in sorted({night_of(v.mjd_tai) for v in visits if math.isfinite(v.mjd_tai)}):
        report = staged_report(level1.apdb, staging, night, base) if base else None
        cost = (report or {}).get("cost") or {}
        out.append({"night": night, "refreshed": report is not None,
                    "orbits": (report or {}).get("orbits", 0),
                    "closeApproachers": (report or {}).get("close_approachers", 0),
                    "cpuSeconds": cost.get("cpu_seconds", 0.0), "usd": cost.get("total_usd", 0.0)})
    return out


def summarize(stack: EmbeddedStack, level1: Level1, visits: list[VisitUpload], out: Path) -> dict:
    """The closing summary: counts, per-CCD timings and DynamoDB requests (from the ledger)."""
    per_ccd = []
    totals: dict[str, int] = {}
    for v in visits:
        for c in v.ccds:
            if c.visit is None:  # a stray key: quarantined, never processed
                continue
            rec = level1.ledger.get_ccd_record(c.visit, c.detector)
            if not rec or rec.get("state") != CcdState.DONE:
                continue
            counts = rec.get("counts", {})
            for k, n in counts.items():
                totals[k] = totals.get(k, 0) + int(n)
            per_ccd.append({"visit": c.visit, "detector": c.detector, "mjdTai": rec.get("mjdTai", v.mjd_tai),
                            "band": rec.get("band", ""), "seconds": rec.get("seconds", float("nan")),
                            "stages": rec.get("stages", {}), "dynamodbRequests": rec.get("dynamodbRequests", 0),
                            "nDiaSources": counts.get("diaSources", 0)})
    secs = np.array([p["seconds"] for p in per_ccd], float)
    reqs = np.array([p["dynamodbRequests"] for p in per_ccd], float)
    try:
        quarantined = len(json.loads((out / "quarantine.json").read_text()))
    except (OSError, ValueError):
        quarantined = 0
    try:
        dead = len(json.loads((out / "dead_letters.json").read_text()))
    except (OSError, ValueError):
        dead = 0
    precovery = 0
    fpath = out / "DiaForcedSource.fits"
    if fpath.exists():
        from astropy.table import Table
        ft = Table.read(fpath)
        if "isPrecovery" in ft.colnames:
            flag = ft["isPrecovery"]
            precovery = int(np.sum(np.asarray(flag.filled(False) if hasattr(flag, "filled") else flag, bool)))
    return {
        "visits": len(visits),
        "ccds": sum(len(v.ccds) for v in visits),
        "ccdsProcessed": len(per_ccd),
        "diaSources": totals.get("diaSources", 0),
        "newDiaObjects": totals.get("newDiaObjects", 0),
        "updatedDiaObjects": totals.get("updatedDiaObjects", 0),
        "ssoMatches": totals.get("ssoMatches", 0),
        "forcedSources": totals.get("forcedSources", 0),
        "precoverySources": precovery,
        "alerts": totals.get("alertsPublished", totals.get("alerts", 0)),
        "alertsClaimChecked": totals.get("alertsClaimChecked", 0),
        "quarantined": quarantined,
        "deadLetters": dead,
        "ccdSecondsP50": float(np.percentile(secs, 50)) if secs.size else float("nan"),
        "ccdSecondsP95": float(np.percentile(secs, 95)) if secs.size else float("nan"),
        "dynamodbRequestsPerCcd": float(reqs.mean()) if reqs.size else float("nan"),
        "perCcd": per_ccd,
    }

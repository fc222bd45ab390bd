"""Precovery as the two Lambda functions run it: the daily planner and the queue worker.

Messages on the precovery queue are either a unit (:mod:`alertprod.precovery.units`) or a
finalisation request for a chunk of a run's objects. :func:`run_day_inline` runs a whole day
without a queue (tests, benchmarks).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime

import numpy as np
from astropy.time import Time

from alertprod.apdb import Level1
from alertprod.aws import BlobStore, SqsQueue
from alertprod.errors import PrecoveryError
from alertprod.precovery.daily import (
    CACHE_DAYS,
    PrecoveryPlan,
    finalize_objects,
    plan_precovery,
    run_id_of,
    run_unit,
)
from alertprod.precovery.units import UNIT_SCHEMA, unit_from_message, unit_to_message

__all__ = ["FINALIZE_SCHEMA", "DayReport", "unit_key", "event_time_mjd_tai", "plan_and_enqueue", "handle_message",
           "run_day_inline"]

FINALIZE_SCHEMA = "alertprod.precovery-finalize/1"
_FINALIZE_CHUNK = 2000


@dataclass
class DayReport:
    """Counts of one precovery day."""

    run_id: str
    new_objects: int
    units: int
    measured: int = 0
    expired: int = 0
    finalized: int = 0


def event_time_mjd_tai(event: dict) -> float:
    """TAI MJD of an EventBridge scheduled event's ``time`` (ISO 8601, UTC).

    Raises
    ------
    PrecoveryError
        When the event has no parseable ``time``.
    """
    try:
        t = datetime.fromisoformat(str(event["time"]).replace("Z", "+00:00"))
        return float(Time(t, scale="utc").tai.mjd)
    except (KeyError, ValueError, TypeError) as exc:
        raise PrecoveryError(f"scheduled event has no valid 'time': {exc}") from exc


def unit_key(visit: int, detector: int, part: int = 0) -> str:
    """Identifier of a unit within its run."""
    return f"{int(visit)}:{int(detector)}:{int(part)}"


def _unit_keys(plan: PrecoveryPlan) -> list[str]:
    seen: dict[tuple[int, int], int] = {}
    keys = []
    for u in plan.units:
        part = seen.get((u.visit, u.detector), 0)
        seen[(u.visit, u.detector)] = part + 1
        keys.append(unit_key(u.visit, u.detector, part))
    return keys


def plan_and_enqueue(level1: Level1, queue: SqsQueue, *, now_mjd_tai: float,
                     cache_days: float = CACHE_DAYS) -> DayReport:
    """The planner function's work: plan the day, record the run, send one message per unit.

    A run already finalised is not planned again: objects it would claim now (CCDs stored
    since) could no longer get its finalisation, so they are left to the next run.
    """
    done = level1.apdb.get_precovery_run(run_id_of(now_mjd_tai))
    if done is not None and done.finalized:
        return DayReport(run_id_of(now_mjd_tai), 0, 0)
    plan = plan_precovery(level1.apdb, now_mjd_tai=now_mjd_tai, cache_days=cache_days,
                          claim=True)
    ids = np.unique(np.asarray([i for u in plan.units for i in u.dia_object_ids], np.int64))
    level1.apdb.start_precovery_run(plan.run_id, n_units=len(plan.units), object_ids=ids,
                                    validity_start_mjd_tai=now_mjd_tai)
    bodies = []
    for u, key in zip(plan.units, _unit_keys(plan), strict=True):
        d = json.loads(unit_to_message(u))
        d["runId"], d["unitKey"] = plan.run_id, key
        bodies.append(json.dumps(d))
    if bodies:
        queue.send_batch(bodies)
    return DayReport(plan.run_id, plan.new_objects, len(plan.units))


def handle_message(body: str, *, level1: Level1, images: BlobStore, queue: SqsQueue,
                   processed_mjd_tai: float) -> dict:
    """The worker function's work for one message (a unit or a finalisation chunk)."""
    try:
        doc = json.loads(body)
    except (TypeError, ValueError) as exc:
        raise PrecoveryError(f"precovery message is not JSON: {exc}") from exc
    if not isinstance(doc, dict):
        raise PrecoveryError("precovery message is not an object")
    if doc.get("schema") == FINALIZE_SCHEMA:
        ids = np.asarray(doc.get("diaObjectId", []), np.int64)
        n = finalize_objects(level1.apdb, level1.leases, ids,
                             validity_start_mjd_tai=float(doc["validityStart"]))
        return {"finalized": n}
    if doc.get("schema") != UNIT_SCHEMA or "runId" not in doc or "unitKey" not in doc:
        raise PrecoveryError(f"unknown precovery message schema {doc.get('schema')!r}")
    unit = unit_from_message(body)
    res = run_unit(unit, apdb=level1.apdb, images=images, processed_mjd_tai=processed_mjd_tai)
    if level1.apdb.complete_precovery_unit(str(doc["runId"]), str(doc["unitKey"])):
        run = level1.apdb.get_precovery_run(str(doc["runId"]))
        ids = run.object_ids if run is not None else np.zeros(0, np.int64)
        start = run.validity_start_mjd_tai if run is not None else float("nan")
        chunks = [json.dumps({"schema": FINALIZE_SCHEMA, "runId": doc["runId"], "validityStart": start,
                              "diaObjectId": ids[s:s + _FINALIZE_CHUNK].tolist()})
                  for s in range(0, len(ids), _FINALIZE_CHUNK)]
        if chunks:
            queue.send_batch(chunks)
    return {"measured": res.measured, "expired": res.skipped_expired}


def run_day_inline(level1: Level1, images: BlobStore, *, now_mjd_tai: float,
                   cache_days: float = CACHE_DAYS) -> DayReport:
    """A whole precovery day in one process (no queue): plan, measure every unit, finalise."""
    apdb = level1.apdb
    plan = plan_precovery(apdb, now_mjd_tai=now_mjd_tai, cache_days=cache_days,
                          claim=True)
    rep = DayReport(plan.run_id, plan.new_objects, len(plan.units))
    ids: set[int] = set()
    for u in plan.units:
        r = run_unit(u, apdb=apdb, images=images, processed_mjd_tai=now_mjd_tai)
        rep.measured += r.measured
        rep.expired += int(r.skipped_expired)
        ids.update(u.dia_object_ids)
    rep.finalized = finalize_objects(apdb, level1.leases, sorted(ids),
                                     validity_start_mjd_tai=now_mjd_tai)
    return rep

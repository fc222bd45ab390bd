"""How a job runs: plan, fair-share dispatch, unit work, and assembly when the last unit reports.

- :func:`admit` (job queue, ``admit``): a submitted job joins the dispatcher's queue ``PENDING``.
- :func:`plan_submitted` (job queue, ``plan``, released by the dispatcher):
  :func:`~alertprod.precovery.job_plan.plan_job`,
  the unit list to the job bucket (cached units first), the fan-in run started in the APDB
  (the daily precovery's run record, :meth:`~alertprod.apdb.Apdb.start_precovery_run`), the
  job ``QUEUED`` with its ETA, a tick to the dispatcher.
- :func:`dispatch` (tick queue; one at a time): ``plan`` messages released up to
  ``max_plans_in_flight``, the next slot to the user with the fewest plans in flight (so a
  heavy user's submissions do not delay a light user's planning, and an assembly waits behind
  at most that many plans); then deficit round robin
  (:func:`~alertprod.precovery.scheduling.dispatch_order`) over the queued jobs' remaining
  units, released to the unit queue up to ``max_units_in_flight``; the cursor of each job is
  saved with compare-and-set *after* its units are sent, so a crash re-sends (workers are
  idempotent) and never loses a unit; every ``sweep_interval_s`` a job whose units all
  reported but which is still not final is sent ``assemble`` again (:func:`_sweep`); then
  the schedule (queue positions, ETAs) is kept. The queue is read in one batched read.
- :func:`run_unit` (unit queue): skip when the job is gone or final; measure; write the
  unit's rows and stamps under deterministic keys (a retry overwrites); count it in the
  run record; the one caller that completes the run sends ``assemble``, and so does a
  redelivered unit of a complete run (its first delivery may have died before sending). A unit
  failing for the
  last allowed attempt is written as rows with status ``failed``, so a job never hangs.
- :func:`assemble` (job queue, ``assemble``): every part into one light curve
  (:func:`~alertprod.precovery.jobs.write_results`), stamps into one zip, ``COMPLETED``,
  notification; a second ``assemble`` of a final job does nothing.

Plans and assemblies are timed like units (:class:`~alertprod.precovery.scheduling.UnitCosts`),
and the ETA plays every job's assembly after its last unit, so an ETA covers the whole path.
"""

from __future__ import annotations

import io
import json
import math
import time
import zipfile
from collections import Counter
from datetime import UTC, datetime
from typing import Any

import numpy as np
from astropy.table import Table, vstack

from alertprod.errors import NotFoundError, PrecoveryError
from alertprod.photometry.forced import ForcedFlag
from alertprod.precovery.job_plan import JobUnit, plan_job
from alertprod.precovery.job_unit import measure_job_unit
from alertprod.precovery.jobs import RESULT_FORMATS, parse_options, stamp_key, write_results
from alertprod.precovery.jobservice.admission import admit, release_plans
from alertprod.precovery.jobservice.context import (
    JobContext,
    data_release_index,
    job_prefix,
    load_target,
    part_key,
    stamps_key,
    unit_list_key,
    update_job,
)
from alertprod.precovery.jobservice.messages import (
    job_message,
    tick_message,
    unit_from_dict,
    unit_message,
)
from alertprod.precovery.jobservice.notify import notify_completion
from alertprod.precovery.jobservice.records import JobRecord
from alertprod.precovery.jobservice.store import QueueEntry, Schedule
from alertprod.precovery.results import rows_from_records
from alertprod.precovery.scheduling import QueuedJob, UnitCosts, dispatch_order, plan
from alertprod.precovery.sed import colour_corrections, parse_sed
from alertprod.precovery.targets import parse_target
from alertprod.precovery.uws import transition

__all__ = ["admit", "assemble", "dispatch", "finish_job", "plan_submitted", "result_links", "run_unit"]


def result_links(job_id: str, *, stamps: bool) -> tuple[tuple[str, str], ...]:
    """The job's result ids and hrefs (as :func:`alertprod.precovery.jobs.run_job_inline` names them)."""
    base = f"/api/precovery/jobs/{job_id}/results"
    links = [(f"lightcurve.{fmt}", f"{base}/lightcurve?format={fmt}") for fmt in RESULT_FORMATS]
    if stamps:
        links.append(("stamps", f"{base}/stamps"))
    return tuple(links)


def _error(ctx: JobContext, record: JobRecord, message: str) -> None:
    def change(r: JobRecord) -> JobRecord | None:
        return None if r.final else r.replace(job=transition(r.job, "ERROR", now=ctx.now(), error=message))

    saved = update_job(ctx, record.owner, record.job_id, change)
    if saved is not None:
        ctx.store.dequeue(record.job_id)
        notify_completion(ctx, saved)


def _order_keys(records: list[JobRecord], rotation: tuple[str, ...]) -> dict[str, float]:
    """Sort keys that make :func:`dispatch_order` visit users in rotation order.

    ``dispatch_order`` is stateless: it visits users in the order of their oldest job, so a
    dispatcher calling it afresh on every tick would hand the first share to the same user
    each time. The rotation (users in the order they were last served, kept with the
    schedule) carries the round robin across ticks: users not served yet come first, then the
    least recently served. The key keeps each user's jobs oldest first.
    """
    oldest: dict[str, float] = {}
    for r in records:
        oldest[r.owner] = min(oldest.get(r.owner, r.submitted_s), r.submitted_s)
    position = {u: i for i, u in enumerate(rotation)}
    users = sorted(oldest, key=lambda u: (position.get(u, -1), oldest[u], u))
    rank = {u: i for i, u in enumerate(users)}
    return {r.job_id: rank[r.owner] * 1e12 + r.submitted_s for r in records}


def _rotation(ctx: JobContext) -> tuple[str, ...]:
    schedule = ctx.store.get_schedule()
    return schedule.rotation if schedule is not None else ()


def _queued_jobs(ctx: JobContext, records: list[JobRecord], rotation: tuple[str, ...],
                 costs: UnitCosts, *, assembly: bool = False) -> list[QueuedJob]:
    """The jobs as :mod:`~alertprod.precovery.scheduling` sees them; with ``assembly``, each
    job's assembly is played after its units (for the ETA; the release order is the same)."""
    keys = _order_keys(records, rotation)
    return [QueuedJob(r.job_id, r.owner, keys[r.job_id],
                      costs.job_unit_seconds(r.n_cached, r.n_recreated)[r.dispatched:],
                      running_units=int(r.dispatched > 0), tail_s=costs.assemble_s if assembly else 0.0)
            for r in records if not r.final]


def _schedule(ctx: JobContext, records: list[JobRecord], backlog: int,
              rotation: tuple[str, ...], costs: UnitCosts | None = None) -> dict[str, Any]:
    """Queue positions and finish times (assembled) of ``records`` with ``backlog`` units ahead.

    An assembly is played on the workers' time line: exact where one process runs everything
    (the embedded stack), slightly late on AWS, where the jobs function assembles beside the
    workers — an ETA errs late rather than early.
    """
    costs = costs or ctx.store.unit_costs()
    jobs = _queued_jobs(ctx, records, rotation, costs, assembly=True)
    w = ctx.settings.workers
    busy = [_drain_s(ctx, backlog, costs)] * min(w, backlog)  # released units run first (FIFO)
    return plan(jobs, workers=w, busy_until_s=busy, quantum_s=ctx.settings.quantum_s)


def _drain_s(ctx: JobContext, backlog: int, costs: UnitCosts | None = None) -> float:
    """Seconds until ``backlog`` released units are done (their kinds unknown: the mean cost)."""
    costs = costs or ctx.store.unit_costs()
    mean = (costs.cached_s + costs.recreated_s) / 2.0
    return mean * math.ceil(backlog / ctx.settings.workers)


def _backlog(ctx: JobContext) -> int:
    return int(ctx.unit_queue.approximate_depth()) + int(ctx.unit_queue.approximate_in_flight())


def _queue_state(ctx: JobContext) -> tuple[list[JobRecord], list[JobRecord], list[JobRecord]]:
    """The queued jobs, oldest first: ``(planned with units to release, PENDING to plan,
    every unit released and not yet final: awaiting assembly)``; one batched read."""
    entries = ctx.store.queued()
    found = ctx.store.get_many([(e.owner, e.job_id) for e in entries])
    planned, pending, assembling = [], [], []
    for entry in entries:
        r = found.get(entry.job_id)
        if r is None or r.final:
            ctx.store.dequeue(entry.job_id)  # a stale entry: deleted, or ended
            continue
        if r.job.phase == "PENDING":
            pending.append(r)
        else:
            (assembling if r.dispatched >= r.n_units else planned).append(r)
    return planned, pending, assembling


def _queued_records(ctx: JobContext) -> list[JobRecord]:
    return _queue_state(ctx)[0]


def _sweep(ctx: JobContext, assembling: list[JobRecord], last_s: float) -> float:
    """Ask again for the assembly of jobs whose run is complete, every ``sweep_interval_s``.

    Defence in depth: the unit that completes a run asks, and so does any redelivered unit
    of a complete run; a job is left unassembled only when its ``assemble`` message itself
    was lost (dead-lettered after repeated failures, then fixed). Assembly is idempotent, so
    asking for one already on its way costs a no-op. Returns the time of this sweep (or
    ``last_s`` when it is not due).
    """
    now = ctx.clock()
    if now - last_s < ctx.settings.sweep_interval_s:
        return last_s
    due = [r for r in assembling if _run_complete(ctx, r.run_id)]
    if due:
        ctx.job_queue.send_batch([job_message("assemble", r.owner, r.job_id) for r in due])
    return now


def plan_submitted(ctx: JobContext, owner: str, job_id: str) -> str:
    """Plan a ``PENDING`` job (idempotent: any other phase is left alone); returns its phase."""
    t0 = time.perf_counter()  # the plan's cost feeds the ETAs
    record = ctx.store.get(owner, job_id)
    if record is None or record.job.phase != "PENDING":
        return "gone" if record is None else record.job.phase
    now_mjd = ctx.now_mjd_tai()
    try:
        target = parse_target(load_target(ctx, record), orbit_lookup=ctx.orbit_lookup)
        options = parse_options(record.job.parameters.get("options"), now_mjd_tai=now_mjd,
                                target=target, dr_index=data_release_index(ctx, record.job.parameters))
        units = plan_job(ctx.apdb, target, mjd_min=options.mjd_min, mjd_max=options.mjd_max,
                         now_mjd_tai=now_mjd, cache_days=ctx.settings.cache_days)
    except PrecoveryError as exc:  # TargetError included: the reason goes to the user
        _error(ctx, record, str(exc))
        ctx.tick_queue.send_batch([tick_message("planned")])  # its planning slot is free
        return "ERROR"
    units = [u for u in units if u.source == "cache"] + [u for u in units if u.source != "cache"]
    n_cached = sum(u.source == "cache" for u in units)
    ctx.bucket.put(unit_list_key(job_id), json.dumps([u._asdict() for u in units]).encode(),
                   content_type="application/json")
    ctx.apdb.start_precovery_run(record.run_id, n_units=len(units), object_ids=np.zeros(0, np.int64),
                                 validity_start_mjd_tai=now_mjd)
    if not units:  # nothing covers the target: an empty light curve, at once
        finish_job(ctx, record, Table(rows_from_records([])), stamps=[])
        ctx.tick_queue.send_batch([tick_message("planned")])  # its planning slot is free
        return "COMPLETED"
    planned = record.replace(n_units=len(units), n_cached=n_cached, n_recreated=len(units) - n_cached,
                             dispatched=0)
    ahead = [r for r in _queued_records(ctx) if r.job_id != job_id]
    schedule = _schedule(ctx, [*ahead, planned], _backlog(ctx), _rotation(ctx))
    mine = schedule[job_id]
    eta = datetime.fromtimestamp(ctx.clock() + mine.finish_s, UTC)

    def change(r: JobRecord) -> JobRecord | None:
        if r.job.phase != "PENDING":
            return None
        return planned.replace(version=r.version, job=transition(
            r.job, "QUEUED", now=ctx.now(), queue_position=mine.queue_position, eta=eta),
            eta_submitted=eta)

    if update_job(ctx, owner, job_id, change) is None:
        return "ABORTED"
    ctx.store.enqueue(QueueEntry(owner, job_id, record.submitted_s))
    ctx.store.observe_step("plan", time.perf_counter() - t0)
    ctx.tick_queue.send_batch([tick_message("planned")])
    return "QUEUED"


def dispatch(ctx: JobContext) -> dict[str, int]:
    """Release plans and units fairly up to their in-flight caps; keep the schedule.

    Returns the units released by job.
    """
    records, pending, assembling = _queue_state(ctx)
    release_plans(ctx, pending)
    backlog = _backlog(ctx)
    budget = max(0, ctx.settings.max_units_in_flight - backlog)
    previous = ctx.store.get_schedule()
    rotation = previous.rotation if previous is not None else ()
    swept_s = _sweep(ctx, assembling, previous.swept_s if previous is not None else 0.0)
    costs = ctx.store.unit_costs()  # read once per dispatch
    jobs = _queued_jobs(ctx, records, rotation, costs)
    order = dispatch_order(jobs, quantum_s=ctx.settings.quantum_s)[:budget]
    take = Counter(job_id for job_id, _ in order)
    released: dict[str, int] = {}
    by_id = {r.job_id: r for r in records}
    for job_id, k in take.items():
        released[job_id] = _release(ctx, by_id[job_id], k)
    served = list(dict.fromkeys(by_id[job_id].owner for job_id, _ in order))
    waiting = {r.owner for r in records}
    rotation = tuple(u for u in rotation if u in waiting and u not in served) + tuple(served)
    now_stored = ctx.store.get_many([(r.owner, r.job_id) for r in records])
    after = [now_stored[r.job_id] for r in records if r.job_id in now_stored]
    in_flight = backlog + sum(released.values())
    plans = _schedule(ctx, after, in_flight, rotation, costs)
    drain = _drain_s(ctx, in_flight, costs) + costs.assemble_s  # released units, then assembled
    ctx.store.put_schedule(Schedule(ctx.clock(), {j: (p.queue_position, p.finish_s) for j, p in plans.items()},
                                    drain, rotation, swept_s))
    return released


def _release(ctx: JobContext, record: JobRecord, k: int) -> int:
    start = record.dispatched
    units = json.loads(ctx.bucket.get(unit_list_key(record.job_id)))
    stop = min(len(units), start + k)
    ctx.unit_queue.send_batch([unit_message(record.owner, record.job_id, i, unit_from_dict(units[i]))
                               for i in range(start, stop)])

    def change(r: JobRecord) -> JobRecord | None:
        if r.final or r.dispatched >= stop:
            return None  # aborted meanwhile (workers skip its units), or already counted
        job = r.job if r.job.phase == "EXECUTING" else transition(r.job, "EXECUTING", now=ctx.now())
        return r.replace(job=job, dispatched=stop)

    update_job(ctx, record.owner, record.job_id, change)  # stays queued until final (the sweep)
    return stop - start


def _failed_rows(unit: JobUnit, reason: str) -> Table:
    flag = int(ForcedFlag.NO_DATA)
    return rows_from_records([{"target": t, "ra": r, "dec": d, "visit": unit.visit,
                               "detector": unit.detector, "band": unit.band,
                               "midpointMjdTai": unit.mjd_tai, "recreated": unit.source != "cache",
                               "flags": flag, "status": "failed", "template": reason[:40]}
                              for t, r, d in zip(unit.targets, unit.ra_deg, unit.dec_deg, strict=True)])


def run_unit(ctx: JobContext, owner: str, job_id: str, index: int, unit: JobUnit, *,
             attempt: int = 1) -> str:
    """Measure one released unit; returns ``"measured"``, ``"failed"`` or ``"skipped"``.

    Raises the measurement's error while attempts remain (the queue redelivers).
    """
    t0 = time.perf_counter()  # the unit's whole cost (reads, measurement, writes) feeds the ETAs
    record = ctx.store.get(owner, job_id)
    if record is None or record.final:
        return "skipped"  # deleted or aborted: its queued units are dropped here
    options = record.job.parameters.get("options") or {}  # checked at submission and planning
    outcome = "measured"
    try:
        m = measure_job_unit(unit, images=ctx.images, archive=ctx.archive,
                             processed_mjd_tai=ctx.now_mjd_tai(), stamps=bool(options.get("stamps")),
                             image_kind=options.get("images", "nightly"),
                             dr_index=data_release_index(ctx, record.job.parameters))
        rows, stamps = m.rows, m.stamps
    except Exception as exc:  # any failure of the science: retried, then recorded
        if attempt < ctx.settings.unit_max_attempts:
            raise
        rows, stamps, outcome = _failed_rows(unit, f"failed: {type(exc).__name__}"), (), "failed"
    buf = io.BytesIO()
    rows.write(buf, format="fits")  # exact dtypes, empty strings kept (a text format loses them)
    ctx.bucket.put(part_key(job_id, index), buf.getvalue(), content_type="application/fits")
    for stamp in stamps:  # at their final keys, for the page's gallery; a retry overwrites
        ctx.bucket.put(stamp_key(job_id, stamp.name), stamp.data, content_type=stamp.content_type)
    try:
        last = ctx.apdb.complete_precovery_unit(record.run_id, str(index))
    except NotFoundError:
        return "skipped"  # a unit of a job deleted since
    if last or (attempt > 1 and _run_complete(ctx, record.run_id)):
        # a redelivery of a complete run asks again: the caller that completed it may have died
        # before asking (assembly is idempotent, so asking twice costs a no-op)
        ctx.job_queue.send_batch([job_message("assemble", owner, job_id)])
    if outcome == "measured":  # a cached image that expired meanwhile was re-created: its rows say so
        recreated = bool(np.any(rows["recreated"])) if len(rows) else unit.source != "cache"
        ctx.store.observe_unit(time.perf_counter() - t0, recreated=recreated)
    ctx.tick_queue.send_batch([tick_message("unit done")])
    return outcome


def _run_complete(ctx: JobContext, run_id: str) -> bool:
    run = ctx.apdb.get_precovery_run(run_id)
    return run is not None and (run.finalized or len(run.done_units) >= run.expected_units)


def _zip(members) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        for name, data in members:
            z.writestr(name, data)
    return buf.getvalue()


def assemble(ctx: JobContext, owner: str, job_id: str) -> str:
    """Assemble a job whose units all reported (idempotent: a final job is left alone); returns its phase."""
    t0 = time.perf_counter()  # the assembly's cost feeds the ETAs
    record = ctx.store.get(owner, job_id)
    if record is None or record.final:
        return "gone" if record is None else record.job.phase
    tables = []
    for i in range(record.n_units):
        tables.append(Table.read(io.BytesIO(ctx.bucket.get(part_key(job_id, i))), format="fits",
                                 character_as_bytes=False, mask_invalid=False))
    base = stamp_key(job_id, "stamps/x")[:-len("stamps/x")]  # the job's results prefix
    stamps = [(key[len(base):], ctx.bucket.get(key)) for key in sorted(ctx.bucket.list(base + "stamps/"))]
    rows = vstack(tables, metadata_conflicts="silent") if tables else Table(rows_from_records([]))
    if len(rows):
        rows.sort(["target", "midpointMjdTai", "visit", "detector"])
    saved = finish_job(ctx, record, rows, stamps=stamps)
    if saved is None:
        return ctx.store.get(owner, job_id).job.phase
    ctx.store.observe_step("assemble", time.perf_counter() - t0)
    return "COMPLETED"


def finish_job(ctx: JobContext, record: JobRecord, rows: Table, *, stamps: list) -> JobRecord | None:
    """Write the results, mark the job ``COMPLETED``, notify, clean up its working objects."""
    options = record.job.parameters.get("options") or {}  # checked at submission and planning
    if options.get("sed") is not None and len(rows):
        k = colour_corrections(parse_sed(options["sed"]))
        rows["colourCorrection"] = np.array([k.get(str(b), np.nan) for b in rows["band"]], float)
    write_results(ctx.bucket, record.job_id, rows)
    if options.get("stamps"):
        ctx.bucket.put(stamps_key(record.job_id), _zip(stamps), content_type="application/zip")
    links = result_links(record.job_id, stamps=bool(options.get("stamps")))

    def change(r: JobRecord) -> JobRecord | None:
        if r.final:
            return None
        job = r.job if r.job.phase == "EXECUTING" else transition(r.job, "EXECUTING", now=ctx.now())
        return r.replace(job=transition(job, "COMPLETED", now=ctx.now(), results=links))

    saved = update_job(ctx, record.owner, record.job_id, change)
    ctx.store.dequeue(record.job_id)
    if saved is not None:
        notify_completion(ctx, saved)
        for key in list(ctx.bucket.list(job_prefix(record.job_id) + "parts/")):
            ctx.bucket.delete(key)
    return saved

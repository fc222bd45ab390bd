"""The job service as the API uses it: submit, read, wait, abort, delete, results.

Submission checks the request synchronously (a bad target or option is refused at once, with
the parser's message), applies the user's quotas (:class:`QuotaError`, which the API maps to
``429`` with ``Retry-After``), creates the job ``PENDING`` and sends an ``admit`` message (the
dispatcher releases its ``plan`` in the user's fair share); the rest happens in :mod:`.execution`. Every read is of the caller's own jobs: another user's job
is indistinguishable from a missing one.
"""

from __future__ import annotations

import hashlib
import json
import math
import secrets
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from alertprod.delivery.webhook import WebhookUrlError, check_webhook_url
from alertprod.errors import ConflictError, NotFoundError, PrecoveryError
from alertprod.precovery.jobs import RESULT_FORMATS, parse_options, result_key
from alertprod.precovery.jobservice.context import (
    INLINE_TARGET_BYTES,
    JobContext,
    data_release_index,
    job_prefix,
    stamps_key,
    target_key,
    update_job,
)
from alertprod.precovery.jobservice.messages import job_message, tick_message
from alertprod.precovery.jobservice.records import JobRecord
from alertprod.precovery.jobservice.store import Schedule
from alertprod.precovery.targets import TargetError, parse_target
from alertprod.precovery.uws import FINAL_PHASES, job_json, new_job, transition

__all__ = ["QuotaError", "abort_job", "delete_job", "get_job", "job_document", "job_documents", "list_jobs",
           "read_result", "submit_job", "wait_job"]

_EMAIL = r"^[^@\s\"<>,;]+@[A-Za-z0-9\-]+(\.[A-Za-z0-9\-]+)+$"


class QuotaError(PrecoveryError):
    """Over a per-user quota: the API answers ``429`` with ``Retry-After: retry_after_s``."""

    def __init__(self, message: str, *, retry_after_s: int):
        super().__init__(message)
        self.retry_after_s = max(1, int(retry_after_s))


def _check_notify(ctx: JobContext, doc: Any) -> dict[str, str]:
    if doc is None:
        return {}
    if not isinstance(doc, Mapping) or set(doc) - {"webhook", "email"}:
        raise TargetError("notify: expected an object with 'webhook' and/or 'email'")
    out: dict[str, str] = {}
    if doc.get("webhook") is not None:
        url = doc["webhook"]
        if not isinstance(url, str) or len(url) > 2048:
            raise TargetError("notify.webhook: expected a URL of at most 2048 characters")
        try:
            check_webhook_url(url, ctx.settings.webhook)
        except WebhookUrlError as exc:
            raise TargetError(f"notify.{exc}") from exc
        out.update(webhook=url, secret=secrets.token_urlsafe(32))
    if doc.get("email") is not None:
        import re

        email = doc["email"]
        if not isinstance(email, str) or len(email) > 254 or not re.match(_EMAIL, email):
            raise TargetError("notify.email: expected an e-mail address")
        if not ctx.settings.email_sender:
            raise TargetError("notify.email: e-mail is not enabled on this deployment")
        out["email"] = email
    return out


def _check_quotas(ctx: JobContext, owner: str) -> None:
    s = ctx.settings
    if ctx.store.count_in_flight(owner) >= s.max_jobs_in_flight_per_user:
        schedule = ctx.store.get_schedule()
        mine = [r.job_id for r in ctx.store.list_jobs(owner) if not r.final]
        soonest = min((schedule.jobs[j][1] for j in mine if schedule and j in schedule.jobs), default=60.0)
        raise QuotaError(f"you have {s.max_jobs_in_flight_per_user} jobs in flight (the limit); "
                         "wait for one to finish", retry_after_s=math.ceil(soonest))
    now = ctx.clock()
    hour = math.floor(now / 3600.0)
    window = datetime.fromtimestamp(hour * 3600.0, UTC).strftime("%Y%m%d%H")
    if not ctx.store.take_submission(owner, window, limit=s.max_submissions_per_hour,
                                     expires_s=(hour + 2) * 3600.0):
        raise QuotaError(f"you made {s.max_submissions_per_hour} submissions this hour (the limit)",
                         retry_after_s=math.ceil((hour + 1) * 3600.0 - now))


def submit_job(ctx: JobContext, owner: str, body: Any, *, idempotency_key: str | None = None
               ) -> tuple[JobRecord, str | None]:
    """Check, apply quotas, create ``PENDING``, send ``admit``; returns the record and the webhook
    secret (shown once) or None.

    With an ``idempotency_key`` (a client's ``Idempotency-Key``, a filter's order key), the job
    id derives from owner and key: a repeated submission returns the first job, counted once.

    Raises
    ------
    TargetError
        A malformed or out-of-range target, option or notification (the API's 400).
    QuotaError
        Over a quota.
    """
    if not isinstance(body, Mapping) or set(body) - {"target", "options", "notify"} or "target" not in body:
        raise TargetError("body: expected {\"target\": {...}, \"options\": {...}} (and optionally \"notify\")")
    target = parse_target(body["target"], orbit_lookup=ctx.orbit_lookup)
    parse_options(body.get("options"), now_mjd_tai=ctx.now_mjd_tai(), target=target,
                  dr_index=data_release_index(ctx, body))
    notify = _check_notify(ctx, body.get("notify"))
    job_id = "pj-" + secrets.token_hex(8)
    if idempotency_key is not None:
        if not isinstance(idempotency_key, str) or not 1 <= len(idempotency_key) <= 128:
            raise TargetError("idempotency key: 1 to 128 characters")
        job_id = "pj-" + hashlib.sha256(f"{owner}\n{idempotency_key}".encode()).hexdigest()[:16]
        if (first := ctx.store.get(owner, job_id)) is not None:
            return first, None
    _check_quotas(ctx, owner)
    target = body["target"]
    text = json.dumps(target)
    if len(text) > INLINE_TARGET_BYTES:  # the record keeps a summary
        ctx.bucket.put(target_key(job_id), text.encode(), content_type="application/json")
        target = {"kind": target["kind"], "n_positions": len(target.get("positions") or []),
                  "stored": "bucket"}
    params = {"target": target, "options": dict(body.get("options") or {})}
    if notify:
        params["notify"] = {k: v for k, v in notify.items() if k != "secret"}
    job = new_job(job_id, owner, params, now=ctx.now())
    record = JobRecord(job, submitted_s=ctx.clock(), notify=notify)
    try:
        ctx.store.create(record)
    except ConflictError:  # the same key submitted concurrently: the first one stands
        first = ctx.store.get(owner, job_id)
        if first is None:
            raise
        return first, None
    ctx.job_queue.send_batch([job_message("admit", owner, job.job_id)])
    return ctx.store.get(owner, job.job_id) or record, notify.get("secret")


def get_job(ctx: JobContext, owner: str, job_id: str) -> JobRecord:
    """The caller's job (NotFoundError otherwise: another user's job is not found either)."""
    record = ctx.store.get(owner, job_id) if 0 < len(job_id) <= 64 else None
    if record is None:
        raise NotFoundError(f"no job {job_id[:64]!r}")
    return record


def list_jobs(ctx: JobContext, owner: str) -> list[JobRecord]:
    """The caller's jobs, newest first."""
    return ctx.store.list_jobs(owner)


_READ = object()  # job_document's default: read the schedule (None is "there is none yet")


def job_document(ctx: JobContext, record: JobRecord, *, base_url: str = "",
                 schedule: Schedule | None | object = _READ) -> dict[str, Any]:
    """The API's job document: UWS fields plus queue position, ETA and unit counts.

    ``schedule``: the dispatcher's latest, as :meth:`JobStore.get_schedule` returned it (None
    included), read once by a caller rendering many jobs (:func:`job_documents`); by default
    it is read here.
    """
    doc = job_json(record.job, base_url=base_url)
    done = record.n_units if record.job.phase == "COMPLETED" else 0
    if record.job.phase == "EXECUTING":
        run = ctx.apdb.get_precovery_run(record.run_id)
        done = len(run.done_units) if run is not None else 0
    eta, position = record.job.eta, record.job.queue_position
    if not record.final:
        if schedule is _READ:
            schedule = ctx.store.get_schedule()
        if schedule is not None and record.job_id in schedule.jobs:
            position, finish_s = schedule.jobs[record.job_id]
            eta = datetime.fromtimestamp(max(schedule.as_of_s + finish_s, ctx.clock()), UTC)
        elif schedule is not None and record.job.phase == "EXECUTING":  # all units released
            position = 0
            eta = datetime.fromtimestamp(max(schedule.as_of_s + schedule.drain_s, ctx.clock()), UTC)
    doc.update(queuePosition=position if record.job.phase in ("QUEUED", "EXECUTING") else None,
               eta=None if record.final else _iso(eta),
               etaSeconds=None if record.final or eta is None else max(0.0, round(eta.timestamp() - ctx.clock(), 1)),
               etaAtSubmission=_iso(record.eta_submitted),
               errors=[] if record.job.error is None else [record.job.error],
               units={"total": record.n_units, "done": done, "cached": record.n_cached,
                      "recreated": record.n_recreated})
    return doc


def job_documents(ctx: JobContext, records: list[JobRecord], *, base_url: str = "") -> list[dict[str, Any]]:
    """The job documents of ``records`` (a listing), reading the schedule once whatever their number."""
    schedule = ctx.store.get_schedule() if any(not r.final for r in records) else None
    return [job_document(ctx, r, base_url=base_url, schedule=schedule) for r in records]


def _iso(t: datetime | None) -> str | None:
    return None if t is None else t.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def wait_job(ctx: JobContext, owner: str, job_id: str, wait_s: float) -> JobRecord:
    """UWS ``WAIT``: the job once it is final, or after ``wait_s`` (capped at ``max_wait_s``)."""
    deadline = ctx.clock() + min(max(0.0, float(wait_s)), ctx.settings.max_wait_s)
    record = get_job(ctx, owner, job_id)
    while record.job.phase not in FINAL_PHASES and ctx.clock() < deadline:
        ctx.sleep(min(ctx.settings.wait_poll_s, max(0.0, deadline - ctx.clock())))
        record = get_job(ctx, owner, job_id)
    return record


def abort_job(ctx: JobContext, owner: str, job_id: str) -> JobRecord:
    """UWS ``ABORT``: a job not yet final becomes ``ABORTED``; its queued units are dropped."""
    get_job(ctx, owner, job_id)

    def change(r: JobRecord) -> JobRecord | None:
        return None if r.final else r.replace(job=transition(r.job, "ABORTED", now=ctx.now()))

    if update_job(ctx, owner, job_id, change) is not None:
        ctx.store.dequeue(job_id)
        ctx.tick_queue.send_batch([tick_message("aborted")])  # its share goes to others
    return get_job(ctx, owner, job_id)


def delete_job(ctx: JobContext, owner: str, job_id: str) -> None:
    """Abort if running, then remove the record, its results and working objects."""
    abort_job(ctx, owner, job_id)
    ctx.store.delete(owner, job_id)
    keys = [*ctx.bucket.list(job_prefix(job_id)), *ctx.bucket.list(f"precovery-results/{job_id}/")]
    for key in keys:
        ctx.bucket.delete(key)


def read_result(ctx: JobContext, owner: str, job_id: str, what: str) -> tuple[bytes, str]:
    """A finished job's light curve (``csv``, ``json``, ``votable``) or ``stamps``; ``(bytes, type)``.

    Raises NotFoundError when the job is not the caller's, not completed, or has no such result.
    """
    record = get_job(ctx, owner, job_id)
    if record.job.phase != "COMPLETED":
        raise NotFoundError(f"job {job_id!r} is {record.job.phase}: results come when it is COMPLETED")
    if what == "stamps":
        if not (record.job.parameters.get("options") or {}).get("stamps"):
            raise NotFoundError(f"job {job_id!r} did not ask for stamps")
        return ctx.bucket.get(stamps_key(job_id)), "application/zip"
    return ctx.bucket.get(result_key(job_id, what)), RESULT_FORMATS[what]

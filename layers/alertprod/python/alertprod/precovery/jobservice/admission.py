"""Admission of submitted jobs to planning: each user's fair share of the planning slots.

A submitted job is ``PENDING``; the API (or a filter ordering precovery) sends ``admit`` on the
job queue, and :func:`admit` puts the job in the dispatcher's queue. The dispatcher then
releases ``plan`` messages (:func:`release_plans`) up to ``max_plans_in_flight``. Planning is
thus shared fairly — a heavy user's hundred submissions do not delay a light user's one — and
an ``assemble`` on the job queue waits behind at most that many plans, never behind a heavy
user's whole backlog (docs/precovery-service.md, "Queue and fair share").
"""

from __future__ import annotations

from collections import Counter

from alertprod.precovery.jobservice.context import JobContext, update_job
from alertprod.precovery.jobservice.messages import job_message, tick_message
from alertprod.precovery.jobservice.records import JobRecord
from alertprod.precovery.jobservice.store import QueueEntry

__all__ = ["PLAN_SLOT_S", "admit", "release_plans"]

#: A released ``plan`` holds its slot this long at most [s] (twice the jobs function's
#: timeout): a plan still ``PENDING`` after it is released again (planning is idempotent), so a
#: plan message lost to the dead-letter queue never holds a slot for good.
PLAN_SLOT_S = 1800.0


def admit(ctx: JobContext, owner: str, job_id: str) -> str:
    """Put a submitted job in the dispatcher's queue to be planned (idempotent); returns its phase."""
    record = ctx.store.get(owner, job_id)
    if record is None or record.job.phase != "PENDING":
        return "gone" if record is None else record.job.phase
    ctx.store.enqueue(QueueEntry(owner, job_id, record.submitted_s))
    ctx.tick_queue.send_batch([tick_message("admitted")])
    return "PENDING"


def release_plans(ctx: JobContext, pending: list[JobRecord]) -> int:
    """Send ``plan`` for queued ``PENDING`` jobs up to ``max_plans_in_flight``; returns how many.

    Each free slot goes to the user with the fewest plans in flight (ties: the user whose
    oldest waiting job is oldest), that user's oldest job first: a stateless max-min share, so
    one user's hundred submissions take one slot at a time while others wait. A job's
    ``plan_released_s`` is saved by compare-and-set *after* its message is sent: a crash in
    between re-sends it, and a second ``plan`` finds the job planned.
    """
    now = ctx.clock()
    holding = {r.job_id: r.owner for r in pending
               if r.plan_released_s is not None and now - r.plan_released_s < PLAN_SLOT_S}
    in_flight = Counter(holding.values())
    budget = ctx.settings.max_plans_in_flight - len(holding)
    waiting: dict[str, list[JobRecord]] = {}
    for r in sorted((r for r in pending if r.job_id not in holding), key=lambda r: (r.submitted_s, r.job_id)):
        waiting.setdefault(r.owner, []).append(r)
    chosen: list[JobRecord] = []
    while budget > 0 and waiting:
        user = min(waiting, key=lambda u: (in_flight[u], waiting[u][0].submitted_s, u))
        chosen.append(waiting[user].pop(0))
        if not waiting[user]:
            del waiting[user]
        in_flight[user] += 1
        budget -= 1
    if not chosen:
        return 0
    ctx.job_queue.send_batch([job_message("plan", r.owner, r.job_id) for r in chosen])
    for r in chosen:
        update_job(ctx, r.owner, r.job_id, lambda x: x.replace(plan_released_s=now)
                   if x.job.phase == "PENDING" else None)
    return len(chosen)

"""Per-message entry points of the job service's functions, and an in-process drain.

The three Lambda functions (``functions/precovery_jobs``, ``precovery_dispatcher``,
``precovery_units``) each call one of :func:`handle_job_message`, :func:`handle_ticks`,
:func:`handle_unit_message`. :func:`drain` plays the same on :class:`MemoryQueue` queues
until nothing is left (tests and tools without a stack).
"""

from __future__ import annotations

import json
from typing import Any

from alertprod.errors import PrecoveryError
from alertprod.precovery.jobservice.context import JobContext
from alertprod.precovery.jobservice.execution import (
    admit,
    assemble,
    dispatch,
    plan_submitted,
    run_unit,
)
from alertprod.precovery.jobservice.messages import (
    TICK_SCHEMA,
    MemoryQueue,
    parse_job_message,
    parse_unit_message,
)

__all__ = ["drain", "handle_job_message", "handle_ticks", "handle_unit_message"]


def handle_job_message(ctx: JobContext, body: str) -> dict[str, Any]:
    """An ``admit``, ``plan`` or ``assemble`` message; returns what happened."""
    msg = parse_job_message(body)
    if msg.action == "admit":
        return {"jobId": msg.job_id, "admitted": admit(ctx, msg.owner, msg.job_id)}
    if msg.action == "plan":
        return {"jobId": msg.job_id, "planned": plan_submitted(ctx, msg.owner, msg.job_id)}
    return {"jobId": msg.job_id, "assembled": assemble(ctx, msg.owner, msg.job_id)}


def handle_ticks(ctx: JobContext, bodies: list[str]) -> dict[str, Any]:
    """A batch of ticks is one dispatch (ticks carry nothing but the nudge)."""
    for body in bodies:
        try:
            doc = json.loads(body)
        except (TypeError, ValueError):
            doc = None
        if not isinstance(doc, dict) or doc.get("schema") != TICK_SCHEMA:
            raise PrecoveryError("expected a precovery tick")
    released = dispatch(ctx)
    return {"ticks": len(bodies), "released": sum(released.values()), "jobs": len(released)}


def handle_unit_message(ctx: JobContext, body: str, *, attempt: int = 1) -> dict[str, Any]:
    """One released unit (``attempt``: SQS's ApproximateReceiveCount)."""
    msg = parse_unit_message(body)
    outcome = run_unit(ctx, msg.owner, msg.job_id, msg.index, msg.unit, attempt=attempt)
    return {"jobId": msg.job_id, "unit": msg.index, "outcome": outcome}


def drain(ctx: JobContext, *, max_messages: int = 1_000_000) -> int:
    """Run every message of in-process queues until all are empty; returns messages handled.

    Order: plans and assemblies first, then a dispatch for all pending ticks, then units
    one by one (each unit's tick is served before the next unit), as the functions would.
    """
    queues = (ctx.job_queue, ctx.tick_queue, ctx.unit_queue)
    if not all(isinstance(q, MemoryQueue) for q in queues):
        raise PrecoveryError("drain works on MemoryQueue queues only")
    handled = 0
    while handled < max_messages:
        if (body := ctx.job_queue.pop()) is not None:
            handle_job_message(ctx, body)
        elif (body := ctx.tick_queue.pop()) is not None:
            ticks = [body]
            while (more := ctx.tick_queue.pop()) is not None:
                ticks.append(more)
            handle_ticks(ctx, ticks)
        elif (body := ctx.unit_queue.pop()) is not None:
            handle_unit_message(ctx, body)
        else:
            return handled
        handled += 1
    return handled

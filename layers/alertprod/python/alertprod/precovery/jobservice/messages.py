"""Messages between the job service's functions, and an in-process queue for tests and tools.

Three queues carry the service's work (docs/precovery-service.md, "Job lifecycle"):

- the **job queue**: ``admit`` (a submitted job joins the dispatcher's queue, to be planned in
  its fair share), ``plan`` (released by the dispatcher: the job's units are planned) and
  ``assemble`` (its last unit reported);
- the **tick queue**: a nudge to the dispatcher (anything may send one; ticks are coalesced);
- the **unit queue**: one released unit, self-contained (:class:`~alertprod.precovery.job_plan.JobUnit`).

Every message names its job by owner and id, so a handler reads one record; every handler is
idempotent, as SQS delivers at least once.
"""

from __future__ import annotations

import json
import threading
from collections import deque
from collections.abc import Iterable
from typing import Any, NamedTuple, Protocol

from alertprod.errors import PrecoveryError
from alertprod.precovery.job_plan import JobUnit

__all__ = ["JOB_SCHEMA", "TICK_SCHEMA", "UNIT_SCHEMA", "JobMessage", "MemoryQueue", "Queue",
           "UnitMessage", "job_message", "parse_job_message", "parse_unit_message", "tick_message",
           "unit_message"]

JOB_SCHEMA = "alertprod.precovery-job/1"
TICK_SCHEMA = "alertprod.precovery-tick/1"
UNIT_SCHEMA = "alertprod.precovery-job-unit/1"
_ACTIONS = ("admit", "plan", "assemble")


class Queue(Protocol):
    """What the service needs of a queue (:class:`alertprod.aws.SqsQueue` has it)."""

    def send_batch(self, bodies: Iterable[str]) -> list[str]: ...

    def approximate_depth(self) -> int: ...

    def approximate_in_flight(self) -> int: ...


class MemoryQueue:
    """A FIFO in process with :class:`Queue`'s methods, plus :meth:`pop` for a caller that drains it."""

    def __init__(self) -> None:
        self._items: deque[str] = deque()
        self._lock = threading.Lock()

    def send_batch(self, bodies: Iterable[str]) -> list[str]:
        with self._lock:
            out = []
            for body in bodies:
                self._items.append(body)
                out.append(str(len(self._items)))
            return out

    def pop(self) -> str | None:
        """The oldest message (removed), or None."""
        with self._lock:
            return self._items.popleft() if self._items else None

    def approximate_depth(self) -> int:
        return len(self._items)

    def approximate_in_flight(self) -> int:
        return 0


class JobMessage(NamedTuple):
    """``admit``, ``plan`` or ``assemble`` one job."""

    action: str
    owner: str
    job_id: str


class UnitMessage(NamedTuple):
    """One released unit of a job (its index in the job's unit list)."""

    owner: str
    job_id: str
    index: int
    unit: JobUnit


def _load(body: str, schema: str) -> dict[str, Any]:
    try:
        doc = json.loads(body)
    except (TypeError, ValueError) as exc:
        raise PrecoveryError(f"precovery job message is not JSON: {exc}") from exc
    if not isinstance(doc, dict) or doc.get("schema") != schema:
        raise PrecoveryError(f"expected a {schema} message")
    return doc


def job_message(action: str, owner: str, job_id: str) -> str:
    """The body of a job-queue message."""
    if action not in _ACTIONS:
        raise PrecoveryError(f"action must be one of {_ACTIONS}, got {action!r}")
    return json.dumps({"schema": JOB_SCHEMA, "action": action, "owner": owner, "jobId": job_id})


def parse_job_message(body: str) -> JobMessage:
    """A job-queue message (PrecoveryError when malformed: it goes to the dead-letter queue)."""
    doc = _load(body, JOB_SCHEMA)
    if doc.get("action") not in _ACTIONS or not doc.get("owner") or not doc.get("jobId"):
        raise PrecoveryError("a job message needs action, owner and jobId")
    return JobMessage(str(doc["action"]), str(doc["owner"]), str(doc["jobId"]))


def tick_message(reason: str = "") -> str:
    """The body of a dispatcher tick."""
    return json.dumps({"schema": TICK_SCHEMA, "reason": reason})


def unit_message(owner: str, job_id: str, index: int, unit: JobUnit) -> str:
    """The body of a released unit (the unit itself travels: workers read nothing else)."""
    return json.dumps({"schema": UNIT_SCHEMA, "owner": owner, "jobId": job_id, "index": int(index),
                       "unit": unit._asdict()})


def unit_from_dict(d: dict[str, Any]) -> JobUnit:
    """A :class:`JobUnit` from its JSON fields."""
    try:
        return JobUnit(int(d["visit"]), int(d["detector"]), str(d["band"]), float(d["mjd_tai"]),
                       str(d["source"]), tuple(int(t) for t in d["targets"]),
                       tuple(float(r) for r in d["ra_deg"]), tuple(float(x) for x in d["dec_deg"]))
    except (KeyError, TypeError, ValueError) as exc:
        raise PrecoveryError(f"a job unit is malformed: {exc}") from exc


def parse_unit_message(body: str) -> UnitMessage:
    """A unit-queue message."""
    doc = _load(body, UNIT_SCHEMA)
    try:
        return UnitMessage(str(doc["owner"]), str(doc["jobId"]), int(doc["index"]),
                           unit_from_dict(doc["unit"]))
    except (KeyError, TypeError, ValueError) as exc:
        raise PrecoveryError(f"a unit message is malformed: {exc}") from exc

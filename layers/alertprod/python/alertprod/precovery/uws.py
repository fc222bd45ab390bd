"""The precovery service's job model: IVOA UWS 1.1 phases, the job document, JSON and UWS XML.

A job moves through the UWS phases (interfaces.md §6): ``PENDING`` (created, not yet queued),
``QUEUED`` (waiting for workers: queue position and ETA known), ``EXECUTING``, and one of the
final phases ``COMPLETED``, ``ERROR``, ``ABORTED``. :func:`transition` allows only the moves
UWS allows (abort from any phase that is not final; nothing leaves a final phase) and stamps the
start and end times. :func:`job_json` is the JSON document of the API; :func:`job_xml` the same
as a UWS 1.1 ``uws:job`` element for clients that ask for ``application/xml``. Written here
because the UWS model is a small state machine and two documents, for which no maintained
Python server-side library exists (pyvo's UWS support is a client).
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from alertprod.errors import PrecoveryError

__all__ = ["FINAL_PHASES", "PHASES", "Job", "job_json", "job_xml", "new_job", "transition"]

PHASES = ("PENDING", "QUEUED", "EXECUTING", "COMPLETED", "ERROR", "ABORTED")
FINAL_PHASES = frozenset({"COMPLETED", "ERROR", "ABORTED"})
_NEXT = {"PENDING": {"QUEUED", "EXECUTING", "ERROR", "ABORTED"},
         "QUEUED": {"EXECUTING", "ERROR", "ABORTED"},
         "EXECUTING": {"COMPLETED", "ERROR", "ABORTED"}}
#: Results are kept at least this long after a job ends (the service's promise: ≥ 30 days).
RETENTION = timedelta(days=30)
UWS_NS = "http://www.ivoa.net/xml/UWS/v1.0"
XLINK_NS = "http://www.w3.org/1999/xlink"


@dataclass(frozen=True)
class Job:
    """One precovery job (immutable: :func:`transition` returns a new one).

    Attributes
    ----------
    job_id, owner : str
    phase : str
        One of :data:`PHASES`.
    parameters : Mapping
        The request's ``{"target": ..., "options": ...}`` as accepted.
    creation_time, start_time, end_time : datetime or None
        UTC.
    destruction : datetime
        When the job and its results may be deleted (end + :data:`RETENTION`, or creation + that
        while it runs).
    queue_position : int or None
        While ``QUEUED``: 1 + the jobs whose first unit goes before this one's.
    eta : datetime or None
        Expected completion (from the queue played forward).
    error : str or None
        Why it ended in ``ERROR``.
    results : tuple of (str, str)
        ``(result id, href)``: ``lightcurve`` (and ``stamps`` when asked for).
    """

    job_id: str
    owner: str
    phase: str
    parameters: Mapping[str, Any]
    creation_time: datetime
    start_time: datetime | None = None
    end_time: datetime | None = None
    destruction: datetime | None = None
    queue_position: int | None = None
    eta: datetime | None = None
    error: str | None = None
    results: tuple[tuple[str, str], ...] = field(default_factory=tuple)


def _utc(now: datetime) -> datetime:
    if now.tzinfo is None:
        raise PrecoveryError("now: must be timezone-aware (UTC)")
    return now.astimezone(UTC)


def new_job(job_id: str, owner: str, parameters: Mapping[str, Any], *, now: datetime) -> Job:
    """A ``PENDING`` job created at ``now``."""
    if not job_id or not owner:
        raise PrecoveryError("job_id and owner must be non-empty")
    created = _utc(now)
    return Job(job_id, owner, "PENDING", dict(parameters), created,
               destruction=created + RETENTION)


def transition(job: Job, phase: str, *, now: datetime, error: str | None = None,
               results: tuple[tuple[str, str], ...] | None = None, queue_position: int | None = None,
               eta: datetime | None = None) -> Job:
    """The job in ``phase``, if UWS allows the move (else :class:`PrecoveryError`).

    Entering ``EXECUTING`` stamps ``start_time``; a final phase stamps ``end_time`` and moves
    ``destruction`` to end + :data:`RETENTION`. ``ERROR`` needs an ``error`` text.
    """
    if phase not in PHASES:
        raise PrecoveryError(f"phase: {phase!r} is not one of {PHASES}")
    if phase == job.phase and phase == "QUEUED":  # a new queue position / ETA
        return replace(job, queue_position=queue_position, eta=eta)
    if phase not in _NEXT.get(job.phase, set()):
        raise PrecoveryError(f"a {job.phase} job cannot become {phase}")
    if phase == "ERROR" and not error:
        raise PrecoveryError("an ERROR job needs its error summary")
    t = _utc(now)
    changes: dict[str, Any] = {"phase": phase, "queue_position": queue_position, "eta": eta}
    if phase == "EXECUTING":
        changes["start_time"] = t
        changes["queue_position"] = 0
    if phase in FINAL_PHASES:
        changes.update(end_time=t, destruction=t + RETENTION, queue_position=None, eta=None,
                       error=error, results=tuple(results or job.results))
    return replace(job, **changes)


def _iso(t: datetime | None) -> str | None:
    return None if t is None else t.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def job_json(job: Job, *, base_url: str = "") -> dict[str, Any]:
    """The job document of the API (interfaces.md §6)."""
    return {
        "jobId": job.job_id, "ownerId": job.owner, "phase": job.phase,
        "parameters": dict(job.parameters),
        "creationTime": _iso(job.creation_time), "startTime": _iso(job.start_time),
        "endTime": _iso(job.end_time), "destruction": _iso(job.destruction),
        "queuePosition": job.queue_position, "eta": _iso(job.eta),
        "errorSummary": None if job.error is None else {"type": "fatal", "message": job.error},
        "results": [{"id": rid, "href": base_url + href} for rid, href in job.results],
    }


def job_xml(job: Job, *, base_url: str = "") -> bytes:
    """The job as a UWS 1.1 ``uws:job`` document (parameters as JSON text, by name)."""
    import json

    ET.register_namespace("uws", UWS_NS)
    ET.register_namespace("xlink", XLINK_NS)
    q = lambda tag: f"{{{UWS_NS}}}{tag}"  # noqa: E731 - a local shorthand
    root = ET.Element(q("job"), {"version": "1.1"})
    ET.SubElement(root, q("jobId")).text = job.job_id
    ET.SubElement(root, q("ownerId")).text = job.owner
    ET.SubElement(root, q("phase")).text = job.phase
    if job.eta is not None:
        ET.SubElement(root, q("quote")).text = _iso(job.eta)
    ET.SubElement(root, q("creationTime")).text = _iso(job.creation_time)
    for tag, value in (("startTime", job.start_time), ("endTime", job.end_time)):
        element = ET.SubElement(root, q(tag))
        if value is None:
            element.set("{http://www.w3.org/2001/XMLSchema-instance}nil", "true")
        else:
            element.text = _iso(value)
    ET.SubElement(root, q("executionDuration")).text = "86400"  # the 24 h of DMS-REQ-0341
    ET.SubElement(root, q("destruction")).text = _iso(job.destruction)
    params = ET.SubElement(root, q("parameters"))
    for name, value in job.parameters.items():
        p = ET.SubElement(params, q("parameter"), {"id": str(name)})
        p.text = json.dumps(value, sort_keys=True)
    results = ET.SubElement(root, q("results"))
    for rid, href in job.results:
        ET.SubElement(results, q("result"), {"id": rid, f"{{{XLINK_NS}}}href": base_url + href})
    if job.error is not None:
        summary = ET.SubElement(root, q("errorSummary"), {"type": "fatal", "hasDetail": "false"})
        ET.SubElement(summary, q("message")).text = job.error
    return ET.tostring(root, encoding="utf-8", xml_declaration=True)

"""The job service's record of a job: the UWS job plus what the service needs to run it.

A :class:`JobRecord` is what the store keeps per job (small: the target's positions are
bounded by the API's body limit; unit lists and results live in the job bucket). It
serialises to plain JSON (:meth:`JobRecord.to_dict`) for both store backends.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from alertprod.errors import StorageError
from alertprod.precovery.uws import FINAL_PHASES, Job

__all__ = ["JobRecord", "run_id_of"]


def run_id_of(job_id: str) -> str:
    """The fan-in run (:meth:`alertprod.apdb.Apdb.start_precovery_run`) of a job."""
    return f"job:{job_id}"


def _t(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def _dt(text: str | None) -> datetime | None:
    return None if text is None else datetime.fromisoformat(text)


@dataclass(frozen=True)
class JobRecord:
    """One job as the service keeps it.

    Attributes
    ----------
    job : Job
        The UWS job (phase, times, parameters, results, error).
    version : int
        Optimistic-concurrency counter: every save needs the version it read.
    submitted_s : float
        Unix time of submission (fair share orders a user's jobs by it).
    n_units, n_cached, n_recreated : int
        Units of the plan, and how many use a cached or a re-created difference image.
    dispatched : int
        Units released to the unit queue so far (the dispatcher's cursor into the unit list,
        which holds cached units first).
    eta_submitted : datetime or None
        The ETA given when the job was queued, kept to compare with the actual end.
    notify : dict
        ``{"webhook": url, "secret": ..., "email": address}`` as requested (any subset).
    notified : bool
        Whether the completion notification went out.
    plan_released_s : float or None
        Unix time the dispatcher released the job's ``plan`` message (None: waiting for its
        fair share of the planning slots, or planned).
    """

    job: Job
    version: int = 0
    submitted_s: float = 0.0
    n_units: int = 0
    n_cached: int = 0
    n_recreated: int = 0
    dispatched: int = 0
    eta_submitted: datetime | None = None
    notify: dict[str, str] = field(default_factory=dict)
    notified: bool = False
    plan_released_s: float | None = None

    @property
    def job_id(self) -> str:
        return self.job.job_id

    @property
    def owner(self) -> str:
        return self.job.owner

    @property
    def final(self) -> bool:
        return self.job.phase in FINAL_PHASES

    @property
    def run_id(self) -> str:
        return run_id_of(self.job.job_id)

    def replace(self, **changes: Any) -> JobRecord:
        """A copy with ``changes`` (the version is kept: the store bumps it on save)."""
        return replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON of the record."""
        j = self.job
        return {"jobId": j.job_id, "owner": j.owner, "phase": j.phase,
                "parameters": dict(j.parameters), "creationTime": _t(j.creation_time),
                "startTime": _t(j.start_time), "endTime": _t(j.end_time),
                "destruction": _t(j.destruction), "queuePosition": j.queue_position,
                "eta": _t(j.eta), "error": j.error, "results": [list(r) for r in j.results],
                "version": self.version, "submitted_s": self.submitted_s,
                "n_units": self.n_units, "n_cached": self.n_cached,
                "n_recreated": self.n_recreated, "dispatched": self.dispatched,
                "eta_submitted": _t(self.eta_submitted), "notify": dict(self.notify),
                "notified": self.notified, "plan_released_s": self.plan_released_s}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> JobRecord:
        """The record of :meth:`to_dict`'s JSON."""
        try:
            job = Job(d["jobId"], d["owner"], d["phase"], d["parameters"], _dt(d["creationTime"]),
                      _dt(d["startTime"]), _dt(d["endTime"]), _dt(d["destruction"]),
                      d["queuePosition"], _dt(d["eta"]), d["error"],
                      tuple(tuple(r) for r in d["results"]))
            return cls(job, int(d["version"]), float(d["submitted_s"]), int(d["n_units"]),
                       int(d["n_cached"]), int(d["n_recreated"]), int(d["dispatched"]),
                       _dt(d["eta_submitted"]), dict(d["notify"]), bool(d["notified"]),
                       None if d.get("plan_released_s") is None else float(d["plan_released_s"]))
        except (KeyError, TypeError, ValueError) as exc:
            raise StorageError(f"a stored precovery job record is malformed: {exc}") from exc

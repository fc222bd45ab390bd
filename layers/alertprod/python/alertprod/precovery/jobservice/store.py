"""Storage of the precovery job service: one interface, an in-memory backend.

The store keeps job records (:class:`~alertprod.precovery.jobservice.records.JobRecord`,
saved with optimistic concurrency: a save names the version it read), the queue of jobs
not yet final (units left to release, or awaiting assembly), per-user submission counters, the measured costs (units, plans, assemblies) and the last
schedule (queue positions and ETAs) the dispatcher computed. Big things — unit lists, unit
results, assembled light curves, stamps — are not here but in the job bucket. The DynamoDB
backend is :class:`~alertprod.precovery.jobservice.dynamodb.DynamoJobStore`.
"""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from dataclasses import replace
from typing import NamedTuple

from alertprod.errors import ConflictError, NotFoundError
from alertprod.precovery.jobservice.records import JobRecord
from alertprod.precovery.scheduling import UnitCosts

__all__ = ["JobStore", "MemoryJobStore", "QueueEntry", "Schedule"]


class QueueEntry(NamedTuple):
    """A job in the dispatcher's queue: planned or pending, not yet final."""

    owner: str
    job_id: str
    submitted_s: float


class Schedule(NamedTuple):
    """What the dispatcher last computed.

    Attributes
    ----------
    as_of_s : float
        Unix time of the computation.
    jobs : dict
        Per queued job ``(queue position, seconds until its last unit ends)``.
    drain_s : float
        Seconds until the units already released are done (the ETA of a job with nothing
        left to release).
    rotation : tuple of str
        Users with queued work in the order they were last served (the round robin's
        state between ticks).
    swept_s : float
        Unix time the dispatcher last looked for jobs whose units all reported but which
        were never assembled (0: never).
    """

    as_of_s: float
    jobs: dict[str, tuple[int, float]]
    drain_s: float = 0.0
    rotation: tuple[str, ...] = ()
    swept_s: float = 0.0


class JobStore(ABC):
    """What the job service needs of storage.

    Notes
    -----
    - :meth:`save` is a compare-and-set on the record's version: of two concurrent writers
      exactly one wins, the other gets :class:`~alertprod.errors.ConflictError`, reads again
      and decides again (so a phase change, e.g. to a final phase, happens once).
    - :meth:`take_submission` is atomic: under concurrent submissions no more than ``limit``
      are counted in one window.
    - A record in a final phase expires ``retention`` after its end (TTL on DynamoDB).
    """

    @abstractmethod
    def create(self, record: JobRecord) -> None:
        """Store a new job (ConflictError when the id exists)."""

    @abstractmethod
    def get(self, owner: str, job_id: str) -> JobRecord | None:
        """The job, or None when the owner has no such job."""

    def get_many(self, keys: list[tuple[str, str]]) -> dict[str, JobRecord]:
        """The jobs of ``(owner, job_id)`` keys that exist, by job id (consistent reads)."""
        found = (self.get(owner, job_id) for owner, job_id in keys)
        return {r.job_id: r for r in found if r is not None}

    @abstractmethod
    def save(self, record: JobRecord) -> JobRecord:
        """Replace the job if its stored version is ``record.version``; returns it with the new version.

        Raises ConflictError when another writer saved first, NotFoundError when it was deleted.
        """

    @abstractmethod
    def delete(self, owner: str, job_id: str) -> None:
        """Remove the job and its queue entry (no error when absent)."""

    @abstractmethod
    def list_jobs(self, owner: str) -> list[JobRecord]:
        """The owner's jobs, newest first."""

    @abstractmethod
    def count_in_flight(self, owner: str) -> int:
        """The owner's jobs in a non-final phase."""

    @abstractmethod
    def enqueue(self, entry: QueueEntry) -> None:
        """Put a job in the dispatcher's queue (idempotent)."""

    @abstractmethod
    def dequeue(self, job_id: str) -> None:
        """Take a job out of the queue (idempotent)."""

    @abstractmethod
    def queued(self) -> list[QueueEntry]:
        """Every queued job, oldest first."""

    @abstractmethod
    def take_submission(self, owner: str, window: str, *, limit: int, expires_s: float) -> bool:
        """Count one submission in ``window`` if fewer than ``limit`` are counted; True if counted."""

    @abstractmethod
    def unit_costs(self) -> UnitCosts:
        """The measured mean durations of units, plans and assemblies (defaults until measured)."""

    def observe_unit(self, seconds: float, *, recreated: bool) -> None:
        """Fold one unit's measured duration into the costs (best effort under contention)."""
        self.observe_step("recreated" if recreated else "cached", seconds)

    @abstractmethod
    def observe_step(self, step: str, seconds: float) -> None:
        """Fold one measured duration of a ``step`` (:data:`~alertprod.precovery.scheduling.STEPS`)
        into the costs (best effort under contention)."""

    @abstractmethod
    def put_schedule(self, schedule: Schedule) -> None:
        """Keep the dispatcher's latest schedule."""

    @abstractmethod
    def get_schedule(self) -> Schedule | None:
        """The latest schedule, or None."""


class MemoryJobStore(JobStore):
    """:class:`JobStore` in process (tests, tools); thread-safe, same semantics as DynamoDB's."""

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._jobs: dict[tuple[str, str], JobRecord] = {}
        self._queue: dict[str, QueueEntry] = {}
        self._windows: dict[tuple[str, str], int] = {}
        self._costs = UnitCosts()
        self._schedule: Schedule | None = None

    def create(self, record: JobRecord) -> None:
        with self._lock:
            if any(j == record.job_id for _, j in self._jobs):
                raise ConflictError(f"job {record.job_id!r} exists")
            self._jobs[(record.owner, record.job_id)] = replace(record, version=1)

    def get(self, owner: str, job_id: str) -> JobRecord | None:
        with self._lock:
            return self._jobs.get((owner, job_id))

    def save(self, record: JobRecord) -> JobRecord:
        with self._lock:
            key = (record.owner, record.job_id)
            stored = self._jobs.get(key)
            if stored is None:
                raise NotFoundError(f"no job {record.job_id!r}")
            if stored.version != record.version:
                raise ConflictError(f"job {record.job_id!r} changed meanwhile")
            saved = replace(record, version=record.version + 1)
            self._jobs[key] = saved
            return saved

    def delete(self, owner: str, job_id: str) -> None:
        with self._lock:
            self._jobs.pop((owner, job_id), None)
            self._queue.pop(job_id, None)

    def list_jobs(self, owner: str) -> list[JobRecord]:
        with self._lock:
            mine = [r for (o, _), r in self._jobs.items() if o == owner]
        return sorted(mine, key=lambda r: (r.job.creation_time, r.job_id), reverse=True)

    def count_in_flight(self, owner: str) -> int:
        return sum(not r.final for r in self.list_jobs(owner))

    def enqueue(self, entry: QueueEntry) -> None:
        with self._lock:
            self._queue[entry.job_id] = entry

    def dequeue(self, job_id: str) -> None:
        with self._lock:
            self._queue.pop(job_id, None)

    def queued(self) -> list[QueueEntry]:
        with self._lock:
            return sorted(self._queue.values(), key=lambda e: (e.submitted_s, e.job_id))

    def take_submission(self, owner: str, window: str, *, limit: int, expires_s: float) -> bool:
        with self._lock:
            n = self._windows.get((owner, window), 0)
            if n >= limit:
                return False
            self._windows[(owner, window)] = n + 1
            return True

    def unit_costs(self) -> UnitCosts:
        with self._lock:
            return replace(self._costs)

    def observe_step(self, step: str, seconds: float) -> None:
        with self._lock:
            self._costs.observe_step(step, seconds)

    def put_schedule(self, schedule: Schedule) -> None:
        with self._lock:
            self._schedule = schedule

    def get_schedule(self) -> Schedule | None:
        with self._lock:
            return self._schedule

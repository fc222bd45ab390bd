"""Fair share and honest ETAs for precovery-service jobs.

Jobs are cut into units (one image each). Units go to the workers in **deficit round robin**
over users (Shreedhar & Varghese 1996): every round each user with work gets a quantum of
unit-seconds, spent on their oldest job first; a user whose next unit costs more than what is
left carries the deficit to the next round. A user with 200 jobs therefore gets the same share
of the workers as a user with one while both have work, and ten light users' jobs finish
while a heavy user's queue drains (ATLAS's service does round robin per user; ZTF's is first
come, first served).

The ETA is the same dispatch played forward (:func:`plan`): the workers' free times in a heap,
each unit's duration from measured means per kind of unit (a cached difference image or one
re-created from the archive: :class:`UnitCosts`, updated as units report), so the ETA a job
shows is what this queue would do with the workers it has, not a guess per job. The load test
(issue 12) compares the ETAs given at submission with the actual completion times.
"""

from __future__ import annotations

import heapq
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from alertprod.errors import PrecoveryError

__all__ = ["STEPS", "JobPlan", "QueuedJob", "UnitCosts", "dispatch_order", "plan"]

#: The measured kinds of work: a unit (cached or re-created image), a job's plan, its assembly.
STEPS = ("cached", "recreated", "plan", "assemble")


@dataclass
class UnitCosts:
    """Mean seconds per step by kind, kept as exponentially weighted means of measured steps.

    Attributes
    ----------
    cached_s, recreated_s : float
        Current means of a unit on a cached or a re-created difference image (the defaults
        are first guesses, replaced as units report).
    plan_s, assemble_s : float
        Current means of a job's planning and of its assembly (the job queue's work, once
        per job), measured as the jobs function runs them.
    weight : float
        Weight of each new measurement.
    """

    cached_s: float = 2.0
    recreated_s: float = 8.0
    plan_s: float = 1.0
    assemble_s: float = 1.0
    weight: float = 0.1

    def observe(self, seconds: float, *, recreated: bool) -> None:
        """Fold in one unit's measured duration."""
        self.observe_step("recreated" if recreated else "cached", seconds)

    def observe_step(self, step: str, seconds: float) -> None:
        """Fold in one measured duration of ``step`` (``cached``, ``recreated``, ``plan``, ``assemble``)."""
        if step not in STEPS:
            raise PrecoveryError(f"step: one of {STEPS}, got {step!r}")
        if not (seconds >= 0.0 and seconds < 1e5):
            raise PrecoveryError(f"seconds: a step's duration must be in [0, 1e5), got {seconds!r}")
        name = f"{step}_s"
        mean = getattr(self, name)
        setattr(self, name, mean + self.weight * (seconds - mean))

    def means(self) -> dict[str, float]:
        """``{"cached_s": ..., "recreated_s": ..., "plan_s": ..., "assemble_s": ...}`` (to store)."""
        return {f"{step}_s": float(getattr(self, f"{step}_s")) for step in STEPS}

    def job_unit_seconds(self, n_cached: int, n_recreated: int) -> list[float]:
        """Durations of a job's units in the order they run (cached images first)."""
        return [self.cached_s] * int(n_cached) + [self.recreated_s] * int(n_recreated)


@dataclass
class QueuedJob:
    """A job waiting or running: its owner, submission time and remaining units' durations.

    ``tail_s``: work after its last unit (the job's assembly), played by :func:`plan` only.
    """

    job_id: str
    user_id: str
    submitted_s: float
    unit_seconds: Sequence[float]
    running_units: int = 0
    tail_s: float = 0.0
    _next: int = field(default=0, repr=False)


@dataclass(frozen=True)
class JobPlan:
    """What the queue will do with one job.

    Attributes
    ----------
    queue_position : int
        1 + the number of jobs whose first unit is dispatched before this one's (0 when
        this job already has units running).
    start_s, finish_s : float
        Seconds from now until its first unit starts and its last unit ends.
    """

    queue_position: int
    start_s: float
    finish_s: float


def dispatch_order(jobs: Iterable[QueuedJob], *, quantum_s: float = 10.0
                   ) -> list[tuple[str, float]]:
    """The order units are handed out: ``[(job_id, unit_seconds), ...]`` (deficit round robin).

    Within a user, jobs run oldest first; users are visited in the order of their oldest job.
    """
    if not quantum_s > 0:
        raise PrecoveryError(f"quantum_s: must be > 0, got {quantum_s!r}")
    by_user: dict[str, deque[QueuedJob]] = {}
    for job in sorted(jobs, key=lambda j: (j.submitted_s, j.job_id)):
        by_user.setdefault(job.user_id, deque()).append(job)
    cursor = {j.job_id: 0 for q in by_user.values() for j in q}
    deficit = dict.fromkeys(by_user, 0.0)
    active = deque(by_user)
    out: list[tuple[str, float]] = []
    while active:
        user = active.popleft()
        queue = by_user[user]
        deficit[user] += quantum_s
        while queue:
            job = queue[0]
            k = cursor[job.job_id]
            if k >= len(job.unit_seconds):
                queue.popleft()
                continue
            cost = float(job.unit_seconds[k])
            if cost > deficit[user]:
                break
            deficit[user] -= cost
            cursor[job.job_id] = k + 1
            out.append((job.job_id, cost))
        if queue:
            active.append(user)
        else:
            deficit[user] = 0.0
    return out


def plan(jobs: Sequence[QueuedJob], *, workers: int, busy_until_s: Sequence[float] = (),
         quantum_s: float = 10.0) -> dict[str, JobPlan]:
    """Queue position, start and finish (seconds from now) of every job, by playing the queue.

    Parameters
    ----------
    jobs : sequence of QueuedJob
        Every job with units left to dispatch.
    workers : int
        Units that run at once (the worker function's reserved concurrency).
    busy_until_s : sequence of float
        For workers busy now, seconds until each is free.
    quantum_s : float
        The round-robin quantum (unit-seconds per user per round).

    A job's ``tail_s`` starts when its last unit ends, on the first worker free by then (so
    it delays later units as the job function's share of one machine would: exact with one
    worker, an upper bound with several).
    """
    if workers < 1:
        raise PrecoveryError(f"workers: must be >= 1, got {workers!r}")
    free = sorted([max(0.0, float(t)) for t in busy_until_s][:workers])
    free += [0.0] * (workers - len(free))
    heapq.heapify(free)
    start: dict[str, float] = {}
    finish: dict[str, float] = {}
    first_rank: dict[str, int] = {}
    left = {j.job_id: len(j.unit_seconds) for j in jobs}
    tail = {j.job_id: max(0.0, float(j.tail_s)) for j in jobs}
    for job_id, seconds in dispatch_order(jobs, quantum_s=quantum_s):
        t0 = heapq.heappop(free)
        t1 = t0 + seconds
        heapq.heappush(free, t1)
        if job_id not in start:
            start[job_id] = t0
            first_rank[job_id] = len(first_rank) + 1
        finish[job_id] = max(finish.get(job_id, 0.0), t1)
        left[job_id] -= 1
        if left[job_id] == 0 and tail[job_id] > 0:
            t_tail = max(heapq.heappop(free), finish[job_id])
            finish[job_id] = t_tail + tail[job_id]
            heapq.heappush(free, finish[job_id])
    out: dict[str, JobPlan] = {}
    for job in jobs:
        if job.job_id not in start:  # nothing left to dispatch: its running units end it
            end = (max(free) if job.running_units else 0.0) + tail[job.job_id]
            out[job.job_id] = JobPlan(0, 0.0, end)
            continue
        position = 0 if job.running_units else first_rank[job.job_id]
        out[job.job_id] = JobPlan(position, start[job.job_id], finish[job.job_id])
    return out

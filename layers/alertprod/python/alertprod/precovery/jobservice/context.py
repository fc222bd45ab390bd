"""What every step of the job service works on: storage, queues, settings, clock; and helpers.

:class:`JobContext` is built once per container by a handler (or by a test, on memory
backends); the steps in :mod:`.execution` and :mod:`.service` take it. :func:`update_job`
is the one way a job record changes: read, decide, compare-and-set, again on conflict.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from astropy.time import Time

from alertprod.apdb import Apdb
from alertprod.aws import waiting
from alertprod.aws.blobs import BlobStore
from alertprod.errors import ConflictError, NotFoundError, PrecoveryError
from alertprod.orbits import OrbitCatalog
from alertprod.precovery.jobservice.config import JobServiceSettings
from alertprod.precovery.jobservice.messages import Queue
from alertprod.precovery.jobservice.records import JobRecord
from alertprod.precovery.jobservice.store import JobStore
from alertprod.times import survey_clock_offset_s

__all__ = ["INLINE_TARGET_BYTES", "JobContext", "data_release_index", "job_prefix", "load_target", "part_key", "stamps_key", "target_key",
           "unit_list_key", "update_job"]

#: A target's JSON up to this size is kept in the job record; a larger one (a big ``batch``)
#: goes to the job bucket and the record keeps a summary (DynamoDB items hold 400 KB).
INLINE_TARGET_BYTES = 32 * 1024


def job_prefix(job_id: str) -> str:
    """Prefix of a job's working objects (unit list, unit parts) in the job bucket."""
    return f"precovery-jobs/{job_id}/"


def target_key(job_id: str) -> str:
    """A large target's JSON (see :data:`INLINE_TARGET_BYTES`)."""
    return f"{job_prefix(job_id)}target.json"


def unit_list_key(job_id: str) -> str:
    """The job's planned units (JSON list, cached units first)."""
    return f"{job_prefix(job_id)}units.json"


def part_key(job_id: str, index: int) -> str:
    """One unit's rows (FITS): a deterministic key, so a retried unit overwrites its rows."""
    return f"{job_prefix(job_id)}parts/{int(index):06d}.rows.fits"


def stamps_key(job_id: str) -> str:
    """The job's stamp archive (beside the light curve of :func:`alertprod.precovery.jobs.result_key`)."""
    return f"precovery-results/{job_id}/stamps.zip"


@dataclass
class JobContext:
    """The job service's resources.

    Attributes
    ----------
    store : JobStore
        Job records, queue, quotas, unit costs, schedule.
    apdb : Apdb
        Image-cache and archive indexes (planning), and the fan-in's run records.
    bucket : BlobStore
        The job bucket (unit lists, parts, results, stamps).
    images, archive : BlobStore
        The image cache and the long-term archive (units read them).
    job_queue, tick_queue, unit_queue : Queue
        Plan/assemble messages, dispatcher ticks, released units.
    settings : JobServiceSettings
    clock : callable
        Unix time, seconds.
    sleep : callable
        Waits (``?wait=``): :func:`alertprod.aws.waiting.sleep`, which lets the embedded
        stack's other functions run meanwhile; injectable for tests.
    orbit_lookup : callable, optional
        Designation -> orbit catalog, for ``orbit`` targets.
    ses : botocore client, optional
        For completion e-mails (with ``settings.email_sender``).
    http_post : callable, optional
        Replaces the webhook POST in tests: ``(url, secret, body) -> error text or ""``.
    """

    store: JobStore
    apdb: Apdb
    bucket: BlobStore
    images: BlobStore
    archive: BlobStore
    job_queue: Queue
    tick_queue: Queue
    unit_queue: Queue
    settings: JobServiceSettings = JobServiceSettings()
    clock: Callable[[], float] = time.time
    sleep: Callable[[float], None] = waiting.sleep
    orbit_lookup: Callable[[str], OrbitCatalog | None] | None = None
    ses: Any = None
    http_post: Callable[[str, str, bytes], str] | None = None

    def now(self) -> datetime:
        """Now, aware UTC."""
        return datetime.fromtimestamp(self.clock(), UTC)

    def now_mjd_tai(self) -> float:
        """Now on the survey's clock, TAI MJD: what a job's images are planned against (which
        cached differences still exist, the default end of its time range). The same as the
        service clock on AWS; the embedded stack serving a replayed survey runs it at the
        survey's dates (:func:`alertprod.times.survey_clock_offset_s`)."""
        return float(Time(self.clock() + survey_clock_offset_s(), format="unix", scale="utc").tai.mjd)


def load_target(ctx: JobContext, record: JobRecord) -> Any:
    """The job's target as submitted (from the bucket when it was too large for the record)."""
    target = record.job.parameters.get("target")
    if isinstance(target, dict) and target.get("stored") == "bucket":
        import json

        return json.loads(ctx.bucket.get(target_key(record.job_id)))
    return target


def data_release_index(ctx: JobContext, parameters: Any) -> Any:
    """The archive's data-release index when the job asks for data-release images, else None."""
    options = (parameters or {}).get("options") if isinstance(parameters, dict) else None
    if not isinstance(options, dict) or options.get("images") != "data_release" or ctx.archive is None:
        return None
    from alertprod.archive.data_release import read_data_release_index

    return read_data_release_index(ctx.archive)


def update_job(ctx: JobContext, owner: str, job_id: str,
               change: Callable[[JobRecord], JobRecord | None], *, attempts: int = 20
               ) -> JobRecord | None:
    """Apply ``change`` to the stored job with compare-and-set, re-reading on conflict.

    ``change`` gets the current record and returns the new one, or None to leave it (e.g.
    the job is already final). Returns the saved record, or None when nothing was saved or the
    job does not exist.
    """
    for _ in range(attempts):
        record = ctx.store.get(owner, job_id)
        if record is None:
            return None
        new = change(record)
        if new is None:
            return None
        try:
            return ctx.store.save(new)
        except ConflictError:
            continue
        except NotFoundError:
            return None
    raise PrecoveryError(f"job {job_id!r}: {attempts} conflicting writers in a row")

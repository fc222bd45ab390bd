"""The refresh as the two Lambda functions run it: planner → queue → workers → fan-in.

1. **Plan** (:func:`plan_and_enqueue`; the daily schedule, or a request message after an
   MPCORB upload): the night is the one of the request's time; the base catalog's non-blank
   lines are cut into chunks of ``chunk_orbits`` records, written to the staging area
   (``staging/orbit-refresh/<night>/<base version>/in-*``), the fan-in record is started
   (one run per night and base version) and one message per chunk is sent.
2. **Integrate** (:func:`handle_message`, one chunk per invocation): parse the chunk,
   integrate it to the night (:func:`~alertprod.orbitrefresh.integrate.refresh_elements`),
   write its elements (``out-*``), mark the chunk done in the run.
3. **Fan in**: whoever finds every chunk done and the night not yet stored concatenates the
   chunks, stores the night's catalog in the APDB (``store_orbit_catalog(night_mjd=...)``)
   and writes the report (``report.json``: the night catalog's version, counts and cost).

Idempotent and resumable: ids are deterministic (night, base version, chunk index); a chunk
whose output exists is not computed again; the run's done-set ignores repeats; a planner run
for a night already stored from the current base does nothing, and one for a run in
progress re-sends only the chunks not done; a refresh whose base catalog was replaced
meanwhile stores nothing. :func:`run_refresh_inline` runs a whole night without a queue.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from alertprod.errors import NotFoundError, OrbitError
from alertprod.orbitrefresh.cost import RefreshCost, refresh_cost
from alertprod.orbitrefresh.elements import (
    NightElements,
    decode_night_elements,
    encode_night_elements,
)
from alertprod.orbitrefresh.integrate import DRIFT_LIMIT_ARCSEC, refresh_elements
from alertprod.orbitrefresh.messages import (
    RefreshChunk,
    RefreshRequest,
    parse_message,
    run_id,
    unit_key,
)
from alertprod.orbitrefresh.nights import (
    night_epoch_mjd_tai,
    night_epoch_mjd_tt,
    night_of,
    unix_ms_to_mjd_tai,
)
from alertprod.orbits import read_mpcorb

if TYPE_CHECKING:
    from alertprod.apdb import Apdb
    from alertprod.aws import BlobStore, SqsQueue

__all__ = ["STAGING_PREFIX", "RefreshConfig", "RefreshReport", "handle_message",
           "plan_and_enqueue", "request_refresh", "run_refresh_inline", "staged_report"]

#: Where chunks and their results wait (the alert bucket's ``staging/`` expires after 7 days).
STAGING_PREFIX = "staging/orbit-refresh/"


@dataclass(frozen=True)
class RefreshConfig:
    """Tuning of the refresh.

    Attributes
    ----------
    chunk_orbits : int
        Records per chunk message (one worker invocation): 10⁴ orbits take seconds.
    drift_limit_arcsec : float
        The NEO rule's limit (:mod:`alertprod.orbitrefresh.integrate`).
    worker_memory_mb : int
        The worker's memory (the template's ``MemorySize``), for the cost report.
    """

    chunk_orbits: int = 10_000
    drift_limit_arcsec: float = DRIFT_LIMIT_ARCSEC
    worker_memory_mb: int = 1769

    def __post_init__(self) -> None:
        if not (isinstance(self.chunk_orbits, int) and self.chunk_orbits >= 1):
            raise OrbitError(f"chunk_orbits: must be a positive int, got {self.chunk_orbits!r}")


@dataclass
class RefreshReport:
    """What a planner, worker or fan-in call did for one night, and (once stored) its cost.

    ``status`` is ``no_catalog``, ``already_refreshed``, ``planned``, ``resumed``,
    ``chunk_done``, ``refreshed`` or ``superseded`` (the base catalog changed meanwhile).
    """

    night_mjd: int
    base_version: str
    status: str
    reason: str = ""
    version: str = ""
    orbits: int = 0
    chunks: int = 0
    chunks_sent: int = 0
    close_approachers: int = 0
    failed_orbits: int = 0
    cost: RefreshCost | None = None
    detail: dict = field(default_factory=dict)

    def as_dict(self) -> dict:
        """JSON-ready (for logs, the handler's response and ``report.json``)."""
        out = asdict(self)
        out["cost"] = None if self.cost is None else self.cost.as_dict()
        return out


def _prefix(night: int, base: str) -> str:
    return f"{STAGING_PREFIX}{int(night)}/{base}/"


def _input_key(night: int, base: str, k: int) -> str:
    return f"{_prefix(night, base)}in-{k:05d}.mpcorb"


def _output_key(night: int, base: str, k: int) -> str:
    return f"{_prefix(night, base)}out-{k:05d}.night"


def _report_key(night: int, base: str) -> str:
    return f"{_prefix(night, base)}report.json"


def staged_report(apdb: Apdb, staging: BlobStore, night_mjd: int, base_version: str) -> dict | None:
    """The report of the night's refresh from this base, if the APDB holds what it stored."""
    try:
        report = json.loads(staging.get(_report_key(night_mjd, base_version)))
    except NotFoundError:
        return None
    stored = apdb.get_orbit_catalog_version(night_mjd=night_mjd)
    return report if stored and stored == report.get("version") else None


@dataclass
class _Plan:
    report: RefreshReport
    chunks: list[RefreshChunk]


def _plan(apdb: Apdb, staging: BlobStore, night: int, reason: str,
          config: RefreshConfig) -> _Plan:
    """Step 1 without the sending: the chunks still to do (none when finished here)."""
    base = apdb.get_orbit_catalog_version()
    if base is None:
        return _Plan(RefreshReport(night, "", "no_catalog", reason), [])
    if (done := staged_report(apdb, staging, night, base)) is not None:
        return _Plan(RefreshReport(night, base, "already_refreshed", reason, done["version"],
                                   done["orbits"], done["chunks"]), [])
    rid = run_id(night, base)
    run = apdb.get_precovery_run(rid)
    if run is None:
        data = apdb.get_orbit_catalog()
        if apdb.get_orbit_catalog_version() != base:  # replaced while we read it
            return _Plan(RefreshReport(night, base, "superseded", reason), [])
        lines = [line for line in data.splitlines() if line.strip()]
        n = math.ceil(len(lines) / config.chunk_orbits)
        for k in range(n):
            part = lines[k * config.chunk_orbits:(k + 1) * config.chunk_orbits]
            staging.put(_input_key(night, base, k), b"\n".join(part) + b"\n")
        apdb.start_precovery_run(rid, n_units=n, object_ids=np.zeros(0, np.int64),
                                 validity_start_mjd_tai=night_epoch_mjd_tai(night))
        todo, status = list(range(n)), "planned"
    else:
        n = run.expected_units
        todo = [k for k in range(n) if unit_key(k) not in run.done_units]
        status = "resumed"
    if not todo:
        return _Plan(_finish(apdb, staging, night, base, n, reason, config), [])
    chunks = [RefreshChunk(night, base, k, n, config.drift_limit_arcsec) for k in todo]
    return _Plan(RefreshReport(night, base, status, reason, chunks=n, chunks_sent=len(todo)),
                 chunks)


def plan_and_enqueue(apdb: Apdb, staging: BlobStore, queue: SqsQueue, *, now_mjd_tai: float,
                     night_mjd: int | None = None, reason: str = "schedule",
                     config: RefreshConfig | None = None) -> RefreshReport:
    """The planner's work: refresh the current base catalog for the night of ``now_mjd_tai``.

    Parameters
    ----------
    apdb : Apdb
        Holds the base catalog, the run records and, in the end, the night's catalog.
    staging : BlobStore
        Where chunks and their results wait (the alert bucket).
    queue : SqsQueue
        The orbit-refresh queue.
    now_mjd_tai : float
        The schedule's or the request's time (TAI MJD); its night is refreshed.
    night_mjd : int, keyword-only, optional
        Refresh this night instead.
    reason : str, keyword-only
        Logged with the report.
    config : RefreshConfig, keyword-only, optional
    """
    config = config or RefreshConfig()
    night = night_of(now_mjd_tai) if night_mjd is None else int(night_mjd)
    plan = _plan(apdb, staging, night, reason, config)
    if plan.chunks:
        queue.send_batch([c.to_message() for c in plan.chunks])
    return plan.report


def request_refresh(queue: SqsQueue, *, reason: str, base_version: str = "",
                    night_mjd: int | None = None) -> str:
    """Ask for a refresh (e.g. after an MPCORB upload); returns the message id."""
    return queue.send(RefreshRequest(reason, base_version, night_mjd).to_message())


def _run_chunk(chunk: RefreshChunk, apdb: Apdb, staging: BlobStore,
               config: RefreshConfig) -> RefreshReport:
    """Step 2 and, for the chunk that completes the run, step 3."""
    night, base = chunk.night_mjd, chunk.base_version
    out_key = _output_key(night, base, chunk.chunk)
    if not staging.exists(out_key):  # a redelivered chunk whose output is there skips this
        wall, cpu = time.perf_counter(), time.process_time()
        data = staging.get(_input_key(night, base, chunk.chunk))
        rejected: list = []
        catalog = read_mpcorb(data.decode("ascii", errors="replace"), strict=False,
                              rejected=rejected)
        refreshed = refresh_elements(catalog, night, drift_limit_arcsec=chunk.drift_limit_arcsec)
        meta = {"orbits": len(catalog), "rejectedLines": len(rejected), "inputBytes": len(data),
                "cpuSeconds": time.process_time() - cpu}
        meta["wallSeconds"] = time.perf_counter() - wall  # without the write below
        part = NightElements.from_catalog(refreshed.catalog, night_mjd=night, base_version=base,
                                          drift_arcsec=refreshed.drift_arcsec,
                                          close_approach=refreshed.close_approach, meta=meta)
        staging.put(out_key, encode_night_elements(part))
    apdb.complete_precovery_unit(chunk.run_id, chunk.unit_key)
    run = apdb.get_precovery_run(chunk.run_id)
    if (run is not None and len(run.done_units) >= run.expected_units
            and staged_report(apdb, staging, night, base) is None):
        return _finish(apdb, staging, night, base, chunk.chunks, "fan-in", config)
    return RefreshReport(night, base, "chunk_done", chunks=chunk.chunks,
                         detail={"chunk": chunk.chunk})


def _finish(apdb: Apdb, staging: BlobStore, night: int, base: str, n: int, reason: str,
            config: RefreshConfig) -> RefreshReport:
    """Step 3: the chunks' elements → the night's catalog in the APDB, and the report."""
    if apdb.get_orbit_catalog_version() != base:  # a newer upload has its own refresh
        return RefreshReport(night, base, "superseded", reason, chunks=n)
    parts = [decode_night_elements(staging.get(_output_key(night, base, k))) for k in range(n)]
    metas = [p.meta for p in parts]
    totals = {key: sum(float(m.get(key, 0.0)) for m in metas)
              for key in ("orbits", "rejectedLines", "inputBytes", "cpuSeconds", "wallSeconds")}
    # what is stored is a function of the inputs alone (the timings go to the report): two
    # fan-ins of one refresh store the same bytes, hence the same version
    meta = {"chunks": n, "driftLimitArcsec": config.drift_limit_arcsec,
            "orbits": int(totals["orbits"]), "rejectedLines": int(totals["rejectedLines"])}
    if parts:
        elements = NightElements.concatenate(parts, meta=meta)
    else:
        empty = np.zeros(0)
        elements = NightElements(night, night_epoch_mjd_tt(night), base, np.zeros(0, np.int64),
                                 *([empty] * 6), drift_arcsec=empty, close_approach=empty,
                                 meta=meta)
    data = encode_night_elements(elements)
    version = apdb.store_orbit_catalog(data, night_mjd=night)
    cost = refresh_cost(chunks=n, cpu_seconds=totals["cpuSeconds"],
                        wall_seconds=totals["wallSeconds"], memory_mb=config.worker_memory_mb,
                        night_bytes=len(data), base_bytes=int(totals["inputBytes"]))
    report = RefreshReport(night, base, "refreshed", reason, version, len(elements), n,
                           close_approachers=int(np.sum(elements.close_approach)),
                           failed_orbits=int(np.sum(~np.isfinite(elements.a))), cost=cost,
                           detail={"rejectedLines": int(totals["rejectedLines"])})
    staging.put(_report_key(night, base), json.dumps(report.as_dict()).encode())
    return report


def handle_message(body: str, *, apdb: Apdb, staging: BlobStore, queue: SqsQueue,
                   sent_timestamp_ms: float | str, config: RefreshConfig | None = None) -> dict:
    """The worker's work for one message: a refresh request (plan it) or a chunk.

    Parameters
    ----------
    body : str
        The message body.
    apdb, staging, queue
        As for :func:`plan_and_enqueue`.
    sent_timestamp_ms : float or str
        SQS's ``SentTimestamp`` (Unix ms): a request refreshes the night of that time.
    config : RefreshConfig, keyword-only, optional

    Raises
    ------
    OrbitError
        When the body is not a refresh message (it goes to the dead-letter queue).
    """
    config = config or RefreshConfig()
    message = parse_message(body)
    if isinstance(message, RefreshRequest):
        return plan_and_enqueue(apdb, staging, queue, now_mjd_tai=unix_ms_to_mjd_tai(sent_timestamp_ms),
                                night_mjd=message.night_mjd, reason=message.reason,
                                config=config).as_dict()
    return _run_chunk(message, apdb, staging, config).as_dict()


def run_refresh_inline(apdb: Apdb, staging: BlobStore, *, night_mjd: int,
                       reason: str = "inline", config: RefreshConfig | None = None) -> RefreshReport:
    """A whole night's refresh in one process, no queue (tests, benchmarks, tools)."""
    config = config or RefreshConfig()
    plan = _plan(apdb, staging, int(night_mjd), reason, config)
    report = plan.report
    for chunk in plan.chunks:
        report = _run_chunk(chunk, apdb, staging, config)
    return report

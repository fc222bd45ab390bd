"""The science-speaking interface of the Level 1 database, after Rubin's ``dax_apdb``.

The per-CCD pipeline reads the DiaObjects of a sky region and their 12-month history, and
stores one CCD's DiaSources, forced measurements and new DiaObject versions; daytime precovery
reads the night's new objects, finds cached exposures, stores forced rows and keeps a fan-in
record per run. Everything the pipeline and precovery need of storage is on :class:`Apdb`
(with :class:`~alertprod.apdb.coordination.CcdLedger` and
:class:`~alertprod.apdb.coordination.LeaseManager` for exactly-once and concurrency).

Backends: :class:`alertprod.apdb.dynamodb.DynamoApdb` (one DynamoDB table) and
:class:`alertprod.apdb.memory.MemoryApdb` (in process, for tests and tools); both pass the
contract suite in ``tests/contract/``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
from astropy.table import Table

if TYPE_CHECKING:
    from alertprod.apdb.coordination import CcdLedger, Lease, LeaseManager

__all__ = ["Apdb", "CcdWrites", "Level1", "PrecoveryRun", "StorageMetrics", "StoreStats", "PREV_VALIDITY_COLUMN"]

#: Column of ``CcdWrites.dia_objects`` naming the version a new version replaces (NaN: new object).
PREV_VALIDITY_COLUMN = "prevValidityStartMjdTai"


def check_run_id(run_id: object) -> str:
    """A precovery run id: non-empty text of at most 200 bytes (ValueError otherwise)."""
    if not isinstance(run_id, str) or not run_id or len(run_id.encode()) > 200:
        raise ValueError(f"run_id: must be non-empty text of at most 200 bytes, got {run_id!r}")
    return run_id


def check_night_mjd(night_mjd: object) -> int | None:
    """``night_mjd`` of the orbit-catalog methods as an int (None passes), or ValueError."""
    if night_mjd is None:
        return None
    if isinstance(night_mjd, (bool, np.bool_)) or not isinstance(
            night_mjd, (int, np.integer, float, np.floating)):
        raise ValueError(f"night_mjd: expected an integer MJD or None, got {night_mjd!r}")
    if not (np.isfinite(night_mjd) and float(night_mjd) == int(night_mjd)
            and 0 <= int(night_mjd) < 1_000_000):
        raise ValueError(f"night_mjd: expected an integer MJD in [0, 1e6), got {night_mjd!r}")
    return int(night_mjd)


@dataclass
class CcdWrites:
    """Everything one CCD writes to the Level 1 database.

    Attributes
    ----------
    visit, detector : int
        The CCD.
    visit_time_mjd_tai : float
        Exposure midpoint, TAI MJD; the ``validityStartMjdTai`` of every new DiaObject version.
    dia_sources : astropy.table.Table
        New DiaSource rows (Rubin columns; ``diaObjectId`` or ``ssObjectId`` set).
    dia_forced_sources : astropy.table.Table
        New DiaForcedSource rows.
    dia_objects : astropy.table.Table
        NEW DiaObject versions, each with ``validityStartMjdTai`` = visit time and the column
        ``prevValidityStartMjdTai``: the version it replaces, NaN for a brand-new object.
    writer : str or None
        Who writes, as recorded on each version (a retry of the same writer is recognised
        and completes; a version replaces only one written by another writer). None (the
        nightly pipeline): the CCD, ``"<visit>/<detector>"``. The withdrawal of a CCD's rows
        (:mod:`alertprod.pipeline.reprocess`) writes as ``"withdraw:<visit>/<detector>:<n>"``.
    """

    visit: int
    detector: int
    visit_time_mjd_tai: float
    dia_sources: Table
    dia_forced_sources: Table
    dia_objects: Table
    writer: str | None = None

    @property
    def writer_tag(self) -> str:
        """The writer recorded on the versions (:attr:`writer`, or the CCD)."""
        return self.writer or f"{int(self.visit)}/{int(self.detector)}"


class StorageMetrics:
    """The metrics hook of a backend: storage requests by operation, and consumed capacity.

    A backend calls :meth:`count` once per request it sends (DynamoDB: per client call; the
    in-memory backend: per request it models with the same item limits), so the pipeline
    reports requests per CCD without knowing what the backend talks to.

    Attributes
    ----------
    requests : collections.Counter
        Requests per operation name (``"batch_get_item"``, ``"transact_write_items"``, ...).
    capacity_units : float
        Capacity units the service reported (0 where it reports none).
    """

    def __init__(self) -> None:
        self.requests: Counter[str] = Counter()
        self.capacity_units = 0.0

    def count(self, operation: str, n: int = 1, *, capacity_units: float = 0.0) -> None:
        """Record ``n`` requests of ``operation`` (and the capacity they consumed)."""
        self.requests[operation] += int(n)
        self.capacity_units += float(capacity_units)

    def snapshot(self) -> dict[str, int]:
        """A copy of the request counts."""
        return dict(self.requests)

    def total(self) -> int:
        """All requests so far."""
        return int(sum(self.requests.values()))


@dataclass(frozen=True)
class PrecoveryRun:
    """The fan-in record of one daily precovery run.

    Attributes
    ----------
    run_id : str
        The run (the start of the night it serves, ``"%.5f"`` TAI MJD).
    expected_units : int
        Units the planner sent.
    done_units : frozenset of str
        Unit keys completed so far.
    object_ids : ndarray of int64
        The run's new DiaObjects.
    validity_start_mjd_tai : float
        ``validityStartMjdTai`` of the versions the finalisation writes.
    finalized : bool
        Whether a caller has already won the finalisation.
    """

    run_id: str
    expected_units: int
    done_units: frozenset[str]
    object_ids: np.ndarray
    validity_start_mjd_tai: float
    finalized: bool = False


@dataclass
class StoreStats:
    """What one :meth:`Apdb.store_ccd` call did.

    Attributes
    ----------
    requests : dict
        Storage requests by operation during the call (see :class:`StorageMetrics`).
    capacity_units : float
        Consumed capacity reported by the service (0 where it reports none).
    objects_written, objects_already_done : int
        New DiaObject versions committed now / found already committed (a retry).
    sources_written, forced_sources_written : int
        Rows written (idempotent: re-written rows count again).
    transactions : int
        TransactWriteItems calls that committed.
    """

    requests: dict[str, int] = field(default_factory=dict)
    capacity_units: float = 0.0
    objects_written: int = 0
    objects_already_done: int = 0
    sources_written: int = 0
    forced_sources_written: int = 0
    transactions: int = 0

    @property
    def total_requests(self) -> int:
        """All storage requests of the call."""
        return sum(self.requests.values())


class Apdb(ABC):
    """The Level 1 database as the nightly pipeline and the precovery service see it.

    Notes
    -----
    Guarantees of every backend (checked by the contract suite, ``tests/contract/``):

    - reads return the latest committed state (strongly consistent reads);
    - each DiaObject has exactly one open version (``validityEndMjdTai`` null); the version it
      replaces is closed at the new version's ``validityStartMjdTai`` atomically with the
      insertion of the new version and the update of DiaObjectLast and of the spatial index;
    - :meth:`store_ccd` is idempotent: repeating it after a failure at any point completes the
      remaining writes and duplicates nothing; a DiaObject that changed meanwhile in a way the
      writes did not expect raises :class:`alertprod.errors.ConflictError`;
    - writes made under a :class:`~alertprod.apdb.coordination.Lease` are rejected once the
      lease has been taken over (fencing), so a stalled CCD cannot overwrite a newer one's
      objects;
    - no request exceeds DynamoDB's item limits (25 per batch write, 100 per batch read or
      transaction), whatever the size of a CCD, and no stored item exceeds 400 KB, whatever
      the cadence (history, image and archive indexes, asteroid observations) or the size of
      a precovery run;
    - :meth:`record_ss_observations` and :meth:`complete_precovery_unit` are atomic under
      concurrent callers and idempotent for a repeated call.

    Attributes
    ----------
    metrics : StorageMetrics
        Requests this backend has sent (the pipeline reports them per CCD).
    """

    metrics: StorageMetrics

    # -- DiaObjects ----------------------------------------------------------------------------
    @abstractmethod
    def get_dia_objects(self, pixels: Sequence[int] | np.ndarray) -> Table:
        """Latest version of every DiaObject whose position is in the given HEALPix pixels.

        Parameters
        ----------
        pixels : array-like of int
            Nested HEALPix pixels of order :data:`alertprod.pixelization.PIXEL_ORDER`.

        Returns
        -------
        astropy.table.Table
            DiaObject columns (ra/dec in deg, fluxes in nJy), one row per object, sorted by id.
        """

    @abstractmethod
    def get_dia_objects_by_id(self, ids: Sequence[int] | np.ndarray) -> Table:
        """Latest version of the given DiaObjects (unknown ids are absent), sorted by id."""

    @abstractmethod
    def new_dia_objects(self, mjd_start: float, mjd_end: float) -> Table:
        """DiaObjects created with ``validityStartMjdTai`` in [mjd_start, mjd_end).

        Columns ``diaObjectId``, ``ra``, ``dec`` (deg), ``validityStartMjdTai``.
        """

    @abstractmethod
    def claim_new_dia_objects(self, run_id: str, mjd_start: float, mjd_end: float) -> Table:
        """The new DiaObjects of [mjd_start, mjd_end) that no *other* precovery run claimed,
        now claimed by ``run_id`` (columns as :meth:`new_dia_objects`).

        Claims are per CCD's index entry (an object is claimed with the other new objects of
        its CCD) and are written before returning. A rerun of the same ``run_id`` gets back what
        it claimed before plus whatever arrived unclaimed since: every new object is claimed by
        exactly one run however late its CCD was stored. ``run_id`` is non-empty text of at
        most 200 bytes (ValueError otherwise).
        """

    # -- history -------------------------------------------------------------------------------
    @abstractmethod
    def get_dia_history(self, object_ids: Sequence[int] | np.ndarray, visit_time_mjd_tai: float,
                        *, months: int = 12) -> tuple[Table, Table]:
        """DiaSources and DiaForcedSources of these objects, read together.

        Parameters
        ----------
        object_ids : array-like of int
            ``diaObjectId`` values.
        visit_time_mjd_tai : float
            Exclusive upper bound of ``midpointMjdTai`` (TAI MJD).
        months : int, keyword-only
            History length in 30-day months (Rubin alerts carry 12).

        Returns
        -------
        (Table, Table)
            DiaSource and DiaForcedSource rows with ``midpointMjdTai`` in
            [t − 30·months d, t), sorted by object then time.
        """

    def get_dia_sources(self, object_ids: Sequence[int] | np.ndarray, visit_time_mjd_tai: float,
                        *, months: int = 12) -> Table:
        """DiaSources of :meth:`get_dia_history`."""
        return self.get_dia_history(object_ids, visit_time_mjd_tai, months=months)[0]

    def get_dia_forced_sources(self, object_ids: Sequence[int] | np.ndarray,
                               visit_time_mjd_tai: float, *, months: int = 12) -> Table:
        """DiaForcedSources of :meth:`get_dia_history`."""
        return self.get_dia_history(object_ids, visit_time_mjd_tai, months=months)[1]

    @abstractmethod
    def get_ss_sources(self, ss_object_ids: Sequence[int] | np.ndarray, visit_time_mjd_tai: float,
                       *, months: int = 12) -> Table:
        """DiaSources associated with these SSObjects, same window as :meth:`get_dia_history`.

        Sorted by ``ssObjectId`` then time (an asteroid's alert carries them as its history).
        """

    # -- writes --------------------------------------------------------------------------------
    def store_ccd(self, writes: CcdWrites, *, lease: Lease | None) -> StoreStats:
        """Store one CCD's sources, forced sources and new DiaObject versions.

        Parameters
        ----------
        writes : CcdWrites
            The rows to write.
        lease : Lease or None, keyword-only
            The lease held on the CCD's sky cells; every write is fenced by it. ``None``
            disables fencing (single-writer tools and tests only).

        Returns
        -------
        StoreStats
            What the call wrote and the requests it sent (from :attr:`metrics`).

        Raises
        ------
        ConflictError
            When the lease was lost or a DiaObject changed unexpectedly; nothing of the
            transaction that failed is written. Two subclasses say what to do:
            :class:`~alertprod.errors.LeaseLostError` when a fencing check failed (take the
            lease again and retry), :class:`~alertprod.errors.StalePlanError` when objects the
            writes update changed since they were computed and nothing of the writes is
            committed yet (compute them again).
        """
        if not isinstance(writes, CcdWrites):
            raise TypeError(f"writes: expected CcdWrites, got {type(writes).__name__}")
        before, cap_before = self.metrics.snapshot(), self.metrics.capacity_units
        stats = StoreStats()
        try:
            self._write_ccd(writes, lease, stats)
        finally:
            after = self.metrics.snapshot()
            stats.requests = {k: after[k] - before.get(k, 0) for k in after
                              if after[k] != before.get(k, 0)}
            stats.capacity_units = self.metrics.capacity_units - cap_before
        return stats

    @abstractmethod
    def _write_ccd(self, writes: CcdWrites, lease: Lease | None, stats: StoreStats) -> None:
        """The backend's writes of :meth:`store_ccd` (validated ``writes``; updates ``stats``)."""

    # -- solar system --------------------------------------------------------------------------
    @abstractmethod
    def get_ss_objects(self, ids: Sequence[int] | np.ndarray | None = None) -> Table:
        """SSObject rows (all when ``ids`` is None), observation counters filled."""

    @abstractmethod
    def store_ss_objects(self, table: Table) -> None:
        """Upsert SSObject rows."""

    @abstractmethod
    def record_ss_observations(self, dia_sources: Table) -> int:
        """Count a CCD's solar-system DiaSources in their SSObjects (atomic, idempotent).

        Returns the number of SSObjects updated.
        """

    @abstractmethod
    def store_orbit_catalog(self, data: str | bytes, *, night_mjd: int | None = None) -> str:
        """Store an orbit catalog; returns its version id (a hash of its bytes).

        Parameters
        ----------
        data : str or bytes
            The base catalog (MPCORB.DAT text, as uploaded) or, with ``night_mjd``, one
            night's refreshed catalog (opaque bytes written by :mod:`alertprod.orbitrefresh`).
        night_mjd : int, keyword-only, optional
            The night the refreshed catalog serves (the night label of
            :func:`alertprod.orbitrefresh.night_of`); it replaces that night's previous one and
            leaves the base catalog alone. None (default): store the base catalog and make it
            the current one.

        Notes
        -----
        The bytes become visible all at once (a reader sees the previous version or this
        one). A night's catalog may expire some days after its night (DynamoDB: TTL 14 days).
        """

    @abstractmethod
    def get_orbit_catalog_version(self, *, night_mjd: int | None = None) -> str | None:
        """Version id of the base catalog, or of one night's refreshed catalog; None when
        none is stored (cheap: one key lookup, lets a container keep a parsed copy)."""

    @abstractmethod
    def get_orbit_catalog(self, *, night_mjd: int | None = None) -> bytes:
        """The bytes of the base catalog, or of one night's refreshed catalog.

        Raises :class:`~alertprod.errors.NotFoundError` when none is stored.
        """

    # -- image-cache index ---------------------------------------------------------------------
    @abstractmethod
    def index_exposure(self, visit: int, detector: int, band: str, mjd_tai: float,
                       corners_radec: np.ndarray, kinds: Sequence[str]) -> None:
        """Record a cached exposure's footprint (corners, shape (4, 2), deg) for precovery."""

    @abstractmethod
    def find_exposures(self, ra_deg: float, dec_deg: float, mjd_start: float,
                       mjd_end: float) -> Table:
        """Cached exposures whose footprint contains the position, mid-time in [start, end).

        Columns ``visit``, ``detector``, ``band``, ``midpointMjdTai``, ``corners``, ``kinds``
        (comma-separated), sorted by time.
        """

    # -- long-term image archive index --------------------------------------------------------
    @abstractmethod
    def index_archived_exposure(self, visit: int, detector: int, kind: str, band: str,
                                mjd_tai: float, corners_radec: np.ndarray) -> None:
        """Record an archived image (``kind`` ``science`` or ``template``) by footprint and time.

        Parameters
        ----------
        visit, detector : int
            The CCD-visit.
        kind : {"science", "template"}
            Which image of the CCD-visit was archived.
        band : str
            One of ``u g r i z y``.
        mjd_tai : float
            Exposure midpoint, TAI MJD.
        corners_radec : ndarray, shape (n, 2), 3 <= n <= 8
            Footprint corners, degrees.

        Notes
        -----
        Idempotent: re-indexing the same image (a redelivered message) replaces its own entry,
        so an image is listed once however often it is indexed. The index is kept for good
        (no TTL), one item per (HEALPix order-9 cell, MJD day) (docs/archive.md).
        """

    @abstractmethod
    def find_archived_exposures(self, pixels: Sequence[int] | np.ndarray, mjd_start: float,
                                mjd_end: float) -> Table:
        """Archived images indexed in any of ``pixels`` with midpoint in [start, end).

        ``pixels`` are HEALPix order-9 (nested) cells
        (:data:`alertprod.archive.ARCHIVE_INDEX_ORDER`); no footprint test is made here (the
        caller tests its positions against ``corners``). Columns ``visit``, ``detector``,
        ``kind``, ``band``, ``midpointMjdTai``, ``corners`` (deg); one row per image, sorted by
        time. One BatchGetItem per 100 (cell, day) keys.
        """

    # -- precovery runs ------------------------------------------------------------------------
    @abstractmethod
    def start_precovery_run(self, run_id: str, *, n_units: int, object_ids: np.ndarray,
                            validity_start_mjd_tai: float) -> None:
        """Record a run's size and objects; a rerun rewrites them and keeps the done units."""

    @abstractmethod
    def complete_precovery_unit(self, run_id: str, unit_key: str) -> bool:
        """Mark one unit done; True for exactly one caller once every unit of the run is done.

        A redelivered unit counts nothing; a caller that crashed after counting the last unit
        and before finalising leaves the finalisation to the unit's redelivery. ``unit_key``
        is non-empty text of at most 1,000 bytes (ValueError otherwise).

        Raises :class:`~alertprod.errors.NotFoundError` (writing nothing) for a run that was
        never started: a unit from nowhere goes to the dead-letter queue.
        """

    @abstractmethod
    def get_precovery_run(self, run_id: str) -> PrecoveryRun | None:
        """The run record, or None when the run is unknown."""

    # -- export --------------------------------------------------------------------------------
    @abstractmethod
    def export(self) -> dict[str, Table]:
        """Whole-database tables ``DiaObject``, ``DiaObjectHistory``, ``DiaSource``,
        ``DiaForcedSource``, ``SSObject`` with Rubin column names (not a hot path)."""


@dataclass(frozen=True)
class Level1:
    """One deployment's Level 1 storage as the pipeline and precovery use it.

    Attributes
    ----------
    apdb : Apdb
        The database of DiaObjects, sources, SSObjects, image index and run records.
    ledger : CcdLedger
        Per-CCD states and alert publish marks.
    leases : LeaseManager
        Sky-cell leases fencing the APDB's writes.
    """

    apdb: Apdb
    ledger: CcdLedger
    leases: LeaseManager

    @property
    def metrics(self) -> StorageMetrics:
        """Requests of all three (they share one hook)."""
        return self.apdb.metrics

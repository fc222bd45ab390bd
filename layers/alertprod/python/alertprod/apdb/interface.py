"""The science-speaking interface of the Level 1 database, after Rubin's ``dax_apdb``.

The per-CCD pipeline reads the DiaObjects of a sky region and their 12-month history, and
stores one CCD's DiaSources, forced measurements and new DiaObject versions. Backends implement
:class:`Apdb`; :class:`alertprod.apdb.dynamodb.DynamoApdb` is the DynamoDB one.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
from astropy.table import Table

if TYPE_CHECKING:
    from alertprod.apdb.leases import Lease

__all__ = ["Apdb", "CcdWrites", "StoreStats", "PREV_VALIDITY_COLUMN"]

#: Column of ``CcdWrites.dia_objects`` naming the version a new version replaces (NaN: new object).
PREV_VALIDITY_COLUMN = "prevValidityStartMjdTai"


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
    ss_objects : astropy.table.Table or None
        SSObject rows to upsert, if any.
    """

    visit: int
    detector: int
    visit_time_mjd_tai: float
    dia_sources: Table
    dia_forced_sources: Table
    dia_objects: Table
    ss_objects: Table | None = None


@dataclass
class StoreStats:
    """What one :meth:`Apdb.store_ccd` call did.

    Attributes
    ----------
    requests : dict
        DynamoDB requests by client method during the call.
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
        """All DynamoDB requests of the call."""
        return sum(self.requests.values())


class Apdb(ABC):
    """The Level 1 database as the nightly pipeline and the precovery service see it.

    Notes
    -----
    Guarantees of every backend (checked by the contract tests):

    - reads return the latest committed state (strongly consistent reads);
    - each DiaObject has exactly one open version (``validityEndMjdTai`` null); the version it
      replaces is closed at the new version's ``validityStartMjdTai`` atomically with the
      insertion of the new version and the update of DiaObjectLast and of the spatial index;
    - :meth:`store_ccd` is idempotent: repeating it after a failure at any point completes the
      remaining writes and duplicates nothing; a DiaObject that changed meanwhile in a way the
      writes did not expect raises :class:`alertprod.errors.ConflictError`;
    - writes made under a :class:`~alertprod.apdb.leases.Lease` are rejected once the lease
      has been taken over (fencing), so a stalled CCD cannot overwrite a newer one's objects.
    """

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
            DiaObject columns (ra/dec in deg, fluxes in nJy), one row per object.
        """

    @abstractmethod
    def get_dia_objects_by_id(self, ids: Sequence[int] | np.ndarray) -> Table:
        """Latest version of the given DiaObjects (unknown ids are absent)."""

    @abstractmethod
    def get_dia_sources(self, object_ids: Sequence[int] | np.ndarray, visit_time_mjd_tai: float,
                        *, months: int = 12) -> Table:
        """DiaSources of these objects with ``midpointMjdTai`` in [t − 30·months d, t).

        Parameters
        ----------
        object_ids : array-like of int
            ``diaObjectId`` values.
        visit_time_mjd_tai : float
            The current visit's midpoint, TAI MJD (exclusive upper bound).
        months : int, keyword-only
            History length in 30-day months (Rubin alerts carry 12).
        """

    @abstractmethod
    def get_dia_forced_sources(self, object_ids: Sequence[int] | np.ndarray,
                               visit_time_mjd_tai: float, *, months: int = 12) -> Table:
        """DiaForcedSources of these objects, same window as :meth:`get_dia_sources`."""

    @abstractmethod
    def get_ss_objects(self, ids: Sequence[int] | np.ndarray | None = None) -> Table:
        """SSObject rows (all when ``ids`` is None)."""

    @abstractmethod
    def store_ss_objects(self, table: Table) -> None:
        """Upsert SSObject rows."""

    @abstractmethod
    def store_orbit_catalog(self, data: str | bytes) -> str:
        """Store an orbit catalog (MPCORB.DAT text); returns its version id."""

    @abstractmethod
    def get_orbit_catalog_version(self) -> str | None:
        """Version id of the current orbit catalog (cheap: lets a container keep a cache)."""

    @abstractmethod
    def get_orbit_catalog(self) -> bytes:
        """The current orbit catalog's bytes (raises NotFoundError when none is stored)."""

    @abstractmethod
    def store_ccd(self, writes: CcdWrites, *, lease: Lease | None) -> StoreStats:
        """Store one CCD's sources, forced sources and new DiaObject versions.

        Parameters
        ----------
        writes : CcdWrites
            The rows to write.
        lease : Lease or None, keyword-only
            The lease held on the CCD's sky cells; every write is fenced by it. ``None``
            disables fencing (single-writer tools and tests only).
        """

    @abstractmethod
    def new_dia_objects(self, mjd_start: float, mjd_end: float) -> Table:
        """DiaObjects created with ``validityStartMjdTai`` in [mjd_start, mjd_end).

        Columns ``diaObjectId``, ``ra``, ``dec`` (deg), ``validityStartMjdTai``.
        """

    @abstractmethod
    def index_exposure(self, visit: int, detector: int, band: str, mjd_tai: float,
                       corners_radec: np.ndarray, kinds: Sequence[str]) -> None:
        """Record a cached exposure's footprint (corners, shape (4, 2), deg) for precovery."""

    @abstractmethod
    def find_exposures(self, ra_deg: float, dec_deg: float, mjd_start: float,
                       mjd_end: float) -> Table:
        """Cached exposures whose footprint contains the position, mid-time in [start, end)."""

    @abstractmethod
    def export(self) -> dict[str, Table]:
        """Whole-database tables ``DiaObject``, ``DiaObjectHistory``, ``DiaSource``,
        ``DiaForcedSource``, ``SSObject`` with Rubin column names (not a hot path)."""

"""The storage one in-memory deployment shares, and the DynamoDB request model it is charged by.

:class:`MemoryStore` holds everything (the analogue of the Level 1 table) behind one lock;
each modelled request is one atomic section under it. Stored values are immutable (packed
rows as ``bytes``, tuples, JSON text, frozen dataclasses), so nothing a caller holds can
change the store and nothing the store returns aliases it.

:class:`MemoryBackend`, the base of the three backends, charges every operation as the
DynamoDB backend would send it (:class:`~alertprod.apdb.interface.StorageMetrics`) and
refuses, as DynamoDB does, a request over its item limit: 100 keys per BatchGetItem, 25 per
BatchWriteItem, 100 items per TransactWriteItems. A backend that forgot to split its requests
fails here as it would on AWS.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

from alertprod.apdb._layout import MAX_BATCH_GET, MAX_BATCH_WRITE, MAX_TRANSACT_ITEMS
from alertprod.apdb.coordination import CcdState
from alertprod.apdb.interface import StorageMetrics
from alertprod.errors import StorageError

__all__ = ["REQUEST_LIMITS", "MemoryBackend", "MemoryStore"]

#: Items one request may carry, per operation (DynamoDB's limits).
REQUEST_LIMITS: dict[str, int] = {"batch_get_item": MAX_BATCH_GET,
                                  "batch_write_item": MAX_BATCH_WRITE,
                                  "transact_write_items": MAX_TRANSACT_ITEMS}


@dataclass(frozen=True)
class Last:
    """The latest version of a DiaObject: its start, writer tag, order-10 pixel, packed row."""

    start: float
    ccd: str
    pix: int
    row: bytes


@dataclass(frozen=True)
class Version:
    """One DiaObject version: packed row, writer tag, ``validityEndMjdTai`` (None while open)."""

    row: bytes
    ccd: str
    end: float | None = None


@dataclass(frozen=True)
class Cell:
    """A lease cell: holder, fencing token, expiry (Unix s)."""

    owner: str
    token: int
    expires_at: float


@dataclass(frozen=True)
class CcdRecord:
    """A CCD's ledger record; ``fields`` maps names to JSON text."""

    state: CcdState
    updated_at: float
    fields: tuple[tuple[str, str], ...] = ()


@dataclass
class Run:
    """A precovery run record (``expected`` None until the run is started)."""

    expected: int | None = None
    objects: bytes = b""
    validity_start: float = float("nan")
    done: set[str] = field(default_factory=set)
    finalized: bool = False


class MemoryStore:
    """Everything one in-memory deployment stores: the analogue of its DynamoDB table.

    Connections (:func:`~alertprod.apdb.memory.memory_level1` with ``store=``) share it as
    Lambda containers share the table. Access it only under :attr:`lock`.

    Attributes
    ----------
    lock : threading.RLock
        Held for every modelled request.
    last, versions : dict
        DiaObject id -> :class:`Last`; id -> {validityStartMjdTai -> :class:`Version`}.
    pixels : dict
        Order-10 pixel -> ids of the objects added there (entries of moved objects stay, as
        in DynamoDB; readers filter by :attr:`Last.pix`).
    new_objects : dict
        MJD day -> {diaObjectId -> (ra, dec, validityStartMjdTai)}.
    history : dict
        ``("obj", diaObjectId)`` or ``("ss", ssObjectId)`` -> {(30-day bucket, ``"s"``/``"f"``,
        row id) -> packed DiaSource/DiaForcedSource row}.
    ss_objects, ss_observations : dict
        ssObjectId -> packed row; ssObjectId -> set of ``"<diaSourceId>:<band>:<mjd>"``.
    orbit_current, orbit_nights, orbit_catalogs : tuple or None, dict, dict
        (version, chunks) of the current base catalog; night -> (version, chunks) of that
        night's refreshed catalog (no expiry, unlike DynamoDB's TTL); version -> bytes.
    images : dict
        (order-8 pixel, bucket) -> {``e<visit>_<detector>`` -> JSON entry}.
    archive : dict
        (order-9 cell, MJD day) -> {``<kind letter><visit>_<detector>`` -> packed entry}: the
        long-term archive index (docs/archive.md).
    runs, cells, ccds, alerts : dict
        Precovery runs, lease cells, CCD ledger records, alert marks.
    """

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.last: dict[int, Last] = {}
        self.versions: dict[int, dict[float, Version]] = {}
        self.pixels: dict[int, set[int]] = {}
        self.new_objects: dict[int, dict[int, tuple[float, float, float]]] = {}
        self.history: dict[tuple[str, int], dict[tuple[int, str, int], bytes]] = {}
        self.ss_objects: dict[int, bytes] = {}
        self.ss_observations: dict[int, set[str]] = {}
        self.orbit_current: tuple[str, int] | None = None
        self.orbit_nights: dict[int, tuple[str, int]] = {}
        self.orbit_catalogs: dict[str, bytes] = {}
        self.images: dict[tuple[int, int], dict[str, str]] = {}
        self.archive: dict[tuple[int, int], dict[str, bytes]] = {}
        self.runs: dict[str, Run] = {}
        self.cells: dict[int, Cell] = {}
        self.ccds: dict[tuple[int, int], CcdRecord] = {}
        self.alerts: dict[int, str] = {}


class MemoryBackend:
    """Base of the in-memory APDB, ledger and leases: a store, a metrics hook, request limits.

    Parameters
    ----------
    store : MemoryStore, optional
        The storage to use (a new one by default).
    metrics : StorageMetrics, keyword-only, optional
        The metrics hook (shared by the three of one connection).

    Attributes
    ----------
    store : MemoryStore
        The storage.
    metrics : StorageMetrics
        Every modelled request of this object.
    """

    def __init__(self, store: MemoryStore | None = None, *,
                 metrics: StorageMetrics | None = None):
        if store is not None and not isinstance(store, MemoryStore):
            raise TypeError(f"store: expected MemoryStore, got {type(store).__name__}")
        self.store = store if store is not None else MemoryStore()
        self.metrics = metrics if metrics is not None else StorageMetrics()

    def _request(self, operation: str, n_items: int = 1) -> None:
        """Charge one request of ``operation`` carrying ``n_items``; refuse it over the limit."""
        limit = REQUEST_LIMITS.get(operation)
        if limit is not None and n_items > limit:
            raise StorageError(f"{operation}: {n_items} items exceed DynamoDB's limit of {limit} "
                               f"per request")
        self.metrics.count(operation)

    def _requests(self, operation: str, n_items: int) -> int:
        """Charge ``n_items`` split into requests of at most the limit; returns the requests."""
        limit = REQUEST_LIMITS[operation]
        sent = 0
        for start in range(0, n_items, limit):
            self._request(operation, min(limit, n_items - start))
            sent += 1
        return sent

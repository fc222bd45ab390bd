"""The storage one in-memory deployment shares, and the DynamoDB request model it is charged by.

:class:`MemoryStore` holds everything (the analogue of the Level 1 table) behind one lock;
each modelled request is one atomic section under it. Stored values are immutable (packed
rows as ``bytes``, tuples, JSON text, frozen dataclasses), so nothing a caller holds can
change the store and nothing the store returns aliases it.

:class:`MemoryBackend`, the base of the three backends, charges every operation as the
DynamoDB backend would send it (:class:`~alertprod.apdb.interface.StorageMetrics`) and
refuses, as DynamoDB does, a request over its item limit: 100 keys per BatchGetItem, 25 per
BatchWriteItem, 100 items per TransactWriteItems; and a write that would make an item larger
than 400 KB (``_check_item_size``, called with the modelled item's size wherever an item
grows). A backend that forgot to split its requests or its items fails here as on AWS.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

from alertprod.apdb._layout import (
    MAX_BATCH_GET,
    MAX_BATCH_WRITE,
    MAX_ITEM_BYTES,
    MAX_SPILL_ENTRY_BYTES,
    MAX_TRANSACT_ITEMS,
    SPILL_HEAD_BYTES,
    SPILL_PART_BYTES,
    spill_parts,
)
from alertprod.apdb.coordination import CcdState
from alertprod.apdb.interface import StorageMetrics
from alertprod.errors import StorageError

__all__ = ["QUERY_PAGE_BYTES", "REQUEST_LIMITS", "MemoryBackend", "MemoryStore"]

#: Items one request may carry, per operation (DynamoDB's limits).
REQUEST_LIMITS: dict[str, int] = {"batch_get_item": MAX_BATCH_GET,
                                  "batch_write_item": MAX_BATCH_WRITE,
                                  "transact_write_items": MAX_TRANSACT_ITEMS}
#: Bytes of items one Query page reads (DynamoDB returns at most 1 MB per page).
QUERY_PAGE_BYTES = 1024 * 1024


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
    """A precovery run: its record (``expected`` None until started; ``n`` completed units,
    the finalisation flag, the object ids in chunks of the digest ``ids_digest``) and the
    keys of its unit markers (``units``), as DynamoDB keeps them (docs/apdb.md)."""

    expected: int | None = None
    objects: bytes = b""
    ids_digest: str = ""
    id_chunks: int = 0
    validity_start: float = float("nan")
    n: int = 0
    units: set[str] = field(default_factory=set)
    finalized: bool = False


@dataclass
class Spill:
    """The size bookkeeping of one spilling index item (``apdb.dynamodb._spill``): entry bytes
    counted into the head (``b``), spilled (``sb``), and in each part."""

    counted: int = 0
    spilled: int = 0
    parts: dict[int, int] = field(default_factory=dict)


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
    history_bytes, history_parts, history_part_bytes : dict
        (owner, bucket) -> row bytes counted into that history item (DynamoDB's ``b``);
        (owner, bucket) -> hour parts its rows went to once it was full; ((owner, bucket),
        part) -> row bytes of that part.
    images : dict
        (order-8 pixel, bucket) -> {``e<visit>_<detector>`` -> JSON entry}.
    archive : dict
        (order-9 cell, MJD day) -> {``<kind letter><visit>_<detector>`` -> packed entry}: the
        long-term archive index (docs/archive.md).
    spill : dict
        (index kind, item) -> :class:`Spill` of the image-cache index, archive index and
        SSObject observation items (the entries themselves are in ``images``, ``archive`` and
        ``ss_observations``).
    runs, cells, ccds, alerts : dict
        Precovery runs, lease cells, CCD ledger records, alert marks.
    """

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.last: dict[int, Last] = {}
        self.versions: dict[int, dict[float, Version]] = {}
        self.pixels: dict[int, set[int]] = {}
        self.new_objects: dict[int, dict[int, tuple[float, float, float]]] = {}
        self.new_object_claims: dict[int, str] = {}  # diaObjectId -> precovery run id
        self.history: dict[tuple[str, int], dict[tuple[int, str, int], bytes]] = {}
        self.history_bytes: dict[tuple[tuple[str, int], int], int] = {}
        self.history_parts: dict[tuple[tuple[str, int], int], set[int]] = {}
        self.history_part_bytes: dict[tuple[tuple[tuple[str, int], int], int], int] = {}
        self.ss_objects: dict[int, bytes] = {}
        self.ss_observations: dict[int, set[str]] = {}
        self.orbit_current: tuple[str, int] | None = None
        self.orbit_nights: dict[int, tuple[str, int]] = {}
        self.orbit_catalogs: dict[str, bytes] = {}
        self.images: dict[tuple[int, int], dict[str, str]] = {}
        self.archive: dict[tuple[int, int], dict[str, bytes]] = {}
        self.spill: dict[tuple[str, Any], Spill] = {}
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

    @staticmethod
    def _check_item_size(what: str, n_bytes: int) -> None:
        """Refuse, as DynamoDB does, a write that would make one item exceed 400 KB."""
        if n_bytes > MAX_ITEM_BYTES:
            raise StorageError(f"{what}: an item of {n_bytes} bytes exceeds DynamoDB's item "
                               f"size limit of {MAX_ITEM_BYTES} bytes (400 KB)")

    def _spill_write(self, kind: str, item: Any, n_bytes: int) -> None:
        """Charge and account one entry written to a spilling index item, as DynamoDB's
        backend writes it: into the head while it has room (one UpdateItem), else into its
        current part (three). The caller then stores the entry itself."""
        if not 0 < n_bytes <= MAX_SPILL_ENTRY_BYTES:
            raise ValueError(f"{kind}: an index entry of {n_bytes} bytes (limit "
                             f"{MAX_SPILL_ENTRY_BYTES})")
        self._request("update_item")
        with self.store.lock:
            spill = self.store.spill.setdefault((kind, item), Spill())
            if self._spill_has_room(spill, n_bytes):
                self._check_item_size(kind, spill.counted + n_bytes)
                spill.counted += n_bytes
                return
        self._request("update_item")  # ADD to the spill counter
        self._request("update_item")  # the entry into its part
        with self.store.lock:
            spill.spilled += n_bytes
            part = 1 + (spill.spilled - 1) // SPILL_PART_BYTES
            self._check_item_size(f"{kind} part", spill.parts.get(part, 0) + n_bytes)
            spill.parts[part] = spill.parts.get(part, 0) + n_bytes

    @staticmethod
    def _spill_has_room(spill: Spill, n_bytes: int) -> bool:
        """The head's condition: its counted bytes stay within SPILL_HEAD_BYTES."""
        return spill.counted == 0 or spill.counted <= SPILL_HEAD_BYTES - n_bytes

    def _spill_reads(self, kind: str, items: list[Any]) -> None:
        """Charge the second read of spilling index items: the parts of full ones."""
        with self.store.lock:
            n = sum(len(spill_parts(s.spilled)) for i in items
                    if (s := self.store.spill.get((kind, i))) is not None)
        if n:
            self._requests("batch_get_item", n)

    def _requests(self, operation: str, n_items: int) -> int:
        """Charge ``n_items`` split into requests of at most the limit; returns the requests."""
        limit = REQUEST_LIMITS[operation]
        sent = 0
        for start in range(0, n_items, limit):
            self._request(operation, min(limit, n_items - start))
            sent += 1
        return sent

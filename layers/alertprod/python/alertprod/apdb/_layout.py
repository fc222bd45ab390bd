"""What both APDB backends share of the storage layout: request limits, shards, chunking.

The DynamoDB backend lays its items out with these numbers; the in-memory backend models the
same requests with them, so that its request counts and its item limits are DynamoDB's (the
contract suite checks both). Private to :mod:`alertprod.apdb`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

import numpy as np
from astropy.table import Table

from alertprod.errors import CatalogError

__all__ = ["MAX_BATCH_GET", "MAX_BATCH_WRITE", "MAX_TRANSACT_ITEMS", "MAX_ITEM_BYTES",
           "NEW_OBJECT_SHARDS", "NEW_OBJECTS_PER_ITEM", "new_object_chunks", "unpack_new_objects",
           "INDEX_ORDER", "ORBIT_CHUNK_BYTES", "SPILL_HEAD_BYTES",
           "SPILL_PART_BYTES", "MAX_SPILL_ENTRY_BYTES", "HISTORY_HEAD_BYTES", "HISTORY_PARTS", "HISTORY_ROWS_PER_WRITE", "MAX_UNIT_KEY_BYTES", "RUN_IDS_PER_CHUNK", "as_ids",
           "cap_rows_per_item", "check_unit_key", "history_part", "history_span", "history_window", "item_size_bytes", "pack_groups",
           "run_id_chunks", "spill_parts"]

#: AWS limits: keys per BatchGetItem, requests per BatchWriteItem, items per TransactWriteItems.
MAX_BATCH_GET = 100
MAX_BATCH_WRITE = 25
MAX_TRANSACT_ITEMS = 100
#: Shards of the former per-night "new DiaObjects" items, written inside the CCD transactions
#: until the index moved to per-CCD items (still read: docs/apdb.md "New objects of a day").
NEW_OBJECT_SHARDS = 128
#: New DiaObjects per per-CCD index item (32 B each: 320 KB, under the 400 KB item limit).
NEW_OBJECTS_PER_ITEM = 10_000
#: HEALPix order of the image-cache index pixels (≈13.7′).
INDEX_ORDER = 8
#: Bytes of compressed orbit catalog per item (below the 400 KB item limit).
ORBIT_CHUNK_BYTES = 350_000
#: DynamoDB's item size limit (bytes): names and values of all attributes, keys included.
MAX_ITEM_BYTES = 400 * 1024
#: Entry bytes an index item (image cache, archive, SSObject observations) takes before it
#: spills to continuation parts, and entry bytes per part (docs/apdb.md "Item sizes").
SPILL_HEAD_BYTES = 300_000
SPILL_PART_BYTES = 300_000
#: Largest entry such an item takes (a head or part then stays below 400 KB).
MAX_SPILL_ENTRY_BYTES = 64 * 1024
#: Row bytes (attribute names and packed rows) a history item ``T#<bucket>`` takes; once
#: full, its later rows go to hour parts (at most 120 visits an hour: < 100 KB each).
HISTORY_HEAD_BYTES = 300_000
#: Hour parts of a 30-day history bucket.
HISTORY_PARTS = 720
#: Rows one history-only group writes to one item: its ``SET`` expression stays far within
#: DynamoDB's 4 KB expression limit (moto's parser fails at ~200 clauses).
HISTORY_ROWS_PER_WRITE = 100
#: Longest precovery unit key (UTF-8 bytes): its marker's sort key ``U#<key>`` must stay
#: within DynamoDB's 1,024-byte sort-key limit.
MAX_UNIT_KEY_BYTES = 1000
#: diaObjectIds per object-id chunk of a precovery run (8 B each: 320 KB per item).
RUN_IDS_PER_CHUNK = 40_000


def item_size_bytes(pk: str, sk: str, attributes: Mapping[str, bytes | str]) -> int:
    """DynamoDB's size of an item: UTF-8 lengths of names and string values, binary lengths."""
    size = len("pk") + len(pk.encode()) + len("sk") + len(sk.encode())
    for name, value in attributes.items():
        size += len(name.encode()) + (len(value) if isinstance(value, bytes) else len(value.encode()))
    return size


def spill_parts(spilled_bytes: int) -> range:
    """Continuation parts (1, 2, ...) of an item that spilled ``spilled_bytes`` of entries."""
    return range(1, 1 + -(-int(spilled_bytes) // SPILL_PART_BYTES))


def check_unit_key(unit_key: object) -> str:
    """A precovery unit key as stored (non-empty text of at most MAX_UNIT_KEY_BYTES)."""
    if not isinstance(unit_key, str) or not unit_key:
        raise ValueError(f"unit_key: expected a non-empty string, got {unit_key!r}")
    if len(unit_key.encode()) > MAX_UNIT_KEY_BYTES:
        raise ValueError(f"unit_key: {len(unit_key.encode())} bytes exceed the limit of "
                         f"{MAX_UNIT_KEY_BYTES}")
    return unit_key


def run_id_chunks(object_ids: Any) -> tuple[str, list[bytes]]:
    """``(digest, chunks)`` of a run's sorted unique diaObjectIds: int64 bytes, at most
    :data:`RUN_IDS_PER_CHUNK` ids per chunk, named by the digest of the whole array."""
    import hashlib

    ids = np.unique(np.asarray(object_ids, np.int64))
    raw = ids.tobytes()
    step = RUN_IDS_PER_CHUNK * 8
    return hashlib.sha256(raw).hexdigest()[:16], [raw[i:i + step] for i in range(0, len(raw), step)]


class _Group(Protocol):
    oid: int | None

    def item_keys(self) -> set[Any]: ...


def pack_groups(groups: Sequence[_Group], budget: int) -> list[list[_Group]]:
    """Pack item groups greedily into transactions of at most ``budget`` distinct items.

    A group (one object's version, Last record, history and index items) never straddles two
    transactions; a group that alone exceeds the budget is refused.
    """
    batches: list[list[_Group]] = []
    current: list[_Group] = []
    used: set[Any] = set()
    for g in groups:
        gk = g.item_keys()
        if len(gk) > budget:
            raise CatalogError(f"writes: object {g.oid} alone needs {len(gk)} items (> {budget})")
        if current and len(used | gk) > budget:
            batches.append(current)
            current, used = [], set()
        current.append(g)
        used |= gk
    if current:
        batches.append(current)
    return batches


def cap_rows_per_item(batches: list[list[_Group]],
                      rows_per_item: Callable[[_Group], dict[Any, int]]) -> list[list[_Group]]:
    """Split transactions so that none writes more than HISTORY_ROWS_PER_WRITE rows to one
    history item (groups of one item are merged into one ``SET`` per transaction)."""
    out: list[list[_Group]] = []
    for batch in batches:
        current: list[_Group] = []
        counts: dict[Any, int] = {}
        for g in batch:
            rows = rows_per_item(g)
            if current and any(counts.get(k, 0) + n > HISTORY_ROWS_PER_WRITE
                               for k, n in rows.items()):
                out.append(current)
                current, counts = [], {}
            current.append(g)
            for k, n in rows.items():
                counts[k] = counts.get(k, 0) + n
        if current:
            out.append(current)
    return out


def as_ids(values: Any, name: str) -> list[int]:
    """Sorted unique integer ids of an argument (TypeError naming it for non-integers)."""
    arr = np.atleast_1d(np.asarray(values))
    if arr.size and arr.dtype.kind not in "iu":
        raise TypeError(f"{name}: expected integer ids, got dtype {arr.dtype}")
    return sorted({int(i) for i in arr.tolist()})


def history_span(visit_time_mjd_tai: float, months: int) -> tuple[float, float, range]:
    """``(start, t, buckets)`` of a history read: [t − 30·months d, t) and its 30-day buckets."""
    from alertprod.ids import TIME_BUCKET_DAYS, time_bucket

    t = float(visit_time_mjd_tai)
    if not np.isfinite(t):
        raise ValueError(f"visit_time_mjd_tai: must be finite, got {t}")
    if months < 0:
        raise ValueError(f"months: must be >= 0, got {months}")
    start = t - TIME_BUCKET_DAYS * months
    return start, t, range(time_bucket(start), time_bucket(t) + 1)


def history_window(rows: Table, start: float, t: float, id_column: str) -> Table:
    """History rows with ``midpointMjdTai`` in [start, t), sorted by object then time."""
    mid = np.asarray(rows["midpointMjdTai"], float)
    rows = rows[(mid >= start) & (mid < t)]
    rows.sort([id_column, "midpointMjdTai"])
    return rows


def ids_or_zero(column: Any) -> np.ndarray:
    """int64 ids of a column, nulls (masked) as 0 (0 means "none" in the database)."""
    return np.asarray(np.ma.filled(np.ma.asarray(column), 0), dtype=np.int64)


def history_part(mjd_tai: float | np.ndarray) -> int | np.ndarray:
    """Hour part (1 to :data:`HISTORY_PARTS`) of its 30-day bucket that a row's midpoint
    falls in: where the row goes once the bucket's item is full."""
    from alertprod.ids import TIME_BUCKET_DAYS

    t = np.asarray(mjd_tai, dtype=float)
    hours = np.floor((t - np.floor(t / TIME_BUCKET_DAYS) * TIME_BUCKET_DAYS) * 24).astype(np.int64)
    part = np.clip(hours, 0, HISTORY_PARTS - 1) + 1
    return int(part) if part.ndim == 0 else part


def history_entries(table: Table, name: str) -> list[tuple[str, int, int, int, bytes, int]]:
    """Where each DiaSource / DiaForcedSource row of a CCD's writes is filed.

    Returns ``(owner kind, owner id, 30-day bucket, row id, packed row, hour part)`` per row:
    owner kind ``"obj"`` (its DiaObject) or ``"ss"`` (its SSObject, for solar-system
    DiaSources); the hour part (:func:`history_part`) is used once the bucket's item is full.

    Raises
    ------
    CatalogError
        When the id column is missing or a row has neither ``diaObjectId`` nor ``ssObjectId``.
    """
    from alertprod.apdb._codec import pack_rows
    from alertprod.ids import time_bucket

    if len(table) == 0:
        return []
    id_col = "diaSourceId" if name == "DiaSource" else "diaForcedSourceId"
    if id_col not in table.colnames:
        raise CatalogError(f"writes: {name} column {id_col!r} is required")
    rows = pack_rows(table, name)
    n = len(table)
    obj = ids_or_zero(table["diaObjectId"]) if "diaObjectId" in table.colnames else np.zeros(n, np.int64)
    ss = ids_or_zero(table["ssObjectId"]) if "ssObjectId" in table.colnames else np.zeros(n, np.int64)
    mid = np.asarray(table["midpointMjdTai"], float)
    buckets = np.atleast_1d(time_bucket(mid)).tolist()
    parts = np.atleast_1d(history_part(mid)).tolist()
    out = []
    for rid, o, s, b, row, part in zip(ids_or_zero(table[id_col]).tolist(), obj.tolist(),
                                       ss.tolist(), buckets, rows, parts, strict=True):
        if not o and not s:
            raise CatalogError(f"writes: {name} row {rid} has neither diaObjectId nor ssObjectId")
        out.append(("obj", o, b, rid, row, part) if o else ("ss", s, b, rid, row, part))
    return out


_NEW_OBJECT_DTYPE = np.dtype([("id", "<i8"), ("ra", "<f8"), ("dec", "<f8"), ("t", "<f8")])


def new_object_chunks(rows: Sequence[tuple[int, float, float, float]]) -> dict[int, list[bytes]]:
    """A CCD's new DiaObjects ``(id, ra, dec, validityStart)`` as its index items' payloads.

    By MJD day (floor of ``validityStartMjdTai``), sorted by id, at most
    :data:`NEW_OBJECTS_PER_ITEM` entries of 32 bytes (little-endian int64, then float64 ra,
    dec in deg and the TAI MJD) per item. The same rows give the same bytes, so rewriting the
    items after a retry changes nothing.
    """
    by_day: dict[int, list[tuple[int, float, float, float]]] = {}
    for oid, ra, dec, t in sorted((int(o), float(r), float(d), float(t)) for o, r, d, t in rows):
        by_day.setdefault(int(np.floor(t)), []).append((oid, ra, dec, t))
    out: dict[int, list[bytes]] = {}
    for day, entries in by_day.items():
        packed = np.array(entries, dtype=_NEW_OBJECT_DTYPE)
        out[day] = [packed[i:i + NEW_OBJECTS_PER_ITEM].tobytes()
                    for i in range(0, len(packed), NEW_OBJECTS_PER_ITEM)]
    return out


def unpack_new_objects(blob: bytes) -> list[tuple[int, float, float, float]]:
    """Inverse of one payload of :func:`new_object_chunks`."""
    if len(blob) % _NEW_OBJECT_DTYPE.itemsize:
        raise CatalogError(f"new-object index item: {len(blob)} bytes is not a whole number of "
                           f"{_NEW_OBJECT_DTYPE.itemsize}-byte entries")
    packed = np.frombuffer(bytes(blob), dtype=_NEW_OBJECT_DTYPE)
    return list(zip(packed["id"].tolist(), packed["ra"].tolist(), packed["dec"].tolist(),
                    packed["t"].tolist(), strict=True))


def new_objects_table(rows: list[tuple[int, float, float, float]]) -> Table:
    """The table of :meth:`Apdb.new_dia_objects` from ``(id, ra, dec, validityStart)`` rows."""
    out = Table(rows=sorted(rows) or None, names=["diaObjectId", "ra", "dec", "validityStartMjdTai"],
                dtype=["i8", "f8", "f8", "f8"])
    out["ra"].unit = out["dec"].unit = "deg"
    return out


def exposure_entry(visit: int, detector: int, band: str, mjd_tai: float,
                   corners_radec: np.ndarray, kinds: Sequence[str]) -> str:
    """The image-index entry of one exposure (JSON), checked on entry."""
    import json

    corners = np.asarray(corners_radec, dtype=float)
    if corners.ndim != 2 or corners.shape[1] != 2 or len(corners) < 3:
        raise ValueError(f"corners_radec: expected shape (n >= 3, 2), got {corners.shape}")
    return json.dumps({"visit": int(visit), "detector": int(detector), "band": str(band),
                       "mjd": float(mjd_tai), "corners": corners.tolist(),
                       "kinds": [str(k) for k in kinds]})


def matching_exposures(entries: Sequence[str], ra_deg: float, dec_deg: float, mjd_start: float,
                       mjd_end: float) -> Table:
    """The table of :meth:`Apdb.find_exposures` from the index entries of one pixel.

    Keeps the entries whose footprint contains the position and whose midpoint is in
    [start, end), sorted by time.
    """
    import json

    from alertprod.pixelization import polygon_contains

    found = [e for e in map(json.loads, entries) if mjd_start <= e["mjd"] < mjd_end
             and polygon_contains(np.array(e["corners"]), ra_deg, dec_deg)]
    found.sort(key=lambda e: (e["mjd"], e["visit"], e["detector"]))
    out = Table()
    out["visit"] = np.array([e["visit"] for e in found], dtype=np.int64)
    out["detector"] = np.array([e["detector"] for e in found], dtype=np.int16)
    out["band"] = np.array([e["band"] for e in found], dtype="U1")
    out["midpointMjdTai"] = np.array([e["mjd"] for e in found], dtype=float)
    shapes = {len(e["corners"]) for e in found}
    if len(shapes) <= 1:
        n = shapes.pop() if shapes else 4
        out["corners"] = np.array([e["corners"] for e in found], dtype=float).reshape(-1, n, 2)
        out["corners"].unit = "deg"
    out["kinds"] = np.array([",".join(e["kinds"]) for e in found], dtype=str)
    return out

"""What both APDB backends share of the storage layout: request limits, shards, chunking.

The DynamoDB backend lays its items out with these numbers; the in-memory backend models the
same requests with them, so that its request counts and its item limits are DynamoDB's (the
contract suite checks both). Private to :mod:`alertprod.apdb`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

import numpy as np
from astropy.table import Table

from alertprod.errors import CatalogError

__all__ = ["MAX_BATCH_GET", "MAX_BATCH_WRITE", "MAX_TRANSACT_ITEMS", "NEW_OBJECT_SHARDS",
           "INDEX_ORDER", "ORBIT_CHUNK_BYTES", "as_ids", "history_span", "history_window",
           "pack_groups"]

#: AWS limits: keys per BatchGetItem, requests per BatchWriteItem, items per TransactWriteItems.
MAX_BATCH_GET = 100
MAX_BATCH_WRITE = 25
MAX_TRANSACT_ITEMS = 100
#: Number of shards of the per-night "new DiaObjects" items (keeps each well below 400 KB).
NEW_OBJECT_SHARDS = 128
#: HEALPix order of the image-cache index pixels (≈13.7′).
INDEX_ORDER = 8
#: Bytes of compressed orbit catalog per item (below the 400 KB item limit).
ORBIT_CHUNK_BYTES = 350_000


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


def history_entries(table: Table, name: str) -> list[tuple[str, int, int, int, bytes]]:
    """Where each DiaSource / DiaForcedSource row of a CCD's writes is filed.

    Returns ``(owner kind, owner id, 30-day bucket, row id, packed row)`` per row: owner kind
    ``"obj"`` (its DiaObject) or ``"ss"`` (its SSObject, for solar-system DiaSources).

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
    buckets = np.atleast_1d(time_bucket(np.asarray(table["midpointMjdTai"], float))).tolist()
    out = []
    for rid, o, s, b, row in zip(ids_or_zero(table[id_col]).tolist(), obj.tolist(), ss.tolist(),
                                 buckets, rows, strict=True):
        if not o and not s:
            raise CatalogError(f"writes: {name} row {rid} has neither diaObjectId nor ssObjectId")
        out.append(("obj", o, b, rid, row) if o else ("ss", s, b, rid, row))
    return out


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

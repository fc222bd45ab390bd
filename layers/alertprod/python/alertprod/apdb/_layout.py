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
           "INDEX_ORDER", "ORBIT_CHUNK_BYTES", "as_ids", "history_window", "pack_groups"]

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


def history_window(rows: Table, start: float, t: float, id_column: str) -> Table:
    """History rows with ``midpointMjdTai`` in [start, t), sorted by object then time."""
    mid = np.asarray(rows["midpointMjdTai"], float)
    rows = rows[(mid >= start) & (mid < t)]
    rows.sort([id_column, "midpointMjdTai"])
    return rows

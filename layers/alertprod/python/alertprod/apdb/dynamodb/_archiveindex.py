"""The long-term archive index on DynamoDB: archived images by (order-9 cell, MJD day).

Writes are one UpdateItem per cell of the footprint (``SET`` of the image's own attribute, so
a redelivery replaces its entry); reads are one Query per cell over its day range (a cell is
one partition, days its sort keys: a ten-year request reads the days that hold images, not
3,650 keys, most of them absent), heads and their parts in key order. Layout and
sizing: :mod:`alertprod.apdb._archiveindex`, docs/archive.md. An item of a field observed all
night (beyond 3,400 images of a cell in a day) spills to continuation parts (``_spill``).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
from astropy.table import Table

from alertprod.apdb._archiveindex import (
    ARCHIVE_INDEX_ORDER,
    archive_attribute,
    archive_days,
    archive_entry,
    archive_table,
    check_pixels,
)
from alertprod.apdb.dynamodb import _keys as keys
from alertprod.apdb.dynamodb._calls import query_pages
from alertprod.apdb.dynamodb._spill import write_entry
from alertprod.pixelization import pixels_covering

__all__ = ["index_archived_exposure", "find_archived_exposures"]


def index_archived_exposure(client: Any, table: str, visit: int, detector: int, kind: str,
                            band: str, mjd_tai: float, corners_radec: np.ndarray) -> None:
    """Add one archived image to the index (idempotent: re-indexing replaces its own entry)."""
    name = archive_attribute(visit, detector, kind)
    entry = archive_entry(band, mjd_tai, corners_radec)
    day = int(np.floor(float(mjd_tai)))
    for pixel in pixels_covering(np.asarray(corners_radec, float), order=ARCHIVE_INDEX_ORDER):
        write_entry(client, table, keys.archive_index(int(pixel), day), name, {"B": entry},
                    len(name) + len(entry))


def find_archived_exposures(client: Any, table: str, pixels: Sequence[int] | np.ndarray,
                            mjd_start: float, mjd_end: float) -> Table:
    """Archived images indexed in ``pixels`` with midpoint in [start, end) (see ``Apdb``)."""
    cells = check_pixels(pixels)
    days = archive_days(mjd_start, mjd_end)
    attrs = []
    for pixel in cells:
        first = keys.archive_index(int(pixel), days.start)
        last = keys.archive_index(int(pixel), days.stop - 1)
        pk, lo = keys.split_key(first)
        hi = keys.split_key(last)[1] + "#~"  # after the last day's parts (``#P0001``...)
        for item in _query_between(client, table, pk, lo, hi):
            # items come in key order: a day's head, then its parts; later copies last
            attrs.append({k: bytes(v["B"]) for k, v in item.items() if "B" in v})
    return archive_table(attrs, float(mjd_start), float(mjd_end))


def _query_between(client: Any, table: str, pk: str, lo: str, hi: str) -> Iterable[dict[str, Any]]:
    return query_pages(client, {
        "TableName": table, "ConsistentRead": True,
        "KeyConditionExpression": "pk = :pk AND sk BETWEEN :lo AND :hi",
        "ExpressionAttributeValues": {":pk": {"S": pk}, ":lo": {"S": lo}, ":hi": {"S": hi}}})

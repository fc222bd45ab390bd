"""The image-cache index: which cached exposures cover a sky position, for daytime precovery.

One item per (HEALPix order-8 pixel, 30-day bucket) holds one attribute per exposure whose
footprint touches the pixel: visit, detector, band, midpoint and corners (~0.2 KB). A
deep-drilling field fills one in about 50 visits a night, so it spills to continuation parts
(``_spill``). A lookup is one BatchGetItem over the buckets of the time range (and one more
for the parts of full ones), followed by an exact footprint test.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from astropy.table import Table

from alertprod.apdb._layout import INDEX_ORDER, exposure_entry, matching_exposures
from alertprod.apdb.dynamodb import _keys as keys
from alertprod.apdb.dynamodb._spill import read_items, write_entry
from alertprod.ids import time_bucket
from alertprod.pixelization import pixel_of, pixels_covering

__all__ = ["INDEX_ORDER", "index_exposure", "find_exposures"]



def index_exposure(client: Any, table: str, visit: int, detector: int, band: str,
                   mjd_tai: float, corners_radec: np.ndarray, kinds: Sequence[str]) -> None:
    """Add one exposure to the index (idempotent: re-indexing overwrites its own entry)."""
    entry = exposure_entry(visit, detector, band, mjd_tai, corners_radec, kinds)
    name = f"e{int(visit)}_{int(detector)}"
    bucket = time_bucket(float(mjd_tai))
    for pixel in pixels_covering(np.asarray(corners_radec, float), order=INDEX_ORDER):
        write_entry(client, table, keys.image_index(int(pixel), bucket), name, {"S": entry},
                    len(name) + len(entry.encode()))


def find_exposures(client: Any, table: str, ra_deg: float, dec_deg: float, mjd_start: float,
                   mjd_end: float) -> Table:
    """Exposures whose footprint contains the position and whose midpoint is in [start, end).

    Returns
    -------
    astropy.table.Table
        Columns ``visit``, ``detector``, ``band``, ``midpointMjdTai``, ``corners``
        (shape (n, 4, 2) when all footprints are quadrilaterals), ``kinds`` (comma-separated),
        sorted by time.
    """
    if not mjd_end >= mjd_start:
        raise ValueError(f"mjd_end: must be >= mjd_start ({mjd_start}), got {mjd_end}")
    pixel = int(pixel_of(ra_deg, dec_deg, order=INDEX_ORDER))
    buckets = range(time_bucket(float(mjd_start)), time_bucket(float(mjd_end)) + 1)
    found = read_items(client, table, [keys.image_index(pixel, b) for b in buckets])
    entries: dict[tuple[str, str], str] = {}  # per bucket, the latest copy of each entry
    for head, items in found.items():
        for item in items:
            entries.update({(head[1], attr): value["S"] for attr, value in item.items()
                            if attr[0] == "e" and "_" in attr})
    return matching_exposures(list(entries.values()), ra_deg, dec_deg, mjd_start, mjd_end)

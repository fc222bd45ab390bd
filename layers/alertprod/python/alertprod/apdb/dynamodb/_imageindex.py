"""The image-cache index: which cached exposures cover a sky position, for daytime precovery.

One item per (HEALPix order-8 pixel, 30-day bucket) holds one attribute per exposure whose
footprint touches the pixel: visit, detector, band, midpoint and corners. A lookup is one
BatchGetItem over the buckets of the time range, followed by an exact footprint test.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from astropy.table import Table

from alertprod.apdb._layout import INDEX_ORDER, exposure_entry, matching_exposures
from alertprod.apdb.dynamodb import _keys as keys
from alertprod.apdb.dynamodb._calls import batch_get
from alertprod.ids import time_bucket
from alertprod.pixelization import pixel_of, pixels_covering

__all__ = ["INDEX_ORDER", "index_exposure", "find_exposures"]



def index_exposure(client: Any, table: str, visit: int, detector: int, band: str,
                   mjd_tai: float, corners_radec: np.ndarray, kinds: Sequence[str]) -> None:
    """Add one exposure to the index (idempotent: re-indexing overwrites its own entry)."""
    entry = exposure_entry(visit, detector, band, mjd_tai, corners_radec, kinds)
    bucket = time_bucket(float(mjd_tai))
    for pixel in pixels_covering(np.asarray(corners_radec, float), order=INDEX_ORDER):
        client.update_item(TableName=table, Key=keys.image_index(int(pixel), bucket),
                           UpdateExpression="SET #e = :e",
                           ExpressionAttributeNames={"#e": f"e{int(visit)}_{int(detector)}"},
                           ExpressionAttributeValues={":e": {"S": entry}})


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
    items = batch_get(client, table, [keys.image_index(pixel, b) for b in buckets])
    entries = [value["S"] for item in items for attr, value in item.items()
               if attr[0] == "e" and "_" in attr]
    return matching_exposures(entries, ra_deg, dec_deg, mjd_start, mjd_end)

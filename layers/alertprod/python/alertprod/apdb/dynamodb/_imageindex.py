"""The image-cache index: which cached exposures cover a sky position, for daytime precovery.

One item per (HEALPix order-8 pixel, 30-day bucket) holds one attribute per exposure whose
footprint touches the pixel: visit, detector, band, midpoint and corners. A lookup is one
BatchGetItem over the buckets of the time range, followed by an exact footprint test.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import numpy as np
from astropy.table import Table

from alertprod.apdb._layout import INDEX_ORDER
from alertprod.apdb.dynamodb import _keys as keys
from alertprod.apdb.dynamodb._calls import batch_get
from alertprod.ids import time_bucket
from alertprod.pixelization import pixel_of, pixels_covering, polygon_contains

__all__ = ["INDEX_ORDER", "index_exposure", "find_exposures"]



def index_exposure(client: Any, table: str, visit: int, detector: int, band: str,
                   mjd_tai: float, corners_radec: np.ndarray, kinds: Sequence[str]) -> None:
    """Add one exposure to the index (idempotent: re-indexing overwrites its own entry)."""
    corners = np.asarray(corners_radec, dtype=float)
    if corners.ndim != 2 or corners.shape[1] != 2 or len(corners) < 3:
        raise ValueError(f"corners_radec: expected shape (n >= 3, 2), got {corners.shape}")
    entry = json.dumps({"visit": int(visit), "detector": int(detector), "band": str(band),
                        "mjd": float(mjd_tai), "corners": corners.tolist(),
                        "kinds": [str(k) for k in kinds]})
    bucket = time_bucket(float(mjd_tai))
    for pixel in pixels_covering(corners, order=INDEX_ORDER):
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
    found = []
    for item in items:
        for attr, value in item.items():
            if attr[0] != "e" or "_" not in attr:
                continue
            e = json.loads(value["S"])
            if mjd_start <= e["mjd"] < mjd_end and polygon_contains(np.array(e["corners"]), ra_deg, dec_deg):
                found.append(e)
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

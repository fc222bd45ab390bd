"""The archive index's layout, shared by both backends: cells, day buckets, packed entries.

One item per (HEALPix order-9 cell, MJD day) holds one attribute per archived image whose
footprint touches the cell, named ``<kind letter><visit>_<detector>`` and holding a packed
binary entry (midpoint, band, corners): 86 bytes at most. Unlike the 30-day image-cache index,
items are per day, so no item grows with the survey: the worst case is one night of a
deep-drilling field (docs/archive.md "Index sizing"). Private to :mod:`alertprod.apdb`.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Mapping, Sequence

import numpy as np
from astropy.table import Table

from alertprod.apdb._layout import MAX_ITEM_BYTES, item_size_bytes

__all__ = ["ARCHIVE_INDEX_ORDER", "ARCHIVE_KINDS", "MAX_ITEM_BYTES", "archive_attribute",
           "archive_days", "archive_entry", "archive_table", "check_pixels", "item_size_bytes"]

#: HEALPix order of the archive index cells (≈6.9′, half a CCD's side).
ARCHIVE_INDEX_ORDER = 9
#: Image kinds the archive keeps, with the letter that starts their index attribute.
ARCHIVE_KINDS: dict[str, str] = {"science": "s", "template": "t"}

_BANDS = "ugrizy"
_HEAD = struct.Struct("<dBB")  # midpoint (TAI MJD), band index, number of corners


def archive_attribute(visit: int, detector: int, kind: str) -> str:
    """Attribute name of one archived image in its index items (``s12345678_042`` → ``s12345678_42``)."""
    if kind not in ARCHIVE_KINDS:
        raise ValueError(f"kind: expected one of {sorted(ARCHIVE_KINDS)}, got {kind!r}")
    return f"{ARCHIVE_KINDS[kind]}{int(visit)}_{int(detector)}"


def archive_entry(band: str, mjd_tai: float, corners_radec: np.ndarray) -> bytes:
    """The packed entry: midpoint (float64), band, corner count, corners (float64 deg pairs)."""
    corners = np.asarray(corners_radec, dtype="<f8")
    if corners.ndim != 2 or corners.shape[1] != 2 or not 3 <= len(corners) <= 8:
        raise ValueError(f"corners_radec: expected shape (3..8, 2), got {corners.shape}")
    if not np.all(np.isfinite(corners)):
        raise ValueError("corners_radec: must be finite")
    if band not in _BANDS or len(band) != 1:
        raise ValueError(f"band: expected one of {list(_BANDS)}, got {band!r}")
    mjd = float(mjd_tai)
    if not np.isfinite(mjd):
        raise ValueError(f"mjd_tai: must be finite, got {mjd_tai!r}")
    return _HEAD.pack(mjd, _BANDS.index(band), len(corners)) + corners.tobytes()


def archive_days(mjd_start: float, mjd_end: float) -> range:
    """Day buckets (``floor(MJD)``) of ``[mjd_start, mjd_end)``."""
    start, end = float(mjd_start), float(mjd_end)
    if not (np.isfinite(start) and np.isfinite(end)):
        raise ValueError(f"mjd_start, mjd_end: must be finite, got {mjd_start!r}, {mjd_end!r}")
    if not end >= start:
        raise ValueError(f"mjd_end: must be >= mjd_start ({start}), got {end}")
    return range(int(np.floor(start)), int(np.floor(end)) + 1)


def archive_table(attributes: Iterable[Mapping[str, bytes]], mjd_start: float,
                  mjd_end: float) -> Table:
    """The table of :meth:`Apdb.find_archived_exposures` from the attributes of index items.

    Keeps entries with midpoint in [start, end), one row per (visit, detector, kind) however
    many cells list it, sorted by time, visit, detector, kind.
    """
    letters = {v: k for k, v in ARCHIVE_KINDS.items()}
    rows: dict[tuple[int, int, str], tuple[float, str, list]] = {}
    for attrs in attributes:
        for name, value in attrs.items():
            kind = letters.get(name[:1])
            if kind is None or "_" not in name:
                continue
            mjd, band, n = _HEAD.unpack_from(value)
            if not mjd_start <= mjd < mjd_end:
                continue
            visit, detector = (int(x) for x in name[1:].split("_"))
            corners = np.frombuffer(value, "<f8", count=2 * n, offset=_HEAD.size).reshape(n, 2)
            rows[(visit, detector, kind)] = (mjd, _BANDS[band], corners.tolist())
    order = sorted(rows, key=lambda k: (rows[k][0], *k))
    out = Table()
    out["visit"] = np.array([k[0] for k in order], dtype=np.int64)
    out["detector"] = np.array([k[1] for k in order], dtype=np.int16)
    out["kind"] = np.array([k[2] for k in order], dtype="U8")
    out["band"] = np.array([rows[k][1] for k in order], dtype="U1")
    out["midpointMjdTai"] = np.array([rows[k][0] for k in order], dtype=float)
    shapes = {len(rows[k][2]) for k in order}
    if len(shapes) <= 1:  # one corner count (or none): a regular (rows, n, 2) column
        n = shapes.pop() if shapes else 4
        out["corners"] = np.array([rows[k][2] for k in order], dtype=float).reshape(-1, n, 2)
        out["corners"].unit = "deg"
    return out


def check_pixels(pixels: Sequence[int] | np.ndarray) -> list[int]:
    """Sorted unique order-9 cells of an argument (ValueError naming it otherwise)."""
    arr = np.atleast_1d(np.asarray(pixels))
    if arr.size and arr.dtype.kind not in "iu":
        raise ValueError(f"pixels: expected integer HEALPix order-{ARCHIVE_INDEX_ORDER} cells, "
                         f"got dtype {arr.dtype}")
    npix = 12 * 4 ** ARCHIVE_INDEX_ORDER
    if arr.size and (arr.min() < 0 or arr.max() >= npix):
        raise ValueError(f"pixels: order-{ARCHIVE_INDEX_ORDER} cells lie in [0, {npix})")
    return sorted({int(p) for p in arr.tolist()})

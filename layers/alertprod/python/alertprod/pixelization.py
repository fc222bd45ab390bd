"""Spatial pixelisation shared by the Level 1 database and the image-cache index.

HEALPix (nested ordering) through astropy-healpix. Order 10 (nside 1024, pixels of ~3.4′) is
the partition level of the Level 1 database, close to the level Rubin's APDB uses.
"""

from __future__ import annotations

import astropy.units as u
import numpy as np
from astropy_healpix import HEALPix

__all__ = ["PIXEL_ORDER", "pixel_of", "pixels_in_cone", "pixels_covering"]

#: HEALPix order of the spatial partitions (nside = 2**order).
PIXEL_ORDER = 10

_HP: dict[int, HEALPix] = {}


def _hp(order: int) -> HEALPix:
    if order not in _HP:
        _HP[order] = HEALPix(nside=2**order, order="nested")
    return _HP[order]


def pixel_of(ra_deg, dec_deg, *, order: int = PIXEL_ORDER) -> np.ndarray:
    """Nested HEALPix index of each position; ``ra_deg``, ``dec_deg`` broadcastable, degrees."""
    return _hp(order).lonlat_to_healpix(np.asarray(ra_deg) * u.deg, np.asarray(dec_deg) * u.deg)


def pixels_in_cone(ra_deg: float, dec_deg: float, radius_deg: float, *,
                   order: int = PIXEL_ORDER) -> np.ndarray:
    """Sorted pixels overlapping a cone (inclusive: every pixel touching it)."""
    hp = _hp(order)
    # cone_search returns pixels whose centres fall inside; widen by one pixel's radius so
    # that every pixel touching the cone is included.
    pad = hp.pixel_resolution.to_value(u.deg)
    pix = hp.cone_search_lonlat(ra_deg * u.deg, dec_deg * u.deg, (radius_deg + pad) * u.deg)
    return np.unique(np.asarray(pix, dtype=np.int64))


def pixels_covering(corners_radec: np.ndarray, *, margin_arcsec: float = 0.0,
                    order: int = PIXEL_ORDER) -> np.ndarray:
    """Sorted pixels covering a small convex sky polygon padded by a margin.

    Parameters
    ----------
    corners_radec : ndarray, shape (n, 2)
        Polygon corners in degrees.
    margin_arcsec : float
        Padding in arcseconds.

    Notes
    -----
    Uses the polygon's bounding cone: a superset of the exact cover (at most ~π/2 times the
    area for a square), which is what a database lookup needs — no pixel is ever missed.
    """
    corners = np.asarray(corners_radec, dtype=float)
    ra, dec = np.deg2rad(corners[:, 0]), np.deg2rad(corners[:, 1])
    vec = np.column_stack([np.cos(dec) * np.cos(ra), np.cos(dec) * np.sin(ra), np.sin(dec)])
    centre = vec.mean(axis=0)
    centre /= np.linalg.norm(centre)
    radius = np.rad2deg(np.max(np.arccos(np.clip(vec @ centre, -1, 1))))
    cra = np.rad2deg(np.arctan2(centre[1], centre[0])) % 360.0
    cdec = np.rad2deg(np.arcsin(centre[2]))
    return pixels_in_cone(cra, cdec, radius + margin_arcsec / 3600.0, order=order)

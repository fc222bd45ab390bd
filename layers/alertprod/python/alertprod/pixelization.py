"""Spatial pixelisation shared by the Level 1 database, the leases and the image-cache index.

HEALPix (nested ordering) through astropy-healpix. Order 10 (nside 1024, pixels of ~3.4′) is
the partition level of the Level 1 database, close to the level Rubin's APDB uses; order 8
(~13.7′) is the level of the sky-cell leases.

The covers are exact up to a small, bounded tolerance and never miss a pixel: a pixel is kept
when some point of it lies within the margin of the region (a cone's centre, or a convex sky
polygon). Candidates come from a cone search padded by two pixel sizes; each candidate's
boundary, sampled by astropy-healpix, is then measured against the region on the sphere.
"""

from __future__ import annotations

import astropy.units as u
import numpy as np
from astropy_healpix import HEALPix
from scipy.spatial import ConvexHull, QhullError

__all__ = ["PIXEL_ORDER", "pixel_of", "pixels_in_cone", "pixels_covering", "polygon_contains"]

#: HEALPix order of the spatial partitions (nside = 2**order).
PIXEL_ORDER = 10

#: Largest region accepted by the covers: every corner within this angle of the centre.
_MAX_REGION_RADIUS_DEG = 45.0
#: Boundary samples per pixel edge: a coarse pass, then a fine pass for undecided pixels.
_COARSE_STEP, _FINE_STEP = 16, 256

_HP: dict[int, HEALPix] = {}


def _hp(order: int) -> HEALPix:
    if isinstance(order, bool) or not isinstance(order, (int, np.integer)) or not 0 <= order <= 29:
        raise ValueError(f"order: expected an integer in [0, 29], got {order!r}")
    order = int(order)
    if order not in _HP:
        _HP[order] = HEALPix(nside=2**order, order="nested")
    return _HP[order]


def pixel_of(ra_deg, dec_deg, *, order: int = PIXEL_ORDER) -> np.ndarray:
    """Nested HEALPix index of each position; ``ra_deg``, ``dec_deg`` broadcastable, degrees."""
    return _hp(order).lonlat_to_healpix(np.asarray(ra_deg) * u.deg, np.asarray(dec_deg) * u.deg)


def pixels_in_cone(ra_deg: float, dec_deg: float, radius_deg: float, *,
                   order: int = PIXEL_ORDER) -> np.ndarray:
    """Sorted pixels overlapping a cone: every pixel with a point within ``radius_deg``.

    Parameters
    ----------
    ra_deg, dec_deg : float
        Cone centre, degrees.
    radius_deg : float
        Cone radius, degrees (≥ 0, at most 45).
    order : int, keyword-only
        HEALPix order.

    Returns
    -------
    ndarray of int64, shape (n,)
        Sorted nested pixel indices.
    """
    if not np.isfinite(radius_deg) or radius_deg < 0:
        raise ValueError(f"radius_deg: expected a finite value >= 0, got {radius_deg}")
    centre = _checked_corners(np.array([[ra_deg, dec_deg]], dtype=float), "ra_deg, dec_deg")
    return _cover(centre, np.deg2rad(radius_deg), order)


def pixels_covering(corners_radec: np.ndarray, *, margin_arcsec: float = 0.0,
                    order: int = PIXEL_ORDER) -> np.ndarray:
    """Sorted pixels covering a small convex sky polygon padded by a margin.

    Parameters
    ----------
    corners_radec : ndarray, shape (n, 2)
        Polygon corners (ra, dec) in degrees, in any order (their convex hull is used, so
        repeated or collinear corners are fine: one point gives a cone, two an arc).
    margin_arcsec : float, keyword-only
        Padding in arcseconds (≥ 0).
    order : int, keyword-only
        HEALPix order.

    Returns
    -------
    ndarray of int64, shape (n,)
        Sorted nested pixel indices.

    Notes
    -----
    Every pixel containing a point within ``margin_arcsec`` of the polygon is returned; a pixel
    farther than that by more than ~1/256 of a pixel side is not (the boundary sampling
    tolerance). A 51″ CCD padded by 20″ gets 1–4 order-8 cells instead of the 16 of a
    bounding-cone cover.
    """
    if not np.isfinite(margin_arcsec) or margin_arcsec < 0:
        raise ValueError(f"margin_arcsec: expected a finite value >= 0, got {margin_arcsec}")
    corners = _checked_corners(np.asarray(corners_radec, dtype=float), "corners_radec")
    return _cover(corners, np.deg2rad(margin_arcsec / 3600.0), order)


def _checked_corners(corners: np.ndarray, name: str) -> np.ndarray:
    if corners.ndim != 2 or corners.shape[1] != 2 or len(corners) < 1:
        raise ValueError(f"{name}: expected shape (n >= 1, 2), got {corners.shape}")
    if not np.all(np.isfinite(corners)) or np.any(np.abs(corners[:, 1]) > 90):
        raise ValueError(f"{name}: expected finite positions with |dec| <= 90 deg")
    return corners


def _unit(ra_rad: np.ndarray, dec_rad: np.ndarray) -> np.ndarray:
    cd = np.cos(dec_rad)
    return np.stack([cd * np.cos(ra_rad), cd * np.sin(ra_rad), np.sin(dec_rad)], axis=-1)


def _angle(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Angle between unit vectors (radians); atan2 keeps arcsecond angles precise."""
    return np.arctan2(np.linalg.norm(np.cross(a, b), axis=-1), np.sum(a * b, axis=-1))


def _region(corners_deg: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Unit vector of the centre and the convex hull's vertices (k, 3), counter-clockwise."""
    vec = _unit(np.deg2rad(corners_deg[:, 0]), np.deg2rad(corners_deg[:, 1]))
    centre = vec.mean(axis=0)
    norm = np.linalg.norm(centre)
    if norm < 1e-9 or np.min(vec @ (centre / norm)) < np.cos(np.deg2rad(_MAX_REGION_RADIUS_DEG)):
        raise ValueError(f"corners_radec: region larger than {_MAX_REGION_RADIUS_DEG} deg "
                         "from its centre")
    centre /= norm
    # Gnomonic projection about the centre maps great circles to straight lines, so the
    # planar convex hull (scipy) is the spherical one.
    east = np.cross([0.0, 0.0, 1.0], centre)
    east = east / np.linalg.norm(east) if np.linalg.norm(east) > 1e-12 else np.array([0., 1., 0.])
    north = np.cross(centre, east)
    plane = np.column_stack([vec @ east, vec @ north]) / (vec @ centre)[:, None]
    unique = np.unique(np.round(plane, 15), axis=0)
    if len(unique) == 1:
        return centre, vec[:1]
    try:
        order = ConvexHull(plane).vertices  # counter-clockwise in the plane
    except QhullError:  # collinear corners: the region is the arc between the extremes
        along = plane @ (unique[-1] - unique[0])
        return centre, vec[[np.argmin(along), np.argmax(along)]]
    verts = vec[order]
    if np.dot(np.cross(verts[0], verts[1]), centre) < 0:  # make the interior the left side
        verts = verts[::-1]
    return centre, verts


def _distance(points: np.ndarray, verts: np.ndarray) -> np.ndarray:
    """Angular distance (radians) of unit vectors ``points`` (..., 3) to a convex region.

    The region is the spherical polygon with counter-clockwise vertices ``verts`` (k, 3), an
    arc (k = 2) or a point (k = 1); points inside are at distance 0.
    """
    dist = np.min(_angle(points[..., None, :], verts), axis=-1)
    if len(verts) == 1:
        return dist
    nxt = np.roll(verts, -1, axis=0)
    normal = np.cross(verts, nxt)
    normal /= np.linalg.norm(normal, axis=-1, keepdims=True)
    height = points @ normal.T  # (..., k): signed distance (sine) from each edge's circle
    foot = points[..., None, :] - height[..., None] * normal  # projection on each great circle
    on_arc = (np.sum(np.cross(verts, foot) * normal, axis=-1) >= 0) & \
             (np.sum(np.cross(foot, nxt) * normal, axis=-1) >= 0)
    to_arc = np.arctan2(np.abs(height), np.linalg.norm(foot, axis=-1))
    edges = len(verts) if len(verts) > 2 else 1
    dist = np.minimum(dist, np.min(np.where(on_arc, to_arc, np.inf)[..., :edges], axis=-1))
    if len(verts) > 2:
        dist = np.where(np.all(height >= 0, axis=-1), 0.0, dist)
    return dist


def _boundary_test(hp: HEALPix, pix: np.ndarray, verts: np.ndarray, margin_rad: float,
                   step: int) -> tuple[np.ndarray, np.ndarray]:
    """(surely in, undecided) masks from the pixels' boundaries sampled ``step`` per edge."""
    lon, lat = hp.boundaries_lonlat(pix, step=step)
    pts = _unit(lon.to_value(u.rad), lat.to_value(u.rad))  # (n, 4 step, 3)
    nearest = np.min(_distance(pts, verts), axis=-1)
    # Any boundary point lies within one sample spacing (chord) of a sample; the spacing
    # bounds how much nearer than the nearest sample the true boundary can come.
    spacing = np.max(_angle(pts, np.roll(pts, -1, axis=1)), axis=-1)
    surely = nearest <= margin_rad
    return surely, ~surely & (nearest <= margin_rad + spacing)


def _cover(corners_deg: np.ndarray, margin_rad: float, order: int) -> np.ndarray:
    hp = _hp(order)
    centre, verts = _region(corners_deg)
    # Candidates: every pixel whose centre is within the region's radius + margin + two pixel
    # sizes (the largest centre-to-corner distance of a HEALPix pixel is ~1.05 pixel sizes).
    reach = float(np.max(_angle(verts, centre))) + margin_rad + \
        2 * hp.pixel_resolution.to_value(u.rad)
    cra, cdec = np.arctan2(centre[1], centre[0]), np.arcsin(np.clip(centre[2], -1, 1))
    cand = np.unique(np.asarray(hp.cone_search_lonlat(cra * u.rad, cdec * u.rad, reach * u.rad),
                                dtype=np.int64))
    # Pixels holding a vertex are in; so are pixels whose boundary comes within the margin
    # (this also catches pixels inside the region). Nothing else can meet the padded region:
    # a geodesic from a point of the pixel to the region would cross the pixel's boundary.
    own = np.unique(np.asarray(hp.lonlat_to_healpix(
        np.arctan2(verts[:, 1], verts[:, 0]) * u.rad, np.arcsin(np.clip(verts[:, 2], -1, 1)) * u.rad),
        dtype=np.int64))
    cand = np.setdiff1d(cand, own)
    keep = [own]
    if len(cand):
        surely, undecided = _boundary_test(hp, cand, verts, margin_rad, _COARSE_STEP)
        keep.append(cand[surely])
        if np.any(undecided):
            fine_in, fine_undecided = _boundary_test(hp, cand[undecided], verts, margin_rad,
                                                     _FINE_STEP)
            keep.append(cand[undecided][fine_in | fine_undecided])  # keep when in doubt
    return np.unique(np.concatenate(keep)).astype(np.int64)


def polygon_contains(corners_radec: np.ndarray, ra_deg: float, dec_deg: float) -> bool:
    """Whether a convex spherical polygon (corners in order, deg) contains a position.

    Written by hand: the point lies on the same side of every great-circle edge, i.e. the
    triple products ``(c_i × c_{i+1}) · p`` share one sign. No runtime dependency offers
    spherical polygons (``lsst.sphgeom`` is not in the Lambda layer).
    """
    corners = np.asarray(corners_radec, float)
    c = _unit(np.deg2rad(corners[:, 0]), np.deg2rad(corners[:, 1]))
    p = _unit(np.deg2rad(np.asarray(ra_deg, float)), np.deg2rad(np.asarray(dec_deg, float)))
    side = np.einsum("ij,j->i", np.cross(c, np.roll(c, -1, axis=0)), p)
    return bool(np.all(side >= 0) or np.all(side <= 0))


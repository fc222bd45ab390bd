"""Scores of candidate pairs: Gaussian negative log-likelihood of the offset under both errors.

For a source *s* and an object *o*, the offset **d** of *s* from *o* on the tangent plane at *o*
(arcsec, east = ΔRA·cos Dec, north = ΔDec) is modelled as ``N(0, C)`` with
``C = R C_s Rᵀ + C_o``, where ``C_s`` and ``C_o`` are the two 2×2 position covariances in their
own local frames and ``R`` rotates the source's frame into the object's (the frames differ by a
visible angle only within arcseconds of a pole). The score is

    NLL = ½ dᵀ C⁻¹ d + ½ ln det C + ln 2π        (C in arcsec²).

Position errors that are NaN, ≤ 0 or below ``floor_arcsec`` (default 0.01″) are raised to the
floor, e.g. for a new DiaObject whose errors are not yet known.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from astropy.table import Table

from alertprod.association.geometry import (
    ARCSEC_PER_RAD,
    local_frames,
    tangent_offsets_arcsec,
    unit_vectors,
)
from alertprod.errors import CatalogError

__all__ = ["ERROR_FLOOR_ARCSEC", "Positions", "positions_from_table", "pair_scores"]

#: Smallest position error (1σ, per axis) used in scores, arcsec.
ERROR_FLOOR_ARCSEC = 0.01

#: Largest |correlation| kept from ``ra_dec_Cov``, so that every covariance stays invertible.
_MAX_CORRELATION = 0.999


class Positions(NamedTuple):
    """Positions with their error ellipses, ready for scoring (n rows).

    Attributes
    ----------
    xyz, east, north : ndarray, shape (n, 3)
        Unit vectors and the local east/north frame.
    cov_arcsec2 : ndarray, shape (n, 2, 2)
        Position covariance in the local (east, north) frame, arcsec², floored.
    """

    xyz: np.ndarray
    east: np.ndarray
    north: np.ndarray
    cov_arcsec2: np.ndarray


def _column(table: Table, name: str, what: str, *, required: bool = True) -> np.ndarray | None:
    if name not in table.colnames:
        if required:
            raise CatalogError(f"{what} lacks column {name!r}")
        return None
    col = table[name]
    values = np.ma.filled(col, np.nan) if np.ma.isMaskedArray(col) else np.asarray(col)
    return np.asarray(values, dtype=float)


def positions_from_table(table: Table, *, what: str, ra_col: str = "ra", dec_col: str = "dec",
                         floor_arcsec: float = ERROR_FLOOR_ARCSEC) -> Positions:
    """Build :class:`Positions` from a table with ``ra``, ``dec`` and optional errors (deg).

    ``raErr``/``decErr`` (deg, RA error along the great circle) and ``ra_dec_Cov`` (deg²) are
    optional; missing ones count as unknown and take the floor.

    Raises
    ------
    CatalogError
        If ``ra``/``dec`` are missing or not finite, naming ``what``.
    """
    ra = _column(table, ra_col, what)
    dec = _column(table, dec_col, what)
    if not (np.all(np.isfinite(ra)) and np.all(np.isfinite(dec))):
        raise CatalogError(f"{what}: {ra_col}/{dec_col} must be finite")
    if np.any(np.abs(dec) > 90):
        raise CatalogError(f"{what}: |{dec_col}| must be <= 90 deg")
    n = len(ra)
    nan = np.full(n, np.nan)
    ra_err = _column(table, "raErr", what, required=False)
    dec_err = _column(table, "decErr", what, required=False)
    cov = _column(table, "ra_dec_Cov", what, required=False)
    sx = (nan if ra_err is None else ra_err) * 3600.0
    sy = (nan if dec_err is None else dec_err) * 3600.0
    cxy = np.zeros(n) if cov is None else np.nan_to_num(cov * 3600.0**2, nan=0.0)
    bad = ~(np.isfinite(sx) & (sx > 0) & np.isfinite(sy) & (sy > 0))
    sx = np.where(np.isfinite(sx), np.fmax(sx, floor_arcsec), floor_arcsec)
    sy = np.where(np.isfinite(sy), np.fmax(sy, floor_arcsec), floor_arcsec)
    cxy = np.where(bad, 0.0, np.clip(cxy, -_MAX_CORRELATION * sx * sy, _MAX_CORRELATION * sx * sy))
    c = np.empty((n, 2, 2))
    c[:, 0, 0], c[:, 1, 1], c[:, 0, 1], c[:, 1, 0] = sx**2, sy**2, cxy, cxy
    east, north = local_frames(ra, dec)
    return Positions(unit_vectors(ra, dec), east, north, c)


def pair_scores(sources: Positions, objects: Positions, source_index: np.ndarray,
                object_index: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Angular distance and Gaussian NLL of each candidate pair.

    Parameters
    ----------
    sources, objects : Positions
    source_index, object_index : ndarray of int, shape (m,)
        The candidate pairs.

    Returns
    -------
    distance_arcsec : ndarray, shape (m,)
        Great-circle separation, arcsec.
    nll : ndarray, shape (m,)
        The score defined in the module docstring (dimensionless, lower is better).
    """
    s, o = source_index, object_index
    sxyz, oxyz = sources.xyz[s], objects.xyz[o]
    oe, on = objects.east[o], objects.north[o]
    chord = np.linalg.norm(sxyz - oxyz, axis=1)
    distance = 2.0 * np.arcsin(np.clip(0.5 * chord, 0.0, 1.0)) * ARCSEC_PER_RAD
    de, dn = tangent_offsets_arcsec(oxyz, oe, on, sxyz)
    # Rotation of the source's (east, north) frame into the object's.
    se, sn = sources.east[s], sources.north[s]
    rot = np.empty((len(s), 2, 2))
    rot[:, 0, 0] = np.einsum("ij,ij->i", se, oe)
    rot[:, 0, 1] = np.einsum("ij,ij->i", sn, oe)
    rot[:, 1, 0] = np.einsum("ij,ij->i", se, on)
    rot[:, 1, 1] = np.einsum("ij,ij->i", sn, on)
    cov = rot @ sources.cov_arcsec2[s] @ rot.transpose(0, 2, 1) + objects.cov_arcsec2[o]
    a, b, d = cov[:, 0, 0], cov[:, 0, 1], cov[:, 1, 1]
    det = a * d - b * b
    chi2 = (d * de * de - 2.0 * b * de * dn + a * dn * dn) / det
    nll = 0.5 * chi2 + 0.5 * np.log(det) + np.log(2.0 * np.pi)
    return distance, nll

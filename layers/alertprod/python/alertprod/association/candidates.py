"""Candidate pairs: every (source, object) pair closer than the association radius.

A :class:`scipy.spatial.cKDTree` on unit vectors finds pairs by chord length, which is a
monotonic function of the great-circle angle, so RA wrap-around and the poles need no care.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from scipy.spatial import cKDTree

from alertprod.association.geometry import ARCSEC_PER_RAD, chord_for_arcsec
from alertprod.errors import CatalogError

__all__ = ["Candidates", "find_candidates"]


#: Pre-filter the objects when they outnumber the sources by more than this.
_PREFILTER_RATIO = 8

#: Largest side of the pre-filter grid, cells (bounds its memory to ~16 MB).
_MAX_GRID_CELLS = 4000


def _near_sources(object_xyz: np.ndarray, source_xyz: np.ndarray, chord: float) -> np.ndarray:
    """Indices of objects that may lie within ``chord`` of a source (a superset).

    Objects and sources are projected onto the two Cartesian axes other than the sources'
    dominant one, and a boolean grid with cells ≥ 2·chord marks the cells each source's ball
    touches (≤ 2 per axis). Projection never brings points apart closer than they are, so no
    candidate is lost; extra objects are removed by the exact tree search. Costs one pass over
    the objects, without sorting them or building a tree of all of them (scipy has no
    "points near any of these points" short of such a tree, hence these lines).
    """
    axis = int(np.argmax(np.abs(source_xyz.mean(axis=0))))
    a, b = (k for k in range(3) if k != axis)
    src = source_xyz[:, [a, b]]
    lo = src.min(axis=0) - chord
    hi = src.max(axis=0) + chord
    cell = max(2.0 * chord * (1 + 1e-6), float(np.max(hi - lo)) / _MAX_GRID_CELLS)
    shape = np.floor((hi - lo) / cell).astype(np.int64) + 1
    grid = np.zeros(tuple(shape), dtype=bool)
    c_lo = np.floor((src - chord - lo) / cell).astype(np.int64)
    c_hi = np.minimum(np.floor((src + chord - lo) / cell).astype(np.int64), shape - 1)
    for ci in (c_lo[:, 0], c_hi[:, 0]):
        for cj in (c_lo[:, 1], c_hi[:, 1]):
            grid[ci, cj] = True
    oa, ob = object_xyz[:, a], object_xyz[:, b]
    inside = np.flatnonzero((oa >= lo[0]) & (oa <= hi[0]) & (ob >= lo[1]) & (ob <= hi[1]))
    obj = np.column_stack([oa[inside], ob[inside]])
    oc = np.minimum(np.floor((obj - lo) / cell).astype(np.int64), shape - 1)
    return inside[grid[oc[:, 0], oc[:, 1]]]


class Candidates(NamedTuple):
    """Candidate pairs, sorted by source then object index (m pairs).

    Attributes
    ----------
    source_index, object_index : ndarray of int64, shape (m,)
    distance_arcsec : ndarray of float64, shape (m,)
        Great-circle separation, arcsec, each ≤ the radius.
    """

    source_index: np.ndarray
    object_index: np.ndarray
    distance_arcsec: np.ndarray


def find_candidates(source_xyz: np.ndarray, object_xyz: np.ndarray, *,
                    max_dist_arcsec: float) -> Candidates:
    """All pairs within ``max_dist_arcsec`` of each other.

    Parameters
    ----------
    source_xyz : ndarray, shape (n, 3)
        Unit vectors of the sources.
    object_xyz : ndarray, shape (k, 3)
        Unit vectors of the objects.
    max_dist_arcsec : float, keyword-only
        Association radius, arcsec (inclusive).

    Returns
    -------
    Candidates

    Notes
    -----
    When objects far outnumber sources (10⁶ objects of a padded region against 10⁴ sources),
    building a tree of every object dominates the cost, so objects are first reduced to those
    in grid cells touched by a source's search ball (:func:`_near_sources`, one O(k) pass).
    Then a ``cKDTree`` of the surviving objects answers one ball query per source.
    """
    if not (np.isfinite(max_dist_arcsec) and max_dist_arcsec > 0):
        raise CatalogError(f"max_dist_arcsec must be finite and > 0, got {max_dist_arcsec}")
    empty = np.empty(0, dtype=np.int64)
    if len(source_xyz) == 0 or len(object_xyz) == 0:
        return Candidates(empty, empty.copy(), np.empty(0))
    # Slightly larger chord, then the exact angular cut below (inclusive at the radius).
    chord = chord_for_arcsec(max_dist_arcsec) * (1 + 1e-9)
    keep_obj = np.arange(len(object_xyz))
    if len(object_xyz) > _PREFILTER_RATIO * len(source_xyz):
        keep_obj = _near_sources(object_xyz, source_xyz, chord)
    if len(keep_obj) == 0:
        return Candidates(empty, empty.copy(), np.empty(0))
    tree = cKDTree(object_xyz[keep_obj], balanced_tree=False, compact_nodes=False)
    hits = tree.query_ball_point(source_xyz, chord, return_sorted=False)
    counts = np.fromiter((len(h) for h in hits), dtype=np.int64, count=len(hits))
    si = np.repeat(np.arange(len(source_xyz), dtype=np.int64), counts)
    oi = keep_obj[np.fromiter((j for h in hits for j in h), dtype=np.int64, count=counts.sum())]
    chords = np.linalg.norm(source_xyz[si] - object_xyz[oi], axis=1)
    dist = 2.0 * np.arcsin(np.clip(0.5 * chords, 0.0, 1.0)) * ARCSEC_PER_RAD
    keep = dist <= max_dist_arcsec
    si, oi, dist = si[keep], oi[keep], dist[keep]
    order = np.lexsort((oi, si))
    return Candidates(si[order], oi[order], dist[order])

"""Association of DiaSources with known DiaObjects: candidates, scores, optimal assignment.

Rubin ap_association's method: candidates within ``max_dist_arcsec`` from a KD-tree on unit
vectors, score = Gaussian negative log-likelihood of the offset under both position errors
(:mod:`alertprod.association.scoring`), global one-to-one assignment with a "no match" option
per source (:mod:`alertprod.association.assignment`).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from astropy.table import Table

from alertprod.association.assignment import assign_one_to_one
from alertprod.association.candidates import find_candidates
from alertprod.association.geometry import unit_vectors
from alertprod.association.scoring import ERROR_FLOOR_ARCSEC, pair_scores, positions_from_table
from alertprod.errors import CatalogError

__all__ = ["UNASSOCIATED_ID", "AssociationResult", "associate", "match_positions"]

#: ``dia_object_id`` (and ``ss_object_id``) of an unassociated source, as in Rubin's APDB,
#: where a DiaSource without a DiaObject carries ``diaObjectId = 0``. Real ids are > 0.
UNASSOCIATED_ID = 0


class AssociationResult(NamedTuple):
    """Outcome of DiaObject association, one entry per source (n sources).

    Attributes
    ----------
    dia_object_id : ndarray of int64, shape (n,)
        ``diaObjectId`` of the associated object, :data:`UNASSOCIATED_ID` (0) if none.
    distance_arcsec : ndarray of float64, shape (n,)
        Separation from the associated object, arcsec; NaN if none.
    score : ndarray of float64, shape (n,)
        Gaussian NLL of the pair (:mod:`alertprod.association.scoring`); NaN if none.
    matched : ndarray of bool, shape (n,)
    source_index : ndarray of int64, shape (n,)
        Row of each source in the input ``sources`` (``arange(n)``).
    object_index : ndarray of int64, shape (n,)
        Row of the associated object in ``objects``, −1 if none.
    """

    dia_object_id: np.ndarray
    distance_arcsec: np.ndarray
    score: np.ndarray
    matched: np.ndarray
    source_index: np.ndarray
    object_index: np.ndarray


def _radec(table: Table, what: str) -> tuple[np.ndarray, np.ndarray]:
    for col in ("ra", "dec"):
        if col not in table.colnames:
            raise CatalogError(f"{what} lacks column {col!r}")
    ra, dec = np.asarray(table["ra"], dtype=float), np.asarray(table["dec"], dtype=float)
    if not (np.isfinite(ra).all() and np.isfinite(dec).all()) or np.any(np.abs(dec) > 90):
        raise CatalogError(f"{what}: ra/dec must be finite with |dec| <= 90 deg")
    return ra, dec


def _target_radii(targets: Table, max_dist_arcsec: float, what: str) -> np.ndarray:
    """Each target's association radius (arcsec): its ``matchRadiusArcsec``, else the default."""
    if "matchRadiusArcsec" not in targets.colnames:
        return np.full(len(targets), float(max_dist_arcsec))
    radius = np.asarray(targets["matchRadiusArcsec"], dtype=float)
    if not (np.isfinite(radius).all() and np.all(radius > 0)):
        raise CatalogError(f"{what}: matchRadiusArcsec must be finite and > 0")
    return radius


def match_positions(sources: Table, targets: Table, *, max_dist_arcsec: float,
                    error_floor_arcsec: float = ERROR_FLOOR_ARCSEC,
                    active: np.ndarray | None = None, what: str = "objects"
                    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One-to-one match of sources to targets: target index, distance and score per source.

    Parameters
    ----------
    sources, targets : astropy.table.Table
        ``ra``, ``dec`` and optional ``raErr``, ``decErr``, ``ra_dec_Cov`` (deg, deg²).
    max_dist_arcsec : float, keyword-only
        Association radius, arcsec (inclusive).
    error_floor_arcsec : float, keyword-only
        Floor of the 1σ position errors, arcsec.
    active : ndarray of bool, shape (n,), keyword-only, optional
        Only these sources take part (e.g. those not claimed by a solar-system object).
    what : str, keyword-only
        Name of ``targets`` in error messages.

    Returns
    -------
    target_index : ndarray of int64, shape (n,)
        −1 where unmatched.
    distance_arcsec, score : ndarray of float64, shape (n,)
        NaN where unmatched.

    Notes
    -----
    A ``matchRadiusArcsec`` column in ``targets`` gives each target its own radius (arcsec,
    finite, > 0), replacing ``max_dist_arcsec`` for that target: the solar-system step widens
    the 1″ rule for orbits known to be uncertain (docs/solar-system.md, "Orbit uncertainty and
    the match radius").
    """
    s_ra, s_dec = _radec(sources, "sources")
    t_ra, t_dec = _radec(targets, what)
    n_src, n_tgt = len(s_ra), len(t_ra)
    radius = _target_radii(targets, max_dist_arcsec, what)
    src_rows = np.arange(n_src) if active is None else np.flatnonzero(active)
    cand = find_candidates(unit_vectors(s_ra[src_rows], s_dec[src_rows]),
                           unit_vectors(t_ra, t_dec),
                           max_dist_arcsec=max(max_dist_arcsec, float(radius.max(initial=0.0))))
    if "matchRadiusArcsec" in targets.colnames:
        inside = cand.distance_arcsec <= radius[cand.object_index]
        cand = type(cand)(*(np.asarray(f)[inside] for f in cand))
    si, oi = src_rows[cand.source_index], cand.object_index
    # Error ellipses and frames are only needed for the rows that have candidates.
    us, s_loc = np.unique(si, return_inverse=True)
    uo, o_loc = np.unique(oi, return_inverse=True)
    sp = positions_from_table(sources[us], what="sources", floor_arcsec=error_floor_arcsec)
    tp = positions_from_table(targets[uo], what=what, floor_arcsec=error_floor_arcsec)
    _, nll = pair_scores(sp, tp, s_loc.ravel(), o_loc.ravel())
    assigned = assign_one_to_one(n_src, n_tgt, si, oi, nll)
    distance = np.full(n_src, np.nan)
    score = np.full(n_src, np.nan)
    # Look the chosen pair up among the candidates (sorted by source, then target).
    ok = assigned >= 0
    key_pairs = si * max(n_tgt, 1) + oi
    pos = np.searchsorted(key_pairs, np.flatnonzero(ok) * max(n_tgt, 1) + assigned[ok])
    distance[ok] = cand.distance_arcsec[pos]
    score[ok] = nll[pos]
    return assigned, distance, score


def associate(sources: Table, objects: Table, *, max_dist_arcsec: float = 1.0,
              error_floor_arcsec: float = ERROR_FLOOR_ARCSEC) -> AssociationResult:
    """Associate each DiaSource with at most one DiaObject, one-to-one and globally optimal.

    Parameters
    ----------
    sources : astropy.table.Table, n rows
        DiaSources: ``ra``, ``dec``, ``raErr``, ``decErr`` (deg), optional ``ra_dec_Cov`` (deg²).
    objects : astropy.table.Table, k rows
        DiaObjects: ``diaObjectId`` (> 0), ``ra``, ``dec``, optional ``raErr``, ``decErr``,
        ``ra_dec_Cov``; NaN or 0 errors (new objects) take the floor.
    max_dist_arcsec : float, keyword-only
        Association radius, arcsec; pairs farther apart are never associated.
    error_floor_arcsec : float, keyword-only
        Smallest 1σ position error per axis used in scores, arcsec.

    Returns
    -------
    AssociationResult

    Notes
    -----
    Guarantees: a source is associated only with an object within ``max_dist_arcsec``; no
    object takes two sources; the number of associations is the largest possible, and among
    assignments with that number the total NLL is the smallest (exact, not greedy). Cost:
    O((n + k) log k) for candidates plus the matching of contended pairs only.
    """
    if "diaObjectId" not in objects.colnames:
        raise CatalogError("objects lacks column 'diaObjectId'")
    for col in ("raErr", "decErr"):
        if col not in sources.colnames:
            raise CatalogError(f"sources lacks column {col!r}")
    obj_index, distance, score = match_positions(sources, objects, max_dist_arcsec=max_dist_arcsec,
                                                 error_floor_arcsec=error_floor_arcsec)
    matched = obj_index >= 0
    ids = np.asarray(objects["diaObjectId"], dtype=np.int64)
    dia_object_id = np.full(len(sources), UNASSOCIATED_ID, dtype=np.int64)
    dia_object_id[matched] = ids[obj_index[matched]]
    return AssociationResult(dia_object_id, distance, score, matched,
                             np.arange(len(sources), dtype=np.int64), obj_index)

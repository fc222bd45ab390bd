"""Solar-system association: DiaSources against predicted SSObject positions, run first.

Predicted positions are topocentric and light-time corrected at the exposure midpoint, as
:func:`alertprod.orbits.predict_positions` returns them (an ``Ephemeris`` named tuple with
``ss_object_id``, ``ra_deg``, ``dec_deg``, ...) or as a table with ``ssObjectId``, ``ra``, ``dec``.
The matching is the same one-to-one optimal assignment as for DiaObjects
(:func:`alertprod.association.dia_objects.match_positions`); the sources it claims are then
withheld from DiaObject association (:func:`associate_sources`).
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np
from astropy.table import Table

from alertprod.association.dia_objects import (
    UNASSOCIATED_ID,
    AssociationResult,
    match_positions,
)
from alertprod.association.scoring import ERROR_FLOOR_ARCSEC
from alertprod.errors import CatalogError

__all__ = ["SolarSystemMatch", "SourceAssociation", "predicted_table", "associate_solar_system",
           "associate_sources"]


class SolarSystemMatch(NamedTuple):
    """Outcome of solar-system association, one entry per source (n sources).

    Attributes
    ----------
    ss_object_id : ndarray of int64, shape (n,)
        ``ssObjectId`` of the matched SSObject, 0 if none.
    distance_arcsec, score : ndarray of float64, shape (n,)
        Separation (arcsec) and Gaussian NLL of the pair; NaN if none.
    matched : ndarray of bool, shape (n,)
    source_index : ndarray of int64, shape (n,)
        ``arange(n)``.
    predicted_index : ndarray of int64, shape (n,)
        Row of the matched prediction, −1 if none.
    """

    ss_object_id: np.ndarray
    distance_arcsec: np.ndarray
    score: np.ndarray
    matched: np.ndarray
    source_index: np.ndarray
    predicted_index: np.ndarray


class SourceAssociation(NamedTuple):
    """Both association steps for one CCD (n sources).

    Attributes
    ----------
    solar_system : SolarSystemMatch
    dia : AssociationResult
        DiaObject association of the sources left by the solar-system step (claimed sources
        have ``matched`` False and ``dia_object_id`` 0 here).
    new_object : ndarray of bool, shape (n,)
        Sources matched by neither step: each starts a new DiaObject.
    """

    solar_system: SolarSystemMatch
    dia: AssociationResult
    new_object: np.ndarray


def predicted_table(predicted: Any) -> Table:
    """Adapt predictions to a table with ``ssObjectId``, ``ra``, ``dec`` (deg).

    Accepts such a table, or any object with attributes ``ss_object_id``, ``ra_deg`` and
    ``dec_deg`` (the orbits module's ``Ephemeris``). Optional ``raErr``/``decErr`` columns
    (deg, ephemeris uncertainty) are kept.
    """
    if isinstance(predicted, Table):
        for col in ("ssObjectId", "ra", "dec"):
            if col not in predicted.colnames:
                raise CatalogError(f"predicted lacks column {col!r}")
        return predicted
    try:
        return Table({"ssObjectId": np.asarray(predicted.ss_object_id, dtype=np.int64),
                      "ra": np.asarray(predicted.ra_deg, dtype=float),
                      "dec": np.asarray(predicted.dec_deg, dtype=float)})
    except AttributeError as exc:
        raise CatalogError("predicted must be a Table (ssObjectId, ra, dec) or have "
                           "ss_object_id, ra_deg, dec_deg") from exc


def associate_solar_system(sources: Table, predicted: Any, *, max_dist_arcsec: float = 1.0,
                           error_floor_arcsec: float = ERROR_FLOOR_ARCSEC) -> SolarSystemMatch:
    """Match DiaSources to predicted SSObject positions, one-to-one and globally optimal.

    Parameters
    ----------
    sources : astropy.table.Table, n rows
        DiaSources with ``ra``, ``dec``, ``raErr``, ``decErr`` (deg).
    predicted : astropy.table.Table or Ephemeris
        See :func:`predicted_table`.
    max_dist_arcsec : float, keyword-only
        Matching radius, arcsec.
    error_floor_arcsec : float, keyword-only
        Floor of the 1σ errors, arcsec (predictions without errors take it).

    Returns
    -------
    SolarSystemMatch
    """
    pred = predicted_table(predicted)
    idx, distance, score = match_positions(sources, pred, max_dist_arcsec=max_dist_arcsec,
                                           error_floor_arcsec=error_floor_arcsec, what="predicted")
    matched = idx >= 0
    ss_id = np.full(len(sources), UNASSOCIATED_ID, dtype=np.int64)
    ss_id[matched] = np.asarray(pred["ssObjectId"], dtype=np.int64)[idx[matched]]
    return SolarSystemMatch(ss_id, distance, score, matched,
                            np.arange(len(sources), dtype=np.int64), idx)


def associate_sources(sources: Table, objects: Table, predicted: Any = None, *,
                      max_dist_arcsec: float = 1.0, ss_max_dist_arcsec: float = 1.0,
                      error_floor_arcsec: float = ERROR_FLOOR_ARCSEC) -> SourceAssociation:
    """SSObjects first, then DiaObjects with the remaining sources.

    Parameters
    ----------
    sources : astropy.table.Table
        The CCD's DiaSources.
    objects : astropy.table.Table
        DiaObjects of the padded footprint (see :func:`~alertprod.association.select_in_region`).
    predicted : astropy.table.Table or Ephemeris, optional
        SSObject positions at the exposure midpoint; None skips the solar-system step.
    max_dist_arcsec, ss_max_dist_arcsec : float, keyword-only
        Radii of the DiaObject and SSObject steps, arcsec.
    error_floor_arcsec : float, keyword-only
        Floor of the 1σ errors, arcsec.

    Returns
    -------
    SourceAssociation
    """
    n = len(sources)
    if predicted is None or len(predicted_table(predicted)) == 0:
        ss = SolarSystemMatch(np.full(n, UNASSOCIATED_ID, dtype=np.int64), np.full(n, np.nan),
                              np.full(n, np.nan), np.zeros(n, dtype=bool),
                              np.arange(n, dtype=np.int64), np.full(n, -1, dtype=np.int64))
    else:
        ss = associate_solar_system(sources, predicted, max_dist_arcsec=ss_max_dist_arcsec,
                                    error_floor_arcsec=error_floor_arcsec)
    if "diaObjectId" not in objects.colnames:
        raise CatalogError("objects lacks column 'diaObjectId'")
    idx, distance, score = match_positions(sources, objects, max_dist_arcsec=max_dist_arcsec,
                                           error_floor_arcsec=error_floor_arcsec,
                                           active=~ss.matched)
    matched = idx >= 0
    dia_id = np.full(n, UNASSOCIATED_ID, dtype=np.int64)
    dia_id[matched] = np.asarray(objects["diaObjectId"], dtype=np.int64)[idx[matched]]
    dia = AssociationResult(dia_id, distance, score, matched, np.arange(n, dtype=np.int64), idx)
    return SourceAssociation(ss, dia, ~matched & ~ss.matched)

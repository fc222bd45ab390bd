"""The next version of DiaObjects (seed steps 8–9): summaries, carried-over counts, validity.

One builder for both writers of DiaObject versions: the nightly pipeline (an object gets new
DiaSources this visit) and daytime precovery (an object gets precovery forced measurements).
"""

from __future__ import annotations

import numpy as np
from astropy.table import Table, vstack

from alertprod.apdb.interface import PREV_VALIDITY_COLUMN
from alertprod.summary.objects import summarize_objects

__all__ = ["VERSION_EPSILON_DAYS", "next_object_versions"]

#: Step between the validity starts of two versions created out of time order (~1 ms).
VERSION_EPSILON_DAYS = 1e-8

_SOURCE_COLUMNS = ["diaObjectId", "ra", "dec", "raErr", "decErr", "ra_dec_Cov", "midpointMjdTai",
                   "band", "psfFlux", "psfFluxErr", "scienceFlux", "scienceFluxErr"]
_FORCED_COLUMNS = ["diaObjectId", "band", "psfFlux", "psfFluxErr"]


def next_object_versions(new_sources: Table, previous: Table, history: Table,
                         forced_history: Table, new_forced: Table, *,
                         validity_start_mjd_tai: float) -> Table:
    """The new version of every DiaObject that has new sources or a history.

    Parameters
    ----------
    new_sources : Table
        DiaSources this version adds (``diaObjectId`` filled; rows with id 0, solar-system
        sources, are ignored); empty for a precovery refresh.
    previous : Table
        Current (open) versions of the objects (no row for a brand-new object).
    history, forced_history : Table
        The objects' DiaSources / DiaForcedSources of the last 12 months as stored (including
        any of later visits already committed, when CCDs are processed out of time order).
    new_forced : Table
        Forced measurements this version adds (only rows of the objects matter).
    validity_start_mjd_tai : float, keyword-only
        The visit's midpoint (nightly) or the run's time (precovery), TAI MJD.

    Returns
    -------
    Table
        One row per object with at least one DiaSource: Rubin summaries over history and new
        sources (forced fluxes only in ``fpFlux*``), ``nDiaSources`` = previous count + new
        sources (the history window is 12 months, the count is for all time),
        ``firstDiaSourceMjdTai`` the earlier of the previous and the computed one,
        ``validityEndMjdTai`` null and ``prevValidityStartMjdTai`` (NaN for a new object).
        A version starts at ``validity_start_mjd_tai``, or just after the version it replaces
        when that one starts later (CCDs committed out of time order), so every object's
        versions stay ordered and contiguous.
    """
    new_ids = np.asarray(new_sources["diaObjectId"], np.int64) if len(new_sources) else \
        np.zeros(0, np.int64)
    touched = new_sources[new_ids > 0] if len(new_sources) else new_sources
    parts = [_pick(t, _SOURCE_COLUMNS) for t in (history, touched) if len(t)]
    if not parts:
        return Table()
    sources = vstack(parts, metadata_conflicts="silent")
    objects = np.unique(np.asarray(sources["diaObjectId"], np.int64))
    forced = [_pick(t, _FORCED_COLUMNS) for t in (forced_history, new_forced) if len(t)]
    forced_all = vstack(forced, metadata_conflicts="silent") if forced else None
    if forced_all is not None:
        forced_all = forced_all[np.isin(np.asarray(forced_all["diaObjectId"], np.int64), objects)]
    versions = summarize_objects(sources, forced_sources=forced_all, extended=False)
    vid = np.asarray(versions["diaObjectId"], np.int64)
    n_total = np.zeros(len(vid), np.int64)
    if len(touched):
        np.add.at(n_total, np.searchsorted(vid, np.asarray(touched["diaObjectId"], np.int64)), 1)
    prev_start = np.full(len(vid), np.nan)
    if len(previous):
        pid = np.asarray(previous["diaObjectId"], np.int64)
        order = np.argsort(pid)
        k = np.searchsorted(pid[order], vid)
        k = np.minimum(k, len(pid) - 1)
        has = pid[order][k] == vid
        rows = order[k[has]]
        prev_start[has] = np.asarray(previous["validityStartMjdTai"], float)[rows]
        n_total[has] += np.asarray(previous["nDiaSources"], np.int64)[rows]
        first_prev = np.asarray(previous["firstDiaSourceMjdTai"], float)[rows]
        first = np.asarray(versions["firstDiaSourceMjdTai"], float)
        first[has] = np.fmin(first_prev, first[has])
        versions["firstDiaSourceMjdTai"] = first
    versions["nDiaSources"] = n_total
    versions["validityEndMjdTai"] = np.full(len(vid), np.nan)
    versions[PREV_VALIDITY_COLUMN] = prev_start
    t = float(validity_start_mjd_tai)
    later = np.isfinite(prev_start) & (prev_start >= t)
    versions["validityStartMjdTai"] = np.where(later, prev_start + VERSION_EPSILON_DAYS, t)
    return versions


def _pick(table: Table, cols: list[str]) -> Table:
    """The given columns of a source table (NaN where absent; masked floats filled with NaN)."""
    out = Table()
    n = len(table)
    for c in cols:
        if c in table.colnames:
            col = table[c]
            out[c] = col.filled(np.nan) if hasattr(col, "filled") and col.dtype.kind == "f" else col
        else:
            out[c] = np.full(n, np.nan)
    out["diaObjectId"] = np.asarray(out["diaObjectId"], np.int64)
    out["band"] = np.asarray(out["band"]).astype("U1")
    return out

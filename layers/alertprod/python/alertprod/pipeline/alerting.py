"""Seed step 10: one alert packet per DiaSource of a CCD.

Each alert carries the source, its DiaObject's new version (or, for an asteroid, its SSSource
and MPC orbit), 12 months of the object's previous DiaSources and forced measurements
(precovery included), and difference and template cutouts (no science cutout unless
configured, as the seed says). Image metadata travels in the source row (visit, detector,
band, midpoint) and in the cutout headers (WCS, exposure time).
"""

from __future__ import annotations

import numpy as np
from astropy.table import Table

from alertprod.alerts import build_alert
from alertprod.formats import Exposure
from alertprod.imaging.cutouts import cutout_fits
from alertprod.pipeline.config import PipelineConfig

__all__ = ["build_ccd_alerts", "group_rows"]


def group_rows(table: Table, key: str = "diaObjectId") -> dict[int, Table]:
    """Rows of ``table`` grouped by ``key`` (each group sorted by ``midpointMjdTai``)."""
    if table is None or len(table) == 0 or key not in table.colnames:
        return {}
    order = np.lexsort((np.asarray(table["midpointMjdTai"], float), np.asarray(table[key], np.int64)))
    t = table[order]
    ids = np.asarray(t[key], np.int64)
    starts = np.flatnonzero(np.r_[True, ids[1:] != ids[:-1]])
    ends = np.r_[starts[1:], len(ids)]
    return {int(ids[s]): t[s:e] for s, e in zip(starts, ends, strict=True)}


def _cutout(exposure: Exposure | None, ra: float, dec: float, size: int | None) -> bytes | None:
    if exposure is None:
        return None
    try:
        return cutout_fits(exposure, ra, dec, size_pix=size)
    except Exception:  # a cutout that cannot be made is null; the alert still goes out
        return None


def build_ccd_alerts(sources: Table, versions: Table, history: Table, forced_history: Table,
                     ss_rows: dict[int, dict], mpc_orbits: dict[int, dict],
                     exposures: dict[str, Exposure | None], *, config: PipelineConfig) -> list[dict]:
    """Alert records of every DiaSource of the CCD, in ``diaSourceId`` order.

    Parameters
    ----------
    sources : Table
        This visit's DiaSources (associations filled).
    versions : Table
        New DiaObject versions (one per touched object).
    history, forced_history : Table
        12-month DiaSource / DiaForcedSource history of the touched objects, before this visit.
    ss_rows, mpc_orbits : dict
        SSSource records by ``diaSourceId``, MPC orbit records by ``ssObjectId``.
    exposures : dict
        ``difference``, ``template``, ``science`` exposures (None where missing).
    """
    by_obj = {int(i): k for k, i in enumerate(np.asarray(versions["diaObjectId"], np.int64))} \
        if len(versions) else {}
    hist = group_rows(history)
    fhist = group_rows(forced_history)
    empty: list = []
    out: list[dict] = []
    order = np.argsort(np.asarray(sources["diaSourceId"], np.int64))
    for i in order:
        row = sources[int(i)]
        oid = int(row["diaObjectId"])
        sid = int(row["ssObjectId"])
        ra, dec = float(row["ra"]), float(row["dec"])
        obj = versions[by_obj[oid]] if oid > 0 and oid in by_obj else None
        ss = ss_rows.get(int(row["diaSourceId"]))
        if ss is not None and sid in mpc_orbits:
            ss = dict(ss, designation=mpc_orbits[sid]["designation"])
        alert = build_alert(
            row,
            dia_object=obj,
            prv_dia_sources=hist.get(oid, empty) if oid > 0 else empty,
            prv_dia_forced_sources=fhist.get(oid, empty) if oid > 0 else empty,
            ss_source=ss,
            mpc_orbit=mpc_orbits.get(sid) if sid > 0 else None,
            cutout_difference=_cutout(exposures.get("difference"), ra, dec, config.cutout_size_pix),
            cutout_template=_cutout(exposures.get("template"), ra, dec, config.cutout_size_pix),
            cutout_science=(_cutout(exposures.get("science"), ra, dec, config.cutout_size_pix)
                            if config.include_science_cutout else None),
        )
        out.append(alert)
    return out

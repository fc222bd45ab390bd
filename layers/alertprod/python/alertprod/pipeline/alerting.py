"""Seed step 10: one alert packet per DiaSource of a CCD.

Each alert carries the source, its DiaObject's new version (or, for an asteroid, its SSSource
and MPC orbit), 12 months of the object's (or the asteroid's) previous DiaSources and forced
measurements (precovery included), and difference and template cutouts (no science cutout unless
configured, as the seed says). Image metadata travels in the source row (visit, detector,
band, midpoint) and in the cutout headers (WCS, exposure time).
"""

from __future__ import annotations

import numpy as np
from astropy.table import MaskedColumn, Table

from alertprod.alerts import build_alerts
from alertprod.formats import Exposure
from alertprod.imaging.cutouts import cutout_fits, cutouts_fits
from alertprod.pipeline.config import PipelineConfig

__all__ = ["alert_sources", "build_ccd_alerts"]


def _cutout(exposure: Exposure | None, ra: float, dec: float, size: int | None) -> bytes | None:
    if exposure is None:
        return None
    try:
        return cutout_fits(exposure, ra, dec, size_pix=size)
    except Exception:  # a cutout that cannot be made is null; the alert still goes out
        return None


def alert_sources(sources: Table) -> Table:
    """The DiaSource rows alerts are built from: sorted by ``diaSourceId``, and an id of 0
    (none, in the database) made null (none, in an alert)."""
    order = np.argsort(np.asarray(sources["diaSourceId"], np.int64), kind="stable")
    src = Table(sources[order], masked=False, copy=True)
    for col in ("diaObjectId", "ssObjectId"):
        ids = np.asarray(src[col], np.int64)
        src[col] = MaskedColumn(ids, mask=ids == 0)
    return src


def build_ccd_alerts(sources: Table, versions: Table, history: Table, forced_history: Table,
                     ss_rows: dict[int, dict], mpc_orbits: dict[int, dict],
                     exposures: dict[str, Exposure | None], *, config: PipelineConfig,
                     ss_history: Table | None = None) -> list[dict]:
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
    config : PipelineConfig, keyword-only
    ss_history : Table, keyword-only, optional
        12-month DiaSource history of the asteroids this CCD saw, before this visit (seed
        step 2: an asteroid's alert carries its earlier DiaSources).
    """
    src = alert_sources(sources)
    ra = np.asarray(src["ra"], float)
    dec = np.asarray(src["dec"], float)
    size = config.cutout_size_pix

    def cutouts(kind: str) -> list[bytes | None]:
        exp = exposures.get(kind)
        if exp is None or len(ra) == 0:
            return [None] * len(ra)
        try:
            return list(cutouts_fits(exp, ra, dec, size_pix=size))
        except Exception:  # one unusable position: make them one by one, null where impossible
            return [_cutout(exp, r, d, size) for r, d in zip(ra, dec, strict=True)]

    ss = {}
    for sid_source, rec in ss_rows.items():
        orbit = mpc_orbits.get(int(rec["ssObjectId"]))
        ss[sid_source] = dict(rec, designation=orbit["designation"]) if orbit else rec
    return build_alerts(
        src,
        dia_objects=versions if len(versions) else None,
        prv_dia_sources=history if len(history) else {},
        prv_dia_forced_sources=forced_history if len(forced_history) else {},
        ss_sources=ss,
        mpc_orbits=mpc_orbits,
        prv_ss_sources=ss_history if ss_history is not None and len(ss_history) else None,
        cutouts_difference=cutouts("difference"),
        cutouts_template=cutouts("template"),
        cutouts_science=cutouts("science") if config.include_science_cutout else None,
    )

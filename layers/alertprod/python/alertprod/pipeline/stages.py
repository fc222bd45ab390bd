"""The science steps of one CCD, as functions of tables (seed steps 1–8).

Each function takes and returns astropy Tables with Rubin column names; none touches storage.
:mod:`alertprod.pipeline.nightly` strings them together under a lease and a ledger.
"""

from __future__ import annotations

import time

import numpy as np
from astropy.coordinates import SkyCoord
from astropy.table import Table, vstack
from astropy.time import Time

from alertprod.apdb.interface import PREV_VALIDITY_COLUMN
from alertprod.association import associate_sources, predicted_table, select_in_region
from alertprod.formats import DiaSourceCatalog, Exposure, ExposureInfo
from alertprod.ids import forced_source_ids
from alertprod.orbits import OrbitCatalog, predict_positions
from alertprod.photometry.forced import forced_photometry_exposure
from alertprod.summary import summarize_objects

__all__ = [
    "now_mjd_tai",
    "prepare_sources",
    "predict_solar_system",
    "associate_ccd",
    "forced_measurements",
    "new_object_versions",
    "ss_source_rows",
]

#: Step between the validity starts of two versions created out of time order (~1 ms).
VERSION_EPSILON_DAYS = 1e-8

_FORCED_COLUMNS = ("diaForcedSourceId", "diaObjectId", "ra", "dec", "visit", "detector", "psfFlux",
                   "psfFluxErr", "midpointMjdTai", "scienceFlux", "scienceFluxErr", "band",
                   "timeProcessedMjdTai", "isPrecovery")


def now_mjd_tai() -> float:
    """The current time as TAI MJD (``timeProcessedMjdTai``)."""
    return float(Time(time.time(), format="unix").tai.mjd)


def prepare_sources(catalog: DiaSourceCatalog, *, processed_mjd_tai: float) -> Table:
    """The catalog's rows with the visit metadata and empty association columns filled in."""
    t = Table(catalog.table, copy=True)
    info = catalog.info
    n = len(t)
    t["diaSourceId"] = np.asarray(t["diaSourceId"], dtype=np.int64)
    t["visit"] = np.full(n, info.visit, dtype=np.int64)
    t["detector"] = np.full(n, info.detector, dtype=np.int16)
    t["band"] = np.full(n, info.band, dtype="U1")
    t["midpointMjdTai"] = np.full(n, info.mjd_mid_tai)
    t["diaObjectId"] = np.zeros(n, dtype=np.int64)
    t["ssObjectId"] = np.zeros(n, dtype=np.int64)
    t["timeProcessedMjdTai"] = np.full(n, processed_mjd_tai)
    for col in ("psfNdata", "trailNdata", "dipoleNdata", "bboxSize"):  # counters the schema requires
        if col not in t.colnames:
            t[col] = np.zeros(n, dtype=np.int32)
    return t


def predict_solar_system(orbits: OrbitCatalog | None, info: ExposureInfo, corners_radec: np.ndarray, *,
                         margin_arcsec: float):
    """Predicted topocentric positions of the known asteroids inside the padded footprint.

    Returns
    -------
    (Table or None, Ephemeris or None)
        ``predicted_table`` rows (``ssObjectId``, ``ra``, ``dec``, ...) of the objects in the
        footprint, and their ephemeris (for SSSource rows); None when no orbit is known.
    """
    if orbits is None or len(orbits) == 0:
        return None, None
    eph = predict_positions(orbits, info.mjd_mid_tai, obs_lon_deg=info.obs_lon_deg,
                            obs_lat_deg=info.obs_lat_deg, obs_height_m=info.obs_height_m)
    ok = np.isfinite(eph.ra_deg) & np.isfinite(eph.dec_deg)
    eph = eph.select(ok)
    table = predicted_table(eph)
    if len(table) == 0:
        return None, None
    keep = select_in_region(Table({"i": np.arange(len(table)), "ra": table["ra"], "dec": table["dec"]}),
                            corners_radec, margin_arcsec=margin_arcsec)["i"]
    idx = np.asarray(keep, dtype=int)
    if idx.size == 0:
        return None, None
    return table[idx], eph.select(idx)


def associate_ccd(sources: Table, objects: Table, predicted: Table | None, *, max_dist_arcsec: float):
    """Seed steps 1, 3, 4: SSObjects first, then DiaObjects; new ids for the rest.

    Fills ``ssObjectId`` and ``diaObjectId`` of ``sources`` in place: an SSObject-associated
    source has ``diaObjectId`` 0; a source that matched nothing creates a DiaObject whose id is
    the source's own ``diaSourceId`` (deterministic, :mod:`alertprod.ids`).

    Returns
    -------
    SourceAssociation
        From :func:`alertprod.association.associate_sources`.
    """
    assoc = associate_sources(sources, objects, predicted, max_dist_arcsec=max_dist_arcsec,
                              ss_max_dist_arcsec=max_dist_arcsec)
    ss = assoc.solar_system.ss_object_id
    dia = assoc.dia.dia_object_id
    new = assoc.new_object
    sources["ssObjectId"] = np.where(assoc.solar_system.matched, ss, 0).astype(np.int64)
    ids = np.where(assoc.dia.matched, dia, 0).astype(np.int64)
    ids[new] = np.asarray(sources["diaSourceId"], dtype=np.int64)[new]
    sources["diaObjectId"] = ids
    return assoc


def forced_measurements(objects: Table, detected_ids: np.ndarray, corners_radec: np.ndarray,
                        difference: Exposure | None, science: Exposure | None, info: ExposureInfo, *,
                        processed_mjd_tai: float) -> Table:
    """Seed step 5: forced photometry of the known DiaObjects in the CCD not detected this visit.

    Measured on the difference image (``psfFlux``) and the science image (``scienceFlux``);
    objects off the image (gaps, padded margin) are skipped. Without a difference image there
    is nothing to measure (the upload's ledger entry records the degradation).
    """
    if difference is None or len(objects) == 0:
        return _empty_forced()
    inside = select_in_region(objects, corners_radec, margin_arcsec=0.0)
    inside = inside[~np.isin(np.asarray(inside["diaObjectId"], np.int64), detected_ids)]
    if len(inside) == 0:
        return _empty_forced()
    ra = np.asarray(inside["ra"], float)
    dec = np.asarray(inside["dec"], float)
    diff = forced_photometry_exposure(difference, ra, dec)
    on = np.isfinite(diff.flux)
    if science is not None:
        sci = forced_photometry_exposure(science, ra, dec)
        sflux, serr = sci.flux, sci.flux_err
    else:
        sflux = serr = np.full(len(ra), np.nan)
    ids = np.asarray(inside["diaObjectId"], np.int64)[on]
    n = int(on.sum())
    return Table({
        "diaForcedSourceId": forced_source_ids(ids, info.visit, info.detector),
        "diaObjectId": ids,
        "ra": ra[on], "dec": dec[on],
        "visit": np.full(n, info.visit, np.int64),
        "detector": np.full(n, info.detector, np.int16),
        "psfFlux": diff.flux[on].astype(float), "psfFluxErr": diff.flux_err[on].astype(float),
        "midpointMjdTai": np.full(n, info.mjd_mid_tai),
        "scienceFlux": np.asarray(sflux)[on].astype(float),
        "scienceFluxErr": np.asarray(serr)[on].astype(float),
        "band": np.full(n, info.band, dtype="U1"),
        "timeProcessedMjdTai": np.full(n, processed_mjd_tai),
        "isPrecovery": np.zeros(n, dtype=bool),
    })


def _empty_forced() -> Table:
    t = Table()
    for c in _FORCED_COLUMNS:
        t[c] = np.zeros(0, dtype=np.int64 if c in ("diaForcedSourceId", "diaObjectId", "visit") else
                        (np.int16 if c == "detector" else ("U1" if c == "band" else
                                                           (bool if c == "isPrecovery" else float))))
    return t


def new_object_versions(sources: Table, previous: Table, history: Table, forced_history: Table,
                        forced_now: Table, *, visit_time_mjd_tai: float) -> Table:
    """Seed steps 8–9: the new version of every DiaObject this CCD touched.

    Parameters
    ----------
    sources : Table
        This visit's DiaSources with ``diaObjectId`` filled (SSObject sources carry 0).
    previous : Table
        Current (open) versions of the associated objects (empty for new objects).
    history, forced_history : Table
        Their DiaSources / DiaForcedSources of the last 12 months (including any of later
        visits already committed, when CCDs are processed out of time order).
    forced_now : Table
        This visit's forced measurements (only those of touched objects matter).

    Returns
    -------
    Table
        One new version per object: Rubin summaries over the 12-month history plus this visit,
        ``validityStartMjdTai`` = visit time, ``prevValidityStartMjdTai`` (NaN for new objects),
        ``nDiaSources`` and ``firstDiaSourceMjdTai`` carried over from the previous version (the
        history window is 12 months; the counts are for all time).
    """
    ids = np.asarray(sources["diaObjectId"], np.int64)
    touched = sources[ids > 0]
    if len(touched) == 0:
        return Table()
    cols = ["diaObjectId", "ra", "dec", "raErr", "decErr", "midpointMjdTai", "band", "psfFlux",
            "psfFluxErr", "scienceFlux", "scienceFluxErr"]
    parts = [_pick(touched, cols)]
    if len(history):
        parts.insert(0, _pick(history, cols))
    allsrc = vstack(parts, metadata_conflicts="silent")
    forced = [t for t in (forced_history, forced_now) if len(t)]
    fcols = ["diaObjectId", "band", "psfFlux", "psfFluxErr"]
    forced_all = vstack([_pick(t, fcols) for t in forced], metadata_conflicts="silent") if forced else None
    if forced_all is not None:
        forced_all = forced_all[np.isin(np.asarray(forced_all["diaObjectId"], np.int64),
                                        np.unique(np.asarray(touched["diaObjectId"], np.int64)))]
    versions = summarize_objects(allsrc, forced_sources=forced_all, extended=False)
    versions["validityEndMjdTai"] = np.full(len(versions), np.nan)
    prev_start = np.full(len(versions), np.nan)
    vid = np.asarray(versions["diaObjectId"], np.int64)
    n_new = np.bincount(np.searchsorted(vid, np.asarray(touched["diaObjectId"], np.int64)),
                        minlength=len(vid))
    n_total = n_new.astype(np.int64)
    if len(previous):
        pid = np.asarray(previous["diaObjectId"], np.int64)
        pos = {int(i): k for k, i in enumerate(pid)}
        for j, oid in enumerate(vid):
            k = pos.get(int(oid))
            if k is None:
                continue
            prev_start[j] = float(previous["validityStartMjdTai"][k])
            n_total[j] = int(previous["nDiaSources"][k]) + int(n_new[j])
            first = float(previous["firstDiaSourceMjdTai"][k])
            if np.isfinite(first):
                versions["firstDiaSourceMjdTai"][j] = min(first, float(versions["firstDiaSourceMjdTai"][j]))
    versions["nDiaSources"] = n_total
    versions[PREV_VALIDITY_COLUMN] = prev_start
    # A version starts at the visit's midpoint; when CCDs are processed out of time order (a
    # later visit's CCD committed first), it starts just after the version it replaces, so
    # every object's versions stay ordered and contiguous.
    versions["validityStartMjdTai"] = np.where(np.isfinite(prev_start) & (prev_start >= visit_time_mjd_tai),
                                               prev_start + VERSION_EPSILON_DAYS, visit_time_mjd_tai)
    return versions


def _pick(table: Table, cols: list[str]) -> Table:
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


def ss_source_rows(sources: Table, assoc, ephem, info: ExposureInfo) -> dict[int, dict]:
    """SSSource records of the sources claimed by known asteroids, keyed by ``diaSourceId``.

    Fills the fields the two-body ephemeris gives: predicted position, rates, distances,
    phase angle, elongation, V magnitude, offsets, ecliptic and galactic coordinates.
    """
    ssm = assoc.solar_system
    if ephem is None or not np.any(ssm.matched):
        return {}
    rows: dict[int, dict] = {}
    rows_idx = np.flatnonzero(ssm.matched)
    pidx = np.asarray(ssm.predicted_index)[rows_idx]
    ra = np.asarray(sources["ra"], float)[rows_idx]
    dec = np.asarray(sources["dec"], float)[rows_idx]
    c = SkyCoord(ra, dec, unit="deg", frame="icrs")
    ecl = c.barycentrictrueecliptic
    gal = c.galactic
    for k, (i, p) in enumerate(zip(rows_idx, pidx, strict=True)):
        era, edec = float(ephem.ra_deg[p]), float(ephem.dec_deg[p])
        dra = ((ra[k] - era + 180) % 360 - 180) * np.cos(np.deg2rad(edec)) * 3600
        ddec = (dec[k] - edec) * 3600
        rra, rdec = float(ephem.ra_rate_deg_per_day[p]), float(ephem.dec_rate_deg_per_day[p])
        rate = float(np.hypot(rra, rdec))
        along = (dra * rra + ddec * rdec) / rate if rate > 0 else np.nan
        cross = (dra * rdec - ddec * rra) / rate if rate > 0 else np.nan
        sid = int(sources["diaSourceId"][i])
        rows[sid] = {
            "diaSourceId": sid, "ssObjectId": int(ephem.ss_object_id[p]),
            "eclLambda": float(ecl.lon.deg[k]), "eclBeta": float(ecl.lat.deg[k]),
            "galLon": float(gal.l.deg[k]), "galLat": float(gal.b.deg[k]),
            "elongation": float(ephem.elongation_deg[p]), "phaseAngle": float(ephem.phase_angle_deg[p]),
            "topoRange": float(ephem.delta_au[p]), "helioRange": float(ephem.r_au[p]),
            "ephRa": era, "ephDec": edec, "ephVmag": float(ephem.v_mag[p]),
            "ephRate": rate, "ephRateRa": rra, "ephRateDec": rdec,
            "ephOffset": float(np.hypot(dra, ddec)), "ephOffsetRa": float(dra), "ephOffsetDec": float(ddec),
            "ephOffsetAlongTrack": float(along), "ephOffsetCrossTrack": float(cross),
        }
    return rows

"""The science steps of one CCD, as functions of tables (seed steps 1–5).

Each function takes and returns astropy Tables with Rubin column names; none touches storage.
:mod:`alertprod.pipeline.compute` strings them together; summaries and new versions come from
:mod:`alertprod.summary.versions`, forced rows from :mod:`alertprod.photometry.dia_forced`,
SSSource rows from :mod:`alertprod.orbits.rows` (each shared with precovery).
"""

from __future__ import annotations

import numpy as np
from astropy.table import Table

from alertprod.association import associate_sources, predicted_table, select_in_region
from alertprod.formats import DiaSourceCatalog, ExposureInfo
from alertprod.orbits import OrbitCatalog, predict_positions, ss_source_records
from alertprod.orbits.uncertainty import prediction_uncertainty
from alertprod.photometry.dia_forced import VisitImages, dia_forced_rows, empty_dia_forced

__all__ = [
    "prepare_sources",
    "predict_solar_system",
    "associate_ccd",
    "forced_measurements",
    "ss_source_rows",
]


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
                         margin_arcsec: float, base_radius_arcsec: float = 1.0,
                         radius_n_sigma: float = 3.0, radius_cap_arcsec: float = 10.0):
    """Predicted topocentric positions of the known asteroids inside the padded footprint.

    Each prediction carries the error its orbit's uncertainty implies (``raErr``/``decErr``,
    deg: the along-track σ taken as circular) and its association radius
    (``matchRadiusArcsec``: ``base_radius_arcsec`` for well-known orbits and blank U, widened
    by ``radius_n_sigma`` σ up to ``radius_cap_arcsec``;
    :func:`alertprod.orbits.uncertainty.prediction_uncertainty`).

    Returns
    -------
    (Table or None, Ephemeris or None)
        ``predicted_table`` rows (``ssObjectId``, ``ra``, ``dec``, ``raErr``, ``decErr``,
        ``matchRadiusArcsec``) of the objects in the footprint, and their ephemeris (for
        SSSource rows); None when no orbit is known.
    """
    if orbits is None or len(orbits) == 0:
        return None, None
    eph = predict_positions(orbits, info.mjd_mid_tai, obs_lon_deg=info.obs_lon_deg,
                            obs_lat_deg=info.obs_lat_deg, obs_height_m=info.obs_height_m)
    finite = np.flatnonzero(np.isfinite(eph.ra_deg) & np.isfinite(eph.dec_deg))
    eph = eph.select(finite)
    table = predicted_table(eph)
    if len(table) == 0:
        return None, None
    keep = select_in_region(Table({"i": np.arange(len(table)), "ra": table["ra"], "dec": table["dec"]}),
                            corners_radec, margin_arcsec=margin_arcsec)["i"]
    idx = np.asarray(keep, dtype=int)
    if idx.size == 0:
        return None, None
    eph, table = eph.select(idx), table[idx]
    unc = prediction_uncertainty(orbits[finite[idx]], info.mjd_mid_tai, eph.r_au, eph.delta_au,
                                 base_arcsec=base_radius_arcsec, n_sigma=radius_n_sigma,
                                 cap_arcsec=radius_cap_arcsec)
    table["raErr"] = table["decErr"] = unc.sigma_arcsec / 3600.0
    table["matchRadiusArcsec"] = unc.radius_arcsec
    return table, eph


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
                        images: VisitImages | None, *, processed_mjd_tai: float) -> Table:
    """Seed step 5: forced photometry of the known DiaObjects in the CCD not detected this visit.

    Measured on the difference image (``psfFlux``), the science image (``scienceFlux``) and
    the snap difference (``snapDiffFlux``) when uploaded; objects off the image (gaps, padded
    margin) are skipped. Without a difference image (``images`` None) there is nothing to
    measure (the upload's ledger entry records the degradation).
    """
    if images is None or len(objects) == 0:
        return empty_dia_forced()
    inside = select_in_region(objects, corners_radec, margin_arcsec=0.0)
    inside = inside[~np.isin(np.asarray(inside["diaObjectId"], np.int64), detected_ids)]
    if len(inside) == 0:
        return empty_dia_forced()
    return dia_forced_rows(np.asarray(inside["diaObjectId"], np.int64),
                           np.asarray(inside["ra"], float), np.asarray(inside["dec"], float),
                           images, processed_mjd_tai=processed_mjd_tai, is_precovery=False)


def ss_source_rows(sources: Table, assoc, ephem) -> dict[int, dict]:
    """SSSource records of the sources claimed by known asteroids, keyed by ``diaSourceId``."""
    ssm = assoc.solar_system
    if ephem is None or not np.any(ssm.matched):
        return {}
    rows = np.flatnonzero(ssm.matched)
    return ss_source_records(np.asarray(sources["diaSourceId"], np.int64)[rows],
                             np.asarray(sources["ra"], float)[rows],
                             np.asarray(sources["dec"], float)[rows], ephem,
                             np.asarray(ssm.predicted_index)[rows])

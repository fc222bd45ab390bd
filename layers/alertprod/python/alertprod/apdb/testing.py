"""Synthetic APDB data for tests and benchmarks: DiaObjects, sources and one CCD's writes.

Like Rubin's ``lsst.dax.apdb.tests``, this ships with the package so that every test (unit,
integration, contract, benchmark) builds its data the same way. The DynamoDB table on moto's
server lives with the embedded stack (:mod:`alertprod.local.dynamodb`).
"""

from __future__ import annotations

import numpy as np
from astropy.table import Table

from alertprod.apdb.interface import PREV_VALIDITY_COLUMN, CcdWrites
from alertprod.ids import forced_source_ids

__all__ = ["make_objects", "make_sources", "make_forced", "make_ccd_writes"]

def make_objects(n: int, ra_deg: float, dec_deg: float, radius_deg: float, *, seed: int = 0,
                 first_id: int = 1) -> Table:
    """``n`` DiaObject rows scattered uniformly in a small disc (ids from ``first_id``)."""
    rng = np.random.default_rng(seed)
    r = radius_deg * np.sqrt(rng.uniform(0, 1, n))
    phi = rng.uniform(0, 2 * np.pi, n)
    dec = dec_deg + r * np.sin(phi)
    ra = ra_deg + r * np.cos(phi) / np.cos(np.deg2rad(dec_deg))
    t = Table()
    t["diaObjectId"] = np.arange(first_id, first_id + n, dtype=np.int64)
    t["ra"], t["dec"] = ra, dec
    t["raErr"] = np.full(n, 1e-5, np.float32)
    t["decErr"] = np.full(n, 1e-5, np.float32)
    t["r_psfFluxMean"] = rng.normal(1000, 100, n).astype(np.float32)
    for band in "ugrizy":
        t[f"{band}_psfFluxNdata"] = np.zeros(n, np.int32)
    t["r_psfFluxNdata"] = np.ones(n, np.int32)
    t["nDiaSources"] = np.ones(n, np.int32)
    t[PREV_VALIDITY_COLUMN] = np.full(n, np.nan)
    return t


def make_sources(object_ids: np.ndarray, ra: np.ndarray, dec: np.ndarray, visit: int,
                 detector: int, mjd_tai: float, *, seed: int = 0, first_id: int | None = None,
                 band: str = "r") -> Table:
    """One DiaSource per object at its position, deterministic ids ``visit*10**6 + k``."""
    rng = np.random.default_rng(seed)
    n = len(object_ids)
    start = visit * 10**6 + detector * 10**3 if first_id is None else first_id
    t = Table()
    t["diaSourceId"] = np.arange(start, start + n, dtype=np.int64)
    t["visit"] = np.full(n, visit, np.int64)
    t["detector"] = np.full(n, detector, np.int16)
    t["diaObjectId"] = np.asarray(object_ids, np.int64)
    t["midpointMjdTai"] = np.full(n, mjd_tai)
    t["ra"], t["dec"] = np.asarray(ra, float), np.asarray(dec, float)
    t["x"], t["y"] = rng.uniform(0, 4000, n), rng.uniform(0, 4000, n)
    t["psfFlux"] = rng.normal(1000, 50, n).astype(np.float32)
    t["psfFluxErr"] = np.full(n, 50, np.float32)
    t["snr"] = (t["psfFlux"] / t["psfFluxErr"]).astype(np.float32)
    t["band"] = np.full(n, band, "U1")
    t["psfNdata"] = np.full(n, 25, np.int32)
    t["trailNdata"] = np.zeros(n, np.int32)
    t["dipoleNdata"] = np.zeros(n, np.int32)
    t["timeProcessedMjdTai"] = np.full(n, mjd_tai + 1e-3)
    t["bboxSize"] = np.full(n, 15, np.int64)
    t["isDipole"] = np.zeros(n, bool)
    return t


def make_forced(object_ids: np.ndarray, ra: np.ndarray, dec: np.ndarray, visit: int,
                detector: int, mjd_tai: float, *, band: str = "r") -> Table:
    """One DiaForcedSource per object (ids from :func:`alertprod.ids.forced_source_ids`)."""
    n = len(object_ids)
    t = Table()
    t["diaForcedSourceId"] = forced_source_ids(np.asarray(object_ids), visit, detector)
    t["diaObjectId"] = np.asarray(object_ids, np.int64)
    t["ra"], t["dec"] = np.asarray(ra, float), np.asarray(dec, float)
    t["visit"] = np.full(n, visit, np.int64)
    t["detector"] = np.full(n, detector, np.int16)
    t["psfFlux"] = np.full(n, 10.0, np.float32)
    t["psfFluxErr"] = np.full(n, 50.0, np.float32)
    t["midpointMjdTai"] = np.full(n, mjd_tai)
    t["band"] = np.full(n, band, "U1")
    t["timeProcessedMjdTai"] = np.full(n, mjd_tai + 1e-3)
    return t


def make_ccd_writes(objects: Table, visit: int, detector: int, mjd_tai: float, *,
                    detected: np.ndarray | None = None, new: bool = False,
                    seed: int = 0) -> CcdWrites:
    """A CCD that detects ``objects[detected]`` and force-measures the others.

    With ``new=True`` the detected objects are created (previous version NaN); otherwise each
    gets a new version replacing ``objects["validityStartMjdTai"]``.
    """
    n = len(objects)
    det = np.ones(n, bool) if detected is None else np.asarray(detected, bool)
    obj = objects[det]
    ids = np.asarray(obj["diaObjectId"], np.int64)
    sources = make_sources(ids, obj["ra"], obj["dec"], visit, detector, mjd_tai, seed=seed)
    undet = objects[~det]
    forced = make_forced(np.asarray(undet["diaObjectId"], np.int64), undet["ra"], undet["dec"],
                         visit, detector, mjd_tai)
    versions = obj.copy()
    versions[PREV_VALIDITY_COLUMN] = (np.full(len(obj), np.nan) if new else
                                      np.asarray(obj["validityStartMjdTai"], float))
    versions["validityStartMjdTai"] = mjd_tai
    versions["nDiaSources"] = np.asarray(obj["nDiaSources"]) + (0 if new else 1)
    versions["lastDiaSourceMjdTai"] = mjd_tai
    return CcdWrites(visit=visit, detector=detector, visit_time_mjd_tai=mjd_tai,
                     dia_sources=sources, dia_forced_sources=forced, dia_objects=versions)

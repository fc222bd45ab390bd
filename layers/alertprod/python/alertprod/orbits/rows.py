"""Rows the Level 1 database and alerts carry for known asteroids: SSObject, SSSource, mpc_orbits.

Built from an :class:`~alertprod.orbits.OrbitCatalog` and an :class:`~alertprod.orbits.Ephemeris`
(apdb.yaml and alert-schema v11 names); the nightly pipeline calls them for the sources that
association gave to known asteroids.
"""

from __future__ import annotations

import numpy as np
from astropy.coordinates import SkyCoord
from astropy.table import Table

from alertprod.orbits.catalog import OrbitCatalog
from alertprod.orbits.ephemeris import Ephemeris

__all__ = ["ss_object_rows", "ss_source_records", "mpc_orbit_records"]

_BANDS = "ugrizy"


def ss_object_rows(catalog: OrbitCatalog) -> Table:
    """SSObject rows (apdb.yaml names) of a freshly loaded orbit catalog, not yet observed."""
    n = len(catalog)
    t = Table({
        "ssObjectId": np.asarray(catalog.ss_object_ids, np.int64),
        "designation": np.asarray(catalog.designation if catalog.designation is not None
                                  else catalog.packed_designation, dtype="U16"),
        "nObs": np.zeros(n, np.int32),
        "arc": np.zeros(n, np.float32),
        "firstObservationMjdTai": np.full(n, np.nan),
    })
    for b in _BANDS:
        t[f"{b}_nObs"] = np.zeros(n, np.int32)
        t[f"{b}_nObsUsed"] = np.zeros(n, np.int32)
    return t


def mpc_orbit_records(catalog: OrbitCatalog, rows: dict[int, int]) -> dict[int, dict]:
    """``mpc_orbits`` alert records (schema v11) keyed by ssObjectId.

    Parameters
    ----------
    catalog : OrbitCatalog
    rows : dict
        ``ssObjectId`` -> row of the catalog, for the asteroids wanted.
    """
    out: dict[int, dict] = {}
    for sid, k in rows.items():
        packed = str(catalog.packed_designation[k])
        readable = str(catalog.designation[k]) if catalog.designation is not None else packed
        a, e = float(catalog.a[k]), float(catalog.e[k])
        out[int(sid)] = {
            "id": int(k), "designation": readable,
            "packed_primary_provisional_designation": packed,
            "unpacked_primary_provisional_designation": readable,
            "a": a, "q": a * (1 - e), "e": e, "i": float(catalog.i[k]), "node": float(catalog.node[k]),
            "argperi": float(catalog.argperi[k]), "mean_anomaly": float(catalog.mean_anomaly[k]),
            "mean_motion": float(catalog.mean_motion[k]),
            "period": 360.0 / float(catalog.mean_motion[k]),
            "epoch_mjd": float(catalog.epoch_mjd[k]), "h": float(catalog.h[k]),
            "g": float(catalog.g[k]),
        }
    return out


def ss_source_records(dia_source_ids: np.ndarray, ra_deg: np.ndarray, dec_deg: np.ndarray,
                      ephem: Ephemeris, predicted_index: np.ndarray) -> dict[int, dict]:
    """SSSource records of DiaSources claimed by known asteroids, keyed by ``diaSourceId``.

    Parameters
    ----------
    dia_source_ids : ndarray of int64, shape (n,)
        The claimed sources.
    ra_deg, dec_deg : ndarray, shape (n,)
        Their measured positions (deg).
    ephem : Ephemeris
        Predictions at the visit (one epoch).
    predicted_index : ndarray of int, shape (n,)
        Row of ``ephem`` each source was matched to.

    Returns
    -------
    dict
        Predicted position, rates, distances, phase angle, elongation, V magnitude, offsets
        (arcsec; along and across the track), ecliptic and galactic coordinates.
    """
    ids = np.asarray(dia_source_ids, np.int64)
    if ids.size == 0:
        return {}
    ra = np.asarray(ra_deg, float)
    dec = np.asarray(dec_deg, float)
    c = SkyCoord(ra, dec, unit="deg", frame="icrs")
    ecl = c.barycentrictrueecliptic
    gal = c.galactic
    rows: dict[int, dict] = {}
    for k, (sid, p) in enumerate(zip(ids.tolist(), np.asarray(predicted_index).tolist(),
                                     strict=True)):
        era, edec = float(ephem.ra_deg[p]), float(ephem.dec_deg[p])
        dra = ((ra[k] - era + 180) % 360 - 180) * np.cos(np.deg2rad(edec)) * 3600
        ddec = (dec[k] - edec) * 3600
        rra, rdec = float(ephem.ra_rate_deg_per_day[p]), float(ephem.dec_rate_deg_per_day[p])
        rate = float(np.hypot(rra, rdec))
        along = (dra * rra + ddec * rdec) / rate if rate > 0 else np.nan
        cross = (dra * rdec - ddec * rra) / rate if rate > 0 else np.nan
        rows[sid] = {
            "diaSourceId": sid, "ssObjectId": int(ephem.ss_object_id[p]),
            "eclLambda": float(ecl.lon.deg[k]), "eclBeta": float(ecl.lat.deg[k]),
            "galLon": float(gal.l.deg[k]), "galLat": float(gal.b.deg[k]),
            "elongation": float(ephem.elongation_deg[p]), "phaseAngle": float(ephem.phase_angle_deg[p]),
            "topoRange": float(ephem.delta_au[p]), "helioRange": float(ephem.r_au[p]),
            "ephRa": era, "ephDec": edec, "ephVmag": float(ephem.v_mag[p]),
            "ephRate": rate, "ephRateRa": rra, "ephRateDec": rdec,
            "ephOffset": float(np.hypot(dra, ddec)), "ephOffsetRa": float(dra),
            "ephOffsetDec": float(ddec),
            "ephOffsetAlongTrack": float(along), "ephOffsetCrossTrack": float(cross),
        }
    return rows

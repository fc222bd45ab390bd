"""Asteroids on real Keplerian orbits that cross the simulated field.

Each asteroid is built with :func:`alertprod.orbits.orbit_through` so that, seen from the
observatory, it is inside the field in the middle of one night's visits: main-belt objects at
1.2-2.2 au from the Earth (moving ~0.25°/day near opposition) and a few fast near-Earth objects
at 0.05-0.25 au. The orbits are written in MPCORB.DAT format and **read back**: every rendered
position comes from :func:`alertprod.orbits.predict_positions` of the orbits as ``mpcorb.dat``
holds them, so that the file and the images agree to its printed precision.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from astropy.table import Table

from alertprod.formats import RUBIN_SITE
from alertprod.sky.presets import SurveyConfig, mag_to_njy
from alertprod.sky.static_sky import _table, random_positions

__all__ = ["AsteroidPopulation", "make_asteroids", "asteroid_ephemerides", "ASTEROID_COLOR_GR"]

#: ``g - r`` colour of the simulated asteroids (roughly solar, S/C-type average).
ASTEROID_COLOR_GR = 0.55
#: ``r - V`` of that colour.
R_MINUS_V = -0.2


class AsteroidPopulation(NamedTuple):
    """The simulated asteroids.

    Attributes
    ----------
    orbits : alertprod.orbits.OrbitCatalog
        Orbits as read back from ``mpcorb_text``.
    mpcorb_text : str
        The MPCORB.DAT lines written to ``mpcorb.dat``.
    truth : astropy.table.Table
        One row per asteroid: ``kind`` "asteroid", ``ra``/``dec`` (deg) and ``mag_r`` at
        ``t_ref_mjd`` (when it was placed in the field), ``ssObjectId``, ``designation``,
        ``geocentric_distance_au``, ``subkind`` ("main_belt" or "fast").
    """

    orbits: object
    mpcorb_text: str
    truth: Table


def make_asteroids(config: SurveyConfig, schedule: Table, rng: np.random.Generator) -> AsteroidPopulation:
    """Build asteroids that cross the field on several visits of one night each.

    Parameters
    ----------
    config : SurveyConfig
        ``n_asteroids`` main-belt and ``n_fast_asteroids`` fast objects.
    schedule : astropy.table.Table
        The visit schedule (:func:`~alertprod.sky.survey.make_schedule`).
    rng : numpy.random.Generator
    """
    from alertprod.orbits import OrbitCatalog, orbit_through, read_mpcorb, write_mpcorb

    n_mb, n_fast = config.n_asteroids, config.n_fast_asteroids
    n = n_mb + n_fast
    if n == 0:
        return AsteroidPopulation(None, "", Table())
    nights = np.unique(np.asarray(schedule["night"]))
    margin = 0.25 * min(config.n_ccd_x * config.ccd_nx_pix, config.n_ccd_y * config.ccd_ny_pix)
    ra, dec = random_positions(config, n, rng, margin_pix=margin + config.dither_pix)
    which = rng.choice(nights, n)
    t_ref = np.array([np.mean(schedule["mjd"][schedule["night"] == k]) for k in which])
    distance = np.concatenate([rng.uniform(1.2, 2.2, n_mb), rng.uniform(0.05, 0.25, n_fast)])
    mag_r = np.concatenate([rng.uniform(18.5, 22.0, n_mb), rng.uniform(18.0, 20.5, n_fast)])
    site = dict(obs_lon_deg=RUBIN_SITE[0], obs_lat_deg=RUBIN_SITE[1], obs_height_m=RUBIN_SITE[2])
    v_mag = mag_r - R_MINUS_V
    parts = []
    for kind, sl in (("main-belt", slice(0, n_mb)), ("neo", slice(n_mb, n))):
        if sl.stop > sl.start:
            parts.append(orbit_through(ra[sl], dec[sl], t_ref[sl], geocentric_distance_au=distance[sl],
                                       rng=rng, v_mag=v_mag[sl], kind=kind, first_index=sl.start,
                                       **site))
    orbits = OrbitCatalog.concatenate(parts)
    text = write_mpcorb(orbits)
    orbits = read_mpcorb(text)
    truth = _table("asteroid", np.asarray(ra), np.asarray(dec), mag_r, np.full(n, ASTEROID_COLOR_GR))
    truth["t_ref_mjd"] = t_ref
    truth["ssObjectId"] = orbits.ss_object_ids
    truth["designation"] = orbits.designation.astype("U24")
    truth["geocentric_distance_au"] = distance
    truth["subkind"] = np.array(["main_belt"] * n_mb + ["fast"] * n_fast, dtype="U10")
    return AsteroidPopulation(orbits, text, truth)


def asteroid_ephemerides(population: AsteroidPopulation, mjd_tai: np.ndarray,
                         band: np.ndarray) -> dict[str, np.ndarray]:
    """Topocentric positions and fluxes of every asteroid at every visit.

    Parameters
    ----------
    population : AsteroidPopulation
    mjd_tai : ndarray, shape (n_visits,)
        Exposure midpoints.
    band : ndarray of str, shape (n_visits,)

    Returns
    -------
    dict of ndarray, each shape (n_visits, n_asteroids)
        ``ra``, ``dec`` (deg, at the midpoint), ``ra_rate``, ``dec_rate`` (deg/day, dRA·cosδ/dt),
        ``flux`` (nJy in the visit's band).
    """
    from alertprod.orbits import predict_positions_many

    n_ast = len(population.truth)
    mjd = np.asarray(mjd_tai, dtype=float)
    out = {k: np.zeros((len(mjd), n_ast)) for k in ("ra", "dec", "ra_rate", "dec_rate", "flux")}
    if n_ast == 0:
        return out
    # one call for all visits: the observer's states are computed once, vectorised over epochs
    eph = predict_positions_many(population.orbits, mjd, obs_lon_deg=RUBIN_SITE[0],
                                 obs_lat_deg=RUBIN_SITE[1], obs_height_m=RUBIN_SITE[2])
    out["ra"] = np.asarray(eph.ra_deg, dtype=float) % 360.0
    out["dec"] = np.asarray(eph.dec_deg, dtype=float)
    out["ra_rate"] = np.asarray(eph.ra_rate_deg_per_day, dtype=float)
    out["dec_rate"] = np.asarray(eph.dec_rate_deg_per_day, dtype=float)
    # flux in each visit's band: V -> r, then the SED colour of the truth table
    fluxes = {b: np.asarray(population.truth[f"flux_{b}"]) for b in set(np.asarray(band).tolist())}
    ratio = np.array([fluxes[b] / np.asarray(population.truth["flux_r"]) for b in np.asarray(band)])
    out["flux"] = mag_to_njy(np.asarray(eph.v_mag, dtype=float) + R_MINUS_V) * ratio
    return out

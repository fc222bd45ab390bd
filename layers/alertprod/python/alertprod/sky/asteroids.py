"""Asteroids on perturbed orbits that cross the simulated field, and the MPCORB.DAT that
the pipeline gets for them.

Each asteroid is placed with :func:`alertprod.orbits.orbit_through` so that, seen from the
observatory, it is inside the field in the middle of one night's visits: main-belt objects at
1.2-2.2 au from the Earth (moving ~0.25°/day near opposition) and a few fast near-Earth objects
at 0.05-0.25 au. That state is the truth; the asteroid then moves under the Sun, the planets
and the Moon (:mod:`alertprod.sky.perturbed`, an integrator independent of the pipeline's), and
every rendered position, and the truth, come from that motion.

``mpcorb.dat`` holds what the MPC would publish: osculating elements of the true motion at a
whole TT day ``mpcorb_epoch_offset_days`` before the survey, optionally with orbit errors
graded by the uncertainty parameter U (:mod:`alertprod.sky.orbit_errors`). With an offset of
months, two-body predictions from it miss the asteroids by arcseconds, as they would in
operations.
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
        Orbits as read back from ``mpcorb_text`` (what the pipeline knows).
    mpcorb_text : str
        The MPCORB.DAT lines written to ``mpcorb.dat``.
    truth : astropy.table.Table
        One row per asteroid: ``kind`` "asteroid", ``ra``/``dec`` (deg) and ``mag_r`` at
        ``t_ref_mjd`` (TAI, when it was placed in the field), ``ssObjectId``, ``designation``,
        ``geocentric_distance_au``, ``subkind`` ("main_belt" or "fast"), ``mpcorbU`` (its U),
        ``runoffArcsecPerDecade`` and ``meanMotionErrorArcsecPerDay`` (the orbit error
        written to ``mpcorb.dat``; 0 without U errors).
    true_orbits : alertprod.orbits.OrbitCatalog
        The true state of each asteroid: osculating elements at ``t_ref_mjd`` (TDB epochs),
        from which :func:`asteroid_ephemerides` integrates the motion.
    mpcorb_epoch_mjd : float
        Epoch of the elements in ``mpcorb.dat`` (TT MJD, a whole day); NaN without asteroids.
    """

    orbits: object
    mpcorb_text: str
    truth: Table
    true_orbits: object = None
    mpcorb_epoch_mjd: float = float("nan")


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
    from alertprod.sky.orbit_errors import (
        apply_orbit_errors,
        draw_uncertainty,
        mpcorb_epoch_mjd_tt,
        stale_catalog,
    )

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
    true_orbits = OrbitCatalog.concatenate(parts)
    epoch = mpcorb_epoch_mjd_tt(config.start_mjd_tai, config.mpcorb_epoch_offset_days)
    published = stale_catalog(true_orbits, epoch)
    u, runoff, dn = np.zeros(n, dtype=int), np.zeros(n), np.zeros(n)
    if config.mpcorb_u_weights:  # drawn last: the other objects' draws stay as without U
        u = draw_uncertainty(config.mpcorb_u_weights, n, rng)
        published, runoff, dn = apply_orbit_errors(published, u, rng)
    text = write_mpcorb(published)
    orbits = read_mpcorb(text)
    truth = _table("asteroid", np.asarray(ra), np.asarray(dec), mag_r, np.full(n, ASTEROID_COLOR_GR))
    truth["t_ref_mjd"] = t_ref
    truth["ssObjectId"] = orbits.ss_object_ids
    truth["designation"] = orbits.designation.astype("U24")
    truth["geocentric_distance_au"] = distance
    truth["subkind"] = np.array(["main_belt"] * n_mb + ["fast"] * n_fast, dtype="U10")
    truth["mpcorbU"] = u.astype(np.int16)
    truth["runoffArcsecPerDecade"] = runoff
    truth["meanMotionErrorArcsecPerDay"] = dn
    return AsteroidPopulation(orbits, text, truth, true_orbits, epoch)


def asteroid_ephemerides(population: AsteroidPopulation, mjd_tai: np.ndarray,
                         band: np.ndarray) -> dict[str, np.ndarray]:
    """True topocentric positions and fluxes of every asteroid at every visit.

    The positions come from the perturbed motion of ``population.true_orbits``
    (:func:`alertprod.sky.perturbed.true_positions`), not from ``mpcorb.dat``.

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
    from alertprod.sky.perturbed import true_positions

    n_ast = len(population.truth)
    mjd = np.asarray(mjd_tai, dtype=float)
    out = {k: np.zeros((len(mjd), n_ast)) for k in ("ra", "dec", "ra_rate", "dec_rate", "flux")}
    if n_ast == 0:
        return out
    # one integration for all visits
    eph = true_positions(population.true_orbits, mjd, obs_lon_deg=RUBIN_SITE[0],
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

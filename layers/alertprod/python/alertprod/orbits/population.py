"""Synthetic asteroids on realistic orbits, placed where a simulated survey will look.

:func:`orbit_through` builds objects that are at a chosen topocentric direction and distance at a
chosen epoch, with a plausible heliocentric velocity, and returns their osculating elements
there. The survey simulator draws fields, calls it, then moves the asteroids on perturbed orbits
with its own integrator (:mod:`alertprod.sky.perturbed`, independent of the pipeline's n-body
code) and writes elements at an epoch of its choice with :func:`alertprod.orbits.write_mpcorb`.
"""

from __future__ import annotations

import datetime as _dt

import numpy as np

from alertprod.errors import OrbitError
from alertprod.orbits.catalog import OrbitCatalog
from alertprod.orbits.designations import pack_provisional
from alertprod.orbits.ephemeris import hg_magnitude, observer_states
from alertprod.orbits.kepler import (
    GM_SUN_AU3_PER_DAY2,
    SPEED_OF_LIGHT_AU_PER_DAY,
    StateVector,
    ecliptic_to_equatorial,
    equatorial_to_ecliptic,
    propagate,
    state_to_elements,
)

__all__ = ["orbit_through", "provisional_designations", "KINDS"]

#: Populations: (spread of the inclination (deg), spread of the flight-path angle (deg)).
KINDS = {"main-belt": (8.0, 4.0), "neo": (20.0, 25.0)}
_HALF_MONTHS = "ABCDEFGHJKLMNOPQRSTUVWXY"
_SECOND_LETTERS = "ABCDEFGHJKLMNOPQRSTUVWXYZ"
_MJD0 = _dt.date(1858, 11, 17).toordinal()


def provisional_designations(mjd: float, count: int, *, first_index: int = 0) -> np.ndarray:
    """``count`` packed provisional designations of the half-month of ``mjd`` (``K26W00A`` ...).

    Designation k (counting from ``first_index``) has second letter k mod 25 and cycle k // 25, as
    the MPC assigns them; callers that make several batches in one half-month pass increasing
    ``first_index`` to keep them unique.
    """
    date = _dt.date.fromordinal(int(np.floor(mjd)) + _MJD0)
    half = _HALF_MONTHS[2 * (date.month - 1) + (date.day > 15)]
    last = first_index + count
    if first_index < 0 or last > 620 * 25:
        raise OrbitError(f"first_index: {first_index} + {count} exceeds one half-month's "
                         "designations")
    return np.array([pack_provisional(date.year, half, _SECOND_LETTERS[k % 25], k // 25)
                     for k in range(first_index, last)])


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v, axis=-1, keepdims=True)


def _free_velocity(helio_ecl: np.ndarray, kind: str, rng: np.random.Generator) -> np.ndarray:
    """Heliocentric ecliptic velocity (n, 3) au/day: prograde, tilted and flight-path angled."""
    incl_sigma, path_sigma = np.deg2rad(KINDS[kind])
    n = helio_ecl.shape[0]
    r = np.linalg.norm(helio_ecl, axis=-1)
    r_hat = helio_ecl / r[:, None]
    t_hat = _unit(np.cross([0.0, 0.0, 1.0], r_hat))
    n_hat = np.cross(r_hat, t_hat)
    if kind == "main-belt":
        speed = np.sqrt(GM_SUN_AU3_PER_DAY2 / r) * rng.uniform(0.92, 1.08, n)
    else:
        a = np.maximum(rng.uniform(1.0, 2.5, n), 0.6 * r)
        speed = np.sqrt(GM_SUN_AU3_PER_DAY2 * (2.0 / r - 1.0 / a))
    tilt = rng.normal(0.0, incl_sigma, n)
    path = rng.normal(0.0, path_sigma, n)
    direction = (np.cos(path)[:, None] * (np.cos(tilt)[:, None] * t_hat
                                          + np.sin(tilt)[:, None] * n_hat)
                 + np.sin(path)[:, None] * r_hat)
    return speed[:, None] * direction


def _velocity_for_rate(u_hat: np.ndarray, delta: np.ndarray, rate_rad_per_day: np.ndarray,
                       free_helio: np.ndarray, obs_vel: np.ndarray, sun_vel: np.ndarray
                       ) -> np.ndarray:
    """Heliocentric velocity (n, 3) that gives the sky rate ``rate_rad_per_day`` exactly.

    The direction of motion on the sky is the one the population-like velocity ``free_helio``
    would give; the sky-plane speed is rescaled to the requested rate, and the line-of-sight
    component is chosen so that the heliocentric speed equals ``|free_helio|`` when that is
    reachable (else the closest reachable speed), keeping the orbit population-like.
    """
    rel = free_helio + sun_vel - obs_vel
    perp = rel - np.einsum("ij,ij->i", rel, u_hat)[:, None] * u_hat
    w_hat = _unit(perp)
    # Heliocentric velocity with the requested sky motion and no line-of-sight motion.
    base = obs_vel - sun_vel + (rate_rad_per_day * delta)[:, None] * w_hat
    base = base - np.einsum("ij,ij->i", base, u_hat)[:, None] * u_hat
    b_perp2 = np.einsum("ij,ij->i", base, base)
    target2 = np.einsum("ij,ij->i", free_helio, free_helio)
    # |base + x û|² = target² → x = ±sqrt(target² − |base|²); take the sign of the free motion
    # along the line of sight.
    sign = np.where(np.einsum("ij,ij->i", free_helio, u_hat) >= 0.0, 1.0, -1.0)
    x = sign * np.sqrt(np.clip(target2 - b_perp2, 0.0, None))
    return base + x[:, None] * u_hat


def orbit_through(ra_deg, dec_deg, mjd_tai, *, geocentric_distance_au, obs_lon_deg: float,
                  obs_lat_deg: float, obs_height_m: float, rng: np.random.Generator,
                  rate_deg_per_day=None, v_mag=20.0, g: float = 0.15, kind: str = "main-belt",
                  first_index: int = 0) -> OrbitCatalog:
    """Orbits of objects seen at (``ra_deg``, ``dec_deg``) from the site at ``mjd_tai``.

    Parameters
    ----------
    ra_deg, dec_deg : float or ndarray
        Topocentric astrometric ICRS direction (deg), scalar or shape (n,).
    mjd_tai : float or ndarray
        Epoch (TAI MJD), scalar or shape (n,); becomes the epoch of the elements.
    geocentric_distance_au : float or ndarray, keyword-only
        Distance from the observer (au); topocentric and geocentric differ by ≤ 1 Earth radius.
    obs_lon_deg, obs_lat_deg, obs_height_m : float, keyword-only
        Observatory (geodetic east longitude, latitude in deg, height in m).
    rng : numpy.random.Generator, keyword-only
        Source of the random velocity directions and speeds.
    rate_deg_per_day : float or ndarray, optional, keyword-only
        Wanted sky rate (deg/day) in a random direction; by default the rate follows from a
        random ``kind``-like heliocentric velocity.
    v_mag : float or ndarray, keyword-only
        Wanted apparent V magnitude at the epoch; sets H through the H,G phase function.
    g : float, keyword-only
        Slope parameter G.
    kind : {"main-belt", "neo"}, keyword-only
        Velocity population: near-circular, low inclination; or eccentric, inclined.
    first_index : int, keyword-only
        Index of the first provisional designation (see :func:`provisional_designations`).

    Returns
    -------
    OrbitCatalog
        n orbits with epoch ``mjd_tai`` (as TT ≈ TDB), so that
        :func:`~alertprod.orbits.predict_positions` returns the requested direction (to < 1 mas)
        and distance at that epoch.

    Raises
    ------
    OrbitError
        For invalid inputs or when the requested rate needs an unbound orbit.
    """
    if kind not in KINDS:
        raise OrbitError(f"kind: {kind!r} is not one of {sorted(KINDS)}")
    ra, dec, mjd, delta = (np.atleast_1d(np.asarray(x, dtype=float)) for x in
                           np.broadcast_arrays(ra_deg, dec_deg, mjd_tai, geocentric_distance_au))
    if not np.all(delta > 0.0):
        raise OrbitError("geocentric_distance_au: must be positive")
    if not np.all(np.abs(dec) <= 90.0):
        raise OrbitError("dec_deg: must be within [-90, 90]")
    n = ra.shape[0]
    states = observer_states(mjd, obs_lon_deg=obs_lon_deg, obs_lat_deg=obs_lat_deg,
                             obs_height_m=obs_height_m)
    ra_r, dec_r = np.deg2rad(ra), np.deg2rad(dec)
    u_hat = np.stack([np.cos(dec_r) * np.cos(ra_r), np.cos(dec_r) * np.sin(ra_r), np.sin(dec_r)],
                     axis=-1)
    tau = delta / SPEED_OF_LIGHT_AU_PER_DAY
    # The object at emission time t − τ, heliocentric, ICRS axes.
    helio = (states.observer_pos_au + delta[:, None] * u_hat
             - (states.sun_pos_au - states.sun_vel_au_per_day * tau[:, None]))
    r = np.linalg.norm(helio, axis=-1)
    vel_ecl = _free_velocity(equatorial_to_ecliptic(helio), kind, rng)
    if rate_deg_per_day is not None:
        rate = np.broadcast_to(np.deg2rad(np.asarray(rate_deg_per_day, dtype=float)), (n,))
        if not np.all(rate >= 0.0):
            raise OrbitError("rate_deg_per_day: must be non-negative")
        vel = _velocity_for_rate(u_hat, delta, rate, ecliptic_to_equatorial(vel_ecl),
                                 states.observer_vel_au_per_day, states.sun_vel_au_per_day)
        vel_ecl = equatorial_to_ecliptic(vel)
    try:
        elements = state_to_elements(StateVector(equatorial_to_ecliptic(helio), vel_ecl),
                                     states.mjd_tdb - tau)
    except OrbitError as exc:
        raise OrbitError("rate_deg_per_day: the requested motion needs an unbound orbit") from exc
    elements = propagate(elements, states.mjd_tdb)
    phase = np.rad2deg(np.arccos(np.clip(
        np.einsum("ij,ij->i", helio, delta[:, None] * u_hat) / (r * delta), -1.0, 1.0)))
    h = np.asarray(v_mag, dtype=float) - hg_magnitude(0.0, g, r, delta, phase)
    designations = provisional_designations(float(mjd.min()), n, first_index=first_index)
    return OrbitCatalog.from_elements(elements, designations, h=h, g=g)

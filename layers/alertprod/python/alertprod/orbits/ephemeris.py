"""Topocentric, light-time-corrected positions of known solar-system objects at given epochs.

The observer's barycentric position is astropy's builtin Earth ephemeris (ERFA ``epv00``, no
download) plus the site's GCRS position; the objects move on two-body heliocentric orbits
(:mod:`alertprod.orbits.kepler`). Positions are astrometric ICRS: the direction from the observer
at t to the object at t − τ with τ = Δ/c, without aberration or light deflection — the frame in
which catalogue stars, hence DiaSource coordinates, are measured.
"""

from __future__ import annotations

import warnings
from typing import NamedTuple

import astropy.units as u
import erfa
import numpy as np
from astropy.coordinates import (
    EarthLocation,
    angular_separation,
    get_body_barycentric_posvel,
    solar_system_ephemeris,
)
from astropy.time import Time
from astropy.utils import iers
from astropy.utils.exceptions import AstropyWarning

from alertprod.errors import OrbitError
from alertprod.orbits.catalog import OrbitCatalog
from alertprod.orbits.kepler import (
    SPEED_OF_LIGHT_AU_PER_DAY,
    KeplerPropagator,
    ecliptic_to_equatorial,
)

__all__ = ["Ephemeris", "ObserverStates", "observer_states", "predict_positions",
           "predict_positions_many", "select_near", "hg_magnitude"]

#: Propagations per epoch: at t, t − τ₁, t − τ₂; each iteration gains a factor v/c ≈ 1e-4.
LIGHT_TIME_ITERATIONS = 3


class Ephemeris(NamedTuple):
    """Predicted positions; every field has shape (n,) (one epoch) or (m, n) (m epochs).

    Attributes
    ----------
    ss_object_id : ndarray of int64
        ``ssObjectId`` of each object.
    mjd_tai : ndarray of float
        Epoch of the prediction (TAI MJD).
    ra_deg, dec_deg : ndarray of float
        Topocentric astrometric ICRS position (deg), light-time corrected.
    ra_rate_deg_per_day : ndarray of float
        dRA/dt · cos(Dec) (deg/day).
    dec_rate_deg_per_day : ndarray of float
        dDec/dt (deg/day).
    delta_au, r_au : ndarray of float
        Topocentric and heliocentric distance (au).
    phase_angle_deg, elongation_deg : ndarray of float
        Sun–object–observer and Sun–observer–object angles (deg).
    v_mag : ndarray of float
        Apparent V magnitude of the H,G system (mag).

    Orbits that cannot be propagated (e ≥ 1, a ≤ 0) give NaN in every float field.
    """

    ss_object_id: np.ndarray
    mjd_tai: np.ndarray
    ra_deg: np.ndarray
    dec_deg: np.ndarray
    ra_rate_deg_per_day: np.ndarray
    dec_rate_deg_per_day: np.ndarray
    delta_au: np.ndarray
    r_au: np.ndarray
    phase_angle_deg: np.ndarray
    elongation_deg: np.ndarray
    v_mag: np.ndarray

    def select(self, index) -> Ephemeris:
        """The same fields indexed by ``index`` (mask or indices over the last axis)."""
        return Ephemeris(*(np.asarray(f)[..., index] for f in self))


class ObserverStates(NamedTuple):
    """Barycentric ICRS states at m epochs; positions (m, 3) au, velocities (m, 3) au/day."""

    mjd_tdb: np.ndarray
    observer_pos_au: np.ndarray
    observer_vel_au_per_day: np.ndarray
    sun_pos_au: np.ndarray
    sun_vel_au_per_day: np.ndarray


def observer_states(mjd_tai: np.ndarray, *, obs_lon_deg: float, obs_lat_deg: float,
                    obs_height_m: float) -> ObserverStates:
    """Barycentric states of the observer and the Sun at the epochs ``mjd_tai`` (shape (m,)).

    One vectorised astropy call per body for all epochs, builtin ephemeris, no download: Earth
    rotation beyond the bundled IERS tables uses astropy's predictions (the ≤ 0.9 s UT1 error
    moves the site by < 0.5 km, < 0.1 mas at 0.01 au).
    """
    mjd = np.atleast_1d(np.asarray(mjd_tai, dtype=float))
    if mjd.ndim != 1 or not np.all(np.isfinite(mjd)):
        raise OrbitError("mjd_tai: must be finite, scalar or shape (m,)")
    if not -90.0 <= obs_lat_deg <= 90.0:
        raise OrbitError(f"obs_lat_deg: {obs_lat_deg} is not a latitude")
    t = Time(mjd, format="mjd", scale="tai")
    location = EarthLocation.from_geodetic(obs_lon_deg * u.deg, obs_lat_deg * u.deg,
                                           obs_height_m * u.m)
    with (warnings.catch_warnings(), iers.conf.set_temp("auto_download", False),
          iers.conf.set_temp("auto_max_age", None),
          iers.conf.set_temp("iers_degraded_accuracy", "ignore"),
          solar_system_ephemeris.set("builtin")):
        warnings.simplefilter("ignore", AstropyWarning)
        warnings.simplefilter("ignore", erfa.ErfaWarning)
        earth_p, earth_v = get_body_barycentric_posvel("earth", t)
        sun_p, sun_v = get_body_barycentric_posvel("sun", t)
        site_p, site_v = location.get_gcrs_posvel(t)
        tdb = t.tdb
    au, au_d = u.au, u.au / u.day
    obs_p = (earth_p.xyz + site_p.xyz).to_value(au).T
    obs_v = (earth_v.xyz + site_v.xyz).to_value(au_d).T
    mjd_tdb = (tdb.jd1 - 2400000.5) + tdb.jd2
    return ObserverStates(mjd_tdb, obs_p, obs_v, sun_p.xyz.to_value(au).T,
                          sun_v.xyz.to_value(au_d).T)


def hg_magnitude(h: np.ndarray, g: np.ndarray, r_au: np.ndarray, delta_au: np.ndarray,
                 phase_angle_deg: np.ndarray) -> np.ndarray:
    """Apparent magnitude in the IAU H,G system (Bowell et al. 1989), broadcasting inputs."""
    tan_half = np.tan(np.deg2rad(phase_angle_deg) / 2.0)
    phi1 = np.exp(-3.33 * tan_half**0.63)
    phi2 = np.exp(-1.87 * tan_half**1.22)
    with np.errstate(divide="ignore"):
        return (h + 5.0 * np.log10(r_au * delta_au)
                - 2.5 * np.log10((1.0 - g) * phi1 + g * phi2))


def _angle(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Angle (deg) between vectors (..., 3), accurate at all angles (atan2 of |a×b| and a·b)."""
    return np.rad2deg(np.arctan2(np.linalg.norm(np.cross(a, b), axis=-1),
                                 np.einsum("...k,...k->...", a, b)))


def _predict(catalog: OrbitCatalog, mjd_tai: np.ndarray, states: ObserverStates) -> Ephemeris:
    """Core: m epochs × n objects, fields of shape (m, n)."""
    good = (catalog.e >= 0.0) & (catalog.e < 1.0) & (catalog.a > 0.0)
    elements = catalog.elements
    if not np.all(good):
        elements = elements._replace(e=np.where(good, catalog.e, 0.0),
                                     a_au=np.where(good, catalog.a, 1.0))
    t = states.mjd_tdb[:, None]
    obs_p = states.observer_pos_au[:, None, :]
    sun_p, sun_v = states.sun_pos_au[:, None, :], states.sun_vel_au_per_day[:, None, :]
    tau = np.zeros(t.shape[:1] + (len(catalog),))
    propagator = KeplerPropagator(elements)
    big_e = None
    for _ in range(LIGHT_TIME_ITERATIONS):
        state, big_e = propagator.state(t - tau, guess=big_e)
        helio = ecliptic_to_equatorial(state.pos_au)
        # The Sun moves ~1 km/day² off a straight line: linear motion over τ ≤ hours is exact.
        rho = sun_p - sun_v * tau[..., None] + helio - obs_p
        delta = np.linalg.norm(rho, axis=-1)
        tau = delta / SPEED_OF_LIGHT_AU_PER_DAY
    # rho, delta: the object at t − τ' seen from the observer at t, where τ' (the previous
    # iterate) differs from delta/c by ~(v/c)² τ ≈ 1e-8 τ: centimetres.
    vel = ecliptic_to_equatorial(state.vel_au_per_day) + sun_v
    v_rel = vel - states.observer_vel_au_per_day[:, None, :]
    ra = np.arctan2(rho[..., 1], rho[..., 0])
    dec = np.arctan2(rho[..., 2], np.hypot(rho[..., 0], rho[..., 1]))
    east = np.stack([-np.sin(ra), np.cos(ra), np.zeros_like(ra)], axis=-1)
    north = np.stack([-np.sin(dec) * np.cos(ra), -np.sin(dec) * np.sin(ra), np.cos(dec)], axis=-1)
    ra_rate = np.einsum("...k,...k->...", v_rel, east) / delta
    dec_rate = np.einsum("...k,...k->...", v_rel, north) / delta
    r = np.linalg.norm(helio, axis=-1)
    phase = _angle(-helio, -rho)
    elongation = _angle(states.sun_pos_au[:, None, :] - obs_p, rho)
    v_mag = hg_magnitude(catalog.h, catalog.g, r, delta, phase)
    fields = [np.remainder(np.rad2deg(ra), 360.0), np.rad2deg(dec), np.rad2deg(ra_rate),
              np.rad2deg(dec_rate), delta, r, phase, elongation, v_mag]
    if not np.all(good):
        fields = [np.where(good, f, np.nan) for f in fields]
    ids = np.broadcast_to(catalog.ss_object_ids, delta.shape)
    mjd = np.broadcast_to(np.asarray(mjd_tai, dtype=float)[:, None], delta.shape)
    return Ephemeris(ids, mjd, *fields)


def _check_catalog(catalog: OrbitCatalog) -> None:
    if not isinstance(catalog, OrbitCatalog):
        raise OrbitError(f"catalog: expected OrbitCatalog, got {type(catalog).__name__}")


def predict_positions(catalog: OrbitCatalog, mjd_tai: float, *, obs_lon_deg: float,
                      obs_lat_deg: float, obs_height_m: float) -> Ephemeris:
    """Where every object of ``catalog`` appears from a site at one epoch.

    Parameters
    ----------
    catalog : OrbitCatalog
        n orbits.
    mjd_tai : float
        Epoch, e.g. an exposure midpoint (TAI MJD).
    obs_lon_deg, obs_lat_deg, obs_height_m : float, keyword-only
        Geodetic (WGS84) east longitude, latitude (deg) and height (m) of the observatory.

    Returns
    -------
    Ephemeris
        Fields of shape (n,).

    Notes
    -----
    Two-body motion from osculating elements: the error grows with |t − epoch| (planetary
    perturbations), about 1″ after a few weeks for main-belt orbits; see docs/solar-system.md.
    """
    _check_catalog(catalog)
    if np.ndim(mjd_tai) != 0:
        raise OrbitError("mjd_tai: one epoch expected, use predict_positions_many for several")
    states = observer_states(np.array([float(mjd_tai)]), obs_lon_deg=obs_lon_deg,
                             obs_lat_deg=obs_lat_deg, obs_height_m=obs_height_m)
    eph = _predict(catalog, np.array([float(mjd_tai)]), states)
    return Ephemeris(*(np.array(f[0]) for f in eph))


def predict_positions_many(catalog: OrbitCatalog, mjd_tai: np.ndarray, *, obs_lon_deg: float,
                           obs_lat_deg: float, obs_height_m: float,
                           max_rows: int = 2_000_000) -> Ephemeris:
    """Positions of every object at each of m epochs (e.g. an asteroid across all past visits).

    Parameters
    ----------
    catalog : OrbitCatalog
        n orbits.
    mjd_tai : ndarray
        Epochs (TAI MJD), shape (m,).
    obs_lon_deg, obs_lat_deg, obs_height_m : float, keyword-only
        Observatory, as in :func:`predict_positions`.
    max_rows : int, keyword-only
        Epochs are processed in chunks of at most ``max_rows`` (epoch, object) pairs to bound
        memory (about 1 kB per pair).

    Returns
    -------
    Ephemeris
        Fields of shape (m, n); row k is epoch ``mjd_tai[k]``.
    """
    _check_catalog(catalog)
    mjd = np.atleast_1d(np.asarray(mjd_tai, dtype=float))
    if mjd.ndim != 1:
        raise OrbitError(f"mjd_tai: expected shape (m,), got {mjd.shape}")
    states = observer_states(mjd, obs_lon_deg=obs_lon_deg, obs_lat_deg=obs_lat_deg,
                             obs_height_m=obs_height_m)
    step = max(1, max_rows // max(1, len(catalog)))
    parts = [_predict(catalog, mjd[k:k + step],
                      ObserverStates(*(f[k:k + step] for f in states)))
             for k in range(0, len(mjd), step)]
    if len(parts) == 1:
        return parts[0]
    return Ephemeris(*(np.concatenate(f, axis=0) for f in zip(*parts, strict=True)))


def select_near(ephem: Ephemeris, ra_deg: float, dec_deg: float, radius_deg: float) -> np.ndarray:
    """Boolean mask of the predictions within ``radius_deg`` of (``ra_deg``, ``dec_deg``).

    Parameters
    ----------
    ephem : Ephemeris
        Predictions, any shape.
    ra_deg, dec_deg : float
        Field centre (deg).
    radius_deg : float
        Search radius (deg), > 0.

    Returns
    -------
    ndarray of bool
        Same shape as ``ephem.ra_deg``; NaN predictions are never selected.
    """
    if not radius_deg > 0.0:
        raise OrbitError(f"radius_deg: must be positive, got {radius_deg}")
    sep = angular_separation(np.deg2rad(ra_deg), np.deg2rad(dec_deg),
                             np.deg2rad(ephem.ra_deg), np.deg2rad(ephem.dec_deg))
    with np.errstate(invalid="ignore"):
        return np.asarray(sep <= np.deg2rad(radius_deg))

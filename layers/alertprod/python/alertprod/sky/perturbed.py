"""The simulator's perturbed asteroid motion, integrated independently of the pipeline's.

The simulated asteroids move under the Sun, the eight planets and the Moon, with the Sun's
first post-Newtonian term: that is their *true* motion, from which the truth positions and the
``mpcorb.dat`` written for the pipeline both derive. The pipeline has its own perturbed
propagation (:mod:`alertprod.orbits.nbody`: REBOUND's IAS15 integrating the planets with the
asteroids from astropy's initial states); were the simulator to use the same code, a test of
the pipeline against the truth would be circular. This module differs in every part that
does the work:

- integrator: scipy's ``solve_ivp`` with DOP853 (Dormand–Prince explicit Runge–Kutta of order 8
  with step-size control), not IAS15 (implicit Gauss–Radau of order 15);
- perturbers: *driven* along the ephemeris — the ERFA routines behind astropy's builtin
  ephemeris (``epv00`` for the Earth, ``plan94`` for the planets, ``moon98`` for the Moon) are
  evaluated at every force evaluation — where the pipeline integrates the planets from initial
  states (which drift from the ephemeris by 10⁴–10⁵ km a year);
- formulation: heliocentric equations of motion on ICRS axes with the indirect term, where the
  pipeline integrates barycentric ecliptic coordinates; the force and the 1PN term are written
  here anew.

What stays shared is the ephemeris source (ERFA) and nature's constants (the DE440 masses).
The ephemeris error itself is bounded by the check against JPL Horizons (DE441, the
full force model) in ``tests/unit/sky/test_sky_perturbed.py``. Why no JPL kernel: ``jplephem``
with a DE file would add a runtime dependency and tens of MB of data to the package for a
perturber-position error that the Horizons check shows to be below 0.01″ over months.
"""

from __future__ import annotations

from typing import NamedTuple

import erfa
import numpy as np
from scipy.integrate import solve_ivp

from alertprod.errors import OrbitError
from alertprod.orbits.catalog import OrbitCatalog
from alertprod.orbits.ephemeris import Ephemeris, predict_positions
from alertprod.orbits.kepler import (
    GAUSS_K,
    SPEED_OF_LIGHT_AU_PER_DAY,
    StateVector,
    ecliptic_to_equatorial,
    elements_to_state,
    equatorial_to_ecliptic,
    state_to_elements,
)

__all__ = ["GM_RATIO", "TrueStates", "integrate_states", "perturber_positions",
           "osculating_catalog", "propagate_catalog", "true_positions"]

#: GM of each perturber over GM of the Sun, from the DE440 values (Park et al. 2021, AJ 161,
#: 105; km³/s²: Sun 132712440041.279419, Mercury 22031.868551, Venus 324858.592, Earth
#: 398600.435507, Moon 4902.800118, Mars system 42828.375816, Jupiter system 126712764.1,
#: Saturn system 37940584.8418, Uranus system 5794556.4, Neptune system 6836527.10058).
GM_RATIO = {
    "mercury": 22031.868551 / 132712440041.279419,
    "venus": 324858.592 / 132712440041.279419,
    "earth": 398600.435507 / 132712440041.279419,
    "moon": 4902.800118 / 132712440041.279419,
    "mars": 42828.375816 / 132712440041.279419,
    "jupiter": 126712764.1 / 132712440041.279419,
    "saturn": 37940584.8418 / 132712440041.279419,
    "uranus": 5794556.4 / 132712440041.279419,
    "neptune": 6836527.10058 / 132712440041.279419,
}
_MU_SUN = GAUSS_K**2  # au³/day², the MPC's GM of the Sun
_MU = np.array([GM_RATIO[b] for b in GM_RATIO]) * _MU_SUN
_PLAN94_INDEX = {"mercury": 1, "venus": 2, "mars": 4, "jupiter": 5, "saturn": 6, "uranus": 7,
                 "neptune": 8}
_MJD_ZERO_JD = 2400000.5

#: DOP853 tolerances: relative, and absolute on positions (au) and velocities (au/day).
#: Ten times tighter moves no position by 1e-9 au (0.0002″ at 1 au) over ±150 days (tested).
RTOL = 1e-12
ATOL_POS_AU = 1e-14
ATOL_VEL_AU_PER_DAY = 1e-16


class TrueStates(NamedTuple):
    """Heliocentric ecliptic J2000 states of n objects at m epochs.

    Attributes
    ----------
    mjd_tdb : ndarray, shape (m,)
    pos_au : ndarray, shape (m, n, 3)
    vel_au_per_day : ndarray, shape (m, n, 3)
    """

    mjd_tdb: np.ndarray
    pos_au: np.ndarray
    vel_au_per_day: np.ndarray


def perturber_positions(mjd_tdb: float) -> np.ndarray:
    """Heliocentric ICRS positions (9, 3) au of the perturbers, in :data:`GM_RATIO` order.

    ERFA's ``epv00`` (Earth), ``moon98`` (Moon, geocentric) and ``plan94`` (the other planets)
    at one TDB epoch: ~0.1 ms for all nine.
    """
    pvh, _ = erfa.epv00(_MJD_ZERO_JD, mjd_tdb)
    earth = pvh["p"]
    out = np.empty((9, 3))
    for k, body in enumerate(GM_RATIO):
        if body == "earth":
            out[k] = earth
        elif body == "moon":
            out[k] = earth + erfa.moon98(_MJD_ZERO_JD, mjd_tdb)["p"]
        else:
            out[k] = erfa.plan94(_MJD_ZERO_JD, mjd_tdb, _PLAN94_INDEX[body])["p"]
    return out


def _acceleration(t: float, y: np.ndarray) -> np.ndarray:
    """d/dt of the flattened heliocentric ICRS states (n·6,), the whole population at once."""
    state = y.reshape(-1, 6)
    r, v = state[:, :3], state[:, 3:]
    bodies = perturber_positions(t)                                # (9, 3)
    r2 = np.einsum("ij,ij->i", r, r)
    rn = np.sqrt(r2)
    acc = -_MU_SUN * r / (r2 * rn)[:, None]
    d = bodies[None, :, :] - r[:, None, :]                          # (n, 9, 3) object -> body
    dn3 = np.linalg.norm(d, axis=-1) ** 3
    bn3 = np.linalg.norm(bodies, axis=-1) ** 3
    # direct pull of each body, minus the pull of the body on the Sun (heliocentric frame)
    acc += np.einsum("k,nkj->nj", _MU, d / dn3[..., None]) - (_MU / bn3) @ bodies
    # the Sun's first post-Newtonian term (PPN beta = gamma = 1)
    rv = np.einsum("ij,ij->i", r, v)
    v2 = np.einsum("ij,ij->i", v, v)
    scale = _MU_SUN / (SPEED_OF_LIGHT_AU_PER_DAY**2 * r2 * rn)
    acc += (scale * (4.0 * _MU_SUN / rn - v2))[:, None] * r + (4.0 * scale * rv)[:, None] * v
    return np.concatenate([v, acc], axis=1).ravel()


def _integrate_branch(y0: np.ndarray, start: float, epochs: np.ndarray, atol: np.ndarray,
                      rtol: float) -> np.ndarray:
    """States (k, n·6) at ``epochs`` (all on one side of ``start``, any order)."""
    direction = 1.0 if epochs.max() >= start else -1.0
    order = np.argsort(direction * epochs)
    out = np.empty((epochs.size, y0.size))
    y, t = y0, start
    # stop exactly on every epoch (no dense-output interpolation)
    for k in order:
        if epochs[k] != t:
            sol = solve_ivp(_acceleration, (t, float(epochs[k])), y, method="DOP853", rtol=rtol,
                            atol=atol)
            if not sol.success:
                raise OrbitError(f"integration to MJD {epochs[k]} failed: {sol.message}")
            y, t = sol.y[:, -1], float(epochs[k])
        out[k] = y
    return out


def integrate_states(pos_au: np.ndarray, vel_au_per_day: np.ndarray, start_mjd_tdb: float,
                     epochs_mjd_tdb, *, rtol: float = RTOL) -> TrueStates:
    """Integrate heliocentric states from one epoch to others, under the Sun, planets and Moon.

    Parameters
    ----------
    pos_au, vel_au_per_day : ndarray, shape (n, 3)
        Heliocentric ecliptic J2000 states at ``start_mjd_tdb``.
    start_mjd_tdb : float
        Their epoch (TDB MJD).
    epochs_mjd_tdb : float or ndarray, shape (m,)
        Wanted epochs (TDB MJD), any order, before and after the start.
    rtol : float, keyword-only
        Relative tolerance of DOP853 (absolute tolerances scale with it).

    Returns
    -------
    TrueStates
        Heliocentric ecliptic J2000 states of shape (m, n, 3).

    Raises
    ------
    OrbitError
        On malformed input or a failed integration.

    Notes
    -----
    All objects move together (one state vector of 6n numbers): the step size follows the
    most demanding one, e.g. a near-Earth object in an encounter.
    """
    pos = np.atleast_2d(np.asarray(pos_au, dtype=float))
    vel = np.atleast_2d(np.asarray(vel_au_per_day, dtype=float))
    if pos.shape != vel.shape or pos.ndim != 2 or pos.shape[1] != 3:
        raise OrbitError(f"pos_au {pos.shape} and vel_au_per_day {vel.shape}: need (n, 3) each")
    if not (np.all(np.isfinite(pos)) and np.all(np.isfinite(vel))):
        raise OrbitError("pos_au, vel_au_per_day: must be finite")
    epochs = np.atleast_1d(np.asarray(epochs_mjd_tdb, dtype=float))
    if epochs.ndim != 1 or not np.all(np.isfinite(epochs)) or not np.isfinite(start_mjd_tdb):
        raise OrbitError("epochs_mjd_tdb, start_mjd_tdb: must be finite, epochs of shape (m,)")
    n = pos.shape[0]
    y0 = np.concatenate([ecliptic_to_equatorial(pos), ecliptic_to_equatorial(vel)], axis=1).ravel()
    scale = rtol / RTOL
    atol = np.tile(np.r_[np.full(3, ATOL_POS_AU), np.full(3, ATOL_VEL_AU_PER_DAY)] * scale, n)
    out = np.empty((epochs.size, 6 * n))
    for branch in (epochs >= start_mjd_tdb, epochs < start_mjd_tdb):
        if np.any(branch):
            out[branch] = _integrate_branch(y0, float(start_mjd_tdb), epochs[branch], atol, rtol)
    states = out.reshape(epochs.size, n, 6)
    return TrueStates(epochs, equatorial_to_ecliptic(states[..., :3]),
                      equatorial_to_ecliptic(states[..., 3:]))


def propagate_catalog(catalog: OrbitCatalog, epochs_mjd_tdb, *, rtol: float = RTOL) -> TrueStates:
    """States of every orbit of ``catalog`` at each epoch: one integration per element epoch.

    Parameters
    ----------
    catalog : OrbitCatalog
        n bound orbits; the state at each row's ``epoch_mjd`` (TDB ≈ TT) is the start.
    epochs_mjd_tdb : float or ndarray, shape (m,)
    rtol : float, keyword-only

    Returns
    -------
    TrueStates
        Shape (m, n, 3), heliocentric ecliptic J2000.
    """
    if not isinstance(catalog, OrbitCatalog):
        raise OrbitError(f"catalog: expected OrbitCatalog, got {type(catalog).__name__}")
    epochs = np.atleast_1d(np.asarray(epochs_mjd_tdb, dtype=float))
    n = len(catalog)
    pos = np.empty((epochs.size, n, 3))
    vel = np.empty((epochs.size, n, 3))
    start = elements_to_state(catalog.elements)
    for epoch in np.unique(catalog.epoch_mjd):
        rows = np.flatnonzero(catalog.epoch_mjd == epoch)
        part = integrate_states(start.pos_au[rows], start.vel_au_per_day[rows], float(epoch),
                                epochs, rtol=rtol)
        pos[:, rows], vel[:, rows] = part.pos_au, part.vel_au_per_day
    return TrueStates(epochs, pos, vel)


def osculating_catalog(catalog: OrbitCatalog, pos_au: np.ndarray, vel_au_per_day: np.ndarray,
                       epoch_mjd: float) -> OrbitCatalog:
    """``catalog``'s objects (names, H, G, bookkeeping kept) with the osculating elements of
    heliocentric ecliptic states (n, 3) at ``epoch_mjd``."""
    elements = state_to_elements(StateVector(pos_au, vel_au_per_day), float(epoch_mjd))
    out = OrbitCatalog.from_elements(elements, catalog.packed_designation, h=catalog.h,
                                     g=catalog.g, designation=catalog.designation)
    out.mpc_info, out.last_obs = catalog.mpc_info.copy(), catalog.last_obs.copy()
    return out


def true_positions(catalog: OrbitCatalog, mjd_tai, *, obs_lon_deg: float, obs_lat_deg: float,
                   obs_height_m: float, states: TrueStates | None = None) -> Ephemeris:
    """Topocentric astrometric positions at each epoch from the perturbed motion.

    Parameters
    ----------
    catalog : OrbitCatalog
        n orbits: the true states at their epochs.
    mjd_tai : ndarray, shape (m,)
        Epochs (TAI MJD), e.g. the visits' midpoints.
    obs_lon_deg, obs_lat_deg, obs_height_m : float, keyword-only
        The observatory.
    states : TrueStates, optional, keyword-only
        The states at the TDB of ``mjd_tai`` if already integrated.

    Returns
    -------
    Ephemeris
        Fields of shape (m, n), as :func:`alertprod.orbits.predict_positions_many`.

    Notes
    -----
    At each epoch the osculating elements of the integrated state carry the light-time step
    (the object at t − Δ/c, minutes: the planets move it by millimetres meanwhile) through
    :func:`alertprod.orbits.predict_positions`, which also gives rates and magnitudes.
    """
    from astropy.time import Time

    mjd = np.atleast_1d(np.asarray(mjd_tai, dtype=float))
    tdb = Time(mjd, format="mjd", scale="tai").tdb
    mjd_tdb = (tdb.jd1 - _MJD_ZERO_JD) + tdb.jd2
    if states is None:
        states = propagate_catalog(catalog, mjd_tdb)
    elif states.pos_au.shape != (mjd.size, len(catalog), 3):
        raise OrbitError("states: not the catalog's states at these epochs")
    rows = []
    for k in range(mjd.size):
        osc = osculating_catalog(catalog, states.pos_au[k], states.vel_au_per_day[k], mjd_tdb[k])
        rows.append(predict_positions(osc, float(mjd[k]), obs_lon_deg=obs_lon_deg,
                                      obs_lat_deg=obs_lat_deg, obs_height_m=obs_height_m))
    return Ephemeris(*(np.stack(f, axis=0) for f in zip(*rows, strict=True)))

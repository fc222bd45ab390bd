"""Perturbed orbits: MPC elements integrated with the Sun, the planets and the Moon (REBOUND).

Two-body propagation (:mod:`alertprod.orbits.kepler`) is exact at the elements' epoch and
drifts as (t − epoch)²: against JPL Horizons it passes 1″ after ~30 days for an Earth
co-orbital, 16″ after four months for an Atira and 81″ after 15 months for (1221) Amor
(docs/solar-system.md, "Error budget"). This module integrates the same elements with the
Sun, the eight planets and the Moon as massive bodies and the Sun's post-Newtonian term, and
matches Horizons to 0.001″ (median; ≤ 0.035″ over 470 days for 27 objects, Atira to TNO).

- :func:`propagate_states` — heliocentric states at any epochs, the whole catalog at once;
- :func:`osculating_elements_at` — the same catalog with osculating elements at a new epoch,
  so that the two-body :func:`~alertprod.orbits.predict_positions` is accurate near it;
- :func:`predict_positions_nbody` — topocentric astrometric positions at visit epochs
  (precovery across years), the same fields as :func:`~alertprod.orbits.predict_positions_many`.

Why REBOUND: IAS15 (Rein & Spiegel 2015) is an adaptive 15th-order integrator accurate to
machine precision through close planetary encounters, and REBOUND ships as a 2 MB wheel with
no data files. Its test particles (``N_active``, ``testparticle_type = 0``) let one simulation
carry thousands of asteroids beside the ten massive bodies: 0.04 ms of CPU per orbit to move
a catalog by a day, 0.18 ms by 30 days. ASSIST (Holman et al. 2023) would add the JPL DE440
planets and 16 massive asteroids but needs ~0.7 GB of ephemeris kernels, above Lambda's 250 MB
layer limit; its gain over astropy's builtin planets is below what the Horizons tests resolve.
"""

from __future__ import annotations

import dataclasses
from typing import NamedTuple

import numpy as np

from alertprod.errors import OrbitError
from alertprod.orbits._perturbers import PERTURBERS, new_simulation
from alertprod.orbits.catalog import OrbitCatalog
from alertprod.orbits.ephemeris import Ephemeris, ObserverStates, _predict, observer_states
from alertprod.orbits.kepler import (
    GAUSS_K,
    GM_SUN_AU3_PER_DAY2,
    Elements,
    StateVector,
    elements_to_state,
    state_to_elements,
)

__all__ = ["OrbitStates", "osculating_elements_at", "predict_positions_nbody",
           "propagate_states"]

#: Test particles per REBOUND simulation. IAS15 takes one step size for the whole simulation,
#: so an object in a close encounter slows its chunk. Measured on 10⁴ main-belt orbits moved by
#: 30 days: chunks of 1,000–5,000 cost the same to ±5 %, 200 cost 40 % more, 10⁴ 30 % more.
DEFAULT_CHUNK_SIZE = 2000


class OrbitStates(NamedTuple):
    """Heliocentric ecliptic J2000 states of n objects at m epochs.

    Attributes
    ----------
    mjd_tdb : ndarray, shape (m,)
        Epochs (TDB MJD), in the order asked for.
    pos_au : ndarray, shape (m, n, 3)
        Positions relative to the Sun (au); NaN for orbits that cannot be integrated.
    vel_au_per_day : ndarray, shape (m, n, 3)
        Velocities relative to the Sun (au/day).
    """

    mjd_tdb: np.ndarray
    pos_au: np.ndarray
    vel_au_per_day: np.ndarray


def _check_catalog(catalog: OrbitCatalog) -> None:
    if not isinstance(catalog, OrbitCatalog):
        raise OrbitError(f"catalog: expected OrbitCatalog, got {type(catalog).__name__}")


def _check_chunk_size(chunk_size: int) -> None:
    if not (isinstance(chunk_size, (int, np.integer)) and chunk_size >= 1):
        raise OrbitError(f"chunk_size: must be a positive integer, got {chunk_size!r}")


def _integrable(catalog: OrbitCatalog) -> np.ndarray:
    """Rows on bound elliptic orbits with finite elements (the others give NaN)."""
    elements = np.stack([catalog.a, catalog.e, catalog.i, catalog.node, catalog.argperi,
                         catalog.mean_anomaly, catalog.epoch_mjd])
    bound = (catalog.a > 0.0) & (catalog.e >= 0.0) & (catalog.e < 1.0)
    return np.all(np.isfinite(elements), axis=0) & bound


def _integrate_chunk(elements: Elements, epoch_mjd: float, epochs_mjd_tdb: np.ndarray,
                     pos: np.ndarray, vel: np.ndarray) -> None:
    """Integrate one chunk (all at ``epoch_mjd``) to every epoch; fill ``pos``/``vel`` (m, k, 3).

    Epochs after the start are reached going forward, those before it going backward, each in
    one simulation that stops exactly on every epoch.
    """
    start = elements_to_state(elements)
    after = epochs_mjd_tdb >= epoch_mjd
    for branch, order in ((after, np.argsort(epochs_mjd_tdb)),
                          (~after, np.argsort(-epochs_mjd_tdb))):
        order = order[branch[order]]
        if order.size == 0:
            continue
        sim = new_simulation(epoch_mjd, start.pos_au, start.vel_au_per_day, bodies=PERTURBERS)
        n_active = sim.N_active
        buffer = np.empty((sim.N, 6))
        for k in order:
            sim.integrate(float(epochs_mjd_tdb[k]), exact_finish_time=1)
            sim.serialize_particle_data(xyzvxvyvz=buffer)
            pos[k] = buffer[n_active:, :3] - buffer[0, :3]
            vel[k] = buffer[n_active:, 3:] - buffer[0, 3:]


def propagate_states(catalog: OrbitCatalog, epochs_mjd_tdb: np.ndarray | float, *,
                     chunk_size: int = DEFAULT_CHUNK_SIZE) -> OrbitStates:
    """Heliocentric states of every orbit of ``catalog`` at each epoch, planets included.

    Parameters
    ----------
    catalog : OrbitCatalog
        n orbits; their epochs (TT) may differ (one simulation per distinct epoch and chunk).
    epochs_mjd_tdb : float or ndarray, shape (m,)
        Epochs (TDB MJD; TT within 2 ms), any order, before or after the elements' epochs.
    chunk_size : int, keyword-only
        Orbits per simulation.

    Returns
    -------
    OrbitStates
        ``pos_au`` and ``vel_au_per_day`` of shape (m, n, 3), heliocentric ecliptic J2000.

    Raises
    ------
    OrbitError
        When an argument is malformed.

    Notes
    -----
    Each chunk starts from the two-body state of its elements at their epoch and is integrated
    with IAS15 beside the Sun, the eight planets and the Moon (DE440 masses, initial states from
    astropy's builtin ephemeris) and the Sun's 1PN term. Not modelled: the ~16 largest asteroids'
    pull (≲ 0.01″ a year except in rare encounters with Ceres or Vesta), non-gravitational forces
    (comets, some small NEOs) and the Earth's oblateness (encounters within a few Earth radii).
    Cost grows with |t − epoch| (IAS15 takes steps of ~1 day). Rows that are not bound elliptic
    orbits give NaN.
    """
    _check_catalog(catalog)
    _check_chunk_size(chunk_size)
    epochs = np.atleast_1d(np.asarray(epochs_mjd_tdb, dtype=float))
    if epochs.ndim != 1 or not np.all(np.isfinite(epochs)):
        raise OrbitError("epochs_mjd_tdb: must be finite, scalar or shape (m,)")
    n = len(catalog)
    pos = np.full((epochs.size, n, 3), np.nan)
    vel = np.full((epochs.size, n, 3), np.nan)
    good = _integrable(catalog)
    elements = catalog.elements
    for epoch in np.unique(catalog.epoch_mjd[good]):
        rows = np.flatnonzero(good & (catalog.epoch_mjd == epoch))
        for first in range(0, rows.size, chunk_size):
            chunk = rows[first:first + chunk_size]
            part_pos = np.empty((epochs.size, chunk.size, 3))
            part_vel = np.empty((epochs.size, chunk.size, 3))
            _integrate_chunk(Elements(*(np.asarray(f)[chunk] for f in elements)), float(epoch),
                             epochs, part_pos, part_vel)
            pos[:, chunk] = part_pos
            vel[:, chunk] = part_vel
    return OrbitStates(epochs, pos, vel)


def _osculating_catalog(catalog: OrbitCatalog, state: StateVector,
                        epoch_mjd: float) -> OrbitCatalog:
    """``catalog`` with the osculating elements of heliocentric states (n, 3) at ``epoch_mjd``.

    States that are not on bound orbits (NaN, or hyperbolic after a close planetary encounter)
    get a = e = NaN (angles 0), hence NaN predictions.
    """
    n = len(catalog)
    r = np.linalg.norm(state.pos_au, axis=-1)
    v2 = np.einsum("ij,ij->i", state.vel_au_per_day, state.vel_au_per_day)
    with np.errstate(invalid="ignore", divide="ignore"):
        bound = np.isfinite(r) & (2.0 / r - v2 / GM_SUN_AU3_PER_DAY2 > 0.0)
    # Unbound rows: a = e = NaN, angles 0 — the ephemeris then gives NaN instead of failing.
    columns = {name: np.full(n, np.nan if name in ("a_au", "e") else 0.0)
               for name in Elements._fields}
    if np.any(bound):
        osc = state_to_elements(StateVector(state.pos_au[bound], state.vel_au_per_day[bound]),
                                epoch_mjd)
        for name in Elements._fields:
            columns[name][bound] = getattr(osc, name)
    a = columns["a_au"]
    with np.errstate(invalid="ignore"):
        mean_motion = np.rad2deg(GAUSS_K / a**1.5)
    return dataclasses.replace(
        catalog, a=a, e=columns["e"], i=columns["i_deg"], node=columns["node_deg"],
        argperi=columns["argperi_deg"], mean_anomaly=columns["mean_anomaly_deg"],
        epoch_mjd=np.full(n, float(epoch_mjd)), mean_motion=mean_motion)


def osculating_elements_at(catalog: OrbitCatalog, epoch_mjd_tt: float, *,
                           chunk_size: int = DEFAULT_CHUNK_SIZE) -> OrbitCatalog:
    """The same objects with perturbed osculating elements at a new epoch.

    Parameters
    ----------
    catalog : OrbitCatalog
        n orbits (heliocentric ecliptic J2000, TT epochs).
    epoch_mjd_tt : float
        New epoch (TT MJD), like the catalog's ``epoch_mjd``: pass a whole day (0h TT) to keep
        :func:`~alertprod.orbits.write_mpcorb` from moving it.
    chunk_size : int, keyword-only
        Orbits per simulation.

    Returns
    -------
    OrbitCatalog
        Designations, H, G and bookkeeping columns unchanged; ``a``, ``e``, ``i``, ``node``,
        ``argperi``, ``mean_anomaly`` and ``mean_motion`` osculating at ``epoch_mjd_tt``
        (``epoch_mjd`` set to it). Orbits that cannot be integrated, or that are unbound there,
        get ``a`` = ``e`` = NaN and zero angles: NaN predictions.

    Notes
    -----
    This is the catalog refresh: the two-body :func:`~alertprod.orbits.predict_positions` from
    the returned elements is then as good as from MPC elements at that epoch — exact there,
    ~0.1″ after ~10 days and up to ~1″ after 30 days (docs/solar-system.md, "Error budget").
    """
    if np.ndim(epoch_mjd_tt) != 0 or not np.isfinite(epoch_mjd_tt):
        raise OrbitError(f"epoch_mjd_tt: one finite epoch expected, got {epoch_mjd_tt!r}")
    states = propagate_states(catalog, float(epoch_mjd_tt), chunk_size=chunk_size)
    return _osculating_catalog(catalog, StateVector(states.pos_au[0], states.vel_au_per_day[0]),
                               float(epoch_mjd_tt))


def predict_positions_nbody(catalog: OrbitCatalog, mjd_tai: np.ndarray | float, *,
                            obs_lon_deg: float, obs_lat_deg: float, obs_height_m: float,
                            states: OrbitStates | None = None,
                            chunk_size: int = DEFAULT_CHUNK_SIZE) -> Ephemeris:
    """Topocentric positions of every object at each epoch, from perturbed orbits.

    Parameters
    ----------
    catalog : OrbitCatalog
        n orbits.
    mjd_tai : float or ndarray, shape (m,)
        Epochs, e.g. exposure midpoints (TAI MJD), any order and span.
    obs_lon_deg, obs_lat_deg, obs_height_m : float, keyword-only
        Geodetic (WGS84) east longitude, latitude (deg) and height (m) of the observatory.
    states : OrbitStates, optional, keyword-only
        The catalog's states at these epochs from :func:`propagate_states` (``mjd_tdb`` the
        TDB of ``mjd_tai``, within 1 ms): visits from several sites then share one integration.
    chunk_size : int, keyword-only
        Orbits per simulation.

    Returns
    -------
    Ephemeris
        Fields of shape (m, n), as :func:`~alertprod.orbits.predict_positions_many`.

    Raises
    ------
    OrbitError
        When an argument is malformed or ``states`` is not at these epochs.

    Notes
    -----
    The orbits are integrated once to all epochs; at each epoch the osculating elements of the
    integrated state carry the light-time correction (the object at t − Δ/c, hours at most, over
    which the planets' pull moves it by millimetres) through the same code as the two-body path.
    """
    _check_catalog(catalog)
    mjd = np.atleast_1d(np.asarray(mjd_tai, dtype=float))
    if mjd.ndim != 1:
        raise OrbitError(f"mjd_tai: expected scalar or shape (m,), got {mjd.shape}")
    observers = observer_states(mjd, obs_lon_deg=obs_lon_deg, obs_lat_deg=obs_lat_deg,
                                obs_height_m=obs_height_m)
    if states is None:
        states = propagate_states(catalog, observers.mjd_tdb, chunk_size=chunk_size)
    elif (states.pos_au.shape != (mjd.size, len(catalog), 3)
          or not np.allclose(states.mjd_tdb, observers.mjd_tdb, rtol=0.0, atol=1e-8)):
        raise OrbitError("states: not the catalog's states at the TDB of mjd_tai")
    rows = []
    for k in range(mjd.size):
        osculating = _osculating_catalog(
            catalog, StateVector(states.pos_au[k], states.vel_au_per_day[k]),
            observers.mjd_tdb[k])
        rows.append(_predict(osculating, mjd[k:k + 1],
                             ObserverStates(*(f[k:k + 1] for f in observers))))
    return Ephemeris(*(np.concatenate(f, axis=0) for f in zip(*rows, strict=True)))


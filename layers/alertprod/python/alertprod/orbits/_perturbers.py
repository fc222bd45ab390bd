"""The bodies that perturb asteroids, and the REBOUND simulation that carries them.

Private to :mod:`alertprod.orbits.nbody`. The Sun, the eight planets and the Moon start from
astropy's builtin ephemeris (ERFA ``epv00`` for the Earth and Sun, ``plan94`` for the planets,
``moon98`` for the Moon: no download) at the elements' epoch and are integrated with the
asteroids, which are massless test particles. The Sun's first post-Newtonian term acts on the
test particles through a vectorised ``additional_forces`` callback.
"""

from __future__ import annotations

import ctypes
import warnings
from functools import lru_cache

import astropy.units as u
import erfa
import numpy as np
import rebound
from astropy.coordinates import get_body_barycentric, solar_system_ephemeris
from astropy.time import Time
from astropy.utils.exceptions import AstropyWarning

from alertprod.orbits.kepler import (
    GM_SUN_AU3_PER_DAY2,
    SPEED_OF_LIGHT_AU_PER_DAY,
    equatorial_to_ecliptic,
)

__all__ = ["PERTURBER_GM_KM3_PER_S2", "PERTURBERS", "new_simulation"]

#: GM (km³/s²) of the Sun and the perturbers, JPL DE440 (Park et al. 2021, AJ 161, 105);
#: planets with their moons except the Earth, whose Moon is a body of its own. Masses in the
#: simulation are GM / GM_sun, with G = k² (au³/day²), as the MPC's elements assume.
PERTURBER_GM_KM3_PER_S2 = {
    "sun": 132712440041.279419,
    "mercury": 22031.868551,
    "venus": 324858.592000,
    "earth": 398600.435507,
    "moon": 4902.800118,
    "mars": 42828.375816,
    "jupiter": 126712764.100000,
    "saturn": 37940584.841800,
    "uranus": 5794556.400000,
    "neptune": 6836527.100580,
}
#: Perturbers integrated with the asteroids, after the Sun (astropy body names).
PERTURBERS = ("mercury", "venus", "earth", "moon", "mars", "jupiter", "saturn", "uranus",
              "neptune")

#: Particle fields x, y, z, vx, vy, vz, ax, ay, az are consecutive doubles in REBOUND's struct.
_XYZ_OFFSETS = np.array([getattr(rebound.Particle, name).offset
                         for name in ("x", "y", "z", "vx", "vy", "vz", "ax", "ay", "az")])
if np.any(np.diff(_XYZ_OFFSETS) != 8):
    raise ImportError("rebound.Particle: x … az are no longer consecutive doubles")


#: Step (days) of the five-point derivative that gives the bodies' initial velocities.
_DERIVATIVE_STEP_DAYS = 0.2


@lru_cache(maxsize=8)
def body_states(mjd_tdb: float, bodies: tuple[str, ...]) -> tuple[np.ndarray, np.ndarray]:
    """Barycentric ecliptic J2000 positions (k, 3) au and velocities (k, 3) au/day of bodies.

    Velocities are the five-point derivative of astropy's positions (step 0.2 day, error
    < 1 mm/s) rather than its own: ``plan94``'s velocities of the outer planets disagree with
    its positions by up to 0.02 km/s, and planets started with them drift from the
    ephemeris by 2–7·10⁵ km in a year against 0.1–0.6·10⁵ km with the derivative.
    """
    h = _DERIVATIVE_STEP_DAYS
    t = Time(mjd_tdb + h * np.array([-2.0, -1.0, 0.0, 1.0, 2.0]), format="mjd", scale="tdb")
    pos, vel = [], []
    with (warnings.catch_warnings(), solar_system_ephemeris.set("builtin")):
        warnings.simplefilter("ignore", AstropyWarning)
        warnings.simplefilter("ignore", erfa.ErfaWarning)
        for body in bodies:
            xyz = get_body_barycentric(body, t).xyz.to_value(u.au).T
            pos.append(xyz[2])
            vel.append((8.0 * (xyz[3] - xyz[1]) - (xyz[4] - xyz[0])) / (12.0 * h))
    return equatorial_to_ecliptic(np.array(pos)), equatorial_to_ecliptic(np.array(vel))


def _particles(sim: rebound.Simulation) -> np.ndarray:
    """(N, 9) float view of x, y, z, vx, vy, vz, ax, ay, az of every particle, no copy.

    Valid until particles are added or removed (REBOUND may then move its array).
    """
    itemsize = ctypes.sizeof(rebound.Particle)
    address = ctypes.cast(sim._particles, ctypes.c_void_p).value + int(_XYZ_OFFSETS[0])
    buffer = (ctypes.c_char * (sim.N * itemsize)).from_address(address)
    return np.ndarray((sim.N, 9), dtype=np.float64, buffer=buffer, strides=(itemsize, 8))


def _solar_relativity(first_test: int, particles: np.ndarray | None = None):
    """``additional_forces`` callback: the Sun's 1PN acceleration on every test particle.

    a = GM/(c² r³) [(4 GM/r − v²) r + 4 (r·v) v] with r, v relative to the Sun (particle 0);
    PPN β = γ = 1. It moves the mean motion by ~3 GM/(c² a): 0.01–0.06″ after 100 days for
    orbits inside 1 au. ``particles`` is the simulation's array (:func:`_particles`), taken
    once since no particle is added during the integration.
    """
    mu = GM_SUN_AU3_PER_DAY2
    c2 = SPEED_OF_LIGHT_AU_PER_DAY**2

    def force(sim_pointer) -> None:
        p = particles if particles is not None else _particles(sim_pointer.contents)
        r = p[first_test:, 0:3] - p[0, 0:3]
        v = p[first_test:, 3:6] - p[0, 3:6]
        r2 = np.einsum("ij,ij->i", r, r)
        rn = np.sqrt(r2)
        radial = 4.0 * mu / rn - np.einsum("ij,ij->i", v, v)
        along = 4.0 * np.einsum("ij,ij->i", r, v)
        scale = mu / (c2 * r2 * rn)
        p[first_test:, 6:9] += (scale * radial)[:, None] * r + (scale * along)[:, None] * v

    return force


def new_simulation(mjd_tdb: float, helio_pos_au: np.ndarray, helio_vel_au_per_day: np.ndarray,
                   *, bodies: tuple[str, ...] = PERTURBERS, relativity: bool = True
                   ) -> rebound.Simulation:
    """IAS15 simulation at ``mjd_tdb``: the Sun, ``bodies``, then n test particles.

    Parameters
    ----------
    mjd_tdb : float
        Start time (TDB MJD); the simulation's time unit is the day, its length the au.
    helio_pos_au, helio_vel_au_per_day : ndarray, shape (n, 3)
        Heliocentric ecliptic J2000 states of the asteroids at ``mjd_tdb``.
    bodies : tuple of str, keyword-only
        Perturbers after the Sun, astropy names with an entry in ``PERTURBER_GM_KM3_PER_S2``.
    relativity : bool, keyword-only
        Add the Sun's post-Newtonian acceleration on the asteroids.

    Returns
    -------
    rebound.Simulation
        Particles 0 … len(bodies) are active (barycentric ecliptic), the rest massless test
        particles that feel them but not each other (``testparticle_type = 0``). Keep the
        returned object alive while integrating: it owns the force callback.
    """
    names = ("sun", *bodies)
    pos, vel = body_states(float(mjd_tdb), names)
    sim = rebound.Simulation()
    sim.G = GM_SUN_AU3_PER_DAY2
    sim.integrator = "ias15"
    sim.t = float(mjd_tdb)
    gm_sun = PERTURBER_GM_KM3_PER_S2["sun"]
    for name, p, v in zip(names, pos, vel, strict=True):
        sim.add(m=PERTURBER_GM_KM3_PER_S2[name] / gm_sun, x=p[0], y=p[1], z=p[2],
                vx=v[0], vy=v[1], vz=v[2])
    sim.N_active = len(names)
    sim.testparticle_type = 0
    n = helio_pos_au.shape[0]
    for _ in range(n):
        sim.add(m=0.0)
    states = np.empty((sim.N, 6))
    sim.serialize_particle_data(xyzvxvyvz=states)
    states[len(names):, :3] = helio_pos_au + pos[0]
    states[len(names):, 3:] = helio_vel_au_per_day + vel[0]
    sim.set_serialized_particle_data(xyzvxvyvz=states)
    if relativity and n:
        sim.additional_forces = _solar_relativity(len(names), _particles(sim))
        sim.force_is_velocity_dependent = 1
    return sim

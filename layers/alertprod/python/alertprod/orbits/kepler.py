"""Two-body (Keplerian) mechanics around the Sun, vectorised over objects and epochs.

Elements follow the Minor Planet Center's convention: heliocentric, referred to the ecliptic and
equinox of J2000.0; positions in au, velocities in au/day, times in days (TDB ≈ TT).

Why hand-written: no well-kept library that fits a Lambda layer does vectorised two-body
propagation from MPC elements. astropy has frames and time scales but no orbit propagation;
poliastro was archived in 2023 and its fork hapsira has had no release since 2023; kete,
adam-core and sorcha propagate with N-body integrators that need downloaded SPICE/JPL ephemeris
kernels (hundreds of MB) and compiled extensions. The closed-form two-body solution is a few
dozen lines of numpy; it is checked against astropy's planetary ephemeris in the tests.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from alertprod.errors import OrbitError

__all__ = [
    "GAUSS_K",
    "GM_SUN_AU3_PER_DAY2",
    "OBLIQUITY_J2000_DEG",
    "SPEED_OF_LIGHT_AU_PER_DAY",
    "Elements",
    "KeplerPropagator",
    "StateVector",
    "solve_kepler",
    "elements_to_state",
    "state_to_elements",
    "propagate",
    "ecliptic_to_equatorial",
    "equatorial_to_ecliptic",
]

#: Gaussian gravitational constant k (au^1.5 / day), so GM_sun = k² au³/day².
GAUSS_K = 0.01720209895
GM_SUN_AU3_PER_DAY2 = GAUSS_K**2
#: IAU 1976/2006 obliquity of the ecliptic at J2000.0: 84381.448″ (the MPC's ecliptic).
OBLIQUITY_J2000_DEG = 84381.448 / 3600.0
#: c = 299792.458 km/s in au/day (IAU 2012 au = 149597870.7 km).
SPEED_OF_LIGHT_AU_PER_DAY = 299792.458 * 86400.0 / 149597870.7

_COS_EPS = np.cos(np.deg2rad(OBLIQUITY_J2000_DEG))
_SIN_EPS = np.sin(np.deg2rad(OBLIQUITY_J2000_DEG))


class Elements(NamedTuple):
    """Osculating heliocentric ecliptic J2000 elements; every field has shape (n,) or broadcasts.

    Attributes
    ----------
    a_au, e : semi-major axis (au) and eccentricity (0 ≤ e < 1).
    i_deg, node_deg, argperi_deg, mean_anomaly_deg : angles in degrees.
    epoch_mjd : epoch of the elements (TT ≈ TDB MJD).
    """

    a_au: np.ndarray
    e: np.ndarray
    i_deg: np.ndarray
    node_deg: np.ndarray
    argperi_deg: np.ndarray
    mean_anomaly_deg: np.ndarray
    epoch_mjd: np.ndarray


class StateVector(NamedTuple):
    """Cartesian position (au) and velocity (au/day), each of shape (..., 3)."""

    pos_au: np.ndarray
    vel_au_per_day: np.ndarray


def solve_kepler(mean_anomaly_rad: np.ndarray, e: np.ndarray, *, guess: np.ndarray | None = None,
                 tol: float = 1e-14, max_iter: int = 50) -> np.ndarray:
    """Eccentric anomaly E solving Kepler's equation E − e sin E = M, elliptic orbits.

    Newton's method from Danby's start E₀ = M + 0.85 e sign(sin M), which converges for every
    0 ≤ e < 1 (Danby 1987).

    Parameters
    ----------
    mean_anomaly_rad : ndarray
        Mean anomaly M (rad), any shape; reduced to (−π, π].
    e : ndarray
        Eccentricity, broadcastable against ``mean_anomaly_rad``; 0 ≤ e < 1.
    guess : ndarray, optional, keyword-only
        Starting E (rad) close to the answer (e.g. the solution a few minutes earlier), in the
        same revolution as the reduced M; replaces Danby's start.
    tol : float, keyword-only
        Convergence threshold on |ΔE| (rad).
    max_iter : int, keyword-only
        Iteration cap.

    Returns
    -------
    ndarray
        E (rad), the broadcast shape, in the same revolution as the reduced M.

    Raises
    ------
    OrbitError
        When ``e`` is outside [0, 1) or the iteration does not converge.
    """
    e = np.asarray(e, dtype=float)
    if np.any(~(e >= 0.0) | ~(e < 1.0)):
        raise OrbitError("e: eccentricity must be in [0, 1) (elliptic orbits only)")
    m = np.asarray(mean_anomaly_rad, dtype=float)
    m, ecc = np.broadcast_arrays(m, e)
    m = np.remainder(m + np.pi, 2.0 * np.pi) - np.pi
    if guess is None:
        big_e = m + 0.85 * ecc * np.sign(np.sin(m))
    else:
        big_e = np.broadcast_to(np.asarray(guess, dtype=float), m.shape)
        # A guess across the ±π wrap would start a revolution away.
        big_e = np.where(np.abs(big_e - m) > 1.0, m + 0.85 * ecc * np.sign(np.sin(m)), big_e)
    for _ in range(max_iter):
        f = big_e - ecc * np.sin(big_e) - m
        step = f / (1.0 - ecc * np.cos(big_e))
        big_e = big_e - step
        if np.all(np.abs(step) <= tol):
            break
    else:
        raise OrbitError("Kepler's equation did not converge")
    return big_e


def _rotation_pq(i_rad, node_rad, argperi_rad):
    """Perifocal unit vectors P (to perihelion) and Q, shape (..., 3), ecliptic frame."""
    ci, si = np.cos(i_rad), np.sin(i_rad)
    cn, sn = np.cos(node_rad), np.sin(node_rad)
    cw, sw = np.cos(argperi_rad), np.sin(argperi_rad)
    p = np.stack([cn * cw - sn * sw * ci, sn * cw + cn * sw * ci, sw * si], axis=-1)
    q = np.stack([-cn * sw - sn * cw * ci, -sn * sw + cn * cw * ci, cw * si], axis=-1)
    return p, q


class KeplerPropagator:
    """Elements prepared once (orientation, mean motion) for repeated propagation.

    Parameters
    ----------
    elements : Elements
        Fields of shape (n,) or scalars; a_au > 0 and 0 ≤ e < 1.
    """

    def __init__(self, elements: Elements):
        self.a = np.asarray(elements.a_au, dtype=float)
        self.e = np.asarray(elements.e, dtype=float)
        if np.any(~(self.a > 0.0)):
            raise OrbitError("a_au: semi-major axis must be positive (elliptic orbits only)")
        if np.any(~(self.e >= 0.0) | ~(self.e < 1.0)):
            raise OrbitError("e: eccentricity must be in [0, 1) (elliptic orbits only)")
        self.n_rad = GAUSS_K / self.a**1.5
        self.m0_rad = np.deg2rad(np.asarray(elements.mean_anomaly_deg, dtype=float))
        self.epoch = np.asarray(elements.epoch_mjd, dtype=float)
        self.root = np.sqrt(1.0 - self.e * self.e)
        self.p, self.q = _rotation_pq(np.deg2rad(elements.i_deg), np.deg2rad(elements.node_deg),
                                      np.deg2rad(elements.argperi_deg))

    def state(self, mjd, *, guess: np.ndarray | None = None) -> tuple[StateVector, np.ndarray]:
        """State at TDB MJD ``mjd`` (broadcast against (n,)) and the eccentric anomaly used."""
        m = self.m0_rad + self.n_rad * (np.asarray(mjd, dtype=float) - self.epoch)
        big_e = solve_kepler(m, self.e, guess=guess)
        cos_e, sin_e = np.cos(big_e), np.sin(big_e)
        x = self.a * (cos_e - self.e)
        y = self.a * self.root * sin_e
        edot = self.n_rad / (1.0 - self.e * cos_e)
        vx = -self.a * sin_e * edot
        vy = self.a * self.root * cos_e * edot
        pos = x[..., None] * self.p + y[..., None] * self.q
        vel = vx[..., None] * self.p + vy[..., None] * self.q
        return StateVector(pos, vel), big_e


def elements_to_state(elements: Elements, mjd: np.ndarray | float | None = None) -> StateVector:
    """Heliocentric ecliptic J2000 state at time(s) ``mjd`` by two-body propagation.

    Parameters
    ----------
    elements : Elements
        Fields of shape (n,) (or scalars).
    mjd : float or ndarray, optional
        TDB MJD; broadcast against the element arrays (e.g. shape (m, 1) with (n,) elements gives
        (m, n)). Defaults to each object's own epoch.

    Returns
    -------
    StateVector
        ``pos_au`` and ``vel_au_per_day`` of shape (broadcast shape, 3).

    Notes
    -----
    The mean motion is derived from ``a_au`` with GM_sun = k² (massless asteroid), as the MPC does.
    """
    t = elements.epoch_mjd if mjd is None else mjd
    return KeplerPropagator(elements).state(t)[0]


def state_to_elements(state: StateVector, epoch_mjd: np.ndarray | float) -> Elements:
    """Osculating elements of heliocentric ecliptic J2000 state vectors (inverse of the above).

    Parameters
    ----------
    state : StateVector
        ``pos_au`` and ``vel_au_per_day`` of shape (n, 3).
    epoch_mjd : float or ndarray
        TDB MJD of the states, scalar or shape (n,).

    Returns
    -------
    Elements
        Fields of shape (n,); angles in [0, 360). For an equatorial orbit (i = 0) the node is
        set to 0; for a circular orbit (e = 0) perihelion is put at the node.

    Raises
    ------
    OrbitError
        When a state is not on a bound elliptic orbit.
    """
    r = np.atleast_2d(np.asarray(state.pos_au, dtype=float))
    v = np.atleast_2d(np.asarray(state.vel_au_per_day, dtype=float))
    if r.shape != v.shape or r.shape[-1] != 3:
        raise OrbitError(f"state: position {r.shape} and velocity {v.shape} must both be (n, 3)")
    mu = GM_SUN_AU3_PER_DAY2
    rn = np.linalg.norm(r, axis=-1)
    v2 = np.einsum("...k,...k->...", v, v)
    inv_a = 2.0 / rn - v2 / mu
    if np.any(~(inv_a > 0.0)):
        raise OrbitError("state: unbound (parabolic/hyperbolic) orbit, only elliptic supported")
    a = 1.0 / inv_a
    h = np.cross(r, v)
    hn = np.linalg.norm(h, axis=-1)
    hxy = np.hypot(h[..., 0], h[..., 1])
    incl = np.arctan2(hxy, h[..., 2])
    equatorial = hxy <= 1e-15 * hn
    node = np.where(equatorial, 0.0, np.arctan2(h[..., 0], -h[..., 1]))
    # Argument of latitude u: angle from the node direction N to r within the orbital plane.
    n_hat = np.stack([np.cos(node), np.sin(node), np.zeros_like(node)], axis=-1)
    w_hat = h / hn[..., None]
    m_hat = np.cross(w_hat, n_hat)
    u = np.arctan2(np.einsum("...k,...k->...", r, m_hat), np.einsum("...k,...k->...", r, n_hat))
    # True anomaly from e cos ν = p/r − 1 and e sin ν = (r·v) h / (μ r).
    rv = np.einsum("...k,...k->...", r, v)
    ecos = hn * hn / (mu * rn) - 1.0
    esin = rv * hn / (mu * rn)
    e = np.hypot(ecos, esin)
    nu = np.arctan2(esin, ecos)
    argperi = u - nu
    big_e = 2.0 * np.arctan2(np.sqrt(1.0 - e) * np.sin(nu / 2), np.sqrt(1.0 + e) * np.cos(nu / 2))
    mean = big_e - e * np.sin(big_e)
    epoch = np.broadcast_to(np.asarray(epoch_mjd, dtype=float), a.shape).copy()
    deg = np.rad2deg
    return Elements(a, e, deg(incl), np.remainder(deg(node), 360.0),
                    np.remainder(deg(argperi), 360.0), np.remainder(deg(mean), 360.0), epoch)


def propagate(elements: Elements, mjd: np.ndarray | float) -> Elements:
    """Same orbits with the epoch moved to ``mjd`` (TDB MJD, scalar or per object).

    In the two-body problem only the mean anomaly changes, by n·(mjd − epoch).
    """
    a = np.asarray(elements.a_au, dtype=float)
    dm = np.rad2deg(GAUSS_K / a**1.5) * (np.asarray(mjd, dtype=float)
                                         - np.asarray(elements.epoch_mjd, dtype=float))
    mean = np.remainder(np.asarray(elements.mean_anomaly_deg) + dm, 360.0)
    return elements._replace(mean_anomaly_deg=mean,
                             epoch_mjd=np.broadcast_to(np.asarray(mjd, dtype=float),
                                                       mean.shape).copy())


def ecliptic_to_equatorial(xyz: np.ndarray) -> np.ndarray:
    """Rotate vectors (..., 3) from the ecliptic J2000 frame to ICRS axes.

    The MPC's (and JPL's) "ecliptic J2000" is the ICRF rotated about x by ε = 84381.448″, so this
    single rotation lands on ICRS with no frame-bias term.
    """
    xyz = np.asarray(xyz, dtype=float)
    x, y, z = xyz[..., 0], xyz[..., 1], xyz[..., 2]
    return np.stack([x, _COS_EPS * y - _SIN_EPS * z, _SIN_EPS * y + _COS_EPS * z], axis=-1)


def equatorial_to_ecliptic(xyz: np.ndarray) -> np.ndarray:
    """Inverse of :func:`ecliptic_to_equatorial`."""
    xyz = np.asarray(xyz, dtype=float)
    x, y, z = xyz[..., 0], xyz[..., 1], xyz[..., 2]
    return np.stack([x, _COS_EPS * y + _SIN_EPS * z, -_SIN_EPS * y + _COS_EPS * z], axis=-1)

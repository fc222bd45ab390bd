"""Orbits as the pipeline receives them: stale MPCORB elements, with errors graded by U.

The MPC publishes osculating elements at a standard epoch that stays for months, and every
orbit is only as good as its observations (the uncertainty parameter U). The simulator writes
``mpcorb.dat`` the same way:

- :func:`stale_catalog` — the true orbits' osculating elements at an epoch before the survey
  (the true states integrated back with :mod:`alertprod.sky.perturbed`);
- :func:`draw_uncertainty` and :func:`apply_orbit_errors` — a U per object and an error in
  the mean motion that gives the along-track drift :mod:`alertprod.orbits.uncertainty`
  models: a runoff drawn log-uniformly within U's band, read as the 1-σ longitude error after
  ten years, so that the longitude is off by δn·(t − epoch) with δn ~ N(0, runoff / 10 yr);
- :func:`mpc_info_with_u` — MPCORB.DAT columns 104-165 with that U.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt

import numpy as np

from alertprod.errors import ConfigError
from alertprod.orbits.catalog import OrbitCatalog
from alertprod.orbits.kepler import GAUSS_K
from alertprod.orbits.uncertainty import DECADE_DAYS, U_MAX, runoff_arcsec_per_decade
from alertprod.sky.perturbed import osculating_catalog, propagate_catalog

__all__ = ["apply_orbit_errors", "draw_uncertainty", "mpc_info_with_u", "mpcorb_epoch_mjd_tt",
           "stale_catalog"]

_MJD0_ORDINAL = _dt.date(1858, 11, 17).toordinal()
_K_DEG = np.rad2deg(GAUSS_K)


def mpcorb_epoch_mjd_tt(start_mjd_tai: float, offset_days: float) -> float:
    """The MPCORB epoch: the whole TT day nearest ``start − offset`` (the MPC's epochs are 0h TT).

    TT − TAI (32.184 s) only matters within half a minute of noon, where either day would do.
    """
    return float(np.floor(start_mjd_tai + 32.184 / 86400.0 - offset_days + 0.5))


def _date_text(mjd: float) -> str:
    return _dt.date.fromordinal(int(np.floor(mjd)) + _MJD0_ORDINAL).strftime("%Y%m%d")


def mpc_info_with_u(u: np.ndarray) -> np.ndarray:
    """MPCORB.DAT columns 104-165 of simulated orbits: U in column 106, reference
    ``SIMULATED``, no observations (62 characters each)."""
    return np.array([f"  {int(k):d} {'SIMULATED':9s} {0:5d} {1:3d} {0:4d} days {0.0:4.2f} "
                     f"{'':3s} {'':3s} {'alertprod':10s} 0000" for k in np.asarray(u).ravel()])


def stale_catalog(true_orbits: OrbitCatalog, epoch_mjd_tt: float) -> OrbitCatalog:
    """Osculating elements of the true (perturbed) motion at ``epoch_mjd_tt``.

    Parameters
    ----------
    true_orbits : OrbitCatalog
        The true states (at each row's epoch).
    epoch_mjd_tt : float
        A whole TT day (TDB within 2 ms), e.g. :func:`mpcorb_epoch_mjd_tt`.

    Returns
    -------
    OrbitCatalog
        Names, H and G of ``true_orbits``; U 0 in ``mpc_info``; the last observation set to
        the epoch's date (the orbit is "determined" there: :mod:`alertprod.orbits.uncertainty`
        counts its growth from that date).
    """
    states = propagate_catalog(true_orbits, float(epoch_mjd_tt))
    out = osculating_catalog(true_orbits, states.pos_au[0], states.vel_au_per_day[0],
                             float(epoch_mjd_tt))
    n = len(out)
    return dataclasses.replace(out, mpc_info=mpc_info_with_u(np.zeros(n, dtype=int)),
                               last_obs=np.full(n, _date_text(epoch_mjd_tt)))


def draw_uncertainty(weights, n: int, rng: np.random.Generator) -> np.ndarray:
    """U of n objects drawn with relative frequencies ``weights`` for U = 0, 1, … (int, (n,))."""
    w = np.asarray(weights, dtype=float)
    if w.ndim != 1 or not 1 <= w.size <= U_MAX + 1 or np.any(~(w >= 0.0)) or not w.sum() > 0.0:
        raise ConfigError(f"mpcorb_u_weights: need 1-{U_MAX + 1} non-negative weights with a "
                          f"positive sum, got {tuple(w.tolist())!r}")
    return rng.choice(w.size, size=n, p=w / w.sum())


def apply_orbit_errors(catalog: OrbitCatalog, u: np.ndarray, rng: np.random.Generator
                       ) -> tuple[OrbitCatalog, np.ndarray, np.ndarray]:
    """Give each orbit the mean-motion error of its U; write U into ``mpc_info``.

    Parameters
    ----------
    catalog : OrbitCatalog
        Exact elements (e.g. from :func:`stale_catalog`).
    u : ndarray of int, shape (n,)
        Uncertainty parameters.
    rng : numpy.random.Generator

    Returns
    -------
    catalog : OrbitCatalog
        ``a`` and ``mean_motion`` changed so that n changes by δn; M at the epoch unchanged
        (the position at the epoch stays right to δa, which is < 10⁻⁴ of a below U 6).
    runoff : ndarray, shape (n,)
        Drawn runoff (″ per decade), log-uniform in U's band.
    dn_arcsec_per_day : ndarray, shape (n,)
        The mean-motion error, ~ N(0, runoff / 10 yr), clipped to half the mean motion.
    """
    u = np.asarray(u, dtype=int)
    lo, hi = runoff_arcsec_per_decade(u, edge="lower"), runoff_arcsec_per_decade(u)
    runoff = np.exp(rng.uniform(np.log(lo), np.log(hi)))
    dn = rng.normal(0.0, 1.0, u.size) * runoff / DECADE_DAYS
    n0_deg = _K_DEG / catalog.a**1.5
    # half a revolution per decade (U 9) can exceed a slow orbit's own mean motion: keep n > 0
    dn = np.clip(dn, -1800.0 * n0_deg, 1800.0 * n0_deg)
    n_deg = n0_deg + dn / 3600.0
    a = (_K_DEG / n_deg) ** (2.0 / 3.0)
    out = dataclasses.replace(catalog, a=a, mean_motion=n_deg, mpc_info=mpc_info_with_u(u))
    return out, runoff, dn

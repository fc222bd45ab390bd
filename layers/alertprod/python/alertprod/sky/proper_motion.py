"""High-proper-motion stars: 5-parameter astrometry (position, proper motion, parallax).

The apparent position at epoch ``t`` is the reference position (at ``ref_epoch_mjd``, Gaia-like
J2016.0) moved by the proper motion and by the parallactic displacement seen from the Earth:

    Δα* = μα* Δt + ϖ (X sin α − Y cos α)
    Δδ  = μδ  Δt + ϖ (X cos α sin δ + Y sin α sin δ − Z cos δ)

where ``(X, Y, Z)`` is the Earth's barycentric position in au (ICRS, astropy's built-in
ephemeris, no download) — the standard parallax factors (e.g. Green, *Spherical Astronomy*,
§ 11.2). The offsets are applied with :meth:`astropy.coordinates.SkyCoord.spherical_offsets_by`.
The observer's ~4e-5 au diurnal offset from the geocentre (≤ 0.01 mas for ϖ ≤ 0.3″) and
light-time/radial-velocity terms are neglected. Templates hold each star at the template epoch,
one year before the survey, so the star leaves a dipole in difference images.
"""

from __future__ import annotations

import astropy.units as u
import numpy as np
from astropy.coordinates import SkyCoord, get_body_barycentric
from astropy.table import Table
from astropy.time import Time

from alertprod.sky.presets import SurveyConfig
from alertprod.sky.static_sky import _table, random_positions

__all__ = ["make_hpm_stars", "hpm_positions", "earth_barycentric_au", "REF_EPOCH_MJD"]

#: Reference epoch of the astrometry (J2016.0, as Gaia DR3), TAI MJD.
REF_EPOCH_MJD = 57388.0

_DAYS_PER_YEAR = 365.25


def make_hpm_stars(config: SurveyConfig, rng: np.random.Generator, *, n: int | None = None) -> Table:
    """High-proper-motion stars.

    Returns
    -------
    astropy.table.Table
        Columns of :func:`~alertprod.sky.static_sky.make_stars` (``kind`` "hpm_star";
        ``ra``/``dec`` at ``ref_epoch_mjd``) plus ``pmra`` (μα cos δ, mas/yr), ``pmdec`` (mas/yr),
        ``parallax`` (mas), ``ref_epoch_mjd``. Total proper motions 0.3-3″/yr, parallaxes 10-300 mas.
    """
    n = config.n_hpm_stars if n is None else n
    ra, dec = random_positions(config, n, rng, margin_pix=100)
    t = _table("hpm_star", ra, dec, rng.uniform(17.0, 20.5, n), rng.uniform(0.8, 1.6, n))
    pm = rng.uniform(300.0, 3000.0, n)
    angle = rng.uniform(0.0, 2 * np.pi, n)
    t["pmra"] = pm * np.sin(angle)
    t["pmdec"] = pm * np.cos(angle)
    t["parallax"] = rng.uniform(10.0, 300.0, n)
    t["ref_epoch_mjd"] = np.full(n, REF_EPOCH_MJD)
    # the reference position is set so that the star is in the field during the survey
    dt_yr = (config.start_mjd_tai - REF_EPOCH_MJD) / _DAYS_PER_YEAR
    back = SkyCoord(ra * u.deg, dec * u.deg).spherical_offsets_by(
        -t["pmra"] * dt_yr * u.mas, -t["pmdec"] * dt_yr * u.mas)
    t["ra"], t["dec"] = np.asarray(back.ra.deg) % 360.0, np.asarray(back.dec.deg)
    return t


def earth_barycentric_au(mjd_tai) -> np.ndarray:
    """Barycentric ICRS position of the Earth, au, shape (3,) or (3, n) for n epochs."""
    pos = get_body_barycentric("earth", Time(mjd_tai, format="mjd", scale="tai"))
    return pos.xyz.to_value(u.au)


def hpm_positions(stars: Table, mjd_tai: float, *, earth_au: np.ndarray | None = None
                  ) -> tuple[np.ndarray, np.ndarray]:
    """Apparent position of each star at one epoch (proper motion and parallax).

    Parameters
    ----------
    stars : astropy.table.Table
        As returned by :func:`make_hpm_stars`.
    mjd_tai : float
        Epoch, TAI MJD.
    earth_au : ndarray, shape (3,), optional
        The Earth's barycentric position at ``mjd_tai`` (computed when omitted).

    Returns
    -------
    ra_deg, dec_deg : ndarray, shape (n,)
    """
    if len(stars) == 0:
        return np.zeros(0), np.zeros(0)
    X, Y, Z = earth_barycentric_au(mjd_tai) if earth_au is None else earth_au
    ra = np.deg2rad(np.asarray(stars["ra"]))
    dec = np.deg2rad(np.asarray(stars["dec"]))
    plx = np.asarray(stars["parallax"])
    dt_yr = (mjd_tai - np.asarray(stars["ref_epoch_mjd"])) / _DAYS_PER_YEAR
    d_ra = np.asarray(stars["pmra"]) * dt_yr + plx * (X * np.sin(ra) - Y * np.cos(ra))
    d_dec = np.asarray(stars["pmdec"]) * dt_yr + plx * (
        X * np.cos(ra) * np.sin(dec) + Y * np.sin(ra) * np.sin(dec) - Z * np.cos(dec))
    c = SkyCoord(stars["ra"] * u.deg, stars["dec"] * u.deg).spherical_offsets_by(d_ra * u.mas, d_dec * u.mas)
    return np.asarray(c.ra.deg) % 360.0, np.asarray(c.dec.deg)

"""The static sky: stars and galaxies, with fluxes in the six bands.

Positions are uniform over the area the dithered focal plane can cover. Star magnitudes follow
a rising number count (a few bright stars saturate); colours follow a one-parameter linear SED.
Galaxies are Sérsic profiles (mostly exponential discs, some de Vaucouleurs) with ellipticity.
The static sky appears identically in the template and the science images, so it subtracts out.
"""

from __future__ import annotations

import astropy.units as u
import numpy as np
from astropy.coordinates import SkyCoord
from astropy.table import Table

from alertprod.sky.presets import BANDS, SurveyConfig, mag_to_njy

__all__ = ["random_positions", "sed_fluxes", "make_stars", "make_galaxies", "flux_columns",
           "SED_SLOPES"]

#: Magnitude offset per unit colour ``(g - r)`` of each band relative to r (a simple SED).
SED_SLOPES = {"u": 2.2, "g": 1.0, "r": 0.0, "i": -0.45, "z": -0.7, "y": -0.85}


def flux_columns() -> list[str]:
    """Names of the per-band flux columns of the truth tables: ``flux_u`` ... ``flux_y``."""
    return [f"flux_{b}" for b in BANDS]


def random_positions(config: SurveyConfig, n: int, rng: np.random.Generator, *,
                     margin_pix: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """Uniform positions over the dithered focal plane's area (shrunk by ``margin_pix``).

    Returns
    -------
    ra_deg, dec_deg : ndarray, shape (n,)
    """
    scale = config.pixel_scale_arcsec / 3600.0
    width = config.n_ccd_x * config.ccd_nx_pix + (config.n_ccd_x - 1) * config.gap_pix
    height = config.n_ccd_y * config.ccd_ny_pix + (config.n_ccd_y - 1) * config.gap_pix
    # the margin never shrinks the area below the central half of the focal plane
    half_w = max(width / 2.0 + config.dither_pix - margin_pix, width / 4.0) * scale
    half_h = max(height / 2.0 + config.dither_pix - margin_pix, height / 4.0) * scale
    du = rng.uniform(-half_w, half_w, n)
    dv = rng.uniform(-half_h, half_h, n)
    centre = SkyCoord(config.field_ra_deg * u.deg, config.field_dec_deg * u.deg)
    c = centre.spherical_offsets_by(du * u.deg, dv * u.deg)
    return np.asarray(c.ra.deg) % 360.0, np.asarray(c.dec.deg)


def sed_fluxes(mag_r: np.ndarray, color_gr: np.ndarray) -> np.ndarray:
    """Fluxes (nJy) in the six bands, shape (n, 6), from r magnitudes and ``g - r`` colours."""
    mags = np.asarray(mag_r, dtype=float)[:, None] + np.outer(
        np.asarray(color_gr, dtype=float), [SED_SLOPES[b] for b in BANDS])
    return mag_to_njy(mags)


def _table(kind: str, ra: np.ndarray, dec: np.ndarray, mag_r: np.ndarray, color: np.ndarray) -> Table:
    t = Table()
    t["kind"] = np.full(ra.size, kind, dtype="U10")
    t["ra"] = ra
    t["dec"] = dec
    t["mag_r"] = mag_r
    t["color_gr"] = color
    fluxes = sed_fluxes(mag_r, color)
    for j, name in enumerate(flux_columns()):
        t[name] = fluxes[:, j]
    return t


def make_stars(config: SurveyConfig, rng: np.random.Generator, *, n: int | None = None) -> Table:
    """Static stars.

    Magnitudes: a fraction ``config.bright_star_fraction`` bright (r 13.5-16, saturating), the rest drawn from ``dN/dm ∝ 10**(0.25 m)``
    over r 16-24; ``g - r`` uniform in 0.2-1.4.

    Returns
    -------
    astropy.table.Table
        ``kind`` ("star"), ``ra``, ``dec`` (deg), ``mag_r``, ``color_gr``, ``flux_u`` .. ``flux_y`` (nJy).
    """
    n = config.n_stars if n is None else n
    ra, dec = random_positions(config, n, rng)
    bright = rng.uniform(size=n) < config.bright_star_fraction
    # inverse CDF of dN/dm ∝ 10**(0.25 m) on [16, 24]
    k = 0.25 * np.log(10.0)
    lo, hi = np.exp(k * 16.0), np.exp(k * 24.0)
    faint = np.log(lo + rng.uniform(size=n) * (hi - lo)) / k
    mag = np.where(bright, rng.uniform(13.5, 16.0, n), faint)
    return _table("star", ra, dec, mag, rng.uniform(0.2, 1.4, n))


def make_galaxies(config: SurveyConfig, rng: np.random.Generator, *, n: int | None = None) -> Table:
    """Galaxies as Sérsic profiles.

    Returns
    -------
    astropy.table.Table
        As :func:`make_stars` with ``kind`` "galaxy", plus ``r_eff_arcsec`` (half-light radius,
        0.3-1.5″), ``sersic_n`` (1 for 75 %, else 4), ``ellip`` (0-0.6), ``theta_deg``.
    """
    n = config.n_galaxies if n is None else n
    ra, dec = random_positions(config, n, rng)
    t = _table("galaxy", ra, dec, rng.uniform(18.5, 23.0, n), rng.uniform(0.3, 1.2, n))
    t["r_eff_arcsec"] = rng.uniform(0.3, 1.5, n)
    t["sersic_n"] = np.where(rng.uniform(size=n) < 0.75, 1.0, 4.0)
    t["ellip"] = rng.uniform(0.0, 0.6, n)
    t["theta_deg"] = rng.uniform(0.0, 180.0, n)
    return t

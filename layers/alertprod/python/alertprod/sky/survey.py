"""The visit schedule: when each visit is taken, in which band, where it points, and its seeing.

Visits come in LSST-like pairs: each night a block of visits ``visit_gap_s`` apart is repeated
``pair_gap_min`` later (so that asteroids show motion within a night), each pair in one band.
Each visit dithers the boresight and rotates the focal plane slightly, so that the same sky
falls on different CCDs and pixels from visit to visit. Seeing and sky noise vary per visit.
"""

from __future__ import annotations

import astropy.units as u
import numpy as np
from astropy.coordinates import SkyCoord
from astropy.table import Table

from alertprod.sky.focal_plane import Pointing
from alertprod.sky.presets import BANDS, M5_DEPTH, SurveyConfig, mag_to_njy

__all__ = ["make_schedule", "pointing_of", "visit_id", "sky_sigma_njy"]

#: Seeing at which :data:`~alertprod.sky.presets.M5_DEPTH` holds.
REFERENCE_SEEING_ARCSEC = 0.8


def visit_id(night: int, index: int) -> int:
    """Visit identifier: ``(night + 1) * 1000 + index + 1`` (fits the contract's 8 digits)."""
    return (int(night) + 1) * 1000 + int(index) + 1


def sky_sigma_njy(band: str, pixel_scale_arcsec: float) -> float:
    """Per-pixel sky noise (nJy) that gives the band's 5-sigma depth at the reference seeing.

    A PSF-fitted point source on sky-dominated noise has ``S/N = F / (sigma * sqrt(n_eff))``
    with ``n_eff = 2.266 FWHM²`` pixels for a Gaussian PSF.
    """
    fwhm_pix = REFERENCE_SEEING_ARCSEC / pixel_scale_arcsec
    n_eff = 2.266 * fwhm_pix**2
    return float(mag_to_njy(M5_DEPTH[band]) / (5.0 * np.sqrt(n_eff)))


def _offset_pointing(ra_deg: float, dec_deg: float, du_deg: float, dv_deg: float) -> tuple[float, float]:
    """Sky position at offsets (east ``du``, north ``dv``, degrees) from a centre."""
    c = SkyCoord(ra_deg * u.deg, dec_deg * u.deg).spherical_offsets_by(du_deg * u.deg, dv_deg * u.deg)
    return float(c.ra.deg) % 360.0, float(c.dec.deg)


def make_schedule(config: SurveyConfig, rng: np.random.Generator) -> Table:
    """Build the visit schedule.

    Parameters
    ----------
    config : SurveyConfig
        Survey size and cadence.
    rng : numpy.random.Generator
        Source of the dithers, bands and seeing.

    Returns
    -------
    astropy.table.Table
        One row per visit, in time order: ``visit``, ``night``, ``mjd`` (TAI MJD of the exposure
        midpoint), ``band``, ``exptime`` (s), ``ra``, ``dec``, ``rot`` (deg; the pointing),
        ``seeing_fwhm_arcsec``, ``sky_sigma_njy``, ``has_snapdiff``.
    """
    rows = []
    scale_deg = config.pixel_scale_arcsec / 3600.0
    pair_day = config.pair_gap_min / 1440.0
    step_day = config.visit_gap_s / 86400.0
    half = (config.visits_per_night + 1) // 2
    for night in range(config.n_nights):
        t0 = config.start_mjd_tai + night
        # a block of `half` visits taken visit_gap_s apart, revisited pair_gap_min later
        bands = rng.choice(np.array(["g", "r", "i", "z"]), size=half)
        times = [(t0 + k * step_day, bands[k]) for k in range(half)]
        times += [(t0 + pair_day + k * step_day, bands[k]) for k in range(half)]
        for k, (mjd, band) in enumerate(times[: config.visits_per_night]):
            rows.append((visit_id(night, k), night, mjd, str(band)))
    n = len(rows)
    du = rng.uniform(-config.dither_pix, config.dither_pix, n) * scale_deg
    dv = rng.uniform(-config.dither_pix, config.dither_pix, n) * scale_deg
    rot = rng.uniform(-config.rot_dither_deg, config.rot_dither_deg, n)
    seeing = rng.uniform(config.seeing_min_arcsec, config.seeing_max_arcsec, n)
    sigma_jitter = rng.uniform(0.9, 1.1, n)
    snapdiff = rng.uniform(size=n) < config.snapdiff_fraction
    table = Table()
    table["visit"] = np.array([r[0] for r in rows], dtype=np.int64)
    table["night"] = np.array([r[1] for r in rows], dtype=np.int32)
    table["mjd"] = np.array([r[2] for r in rows], dtype=float)
    table["band"] = np.array([r[3] for r in rows], dtype="U1")
    table["exptime"] = np.full(n, config.exptime_s)
    radec = [_offset_pointing(config.field_ra_deg, config.field_dec_deg, du[i], dv[i]) for i in range(n)]
    table["ra"] = np.array([p[0] for p in radec])
    table["dec"] = np.array([p[1] for p in radec])
    table["rot"] = rot
    table["seeing_fwhm_arcsec"] = seeing
    table["sky_sigma_njy"] = np.array(
        [sky_sigma_njy(b, config.pixel_scale_arcsec) for b in table["band"]]) * sigma_jitter
    table["has_snapdiff"] = snapdiff
    assert set(table["band"]) <= set(BANDS)
    return table


def pointing_of(row) -> Pointing:
    """The :class:`~alertprod.sky.focal_plane.Pointing` of a schedule row."""
    return Pointing(float(row["ra"]), float(row["dec"]), float(row["rot"]))

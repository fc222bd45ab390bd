"""Transients: supernova-like light curves, including pre-discovery epochs and an edge crosser.

A transient is absent before ``t_start_mjd``; from then on its magnitude rises linearly (in
magnitudes, ``rise_mag_per_day``) until ``t_peak_mjd`` and declines linearly afterwards
(``decline_mag_per_day``) — the early rise and the post-peak decline of supernovae are close to
linear in magnitude. Four populations (the ``subkind`` column):

- ``precovery``: started before the survey and rises through it, faint enough on the first
  night to stay below the detection threshold yet measurable (S/N ≈ 3), bright (S/N ≈ 20) on
  the last — the case daytime precovery is for;
- ``new``: starts during the survey;
- ``old``: peaked before the survey, fading;
- ``edge``: appears within a few pixels of a CCD edge shared with a neighbour in one visit and
  falls on the neighbouring CCD in the next visit (see :func:`place_edge_transient`).

Templates hold no transient (they are built from earlier data).
"""

from __future__ import annotations

import numpy as np
from astropy.table import Table, vstack

from alertprod.sky.focal_plane import FocalPlane
from alertprod.sky.presets import SurveyConfig
from alertprod.sky.static_sky import _table, random_positions
from alertprod.sky.survey import REFERENCE_SEEING_ARCSEC, pointing_of, sky_sigma_njy

__all__ = ["make_transients", "transient_flux", "place_edge_transient", "EdgeCase"]


def _typical_flux_err_njy(config: SurveyConfig) -> float:
    """PSF-flux error (nJy) of a faint point source in a typical r-band difference image."""
    fwhm_pix = REFERENCE_SEEING_ARCSEC / config.pixel_scale_arcsec * 1.15
    return sky_sigma_njy("r", config.pixel_scale_arcsec) * np.sqrt(2.266 * fwhm_pix**2)


def _with_lightcurve(t: Table, subkind: str, t_start, t_peak, rise, decline) -> Table:
    n = len(t)
    t["subkind"] = np.full(n, subkind, dtype="U10")
    t["t_start_mjd"] = np.broadcast_to(t_start, n).astype(float)
    t["t_peak_mjd"] = np.broadcast_to(t_peak, n).astype(float)
    t["rise_mag_per_day"] = np.broadcast_to(rise, n).astype(float)
    t["decline_mag_per_day"] = np.broadcast_to(decline, n).astype(float)
    return t


def make_transients(config: SurveyConfig, schedule: Table, rng: np.random.Generator, *,
                    n: int | None = None) -> Table:
    """SN-like transients over the survey (``edge`` one excluded: see :func:`place_edge_transient`).

    Returns
    -------
    astropy.table.Table
        Columns of :func:`~alertprod.sky.static_sky.make_stars` (``kind`` "transient", ``mag_r``
        and fluxes at peak) plus ``subkind``, ``t_start_mjd``, ``t_peak_mjd``,
        ``rise_mag_per_day``, ``decline_mag_per_day``.
    """
    n = config.n_transients if n is None else n
    first, last = float(np.min(schedule["mjd"])), float(np.max(schedule["mjd"]))
    span = max(last - first, 0.01)
    n_pre = max(1, n // 3) if last - first > 0.5 else 0
    n_old = n // 5
    n_new = max(n - n_pre - n_old, 0)
    parts = []
    if n_pre:
        ra, dec = random_positions(config, n_pre, rng, margin_pix=30)
        sigma = _typical_flux_err_njy(config)
        snr_first = rng.uniform(2.5, 3.5, n_pre)
        snr_last = rng.uniform(15.0, 30.0, n_pre)
        rise = 2.5 * np.log10(snr_last / snr_first) / span
        t_peak = last + rng.uniform(0.5, 3.0, n_pre)
        peak_mag = (31.4 - 2.5 * np.log10(snr_last * sigma)) - rise * (t_peak - last)
        t = _table("transient", ra, dec, peak_mag, np.zeros(n_pre))
        parts.append(_with_lightcurve(t, "precovery", first - 5.0, t_peak, rise,
                                      rng.uniform(0.03, 0.1, n_pre)))
    if n_new:
        ra, dec = random_positions(config, n_new, rng, margin_pix=30)
        t_start = rng.uniform(first - 0.2 * span, last, n_new)
        t = _table("transient", ra, dec, rng.uniform(19.0, 22.0, n_new), rng.uniform(-0.3, 0.6, n_new))
        parts.append(_with_lightcurve(t, "new", t_start, t_start + rng.uniform(0.5, 3.0, n_new),
                                      rng.uniform(0.3, 1.0, n_new), rng.uniform(0.03, 0.1, n_new)))
    if n_old:
        ra, dec = random_positions(config, n_old, rng, margin_pix=30)
        t_peak = first - rng.uniform(0.0, 10.0, n_old)
        t = _table("transient", ra, dec, rng.uniform(18.5, 21.0, n_old), rng.uniform(-0.3, 0.6, n_old))
        parts.append(_with_lightcurve(t, "old", t_peak - 20.0, t_peak, 0.3,
                                      rng.uniform(0.03, 0.1, n_old)))
    return vstack(parts) if parts else _with_lightcurve(
        _table("transient", np.zeros(0), np.zeros(0), np.zeros(0), np.zeros(0)), "new", 0.0, 0.0, 0.0, 0.0)


def transient_flux(transients: Table, mjd_tai: float, band: str) -> np.ndarray:
    """True flux (nJy) of each transient at one epoch in one band, shape (n,)."""
    t_peak = np.asarray(transients["t_peak_mjd"])
    dt = mjd_tai - t_peak
    dm = np.where(dt < 0, -np.asarray(transients["rise_mag_per_day"]) * dt,
                  np.asarray(transients["decline_mag_per_day"]) * dt)
    flux = np.asarray(transients[f"flux_{band}"]) * 10.0 ** (-0.4 * dm)
    return np.where(mjd_tai >= np.asarray(transients["t_start_mjd"]), flux, 0.0)


class EdgeCase:
    """The edge-crossing transient: where it appears, and the two visits involved.

    Attributes
    ----------
    visit_first, visit_next : int
        The visit where it first appears (near the edge of ``detector_first``) and the next one
        (where it lies on ``detector_next``).
    detector_first, detector_next : int
        Neighbouring CCDs sharing the edge.
    edge_distance_pix : float
        Distance from the shared edge in ``visit_first``.
    ra, dec : float
        Its position, degrees.
    """

    def __init__(self, visit_first, visit_next, detector_first, detector_next, edge_distance_pix, ra, dec):
        self.visit_first, self.visit_next = int(visit_first), int(visit_next)
        self.detector_first, self.detector_next = int(detector_first), int(detector_next)
        self.edge_distance_pix = float(edge_distance_pix)
        self.ra, self.dec = float(ra), float(dec)

    def as_dict(self) -> dict:
        """JSON-ready description (for ``truth/survey.json``)."""
        return dict(vars(self))


def place_edge_transient(config: SurveyConfig, schedule: Table, rng: np.random.Generator, *,
                         edge_distance_pix: float = 8.0) -> tuple[Table, EdgeCase]:
    """Add the edge-crossing transient, re-pointing one visit so that the crossing happens.

    The transient appears (``t_start_mjd``) between a visit and the one before it,
    ``edge_distance_pix`` from the right-hand edge of a CCD that has a right-hand neighbour.
    The next visit is pointed so that the sky moves by ``edge_distance_pix + gap + 40`` pixels
    across that edge: the transient then lies ~40 pixels inside the neighbouring CCD.
    ``schedule`` is modified in place (that visit's ``ra``, ``dec``, ``rot``).

    Returns
    -------
    transient : astropy.table.Table
        One row, as :func:`make_transients`, ``subkind`` "edge".
    edge : EdgeCase
    """
    fp = FocalPlane(config)
    if config.n_ccd_x < 2 or len(schedule) < 3:
        raise ValueError("the edge transient needs at least 2 CCDs along x and 3 visits")
    ia = 1 if config.n_nights == 1 else config.visits_per_night + 1  # second visit of night 2
    ia = min(ia, len(schedule) - 2)
    ib = ia + 1
    pa = pointing_of(schedule[ia])
    iy = int(rng.integers(0, config.n_ccd_y))
    ix = int(rng.integers(0, config.n_ccd_x - 1))
    det_a = iy * config.n_ccd_x + ix
    det_b = det_a + 1
    x = config.ccd_nx_pix - 1 - edge_distance_pix
    y = rng.uniform(0.3, 0.7) * config.ccd_ny_pix
    ra, dec = fp.wcs(pa, det_a).all_pix2world([x], [y], 0)
    shift = edge_distance_pix + config.gap_pix + 40.0
    bra, bdec = fp.boresight_wcs(pa).all_pix2world([-shift], [0.0], 0)
    schedule["ra"][ib], schedule["dec"][ib], schedule["rot"][ib] = float(bra[0]) % 360, float(bdec[0]), pa.rot_deg
    where = fp.locate(pointing_of(schedule[ib]), ra, dec)
    if int(where.detector[0]) != det_b:  # cannot happen with the geometry above
        raise AssertionError(f"edge transient landed on detector {where.detector[0]}, not {det_b}")
    t_prev = float(schedule["mjd"][ia - 1])
    t_start = 0.5 * (t_prev + float(schedule["mjd"][ia]))
    t = _table("transient", np.asarray(ra) % 360, np.asarray(dec), np.array([20.0]), np.zeros(1))
    t = _with_lightcurve(t, "edge", t_start, t_start, 0.0, 0.05)
    edge = EdgeCase(schedule["visit"][ia], schedule["visit"][ib], det_a, det_b, edge_distance_pix,
                    float(ra[0]) % 360, float(dec[0]))
    return t, edge


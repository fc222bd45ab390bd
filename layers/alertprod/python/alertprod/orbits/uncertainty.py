"""How far an asteroid may be from its predicted position because its orbit is uncertain.

The MPC rates every orbit in MPCORB.DAT with an uncertainty parameter U (column 106), an
integer 0-9 computed from the in-orbit longitude *runoff* — how far along its orbit the
object may be after ten years, in arcseconds (MPC, "Uncertainty Parameter U"):

    RUNOFF = (ΔT·e + 10 ΔP / P) · k° / P · 3600 · 3      (″ per decade)
    U = INT(ln RUNOFF / (ln 648000 / 9)) + 1,  clipped to 0 … 9

with ΔT and ΔP the uncertainties of the perihelion time and the period (days), P the period
(years), k° the Gaussian constant in degrees and 3 the MPC's factor that makes formal errors
realistic. Each step of U is a factor 648000^(1/9) ≈ 4.42 in runoff: U 0 is < 1″ a decade,
U 9 is half a revolution.

This module turns U and the time since the orbit was determined into an on-sky error and an
association radius (docs/solar-system.md, "Orbit uncertainty and the match radius"):

- :func:`runoff_arcsec_per_decade` — the runoff band of each U;
- :func:`along_track_sigma_arcsec` — the along-track error at a given time, on the sky;
- :func:`match_radius_arcsec` — the radius within which a DiaSource may be matched to its
  SSObject: 1″ for well-known orbits, growing with the predicted uncertainty, capped;
- :func:`uncertainty_parameter`, :func:`u_is_stated`, :func:`orbit_reference_mjd` — U, whether
  it is stated, and the date of the last observation (or the epoch) of the rows of an
  :class:`~alertprod.orbits.OrbitCatalog`;
- :func:`prediction_uncertainty` — σ and radius of each prediction of a CCD, as the nightly
  association uses them.

The model is ours, not the MPC's: the runoff is read as a realistic 1-σ error of the mean
longitude that grows linearly away from the epoch of the orbit determination (a period error
ΔP accumulates), reaching RUNOFF after ten years. It is the model the survey simulator draws
its orbit errors from (:mod:`alertprod.sky.orbit_errors`).
"""

from __future__ import annotations

import datetime as _dt
from typing import NamedTuple

import numpy as np

from alertprod.errors import OrbitError
from alertprod.orbits.catalog import OrbitCatalog

__all__ = ["DECADE_DAYS", "RUNOFF_STEP", "U_MAX", "PredictionUncertainty",
           "along_track_sigma_arcsec", "match_radius_arcsec", "orbit_reference_mjd",
           "prediction_uncertainty", "runoff_arcsec_per_decade", "u_is_stated",
           "uncertainty_parameter"]

#: Largest U; also what an unknown U (blank or a letter in column 106) is taken as.
U_MAX = 9
#: Factor of runoff per step of U: 648000^(1/9) ≈ 4.42 (648000″ = 180°).
RUNOFF_STEP = 648000.0 ** (1.0 / 9.0)
#: Ten Julian years, in days: the runoff's horizon.
DECADE_DAYS = 3652.5
#: The MPC's association radius for known objects, and the default floor of the radius (″).
BASE_RADIUS_ARCSEC = 1.0
#: Default cap of the radius (″): see docs/solar-system.md for the chance-coincidence argument.
CAP_RADIUS_ARCSEC = 10.0
_MJD0_ORDINAL = _dt.date(1858, 11, 17).toordinal()


def _check_u(u) -> np.ndarray:
    values = np.asarray(u)
    if values.dtype.kind not in "iuf":
        raise OrbitError(f"u: expected integers 0-{U_MAX}, got dtype {values.dtype}")
    if np.any(~np.isfinite(values)) or np.any((values < 0) | (values > U_MAX)) or np.any(
            values != np.round(values)):
        raise OrbitError(f"u: expected integers 0-{U_MAX}, got {values!r}")
    return values.astype(int)


def runoff_arcsec_per_decade(u, *, edge: str = "upper") -> np.ndarray:
    """Runoff (″ per decade) at an edge of each U's band.

    Parameters
    ----------
    u : int or ndarray of int
        Uncertainty parameter, 0-9.
    edge : {"upper", "lower"}, keyword-only
        U k spans runoff [4.42^(k−1), 4.42^k); U 0 is everything below 1″, taken here as
        [1/4.42, 1); U 9 is [4.42^8, 648000].

    Returns
    -------
    ndarray of float
        Same shape as ``u``.
    """
    k = _check_u(u)
    if edge == "upper":
        return RUNOFF_STEP ** k.astype(float)
    if edge == "lower":
        return RUNOFF_STEP ** (k.astype(float) - 1.0)
    raise OrbitError(f"edge: expected 'upper' or 'lower', got {edge!r}")


def along_track_sigma_arcsec(u, dt_days, *, r_au=None, delta_au=None, a_au=None) -> np.ndarray:
    """1-σ along-track error of a predicted position, from U and the time since the orbit's
    determination.

    Parameters
    ----------
    u : int or ndarray of int
        Uncertainty parameter, 0-9 (broadcast against the other arguments).
    dt_days : float or ndarray
        Time from the orbit's determination (its last observation, or the epoch of the
        published elements: :func:`orbit_reference_mjd`) to the prediction (days, either sign).
    r_au, delta_au : float or ndarray, optional, keyword-only
        Heliocentric and topocentric distances at the prediction (``Ephemeris.r_au``,
        ``delta_au``). Without them the result is the error of the heliocentric mean
        longitude itself.
    a_au : float or ndarray, optional, keyword-only
        Semi-major axis; by default ``r_au`` (a near-circular orbit).

    Returns
    -------
    ndarray of float
        Arcseconds on the sky (or in heliocentric longitude).

    Notes
    -----
    The longitude error at the band's upper edge, σλ = RUNOFF(U) · |dt| / 10 yr, moves the
    object along its orbit by σλ/n · v, |v|/n = a √(2a/r − 1) (vis-viva); seen from
    ``delta_au`` away, at most (the displacement across the line of sight) that over Δ:
    σ = σλ · a √(2a/r − 1) / Δ — r/Δ for a circular orbit, ≈ 1.7 for the main belt at
    opposition, ≫ 1 for a near-Earth object passing close.
    """
    u_arr = _check_u(u)
    dt = np.abs(np.asarray(dt_days, dtype=float))
    sigma = runoff_arcsec_per_decade(u_arr) * dt / DECADE_DAYS
    if r_au is None and delta_au is None:
        return sigma
    if r_au is None or delta_au is None:
        raise OrbitError("r_au, delta_au: give both or neither")
    r = np.asarray(r_au, dtype=float)
    delta = np.asarray(delta_au, dtype=float)
    a = r if a_au is None else np.asarray(a_au, dtype=float)
    if np.any(r <= 0.0) or np.any(delta <= 0.0) or np.any(a <= 0.0):
        raise OrbitError("r_au, delta_au, a_au: must be positive")
    lever = a * np.sqrt(np.clip(2.0 * a / r - 1.0, 0.0, None))
    return sigma * lever / delta


def match_radius_arcsec(u, dt_days, *, r_au=None, delta_au=None, a_au=None,
                        base_arcsec: float = BASE_RADIUS_ARCSEC, n_sigma: float = 3.0,
                        cap_arcsec: float = CAP_RADIUS_ARCSEC) -> np.ndarray:
    """Radius within which a DiaSource may be associated with an SSObject.

    Parameters
    ----------
    u, dt_days, r_au, delta_au, a_au
        As :func:`along_track_sigma_arcsec` (broadcast together).
    base_arcsec : float, keyword-only
        The radius for a perfectly known orbit (the 1″ rule: astrometric and propagation
        errors).
    n_sigma : float, keyword-only
        Multiple of the along-track 1-σ error allowed beyond it.
    cap_arcsec : float, keyword-only
        Upper bound: beyond it an unrelated DiaSource inside the radius becomes likely, and
        the detection is better left to make a DiaObject (and a tracklet for linking).

    Returns
    -------
    ndarray of float
        ``clip(hypot(base, n_sigma·σ), base, cap)`` in arcseconds.

    Raises
    ------
    OrbitError
        When an argument is out of range.
    """
    if not (np.isfinite(base_arcsec) and 0.0 < base_arcsec <= cap_arcsec
            and np.isfinite(cap_arcsec)):
        raise OrbitError(f"base_arcsec {base_arcsec!r}, cap_arcsec {cap_arcsec!r}: need "
                         "0 < base <= cap, finite")
    if not (np.isfinite(n_sigma) and n_sigma >= 0.0):
        raise OrbitError(f"n_sigma: must be finite and non-negative, got {n_sigma!r}")
    sigma = along_track_sigma_arcsec(u, dt_days, r_au=r_au, delta_au=delta_au, a_au=a_au)
    return np.clip(np.hypot(base_arcsec, n_sigma * sigma), base_arcsec, cap_arcsec)


def uncertainty_parameter(catalog: OrbitCatalog) -> np.ndarray:
    """U of each row (MPCORB.DAT column 106, kept in ``mpc_info``); unknown ones as 9.

    Blank, missing or lettered U (the MPC writes ``E`` for an assumed eccentricity, ``D``/``F``
    for doubtful or failed orbits) is taken as :data:`U_MAX`: the widest radius. Association
    tells a blank U apart (:func:`u_is_stated`) and keeps the 1″ rule for it.
    """
    if not isinstance(catalog, OrbitCatalog):
        raise OrbitError(f"catalog: expected OrbitCatalog, got {type(catalog).__name__}")
    info = np.char.ljust(catalog.mpc_info.astype(str), 3)
    digit = np.array([s[2] for s in info.tolist()], dtype="U1")
    known = np.char.isdigit(digit)
    out = np.full(len(catalog), U_MAX, dtype=int)
    out[known] = digit[known].astype(int)
    return out


def u_is_stated(catalog: OrbitCatalog) -> np.ndarray:
    """Whether each row states an uncertainty in column 106 (a digit or a letter; not blank).

    A blank U says nothing about the orbit (catalogs other than the MPC's, or hand-made
    lines, leave it empty), so association keeps the 1″ rule for it
    (:func:`prediction_uncertainty`) rather than widening to the cap.
    """
    if not isinstance(catalog, OrbitCatalog):
        raise OrbitError(f"catalog: expected OrbitCatalog, got {type(catalog).__name__}")
    info = np.char.ljust(catalog.mpc_info.astype(str), 3)
    return np.array([s[2] != " " for s in info.tolist()], dtype=bool)


class PredictionUncertainty(NamedTuple):
    """Uncertainty of predicted positions from their orbits, one entry per prediction (n).

    Attributes
    ----------
    sigma_arcsec : ndarray of float, shape (n,)
        1-σ along-track error on the sky (:func:`along_track_sigma_arcsec`); 0 where U is blank.
    radius_arcsec : ndarray of float, shape (n,)
        Association radius (:func:`match_radius_arcsec`); the base radius where U is blank.
    u : ndarray of int, shape (n,)
        U used (:func:`uncertainty_parameter`; −1 where blank).
    """

    sigma_arcsec: np.ndarray
    radius_arcsec: np.ndarray
    u: np.ndarray


def prediction_uncertainty(catalog: OrbitCatalog, mjd_tai: float, r_au, delta_au, *,
                           base_arcsec: float = BASE_RADIUS_ARCSEC, n_sigma: float = 3.0,
                           cap_arcsec: float = CAP_RADIUS_ARCSEC) -> PredictionUncertainty:
    """Along-track error and association radius of each row's prediction at ``mjd_tai``.

    Parameters
    ----------
    catalog : OrbitCatalog, n rows
        The orbits predicted (the same rows, in the same order, as ``r_au``/``delta_au``).
    mjd_tai : float
        Time of the prediction (MJD; the day-level timescale difference is immaterial here).
    r_au, delta_au : ndarray of float, shape (n,)
        Heliocentric and topocentric distances of the predictions (``Ephemeris`` fields).
    base_arcsec, n_sigma, cap_arcsec : float, keyword-only
        As :func:`match_radius_arcsec`; ``base_arcsec`` is the pipeline's radius for a
        perfectly known orbit (``PipelineConfig.max_dist_arcsec``).

    Notes
    -----
    Rows with a blank U keep ``base_arcsec`` and a zero σ (:func:`u_is_stated`); a letter
    (``E``, ``D``, ``F``: assumed eccentricity, doubtful or failed orbits) is taken as U 9.
    """
    stated = u_is_stated(catalog)
    u = uncertainty_parameter(catalog)
    dt = float(mjd_tai) - orbit_reference_mjd(catalog)
    r = np.asarray(r_au, dtype=float)
    delta = np.asarray(delta_au, dtype=float)
    if r.shape != (len(catalog),) or delta.shape != r.shape:
        raise OrbitError(f"r_au, delta_au: expected shape ({len(catalog)},), got {r.shape}, "
                         f"{delta.shape}")
    sigma = along_track_sigma_arcsec(u, dt, r_au=r, delta_au=delta)
    radius = match_radius_arcsec(u, dt, r_au=r, delta_au=delta, base_arcsec=base_arcsec,
                                 n_sigma=n_sigma, cap_arcsec=cap_arcsec)
    return PredictionUncertainty(np.where(stated, sigma, 0.0),
                                 np.where(stated, radius, base_arcsec),
                                 np.where(stated, u, -1))


def orbit_reference_mjd(catalog: OrbitCatalog) -> np.ndarray:
    """MJD from which each orbit's uncertainty grows: its last observation, else its epoch.

    The last observation (MPCORB.DAT columns 195-202, ``YYYYMMDD``) is what the orbit was fitted
    to; a refreshed catalog (:func:`alertprod.orbits.osculating_elements_at`) moves the epoch
    but keeps this column, so the uncertainty keeps growing from the observations, not from
    the refresh.
    """
    if not isinstance(catalog, OrbitCatalog):
        raise OrbitError(f"catalog: expected OrbitCatalog, got {type(catalog).__name__}")
    out = np.asarray(catalog.epoch_mjd, dtype=float).copy()
    for k, text in enumerate(catalog.last_obs.tolist()):
        text = text.strip()
        if len(text) == 8 and text.isdigit():
            try:
                date = _dt.date(int(text[:4]), int(text[4:6]), int(text[6:]))
            except ValueError:
                continue
            out[k] = float(date.toordinal() - _MJD0_ORDINAL)
    return out

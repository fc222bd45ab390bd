"""Which observing night a time belongs to, and the epoch of that night's refreshed orbits.

A night is labelled by the integer MJD of the evening it starts on, Rubin's ``dayObs``
convention: the observing day rolls over at 12:00 UTC (``dayObs`` is the date in UTC−12 h),
which is 08:00–09:00 in Chile, after every night's last exposure and before the next
evening. So ``night_of(t) = floor(t − 0.5)`` and the night labelled N holds every exposure
with midpoint in [N + 0.5, N + 1.5) (TAI MJD). Its refreshed elements osculate at
N + 1.0 TT (0h TT, ≈ 21:00 in Chile), the middle of that day: no exposure of the night is
more than half a day from it (Rubin's nights, 23:00–10:00 UTC, stay within 0.42 d).
"""

from __future__ import annotations

import math

import numpy as np

from alertprod.errors import OrbitError

__all__ = ["HALF_NIGHT_DAYS", "night_epoch_mjd_tai", "night_epoch_mjd_tt", "night_of", "tai_to_tt",
           "unix_ms_to_mjd_tai"]

#: Largest |t − epoch| of an exposure of the night (days): the window over which the night's
#: two-body predictions must hold.
HALF_NIGHT_DAYS = 0.5
#: TT − TAI (days).
_TT_MINUS_TAI_DAYS = 32.184 / 86400.0
#: MJD of 1970-01-01 (Unix time 0).
_UNIX_EPOCH_MJD = 40587.0
#: TAI − UTC since 2017 (s); Unix time counts UTC seconds.
_TAI_MINUS_UTC_S = 37.0


def night_of(mjd_tai: float) -> int:
    """The night (integer MJD of its evening) an exposure at ``mjd_tai`` belongs to.

    Parameters
    ----------
    mjd_tai : float
        Exposure midpoint or any other time (TAI MJD).

    Returns
    -------
    int
        ``floor(mjd_tai − 0.5)``: times from 12:00 UTC of day N to 12:00 UTC of day N + 1 are
        night N (TAI − UTC = 37 s moves the rollover by 37 s).

    Raises
    ------
    OrbitError
        When ``mjd_tai`` is not one finite number.
    """
    if np.ndim(mjd_tai) != 0 or not np.isfinite(mjd_tai):
        raise OrbitError(f"mjd_tai: one finite TAI MJD expected, got {mjd_tai!r}")
    return int(math.floor(float(mjd_tai) - 0.5))


def night_epoch_mjd_tt(night_mjd: int) -> float:
    """Epoch (TT MJD) of the night's refreshed osculating elements: 0h TT after its evening."""
    return float(int(night_mjd)) + 1.0


def night_epoch_mjd_tai(night_mjd: int) -> float:
    """The same epoch on the TAI scale of exposure times."""
    return night_epoch_mjd_tt(night_mjd) - _TT_MINUS_TAI_DAYS


def tai_to_tt(mjd_tai: float) -> float:
    """TT MJD of a TAI MJD (the scale of element epochs)."""
    return float(mjd_tai) + _TT_MINUS_TAI_DAYS


def unix_ms_to_mjd_tai(unix_ms: float | str) -> float:
    """TAI MJD of a Unix time in milliseconds (e.g. SQS's ``SentTimestamp``).

    Leap seconds before 2017 are ignored (the result is for the present, not history).
    """
    try:
        seconds = float(unix_ms) / 1000.0
    except (TypeError, ValueError) as exc:
        raise OrbitError(f"unix_ms: not a number: {unix_ms!r}") from exc
    if not np.isfinite(seconds):
        raise OrbitError(f"unix_ms: not finite: {unix_ms!r}")
    return _UNIX_EPOCH_MJD + (seconds + _TAI_MINUS_UTC_S) / 86400.0

"""The time scale of an upload's ``MJD-MID``: read from ``TIMESYS``, converted to TAI.

The contract states exposure midpoints as TAI MJD. A header may say otherwise in the FITS
keyword ``TIMESYS`` (FITS WCS Paper IV, Rots et al. 2015); rather than read such a midpoint as
TAI (37 s off for UTC, 32 s for TT), it is converted with :mod:`astropy.time`, or refused when
the scale is one astropy cannot convert from:

- absent or blank: TAI, as the contract says;
- ``TAI``, ``UTC``, ``TT``, ``TDB``, ``TCG``, ``TCB``, ``UT1`` (astropy's scales), the FITS
  aliases ``IAT`` (TAI), ``TDT`` and ``ET`` (TT), ``GMT`` and ``UT`` (UTC), and ``GPS``
  (TAI − 19 s, as astropy's ``gps`` format defines it): converted to TAI;
- anything else (``LOCAL``, a typo, a non-string value): :class:`~alertprod.errors.ContractError`
  with reason ``bad_time_scale``.

The midpoint is taken as observed at the observatory (``TREFPOS`` = ``TOPOCENTER``); for the
barycentric scales (TDB, TCB) the observatory's location enters astropy's TDB − TT term
(microseconds). ``UT1`` uses the bundled IERS tables, never a download
(:mod:`alertprod._astropy_config`).
"""

from __future__ import annotations

from typing import Any

import alertprod._astropy_config  # noqa: F401  (offline IERS tables for UT1)
from alertprod.errors import ContractError

__all__ = ["DEFAULT_TIME_SCALE", "TIME_SCALES", "time_scale_from_header", "mjd_to_tai"]

#: What an absent ``TIMESYS`` means (the contract's scale).
DEFAULT_TIME_SCALE = "TAI"

#: ``TIMESYS`` value (upper case) -> astropy time scale it converts from. ``GPS`` is handled
#: as TAI shifted by 19 s (astropy has a ``gps`` format, no ``gps`` scale).
TIME_SCALES: dict[str, str] = {
    "TAI": "tai", "UTC": "utc", "TT": "tt", "TDB": "tdb", "TCG": "tcg", "TCB": "tcb", "UT1": "ut1",
    "IAT": "tai", "TDT": "tt", "ET": "tt", "GMT": "utc", "UT": "utc", "GPS": "tai",
}

#: TAI − GPS, seconds (constant since GPS time began, 1980-01-06).
_GPS_TO_TAI_S = 19.0


def time_scale_from_header(value: Any, *, what: str = "file") -> str:
    """The time scale a ``TIMESYS`` card states, upper case (``TAI`` when absent).

    Parameters
    ----------
    value : str or None
        The card's value (None or blank when the keyword is absent).
    what : str, keyword-only
        Name of the file, for the error message.

    Raises
    ------
    ContractError
        ``bad_time_scale`` when the value names no scale of :data:`TIME_SCALES`.
    """
    if value is None or (isinstance(value, str) and not value.strip()):
        return DEFAULT_TIME_SCALE
    if not isinstance(value, str):
        raise ContractError("bad_time_scale", f"{what}: TIMESYS {value!r} is not a time scale name")
    scale = value.strip().upper()
    if scale not in TIME_SCALES:
        raise ContractError("bad_time_scale",
                            f"{what}: TIMESYS {value.strip()!r} cannot be converted to TAI; "
                            f"expected one of {', '.join(TIME_SCALES)}")
    return scale


def mjd_to_tai(mjd: float, scale: str, *, obs_lon_deg: float, obs_lat_deg: float,
               obs_height_m: float) -> float:
    """Convert an MJD stated in ``scale`` to TAI MJD.

    Parameters
    ----------
    mjd : float
        The time, MJD in ``scale``.
    scale : str
        A key of :data:`TIME_SCALES` (as :func:`time_scale_from_header` returns it).
    obs_lon_deg, obs_lat_deg : float, keyword-only
        Observatory east longitude and latitude, degrees (for TDB and TCB).
    obs_height_m : float, keyword-only
        Observatory height, metres.

    Returns
    -------
    float
        TAI MJD (exact for TAI; to float64 precision, ~1 µs, otherwise).
    """
    if scale == "TAI" or scale == "IAT":
        return float(mjd)
    from astropy import units as u
    from astropy.coordinates import EarthLocation
    from astropy.time import Time, TimeDelta

    if scale == "GPS":
        t = Time(mjd, format="mjd", scale="tai") + TimeDelta(_GPS_TO_TAI_S, format="sec")
        return float(t.mjd)
    location = EarthLocation.from_geodetic(obs_lon_deg * u.deg, obs_lat_deg * u.deg,
                                           obs_height_m * u.m)
    return float(Time(mjd, format="mjd", scale=TIME_SCALES[scale], location=location).tai.mjd)

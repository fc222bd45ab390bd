"""Time helpers shared by the pipeline, precovery and tools (TAI MJD, the Rubin convention)."""

from __future__ import annotations

import time

from astropy.time import Time

__all__ = ["now_mjd_tai"]


def now_mjd_tai() -> float:
    """The current time as TAI MJD (``timeProcessedMjdTai``)."""
    return float(Time(time.time(), format="unix").tai.mjd)

"""Time helpers shared by the pipeline, precovery and tools (TAI MJD, the Rubin convention)."""

from __future__ import annotations

import os
import time

from astropy.time import Time

__all__ = ["SURVEY_CLOCK_OFFSET_ENV", "now_mjd_tai", "survey_clock_offset_s"]

#: Seconds the survey's clock runs ahead of the wall clock. Unset on AWS (the survey is now);
#: the embedded stack sets it while it replays a survey's nights at their own dates, so that
#: "now" for a precovery job is the morning after the replayed night, not the day it is served.
SURVEY_CLOCK_OFFSET_ENV = "ALERTPROD_SURVEY_CLOCK_OFFSET_S"


def now_mjd_tai() -> float:
    """The current time as TAI MJD (``timeProcessedMjdTai``)."""
    return float(Time(time.time(), format="unix").tai.mjd)


def survey_clock_offset_s() -> float:
    """The survey clock's offset from the wall clock, seconds (0 on AWS).

    Read at each call, not once: the embedded stack moves its clock while functions stay loaded.
    """
    try:
        return float(os.environ.get(SURVEY_CLOCK_OFFSET_ENV) or 0.0)
    except ValueError:
        return 0.0

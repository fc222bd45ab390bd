"""Daytime precovery on the difference-image cache (seed step 14)."""

from alertprod.precovery.daily import (
                                       CACHE_DAYS,
                                       PrecoveryPlan,
                                       UnitResult,
                                       finalize_objects,
                                       plan_precovery,
                                       precovery_rows,
                                       run_unit,
)
from alertprod.precovery.service import (
                                       DayReport,
                                       event_time_mjd_tai,
                                       handle_message,
                                       plan_and_enqueue,
                                       run_day_inline,
)
from alertprod.precovery.units import PrecoveryUnit, unit_from_message, unit_to_message

__all__ = [
    "CACHE_DAYS",
    "DayReport",
    "PrecoveryPlan",
    "PrecoveryUnit",
    "UnitResult",
    "event_time_mjd_tai",
    "finalize_objects",
    "handle_message",
    "plan_and_enqueue",
    "plan_precovery",
    "precovery_rows",
    "run_day_inline",
    "run_unit",
    "unit_from_message",
    "unit_to_message",
]

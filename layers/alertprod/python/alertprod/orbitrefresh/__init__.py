"""The daily orbit-catalog refresh: every orbit integrated to the coming night's epoch.

Two-body predictions from MPC elements months away from their epoch miss asteroids by
arcseconds. Every day before the night (and after every MPCORB upload) the refresh
integrates the whole base catalog, with the planets, to the night's epoch and stores that
night's osculating elements in the Level 1 database; the nightly pipeline then predicts two-body
from them (≤ 0.001″ over the night for main-belt objects) and integrates the close
approachers directly to each exposure (docs/solar-system.md, "Nightly orbit refresh").

- :mod:`~alertprod.orbitrefresh.nights` — which night a time belongs to, the night's epoch;
- :mod:`~alertprod.orbitrefresh.integrate` — the science: n-body to the night, the NEO rule;
- :mod:`~alertprod.orbitrefresh.elements` — a night's elements, their bytes, applied to the
  base catalog;
- :mod:`~alertprod.orbitrefresh.messages` — the request and chunk messages;
- :mod:`~alertprod.orbitrefresh.service` — planner → queue → workers → fan-in;
- :mod:`~alertprod.orbitrefresh.cost` — what a night's refresh costs.
"""

from alertprod.orbitrefresh.cost import PRICES_USD, RefreshCost, refresh_cost
from alertprod.orbitrefresh.elements import (
    NightCatalog,
    NightElements,
    decode_night_elements,
    encode_night_elements,
    night_catalog,
)
from alertprod.orbitrefresh.integrate import (
    DRIFT_LIMIT_ARCSEC,
    RefreshedOrbits,
    elements_at_exposure,
    night_drift_arcsec,
    refresh_elements,
)
from alertprod.orbitrefresh.messages import RefreshChunk, RefreshRequest, parse_message
from alertprod.orbitrefresh.nights import night_epoch_mjd_tt, night_of, unix_ms_to_mjd_tai
from alertprod.orbitrefresh.service import (
    RefreshConfig,
    RefreshReport,
    handle_message,
    plan_and_enqueue,
    request_refresh,
    run_refresh_inline,
    staged_report,
)

__all__ = [
    "DRIFT_LIMIT_ARCSEC",
    "PRICES_USD",
    "NightCatalog",
    "NightElements",
    "RefreshChunk",
    "RefreshConfig",
    "RefreshCost",
    "RefreshReport",
    "RefreshRequest",
    "RefreshedOrbits",
    "decode_night_elements",
    "elements_at_exposure",
    "encode_night_elements",
    "handle_message",
    "night_catalog",
    "night_drift_arcsec",
    "night_epoch_mjd_tt",
    "night_of",
    "parse_message",
    "plan_and_enqueue",
    "refresh_cost",
    "refresh_elements",
    "request_refresh",
    "run_refresh_inline",
    "staged_report",
    "unix_ms_to_mjd_tai",
]

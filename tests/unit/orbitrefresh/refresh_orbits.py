"""Constants of the orbit-refresh tests (a module of its own: tests never import a conftest)."""

from __future__ import annotations

import numpy as np

from alertprod.formats import RUBIN_SITE

SITE = {"obs_lon_deg": RUBIN_SITE[0], "obs_lat_deg": RUBIN_SITE[1], "obs_height_m": RUBIN_SITE[2]}
#: The night (MJD of its evening); Rubin observes from 23:00 to 10:00 UTC, N + 0.96 … N + 1.42.
NIGHT = 61000
#: Exposure midpoints across the night (TAI MJD), its edges included.
NIGHT_TIMES = NIGHT + np.array([0.96, 1.05, 1.2, 1.35, 1.42])
#: Epoch of the base elements: 150 days before the night.
BASE_EPOCH = NIGHT + 1.0 - 150.0

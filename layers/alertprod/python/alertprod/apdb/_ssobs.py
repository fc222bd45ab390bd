"""SSObject observation counters as both backends keep them: a set of observation entries.

Each asteroid's observations are a set of ``"<diaSourceId>:<band>:<midpointMjdTai>"`` strings:
adding a CCD's entries is atomic and idempotent (a set union), and ``nObs``, ``{band}_nObs``,
``firstObservationMjdTai`` and ``arc`` are derived from the set when the SSObject is read.
Private to :mod:`alertprod.apdb`.
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np
from astropy.table import Table

__all__ = ["observation_entries", "apply_observations"]

_BANDS = "ugrizy"


def observation_entries(dia_sources: Table) -> dict[int, list[str]]:
    """The observation entries of a CCD's solar-system DiaSources, by ``ssObjectId``."""
    if len(dia_sources) == 0 or "ssObjectId" not in dia_sources.colnames:
        return {}
    sid = np.asarray(np.ma.filled(np.ma.asarray(dia_sources["ssObjectId"]), 0), np.int64)
    groups: dict[int, list[str]] = defaultdict(list)
    for k in np.flatnonzero(sid > 0):
        groups[int(sid[k])].append(f"{int(dia_sources['diaSourceId'][k])}:{str(dia_sources['band'][k])}:"
                                   f"{float(dia_sources['midpointMjdTai'][k])!r}")
    return dict(groups)


def apply_observations(rows: Table, sets: dict[int, list[str]]) -> Table:
    """Fill ``nObs``, ``{band}_nObs``, ``firstObservationMjdTai`` and ``arc`` from the sets."""
    for k, oid in enumerate(np.asarray(rows["ssObjectId"], np.int64)):
        obs = sets.get(int(oid))
        if not obs:
            continue
        parts = [o.split(":") for o in obs]
        mjd = np.array([float(p[2]) for p in parts])
        rows["nObs"][k] = len(parts)
        for b in _BANDS:
            if f"{b}_nObs" in rows.colnames:
                rows[f"{b}_nObs"][k] = sum(1 for p in parts if p[1] == b)
        rows["firstObservationMjdTai"][k] = float(mjd.min())
        rows["arc"][k] = float(mjd.max() - mjd.min())
    return rows

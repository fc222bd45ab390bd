"""SSObject observation counters that concurrent CCDs update without losing any.

Each asteroid has one ``SSOBJ#<id> / OBS`` item holding a string set of its observations
(``"<diaSourceId>:<band>:<midpointMjdTai>"``). CCDs add to it with ``ADD`` — atomic, and
idempotent for a retried CCD — so two CCDs of consecutive visits processed at once both count.
``nObs``, ``{band}_nObs``, ``firstObservationMjdTai`` and ``arc`` are derived from the set when
the SSObject is read.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import numpy as np
from astropy.table import Table

from alertprod.apdb.dynamodb import _keys as keys
from alertprod.apdb.dynamodb._calls import batch_get

__all__ = ["record_observations", "observation_sets", "apply_observations"]

_BANDS = "ugrizy"


def _obs_key(ss_object_id: int) -> dict[str, Any]:
    return keys.key(f"SSOBJ#{int(ss_object_id)}", "OBS")


def record_observations(client: Any, table: str, dia_sources: Table) -> int:
    """Add the solar-system DiaSources of a CCD to their SSObjects' observation sets.

    Returns the number of SSObjects updated (one UpdateItem each).
    """
    if len(dia_sources) == 0 or "ssObjectId" not in dia_sources.colnames:
        return 0
    sid = np.asarray(dia_sources["ssObjectId"], np.int64)
    groups: dict[int, list[str]] = defaultdict(list)
    for k in np.flatnonzero(sid > 0):
        groups[int(sid[k])].append(f"{int(dia_sources['diaSourceId'][k])}:{str(dia_sources['band'][k])}:"
                                   f"{float(dia_sources['midpointMjdTai'][k])!r}")
    for oid, obs in groups.items():
        client.update_item(TableName=table, Key=_obs_key(oid), UpdateExpression="ADD obs :o",
                           ExpressionAttributeValues={":o": {"SS": obs}})
    return len(groups)


def observation_sets(client: Any, table: str, ids: list[int]) -> dict[int, list[str]]:
    """Observation sets of the given SSObjects (BatchGetItem)."""
    items = batch_get(client, table, [_obs_key(i) for i in ids])
    return {int(i["pk"]["S"][6:]): list(i["obs"]["SS"]) for i in items if "obs" in i}


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

"""SSObject observation counters that concurrent CCDs update without losing any.

Each asteroid has one ``SSOBJ#<id> / OBS`` item holding a string set of its observations
(``"<diaSourceId>:<band>:<midpointMjdTai>"``, ~40 B). CCDs add to it with ``ADD`` — atomic,
and idempotent for a retried CCD — so two CCDs of consecutive visits processed at once both
count. Past ~7,500 observations (a slow object in a deep-drilling field) the item spills to
continuation parts (``_spill``); the set is the union of the item and its parts.
``nObs``, ``{band}_nObs``, ``firstObservationMjdTai`` and ``arc`` are derived from the set when
the SSObject is read.
"""

from __future__ import annotations

from typing import Any

from astropy.table import Table

from alertprod.apdb._ssobs import observation_entries
from alertprod.apdb.dynamodb import _keys as keys
from alertprod.apdb.dynamodb._spill import read_items, write_entry

__all__ = ["record_observations", "observation_sets"]

def _obs_key(ss_object_id: int) -> dict[str, Any]:
    return keys.key(f"SSOBJ#{int(ss_object_id)}", "OBS")


def record_observations(client: Any, table: str, dia_sources: Table) -> int:
    """Add the solar-system DiaSources of a CCD to their SSObjects' observation sets.

    Returns the number of SSObjects updated (one UpdateItem each while their item has room).
    """
    groups = observation_entries(dia_sources)
    for oid, obs in groups.items():
        write_entry(client, table, _obs_key(oid), "obs", {"SS": obs},
                    sum(len(o.encode()) for o in obs), add=True)
    return len(groups)


def observation_sets(client: Any, table: str, ids: list[int]) -> dict[int, list[str]]:
    """Observation sets of the given SSObjects (BatchGetItem)."""
    found = read_items(client, table, [_obs_key(i) for i in ids])
    return {int(pk[6:]): sorted({o for item in items for o in item.get("obs", {}).get("SS", [])})
            for (pk, _), items in found.items()}

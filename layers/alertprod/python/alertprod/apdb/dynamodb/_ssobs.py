"""SSObject observation counters that concurrent CCDs update without losing any.

Each asteroid has one ``SSOBJ#<id> / OBS`` item holding a string set of its observations
(``"<diaSourceId>:<band>:<midpointMjdTai>"``). CCDs add to it with ``ADD`` — atomic, and
idempotent for a retried CCD — so two CCDs of consecutive visits processed at once both count.
``nObs``, ``{band}_nObs``, ``firstObservationMjdTai`` and ``arc`` are derived from the set when
the SSObject is read.
"""

from __future__ import annotations

from typing import Any

from astropy.table import Table

from alertprod.apdb._ssobs import observation_entries
from alertprod.apdb.dynamodb import _keys as keys
from alertprod.apdb.dynamodb._calls import batch_get

__all__ = ["record_observations", "observation_sets"]

def _obs_key(ss_object_id: int) -> dict[str, Any]:
    return keys.key(f"SSOBJ#{int(ss_object_id)}", "OBS")


def record_observations(client: Any, table: str, dia_sources: Table) -> int:
    """Add the solar-system DiaSources of a CCD to their SSObjects' observation sets.

    Returns the number of SSObjects updated (one UpdateItem each).
    """
    groups = observation_entries(dia_sources)
    for oid, obs in groups.items():
        client.update_item(TableName=table, Key=_obs_key(oid), UpdateExpression="ADD obs :o",
                           ExpressionAttributeValues={":o": {"SS": obs}})
    return len(groups)


def observation_sets(client: Any, table: str, ids: list[int]) -> dict[int, list[str]]:
    """Observation sets of the given SSObjects (BatchGetItem)."""
    items = batch_get(client, table, [_obs_key(i) for i in ids])
    return {int(i["pk"]["S"][6:]): list(i["obs"]["SS"]) for i in items if "obs" in i}

"""Run records of daily precovery: how many units a run has, which are done (fan-in).

One item per run (``pk = PRECOVERY#<run id>``, ``sk = RUN``) in the Level 1 table. Units add
their own key to a string set (idempotent: a redelivered unit adds nothing); the first caller
that sees the set complete wins a conditional flag and triggers the finalisation.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from alertprod.apdb.dynamodb._calls import error_code
from alertprod.apdb.interface import PrecoveryRun
from alertprod.errors import NotFoundError

__all__ = ["start_run", "complete_unit", "get_run"]


def _key(run_id: str) -> dict[str, dict[str, str]]:
    return {"pk": {"S": f"PRECOVERY#{run_id}"}, "sk": {"S": "RUN"}}


def start_run(client: Any, table: str, run_id: str, *, n_units: int, object_ids: np.ndarray,
              validity_start_mjd_tai: float) -> None:
    """Record a run's size and objects (rewriting it on a rerun keeps the done-set)."""
    ids = np.unique(np.asarray(object_ids, np.int64))
    client.update_item(
        TableName=table, Key=_key(run_id),
        UpdateExpression="SET expected = :n, objects = :o, validityStart = :v",
        ExpressionAttributeValues={":n": {"N": str(int(n_units))}, ":o": {"B": ids.tobytes()},
                                   ":v": {"N": repr(float(validity_start_mjd_tai))}})


def complete_unit(client: Any, table: str, run_id: str, key: str) -> bool:
    """Mark one unit done; True for exactly one caller once every unit of the run is done.

    Raises NotFoundError for a run that was never started (nothing is written).
    """
    try:
        item = client.update_item(
            TableName=table, Key=_key(run_id), UpdateExpression="ADD done :k",
            ConditionExpression="attribute_exists(expected)",
            ExpressionAttributeValues={":k": {"SS": [key]}}, ReturnValues="ALL_NEW")["Attributes"]
    except Exception as exc:  # botocore ClientError (this module does not import botocore)
        if error_code(exc) == "ConditionalCheckFailedException":
            raise NotFoundError(f"precovery run {run_id!r} was never started") from exc
        raise
    if len(item.get("done", {}).get("SS", [])) < int(item.get("expected", {"N": "0"})["N"]):
        return False
    try:
        client.update_item(TableName=table, Key=_key(run_id), UpdateExpression="SET finalized = :t",
                           ConditionExpression="attribute_not_exists(finalized)",
                           ExpressionAttributeValues={":t": {"BOOL": True}})
    except Exception as exc:  # botocore ClientError (this module does not import botocore)
        if error_code(exc) == "ConditionalCheckFailedException":
            return False
        raise
    return True


def get_run(client: Any, table: str, run_id: str) -> PrecoveryRun | None:
    """The run record (strongly consistent), or None."""
    item = client.get_item(TableName=table, Key=_key(run_id), ConsistentRead=True).get("Item")
    if not item or "expected" not in item:
        return None
    return PrecoveryRun(run_id=run_id, expected_units=int(item["expected"]["N"]),
                        done_units=frozenset(item.get("done", {}).get("SS", [])),
                        object_ids=np.frombuffer(item["objects"]["B"], dtype=np.int64).copy(),
                        validity_start_mjd_tai=float(item["validityStart"]["N"]),
                        finalized=bool(item.get("finalized", {}).get("BOOL", False)))

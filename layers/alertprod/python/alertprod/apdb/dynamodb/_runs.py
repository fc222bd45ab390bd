"""Run records of daily precovery: how many units a run has, which are done (fan-in).

A run of any size fits (docs/apdb.md "Precovery runs"). Under ``pk = PRECOVERY#<run id>``:

- ``RUN``: ``expected`` units, ``validityStart``, the object-id pointer (``ids`` digest,
  ``idChunks``), the counter ``n`` of completed units and the ``finalized`` flag: < 0.2 KB;
- ``U#<unit key>``: one marker per completed unit, written in one transaction with
  ``ADD n 1`` on ``RUN`` (the marker's ``attribute_not_exists`` makes a redelivered unit add
  nothing, and a run never started cancels the transaction, writing nothing);
- ``O#<digest>#<k>``: the run's diaObjectIds, 40,000 per chunk (320 KB), written before the
  pointer, so a reader never sees half of a rerun's ids.

The finalisation flag is taken by a conditional update (``n >= expected``, flag absent) by
whichever completion first sees the counter complete: exactly once, and also when a crash
fell between the last increment and the flag (a redelivered unit adds nothing and takes it).

Version 1 records (one item: the done-set as a string set ``done``, the ids as one binary
``objects``) still read and complete: their ``done`` set is frozen, a unit in it counts as
done, and the counter starts at its size (set once by ``start_run`` or the first completion).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from alertprod.apdb._layout import check_unit_key, run_id_chunks
from alertprod.apdb.dynamodb import _keys as keys
from alertprod.apdb.dynamodb._calls import (
    TransactionCancelledError,
    batch_get,
    batch_write,
    error_code,
    num,
    query_all,
    transact_write,
)
from alertprod.apdb.interface import PrecoveryRun
from alertprod.errors import NotFoundError, StorageError

__all__ = ["start_run", "complete_unit", "get_run"]


def _legacy_count(item: dict[str, Any] | None) -> int:
    """Units a version-1 record counted in its ``done`` set (0 for a new record)."""
    return len((item or {}).get("done", {}).get("SS", []))


def start_run(client: Any, table: str, run_id: str, *, n_units: int, object_ids: np.ndarray,
              validity_start_mjd_tai: float) -> None:
    """Record a run's size and objects (a rerun rewrites them and keeps the done units)."""
    digest, chunks = run_id_chunks(object_ids)
    run = keys.precovery_run(run_id)
    old = client.get_item(TableName=table, Key=run, ConsistentRead=True,
                          ProjectionExpression="done").get("Item")
    batch_write(client, table, puts=[{**keys.precovery_objects(run_id, digest, k),
                                      "data": {"B": c}} for k, c in enumerate(chunks)])
    client.update_item(
        TableName=table, Key=run,
        UpdateExpression=("SET expected = :n, validityStart = :v, ids = :d, idChunks = :c, "
                          "n = if_not_exists(n, :n0) REMOVE objects"),
        ExpressionAttributeValues={":n": num(int(n_units)), ":v": num(float(validity_start_mjd_tai)),
                                   ":d": {"S": digest}, ":c": num(len(chunks)),
                                   ":n0": num(_legacy_count(old))})


def complete_unit(client: Any, table: str, run_id: str, key: str) -> bool:
    """Mark one unit done; True for exactly one caller once every unit of the run is done.

    Raises NotFoundError for a run that was never started (nothing is written).
    """
    key = check_unit_key(key)
    run = keys.precovery_run(run_id)
    for _ in range(2):  # a second round only after migrating a version-1 record
        try:
            transact_write(client, [
                {"Put": {"TableName": table, "Item": keys.precovery_unit(run_id, key),
                         "ConditionExpression": "attribute_not_exists(pk)"}},
                {"Update": {"TableName": table, "Key": run, "UpdateExpression": "ADD n :one",
                            "ConditionExpression": "attribute_exists(n) AND NOT contains(done, :k)",
                            "ExpressionAttributeValues": {":one": num(1), ":k": {"S": key}},
                            "ReturnValuesOnConditionCheckFailure": "ALL_OLD"}}])
            break
        except TransactionCancelledError as exc:
            marker, record = (exc.reasons + [{}, {}])[:2]
            if marker.get("Code") == "ConditionalCheckFailed":
                break  # a redelivered unit: already counted
            if record.get("Code") != "ConditionalCheckFailed":
                raise
            old = record.get("Item")
            if not old or "expected" not in old:
                raise NotFoundError(f"precovery run {run_id!r} was never started") from exc
            if "n" in old:
                break  # in a version-1 record's done set: already counted
            _migrate(client, table, run, old)
    else:
        raise StorageError(f"precovery run {run_id!r}: the unit could not be counted")
    return _take_finalization(client, table, run)


def _migrate(client: Any, table: str, run: dict, old: dict[str, Any]) -> None:
    """Start the counter of a version-1 record at the size of its (frozen) done set."""
    try:
        client.update_item(TableName=table, Key=run, UpdateExpression="SET n = :n0",
                           ConditionExpression="attribute_not_exists(n)",
                           ExpressionAttributeValues={":n0": num(_legacy_count(old))})
    except Exception as exc:  # botocore ClientError (this module does not import botocore)
        if error_code(exc) != "ConditionalCheckFailedException":
            raise  # else another completion migrated it first


def _take_finalization(client: Any, table: str, run: dict) -> bool:
    """Set the run's flag if its counter is complete: True for the one caller who sets it."""
    item = client.get_item(TableName=table, Key=run, ConsistentRead=True,
                           ProjectionExpression="expected, n, finalized").get("Item") or {}
    if "finalized" in item or int(item.get("n", {"N": "0"})["N"]) < int(
            item.get("expected", {"N": "1"})["N"]):
        return False
    try:
        client.update_item(TableName=table, Key=run, UpdateExpression="SET finalized = :t",
                           ConditionExpression="attribute_not_exists(finalized) AND n >= expected",
                           ExpressionAttributeValues={":t": {"BOOL": True}})
    except Exception as exc:  # botocore ClientError (this module does not import botocore)
        if error_code(exc) == "ConditionalCheckFailedException":
            return False
        raise
    return True


def get_run(client: Any, table: str, run_id: str) -> PrecoveryRun | None:
    """The run record (strongly consistent), or None."""
    run = keys.precovery_run(run_id)
    item = client.get_item(TableName=table, Key=run, ConsistentRead=True).get("Item")
    if not item or "expected" not in item:
        return None
    pk = run["pk"]["S"]
    prefix = keys.PRECOVERY_UNIT_PREFIX
    done = set(item.get("done", {}).get("SS", []))
    done.update(m["sk"]["S"][len(prefix):] for m in query_all(client, table, pk, prefix))
    if "ids" in item:
        wanted = [keys.precovery_objects(run_id, item["ids"]["S"], k)
                  for k in range(int(item["idChunks"]["N"]))]
        found = {keys.split_key(i): i["data"]["B"] for i in batch_get(client, table, wanted)}
        try:
            raw = b"".join(found[keys.split_key(k)] for k in wanted)
        except KeyError as exc:
            raise NotFoundError(f"precovery run {run_id!r}: an object-id chunk is missing") from exc
    else:  # version 1: the ids in the record itself
        raw = item.get("objects", {}).get("B", b"")
    return PrecoveryRun(run_id=run_id, expected_units=int(item["expected"]["N"]),
                        done_units=frozenset(done),
                        object_ids=np.frombuffer(raw, dtype=np.int64).copy(),
                        validity_start_mjd_tai=float(item["validityStart"]["N"]),
                        finalized=bool(item.get("finalized", {}).get("BOOL", False)))

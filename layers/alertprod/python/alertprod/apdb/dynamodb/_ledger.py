"""Per-CCD processing ledger and per-alert publish marks, so that retries do nothing twice.

A CCD moves forward through :class:`~alertprod.apdb.coordination.CcdState` (``started`` →
``planned`` → ``stored`` → ``done``); a transition backwards is refused with a conditional write. Each alert's publish
state is a small item of its own, read back in batches before (re)publishing.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable
from typing import Any

from alertprod.apdb.coordination import CcdLedger, CcdState
from alertprod.apdb.dynamodb import _keys as keys
from alertprod.apdb.dynamodb._calls import batch_get, batch_write, error_code, num
from alertprod.errors import ConflictError, StorageError

__all__ = ["DynamoCcdLedger", "LEDGER_TTL_DAYS"]

#: Days after which DynamoDB's TTL removes ledger records and alert marks.
LEDGER_TTL_DAYS = 90


class DynamoCcdLedger(CcdLedger):
    """Ledger records and alert marks in the Level 1 table.

    Parameters
    ----------
    client : botocore client
        Low-level DynamoDB client (injected).
    table_name : str
        The Level 1 table.
    clock : callable, keyword-only
        Current Unix time in seconds.
    """

    def __init__(self, client: Any, table_name: str, *, clock: Callable[[], float] = time.time):
        self._client = client
        self._table = table_name
        self._clock = clock

    def _ttl(self) -> dict[str, str]:
        return num(int(self._clock() + LEDGER_TTL_DAYS * 86400))

    def get_ccd_record(self, visit: int, detector: int) -> dict[str, Any] | None:
        """``{"state": ..., "updatedAt": unix s, **fields}`` of a CCD, or None."""
        item = self._client.get_item(TableName=self._table, Key=keys.ccd_record(visit, detector),
                                     ConsistentRead=True).get("Item")
        if not item:
            return None
        out: dict[str, Any] = {"state": CcdState.of(item["state"]["S"]),
                               "updatedAt": float(item["updatedAt"]["N"])}
        for attr, value in item.items():
            if attr.startswith("f_"):
                out[attr[2:]] = json.loads(value["S"])
        return out

    def put_ccd_record(self, visit: int, detector: int, state: CcdState | str,
                       **fields: Any) -> None:
        """Move a CCD to ``state`` (same or later than its current one), merging ``fields``.

        Field values must be JSON-serialisable.

        Raises
        ------
        ConflictError
            When the CCD is already in a later state.
        """
        state = CcdState.of(state)
        allowed = [s.value for s in state.and_earlier()]
        names = {"#s": "state", "#u": "updatedAt", "#ttl": "ttl"}
        values: dict[str, Any] = {":s": {"S": state.value}, ":u": num(self._clock()), ":ttl": self._ttl()}
        sets = ["#s = :s", "#u = :u", "#ttl = :ttl"]
        for i, (name, value) in enumerate(sorted(fields.items())):
            names[f"#f{i}"] = f"f_{name}"
            values[f":f{i}"] = {"S": json.dumps(value)}
            sets.append(f"#f{i} = :f{i}")
        for i, s in enumerate(allowed):
            values[f":a{i}"] = {"S": s}
        condition = ("attribute_not_exists(pk) OR #s IN ("
                     + ", ".join(f":a{i}" for i in range(len(allowed))) + ")")
        try:
            self._client.update_item(TableName=self._table, Key=keys.ccd_record(visit, detector),
                                     UpdateExpression="SET " + ", ".join(sets),
                                     ConditionExpression=condition,
                                     ExpressionAttributeNames=names,
                                     ExpressionAttributeValues=values)
        except Exception as exc:  # botocore ClientError (this module does not import botocore)
            if error_code(exc) == "ConditionalCheckFailedException":
                raise ConflictError(f"state: CCD {visit}/{detector} is already past {state.value!r}") \
                    from exc
            raise StorageError(f"ledger update of CCD {visit}/{detector}: {exc}") from exc

    def reopen_ccd_record(self, visit: int, detector: int, *, catalog_sha256: str,
                          **fields: Any) -> None:
        """Reopen a ``DONE`` CCD for reprocessing (one conditional update; see the interface)."""
        if not isinstance(catalog_sha256, str) or not catalog_sha256:
            raise ValueError(f"catalog_sha256: expected a non-empty string, got {catalog_sha256!r}")
        sha = {"S": json.dumps(catalog_sha256)}
        names = {"#s": "state", "#u": "updatedAt", "#ttl": "ttl", "#c": "f_catalogSha256",
                 "#r": "f_reopenedFrom"}
        values: dict[str, Any] = {":started": {"S": CcdState.STARTED.value},
                                  ":done": {"S": CcdState.DONE.value}, ":u": num(self._clock()),
                                  ":ttl": self._ttl(), ":sha": sha}
        sets = ["#s = :started", "#u = :u", "#ttl = :ttl", "#r = :sha"]
        for i, (name, value) in enumerate(sorted(fields.items())):
            names[f"#f{i}"] = f"f_{name}"
            values[f":f{i}"] = {"S": json.dumps(value)}
            sets.append(f"#f{i} = :f{i}")
        try:
            self._client.update_item(TableName=self._table, Key=keys.ccd_record(visit, detector),
                                     UpdateExpression="SET " + ", ".join(sets) + " REMOVE #c",
                                     ConditionExpression="#s = :done AND #c = :sha",
                                     ExpressionAttributeNames=names,
                                     ExpressionAttributeValues=values)
        except Exception as exc:  # botocore ClientError
            if error_code(exc) != "ConditionalCheckFailedException":
                raise StorageError(f"ledger reopen of CCD {visit}/{detector}: {exc}") from exc
            record = self.get_ccd_record(visit, detector) or {}
            if record.get("state") is CcdState.STARTED \
                    and record.get("reopenedFrom") == catalog_sha256:
                return  # already reopened from this catalog
            raise ConflictError(f"reopen: CCD {visit}/{detector} is not done from catalog "
                                f"{catalog_sha256[:12]}… (state "
                                f"{record.get('state', 'absent')})") from exc

    def mark_alerts(self, dia_source_ids: Iterable[int], state: str) -> None:
        """Record the same publish state for many alerts (BatchWriteItem, 25 per call)."""
        if not state:
            raise ValueError("state: must be a non-empty string")
        ttl = self._ttl()
        batch_write(self._client, self._table,
                    puts=[{**keys.alert_mark(i), "state": {"S": state}, "ttl": ttl}
                          for i in dict.fromkeys(int(i) for i in dia_source_ids)])

    def get_alert_marks(self, dia_source_ids: Iterable[int]) -> dict[int, str]:
        """State of each alert that has a mark (alerts without one are absent)."""
        items = batch_get(self._client, self._table,
                          [keys.alert_mark(int(i)) for i in dia_source_ids])
        return {int(i["pk"]["S"][6:]): i["state"]["S"] for i in items}

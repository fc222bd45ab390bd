"""Side records of the DynamoDB service store: watchlists, precovery orders, relay marks.

The item layout is :mod:`~alertprod.distribution.store.dynamodb`'s table (``WL#``, ``PRE#``,
``PORD#``, ``RELAY#`` partitions); this mixin keeps that module under its size and needs only
its ``_call``/``_get``/``_query`` plumbing, ``_db``, ``table_name`` and ``_clock``. The attribute
helpers (``_s``, ``_n``, ``_num``) and the TTLs live here and are shared with that module.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from alertprod.aws.dynamo_table import attr_n as _n
from alertprod.aws.dynamo_table import attr_s as _s
from alertprod.aws.dynamo_table import error_code as _code
from alertprod.distribution.records import PrecoveryOrder, WatchlistRecord
from alertprod.errors import ConflictError, StorageError

__all__ = ["DynamoSideRecords", "DELIVERY_TTL_DAYS", "COUNTER_TTL_DAYS", "RELAY_TTL_DAYS"]

#: Delivery records (and so redelivery) are kept this long, days.
DELIVERY_TTL_DAYS = 30
#: Per-day counters are kept this long, days.
COUNTER_TTL_DAYS = 400



def _num(attr: Mapping[str, str]) -> float:
    text = attr["N"]
    return float(text) if any(c in text for c in ".eE") else int(text)


#: Relay marks (which alerts a public broker accepted) are kept this long, days: longer than
#: the relay queue keeps a message (4 days), so a redelivered message is always recognised.
RELAY_TTL_DAYS = 8


class DynamoSideRecords:
    """Watchlist, precovery-order and relay-mark methods of :class:`DynamoServiceStore`."""

    _db: Any
    table_name: str

    # -- watchlists -----------------------------------------------------------------------
    def put_watchlist(self, record: WatchlistRecord) -> None:
        self._call("put_item", Item={"pk": _s(f"WL#{record.user_id}"), "sk": _s(f"N#{record.name}"),
                                     "data": _s(json.dumps(record.to_dict()))})

    def get_watchlist(self, user_id: str, name: str) -> WatchlistRecord | None:
        item = self._get(f"WL#{user_id}", f"N#{name}")
        return None if item is None else WatchlistRecord.from_dict(json.loads(item["data"]["S"]))

    def list_watchlists(self, user_id: str) -> list[WatchlistRecord]:
        out = [WatchlistRecord.from_dict(json.loads(i["data"]["S"])) for i in self._query(f"WL#{user_id}")]
        return sorted(out, key=lambda w: w.name)

    def delete_watchlist(self, user_id: str, name: str) -> None:
        self._call("delete_item", Key={"pk": _s(f"WL#{user_id}"), "sk": _s(f"N#{name}")})

    # -- precovery ordered by filters -----------------------------------------------------
    def admit_precovery(self, filter_id: str, day: str, alert_id: int, cap: int) -> bool:
        if cap <= 0:
            return False
        aid = {"NS": [str(int(alert_id))]}
        try:  # ADD to a set is idempotent; the condition caps the set's size atomically
            self._call("update_item", Key={"pk": _s(f"PRE#{filter_id}"), "sk": _s(f"D#{day}")},
                       UpdateExpression="ADD ids :a SET expires_at = if_not_exists(expires_at, :ttl)",
                       ConditionExpression="attribute_not_exists(ids) OR contains(ids, :one) OR size(ids) < :cap",
                       ExpressionAttributeValues={":a": aid, ":one": {"N": str(int(alert_id))},
                                                  ":cap": _n(int(cap)),
                                                  ":ttl": _n(int(self._clock()) + DELIVERY_TTL_DAYS * 86400)})
            return True
        except ConflictError:
            return False

    def _order_item(self, order: PrecoveryOrder) -> dict[str, Any]:
        return {"pk": _s(f"PORD#{order.filter_id}"), "sk": _s(f"A#{int(order.alert_id)}"),
                "data": _s(json.dumps(order.to_dict())),
                "expires_at": _n(int(order.created_unix) + DELIVERY_TTL_DAYS * 86400)}

    def claim_precovery_order(self, order: PrecoveryOrder) -> tuple[PrecoveryOrder, bool]:
        try:
            self._call("put_item", Item=self._order_item(order), ConditionExpression="attribute_not_exists(pk)")
            return order, True
        except ConflictError:
            stored = self.get_precovery_order(order.filter_id, order.alert_id)
            return (stored if stored is not None else order), False

    def update_precovery_order(self, order: PrecoveryOrder) -> None:
        self._call("put_item", Item=self._order_item(order))

    def get_precovery_order(self, filter_id: str, alert_id: int) -> PrecoveryOrder | None:
        item = self._get(f"PORD#{filter_id}", f"A#{int(alert_id)}")
        return None if item is None else PrecoveryOrder.from_dict(json.loads(item["data"]["S"]))

    # -- the stream relay -----------------------------------------------------------------
    def relayed(self, broker: str, alert_ids: Sequence[int]) -> set[int]:
        keys = [{"pk": _s(f"RELAY#{broker}"), "sk": _s(f"A#{a}")} for a in dict.fromkeys(int(a) for a in alert_ids)]
        return {int(i["sk"]["S"][2:]) for i in self._batch_get(keys, projection="sk")}

    def mark_relayed(self, broker: str, alert_ids: Sequence[int], now_unix: float) -> None:
        ttl = _n(int(now_unix) + RELAY_TTL_DAYS * 86400)
        puts = [{"PutRequest": {"Item": {"pk": _s(f"RELAY#{broker}"), "sk": _s(f"A#{a}"), "expires_at": ttl}}}
                for a in dict.fromkeys(int(a) for a in alert_ids)]
        for start in range(0, len(puts), 25):  # BatchWriteItem's limit
            request = {self.table_name: puts[start:start + 25]}
            while request:
                try:
                    r = self._db.batch_write_item(RequestItems=request)
                except Exception as exc:
                    raise StorageError(f"DynamoDB batch_write_item failed: {_code(exc) or exc}") from exc
                request = r.get("UnprocessedItems") or {}

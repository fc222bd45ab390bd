"""The service store on one DynamoDB table (``pk`` S / ``sk`` S, TTL on ``expires_at``).

Single-table layout (every hot-path read is a GetItem or a Query of one partition):

==========================  =====================  =========================================
pk                          sk                     item
==========================  =====================  =========================================
``TOKEN#{sha256}``          ``TOKEN``              a token record (the hash only)
``FILTERS``                 ``F#{filter_id}``      a filter's current version, transports,
                                                   ``held_pending``, ``notices``
``FVER#{filter_id}``        ``V#{version:08d}``    one version of the expression
``CNT#{filter_id}``         ``D#{YYYY-MM-DD}``     the day's counters (atomic ADD)
``DLV#{filter_id}``         ``D#{delivery_id}``    a delivery record (held matches included);
                                                   expires ``delivery_ttl_days`` after creation
``WL#{user_id}``            ``N#{name}``           a watchlist's record (entries in S3)
``PRE#{filter_id}``         ``D#{YYYY-MM-DD}``     the day's admitted precovery orders: a
                                                   number set of alert ids, capped atomically
``PORD#{filter_id}``        ``A#{alert_id}``       a precovery order (job id), kept as long as
                                                   delivery records
``RELAY#{broker}``          ``A#{alert_id}``       an alert a public broker accepted (expires
                                                   after ``RELAY_TTL_DAYS``)
==========================  =====================  =========================================

All filters share the partition ``FILTERS``, which the service reads once per batch (and
caches); a filter item is bounded (expression ≤ 10,000 characters, ≤ 8 transports, ≤ 20
notices: well under DynamoDB's 400 KB). Listing tokens scans (an operator command, rare).
Takes an injected low-level client and never imports boto3.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Mapping
from typing import Any

from alertprod.aws.dynamo_table import DynamoTable
from alertprod.distribution.records import (
    COUNTER_NAMES,
    DeliveryRecord,
    FilterRecord,
    FilterVersion,
    Notice,
    TokenRecord,
)
from alertprod.distribution.store._dynamodb_side import (
    COUNTER_TTL_DAYS,
    DELIVERY_TTL_DAYS,
    RELAY_TTL_DAYS,
    DynamoSideRecords,
    _n,
    _num,
    _s,
)
from alertprod.distribution.store.interface import MAX_NOTICES, ServiceStore
from alertprod.errors import ConflictError, NotFoundError, StorageError

__all__ = ["DynamoServiceStore", "DELIVERY_TTL_DAYS", "COUNTER_TTL_DAYS", "RELAY_TTL_DAYS"]

_SERVICE_OWNED = ("held_pending", "notices", "expiry_warned")

class DynamoServiceStore(DynamoTable, DynamoSideRecords, ServiceStore):
    """:class:`ServiceStore` on one DynamoDB table (plumbing: :class:`~alertprod.aws.dynamo_table.DynamoTable`).

    Parameters
    ----------
    client : botocore client
        Low-level DynamoDB client (injected).
    table_name : str
        The service table (``ServiceTable`` in the template).
    clock : callable, keyword-only
        Unix time, for the TTL of delivery records.
    """

    # -- tokens ---------------------------------------------------------------------------
    def put_token(self, token: TokenRecord) -> None:
        item = {"pk": _s(f"TOKEN#{token.token_hash}"), "sk": _s("TOKEN"),
                "data": _s(json.dumps(token.to_dict()))}
        self._call("put_item", Item=item, ConditionExpression="attribute_not_exists(pk)")

    def get_token(self, token_hash: str) -> TokenRecord | None:
        item = self._get(f"TOKEN#{token_hash}", "TOKEN")
        return None if item is None else TokenRecord.from_dict(json.loads(item["data"]["S"]))

    def list_tokens(self, user_id: str | None = None) -> list[TokenRecord]:
        out, start = [], None
        while True:
            extra = {"ExclusiveStartKey": start} if start else {}
            page = self._call("scan", FilterExpression="begins_with(pk, :p)",
                              ExpressionAttributeValues={":p": _s("TOKEN#")}, **extra)
            out += [TokenRecord.from_dict(json.loads(i["data"]["S"])) for i in page.get("Items", [])]
            start = page.get("LastEvaluatedKey")
            if not start:
                break
        out = [t for t in out if user_id is None or t.user_id == user_id]
        return sorted(out, key=lambda t: (t.created_unix, t.token_hash))

    def revoke_token(self, token_hash: str) -> TokenRecord:
        token = self.get_token(token_hash)
        if token is None:
            raise NotFoundError(f"no token {token_hash[:12]}")
        token = token.replace(revoked=True)
        self._call("put_item", Item={"pk": _s(f"TOKEN#{token_hash}"), "sk": _s("TOKEN"),
                                     "data": _s(json.dumps(token.to_dict()))})
        return token

    # -- filters --------------------------------------------------------------------------
    @staticmethod
    def _definition(record: FilterRecord) -> str:
        data = record.to_dict()
        for name in _SERVICE_OWNED:
            data.pop(name)
        return json.dumps(data)

    def _filter_item(self, record: FilterRecord) -> dict[str, Any]:
        return {"pk": _s("FILTERS"), "sk": _s(f"F#{record.filter_id}"),
                "data": _s(self._definition(record)), "user_id": _s(record.user_id),
                "updated_unix": _n(record.updated_unix), "held_pending": _n(record.held_pending),
                "expiry_warned": {"BOOL": record.expiry_warned},
                "notices": _s(json.dumps(record.notices))}

    @staticmethod
    def _filter_of(item: Mapping[str, Any]) -> FilterRecord:
        data = json.loads(item["data"]["S"])
        data["held_pending"] = int(_num(item.get("held_pending", {"N": "0"})))
        data["expiry_warned"] = bool(item.get("expiry_warned", {}).get("BOOL", False))
        data["notices"] = json.loads(item.get("notices", {}).get("S", "[]"))
        return FilterRecord.from_dict(data)

    def _put_version(self, record: FilterRecord) -> None:
        v = FilterVersion(record.filter_id, record.version, record.expression, record.normalized,
                          record.version_hash, record.updated_unix)
        self._call("put_item", Item={"pk": _s(f"FVER#{record.filter_id}"),
                                     "sk": _s(f"V#{record.version:08d}"),
                                     "data": _s(json.dumps(v.to_dict()))})

    def create_filter(self, record: FilterRecord) -> None:
        self._call("put_item", Item=self._filter_item(record),
                   ConditionExpression="attribute_not_exists(pk)")
        self._put_version(record)

    def get_filter(self, filter_id: str) -> FilterRecord | None:
        item = self._get("FILTERS", f"F#{filter_id}")
        return None if item is None else self._filter_of(item)

    def list_filters(self, user_id: str | None = None) -> list[FilterRecord]:
        kwargs: dict[str, Any] = {}
        if user_id is not None:
            kwargs = {"FilterExpression": "user_id = :u",
                      "ExpressionAttributeValues": {":u": _s(user_id)}}
        out = [self._filter_of(i) for i in self._query("FILTERS", **kwargs)]
        return sorted(out, key=lambda f: (f.created_unix, f.filter_id))

    def update_filter(self, record: FilterRecord, *, expected_updated_unix: float) -> None:
        try:
            self._call("update_item", Key={"pk": _s("FILTERS"), "sk": _s(f"F#{record.filter_id}")},
                       UpdateExpression="SET #d = :d, updated_unix = :u, user_id = :o, expiry_warned = :w",
                       ConditionExpression="attribute_exists(pk) AND updated_unix = :e",
                       ExpressionAttributeNames={"#d": "data"},
                       ExpressionAttributeValues={":d": _s(self._definition(record)),
                                                  ":u": _n(record.updated_unix),
                                                  ":o": _s(record.user_id),
                                                  ":w": {"BOOL": record.expiry_warned},
                                                  ":e": _n(expected_updated_unix)})
        except ConflictError:
            if self.get_filter(record.filter_id) is None:
                raise NotFoundError(f"no filter {record.filter_id}") from None
            raise
        if not self._get(f"FVER#{record.filter_id}", f"V#{record.version:08d}"):
            self._put_version(record)

    def delete_filter(self, filter_id: str) -> None:
        self._call("delete_item", Key={"pk": _s("FILTERS"), "sk": _s(f"F#{filter_id}")})

    def filter_versions(self, filter_id: str) -> list[FilterVersion]:
        items = self._query(f"FVER#{filter_id}")
        out = [FilterVersion.from_dict(json.loads(i["data"]["S"])) for i in items]
        return sorted(out, key=lambda v: v.version)

    def add_held(self, filter_id: str, delta: int) -> None:
        with contextlib.suppress(ConflictError):  # the filter was deleted meanwhile
            self._call("update_item", Key={"pk": _s("FILTERS"), "sk": _s(f"F#{filter_id}")},
                       UpdateExpression="ADD held_pending :d", ConditionExpression="attribute_exists(pk)",
                       ExpressionAttributeValues={":d": _n(int(delta))})

    def add_notice(self, filter_id: str, notice: Notice, *, expiry_warned: bool | None = None) -> None:
        item = self._get("FILTERS", f"F#{filter_id}")
        if item is None:
            return
        notices = [*json.loads(item.get("notices", {}).get("S", "[]")), notice.to_dict()][-MAX_NOTICES:]
        expr, values = "SET notices = :n", {":n": _s(json.dumps(notices))}
        if expiry_warned is not None:
            expr += ", expiry_warned = :w"
            values[":w"] = {"BOOL": expiry_warned}
        with contextlib.suppress(ConflictError):  # the filter was deleted meanwhile
            self._call("update_item", Key={"pk": _s("FILTERS"), "sk": _s(f"F#{filter_id}")},
                       UpdateExpression=expr, ConditionExpression="attribute_exists(pk)",
                       ExpressionAttributeValues=values)

    # -- counters -------------------------------------------------------------------------
    def add_counts(self, filter_id: str, day: str, counts: Mapping[str, float], *,
                   last_delivery_unix: float | None = None, lag_max_s: float | None = None) -> None:
        key = {"pk": _s(f"CNT#{filter_id}"), "sk": _s(f"D#{day}")}
        adds = {k: v for k, v in counts.items() if v}
        unknown = set(adds) - set(COUNTER_NAMES)
        if unknown:
            raise StorageError(f"unknown counters {sorted(unknown)}")
        names = {f"#c{i}": k for i, k in enumerate(adds)}
        values = {f":c{i}": _n(v) for i, v in enumerate(adds.values())}
        expr = "SET expires_at = if_not_exists(expires_at, :ttl)"
        values[":ttl"] = _n(int(self._clock()) + COUNTER_TTL_DAYS * 86400)
        if adds:
            expr += " ADD " + ", ".join(f"#c{i} :c{i}" for i in range(len(adds)))
        self._call("update_item", Key=key, UpdateExpression=expr, ExpressionAttributeValues=values,
                   **({"ExpressionAttributeNames": names} if names else {}))
        for name, value in (("last_delivery_unix", last_delivery_unix), ("lag_max_s", lag_max_s)):
            if value is None:
                continue
            with contextlib.suppress(ConflictError):  # a maximum: set only when larger
                self._call("update_item", Key=key, UpdateExpression=f"SET {name} = :v",
                           ConditionExpression=f"attribute_not_exists({name}) OR {name} < :v",
                           ExpressionAttributeValues={":v": _n(value)})

    def get_counts(self, filter_id: str, days: list[str]) -> dict[str, dict[str, float]]:
        keys = [{"pk": _s(f"CNT#{filter_id}"), "sk": _s(f"D#{d}")} for d in dict.fromkeys(days)]
        return {item["sk"]["S"][2:]: {k: _num(v) for k, v in item.items() if "N" in v and k != "expires_at"}
                for item in self._batch_get(keys)}

    # -- deliveries -----------------------------------------------------------------------
    def _delivery_item(self, record: DeliveryRecord) -> dict[str, Any]:
        return {"pk": _s(f"DLV#{record.filter_id}"), "sk": _s(f"D#{record.delivery_id}"),
                "data": _s(json.dumps(record.to_dict())), "created_unix": _n(record.created_unix),
                "state": _s(record.state),
                "expires_at": _n(int(record.created_unix) + DELIVERY_TTL_DAYS * 86400)}

    def claim_delivery(self, record: DeliveryRecord) -> tuple[DeliveryRecord, bool]:
        try:
            self._call("put_item", Item=self._delivery_item(record),
                       ConditionExpression="attribute_not_exists(pk)")
            return record, True
        except ConflictError:
            stored = self.get_delivery(record.filter_id, record.delivery_id)
            return (stored if stored is not None else record), False

    def update_delivery(self, record: DeliveryRecord) -> None:
        self._call("put_item", Item=self._delivery_item(record))

    def get_delivery(self, filter_id: str, delivery_id: str) -> DeliveryRecord | None:
        item = self._get(f"DLV#{filter_id}", f"D#{delivery_id}")
        return None if item is None else DeliveryRecord.from_dict(json.loads(item["data"]["S"]))

    def deliveries_since(self, filter_id: str, since_unix: float, *, state: str | None = None,
                         limit: int | None = None) -> list[DeliveryRecord]:
        expr, values = "created_unix >= :t", {":t": _n(since_unix)}
        names = {}
        if state is not None:
            expr += " AND #st = :s"
            values[":s"] = _s(state)
            names = {"#st": "state"}
        items = self._query(f"DLV#{filter_id}", FilterExpression=expr, ExpressionAttributeValues=values,
                            **({"ExpressionAttributeNames": names} if names else {}))
        out = sorted((DeliveryRecord.from_dict(json.loads(i["data"]["S"])) for i in items),
                     key=lambda r: (r.created_unix, r.delivery_id))
        return out if limit is None else out[:limit]

"""DynamoDB calls within AWS limits, with retries, and a client wrapper that counts requests.

Takes an injected low-level DynamoDB client (``boto3.client("dynamodb")`` or anything with the
same methods) and never imports boto3. AWS limits are enforced here, not left to the service:
moto accepts a 26-item BatchWriteItem that AWS refuses.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from alertprod.apdb._layout import MAX_BATCH_GET, MAX_BATCH_WRITE, MAX_TRANSACT_ITEMS
from alertprod.apdb.dynamodb._keys import Key, split_key
from alertprod.apdb.interface import StorageMetrics
from alertprod.errors import ConflictError, StorageError

__all__ = ["MAX_BATCH_GET", "MAX_BATCH_WRITE", "MAX_TRANSACT_ITEMS", "InstrumentedClient",
           "error_code", "batch_get", "batch_write", "transact_write", "scan_all", "query_all", "num",
           "TransactionCancelledError"]

_MAX_ATTEMPTS = 8


def num(x: float | int) -> dict[str, str]:
    """A DynamoDB number attribute that round-trips a float or int exactly."""
    if isinstance(x, int) or (hasattr(x, "dtype") and x.dtype.kind in "iu"):
        return {"N": str(int(x))}
    return {"N": repr(float(x))}


def error_code(exc: BaseException) -> str:
    """The AWS error code of a botocore ``ClientError`` ("" for other exceptions)."""
    response = getattr(exc, "response", None) or {}
    return response.get("Error", {}).get("Code", "")


class TransactionCancelledError(ConflictError):
    """A TransactWriteItems call was cancelled; ``reasons`` has one entry per item.

    Each reason is a dict with ``Code`` (``"None"``, ``"ConditionalCheckFailed"``,
    ``"TransactionConflict"``, ...) and, when asked for, the old ``Item``.
    """

    def __init__(self, message: str, reasons: list[dict[str, Any]]):
        super().__init__(message)
        self.reasons = reasons


class InstrumentedClient:
    """Wrap a DynamoDB client, reporting every request to a :class:`StorageMetrics` hook.

    Parameters
    ----------
    client : botocore client
        The low-level client to wrap.
    metrics : StorageMetrics, optional
        Where requests are counted (shared by the APDB, ledger and leases of one deployment, so
        that the pipeline sees all requests of a CCD); a new one by default.
    """

    def __init__(self, client: Any, metrics: StorageMetrics | None = None):
        self._client = client
        self.metrics = metrics if metrics is not None else StorageMetrics()

    @property
    def exceptions(self) -> Any:
        """The wrapped client's exception classes."""
        return self._client.exceptions

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._client, name)
        if not callable(attr) or name.startswith("_") or name in ("get_paginator", "can_paginate"):
            return attr

        def call(*args: Any, **kwargs: Any) -> Any:
            self.metrics.count(name)  # a request that fails is a request too
            response = attr(*args, **kwargs)
            consumed = response.get("ConsumedCapacity") if isinstance(response, dict) else None
            if isinstance(consumed, dict):
                consumed = [consumed]
            self.metrics.count(name, 0, capacity_units=sum(float(c.get("CapacityUnits", 0.0))
                                                           for c in consumed or []))
            return response

        return call


def _backoff(attempt: int, sleep: Callable[[float], None] = time.sleep) -> None:
    # Full-jitter exponential backoff (AWS architecture blog), capped at 1 s.
    sleep(random.uniform(0, min(1.0, 0.02 * 2**attempt)))


def batch_get(client: Any, table: str, keys: Sequence[Key], *, consistent: bool = True,
              projection: str | None = None,
              names: dict[str, str] | None = None) -> list[dict[str, Any]]:
    """Fetch items by key, ≤ 100 keys per BatchGetItem, retrying UnprocessedKeys.

    Duplicate keys are fetched once. Missing items are simply absent from the result; order is
    not preserved (look items up by their ``pk``/``sk``).
    """
    unique = list({split_key(k): k for k in keys}.values())
    out: list[dict[str, Any]] = []
    for i in range(0, len(unique), MAX_BATCH_GET):
        request: dict[str, Any] = {"Keys": unique[i:i + MAX_BATCH_GET], "ConsistentRead": consistent}
        if projection:
            request["ProjectionExpression"] = projection
            if names:
                request["ExpressionAttributeNames"] = names
        pending = {table: request}
        for attempt in range(_MAX_ATTEMPTS):
            response = client.batch_get_item(RequestItems=pending,
                                             ReturnConsumedCapacity="TOTAL")
            out.extend(response.get("Responses", {}).get(table, []))
            pending = response.get("UnprocessedKeys") or {}
            if not pending:
                break
            _backoff(attempt)
        else:
            raise StorageError(f"BatchGetItem on {table}: keys still unprocessed after retries")
    return out


def batch_write(client: Any, table: str, puts: Iterable[dict[str, Any]] = (),
                deletes: Iterable[Key] = ()) -> int:
    """Put and delete items, ≤ 25 per BatchWriteItem, retrying UnprocessedItems.

    Returns the number of BatchWriteItem requests sent.
    """
    ops = [{"PutRequest": {"Item": item}} for item in puts]
    ops += [{"DeleteRequest": {"Key": k}} for k in deletes]
    sent = 0
    for i in range(0, len(ops), MAX_BATCH_WRITE):
        pending = {table: ops[i:i + MAX_BATCH_WRITE]}
        for attempt in range(_MAX_ATTEMPTS):
            if len(pending[table]) > MAX_BATCH_WRITE:  # never exceed AWS's limit
                raise StorageError("BatchWriteItem: more than 25 requests")
            response = client.batch_write_item(RequestItems=pending,
                                               ReturnConsumedCapacity="TOTAL")
            sent += 1
            pending = response.get("UnprocessedItems") or {}
            if not pending:
                break
            _backoff(attempt)
        else:
            raise StorageError(f"BatchWriteItem on {table}: items still unprocessed after retries")
    return sent


def _item_key(op: dict[str, Any]) -> tuple[str, str]:
    body = next(iter(op.values()))
    return split_key(body["Item"] if "Item" in body else body["Key"])


def transact_write(client: Any, items: list[dict[str, Any]], *,
                   conflict_retries: int = 5) -> None:
    """One TransactWriteItems call (≤ 100 items, one operation per item).

    Retries ``TransactionConflict`` cancellations (another transaction touched an item) with
    backoff; any other cancellation raises :class:`TransactionCancelledError` with its reasons.
    """
    if not items:
        return
    if len(items) > MAX_TRANSACT_ITEMS:
        raise StorageError(f"items: {len(items)} operations exceed the {MAX_TRANSACT_ITEMS} limit")
    keys = [_item_key(op) for op in items]
    if len(set(keys)) != len(keys):
        raise StorageError("items: a transaction touches the same item twice")
    for attempt in range(conflict_retries + 1):
        try:
            client.transact_write_items(TransactItems=items, ReturnConsumedCapacity="TOTAL")
            return
        except Exception as exc:
            code = error_code(exc)
            if not code:
                raise  # not an AWS error: let it through unchanged
            if code not in ("TransactionCanceledException", "TransactionInProgressException"):
                raise StorageError(f"TransactWriteItems failed: {exc}") from exc
            reasons = getattr(exc, "response", {}).get("CancellationReasons") or []
            codes = {r.get("Code", "None") for r in reasons}
            failed = codes - {"None"}
            retryable = code == "TransactionInProgressException" or (
                bool(failed) and failed <= {"TransactionConflict", "ThrottlingError"})
            if retryable and attempt < conflict_retries:
                _backoff(attempt)
                continue
            raise TransactionCancelledError(f"TransactWriteItems cancelled: {sorted(codes)}",
                                       reasons) from exc


def scan_all(client: Any, table: str, *, consistent: bool = True) -> Iterable[dict[str, Any]]:
    """Every item of the table (export only: a full Scan)."""
    kwargs: dict[str, Any] = {"TableName": table, "ConsistentRead": consistent}
    while True:
        response = client.scan(**kwargs)
        yield from response.get("Items", [])
        last = response.get("LastEvaluatedKey")
        if not last:
            return
        kwargs["ExclusiveStartKey"] = last


def query_all(client: Any, table: str, pk: str, sk_prefix: str, *,
              projection: str | None = "sk") -> Iterable[dict[str, Any]]:
    """Every item of one partition whose sort key starts with ``sk_prefix`` (the whole
    partition when it is empty; strongly consistent Query, paged by DynamoDB at 1 MB; every
    attribute when ``projection`` is None). The precovery fan-in and the day's new objects
    use it."""
    kwargs: dict[str, Any] = {
        "TableName": table, "ConsistentRead": True,
        "KeyConditionExpression": "pk = :pk AND begins_with(sk, :prefix)",
        "ExpressionAttributeValues": {":pk": {"S": pk}, ":prefix": {"S": sk_prefix}}}
    if projection is not None:
        kwargs["ProjectionExpression"] = projection
    if not sk_prefix:
        kwargs["KeyConditionExpression"] = "pk = :pk"
        del kwargs["ExpressionAttributeValues"][":prefix"]
    yield from query_pages(client, kwargs)


def query_pages(client: Any, kwargs: dict[str, Any]) -> Iterable[dict[str, Any]]:
    """Every item of a Query (``kwargs`` as the client takes them), page after page."""
    kwargs = dict(kwargs)
    while True:
        response = client.query(**kwargs)
        yield from response.get("Items", [])
        last = response.get("LastEvaluatedKey")
        if not last:
            return
        kwargs["ExclusiveStartKey"] = last

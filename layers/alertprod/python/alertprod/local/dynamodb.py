"""DynamoDB on moto's server for the embedded stack and tests: faithful transactions, the table.

- :func:`patch_moto_transactions` makes moto's TransactWriteItems fast and isolated, and makes
  moto refuse the requests AWS refuses (over 25 BatchWriteItem requests, 100 BatchGetItem
  keys, 100 TransactWriteItems items; an ``ADD`` to a set that would pass the 400 KB item
  limit), so a backend that forgot to split fails here too;
- :func:`create_level1_table` builds ``Level1Table`` from the SAM template itself, so the
  emulation cannot drift from the infrastructure; :func:`moto_dynamodb` serves one;
- :class:`FailAfter` crashes a client after ``n`` calls (reliability tests).

Requires ``moto[server]`` and ``boto3`` (the ``local`` extra).
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

__all__ = ["patch_moto_transactions", "level1_table_properties", "create_level1_table",
           "moto_dynamodb", "FailAfter"]

#: AWS's limits per request: BatchWriteItem requests, BatchGetItem keys, TransactWriteItems items.
AWS_MAX_BATCH_WRITE, AWS_MAX_BATCH_GET, AWS_MAX_TRANSACT_ITEMS = 25, 100, 100
#: AWS's item size limit (bytes of attribute names and values, keys included).
AWS_MAX_ITEM_BYTES = 400 * 1024

_PATCHED = False
_PATCH_LOCK = threading.Lock()


def patch_moto_transactions() -> None:
    """Make moto's DynamoDB behave as AWS's where our code depends on it.

    - TransactWriteItems costs O(items), not O(items × table size): moto (5.x) deep-copies the
      whole table once per item of every transaction to be able to roll back (a 100-item
      transaction on a 5,000-item table takes seconds). A copy-on-write snapshot (the dict
      structure is copied, and only the items the transaction touches are deep-copied) rolls
      back identically.
    - Item operations are isolated from one another (one lock), as DynamoDB's are.
    - Requests over AWS's limits are refused with AWS's ``ValidationException``
      (:func:`_refuse_requests_over_limits`): moto accepts a 26-request BatchWriteItem.
    - An ``ADD`` to a set that would make the item larger than 400 KB is refused as AWS
      refuses it (:func:`_refuse_set_growth_over_item_limit`): moto checks the item size when
      an attribute is set, but grows a set in place unchecked.

    Idempotent and thread-safe; affects the moto backends of this process only. Written by
    hand: no moto option does this.
    """
    global _PATCHED
    with _PATCH_LOCK:
        if _PATCHED:
            return
        _patch_transactions()
        _refuse_requests_over_limits()
        _refuse_set_growth_over_item_limit()
        _PATCHED = True


def _patch_transactions() -> None:
    import copy
    import threading

    from moto.dynamodb import models as dynamo_models
    from moto.dynamodb.models.dynamo_type import DynamoType
    from moto.dynamodb.models.table import Table as MotoTable

    local = threading.local()
    original = dynamo_models.DynamoDBBackend.transact_write_items

    def snapshot(table: Any) -> Any:
        cache = local.snapshots
        if id(table) in cache:
            return cache[id(table)]
        copied = copy.copy(table)
        copied.items = type(table.items)(dict) if table.has_range_key else {}
        for hk, value in table.items.items():
            copied.items[hk] = dict(value) if table.has_range_key else value
        for table_name, hk, rk in local.touched:
            if table_name != table.name or hk not in table.items:
                continue
            if table.has_range_key:
                if rk in table.items[hk]:
                    copied.items[hk][rk] = copy.deepcopy(table.items[hk][rk])
            else:
                copied.items[hk] = copy.deepcopy(table.items[hk])
        cache[id(table)] = copied
        return copied

    class _Copy:
        @staticmethod
        def deepcopy(obj: Any, memo: Any = None) -> Any:
            if isinstance(obj, MotoTable) and getattr(local, "touched", None) is not None:
                return snapshot(obj)
            return copy.deepcopy(obj, memo)

        def __getattr__(self, name: str) -> Any:
            return getattr(copy, name)

    def transact_write_items(self: Any, transact_items: list[dict[str, Any]]) -> None:
        touched = []
        for entry in transact_items:
            op = next(iter(entry.values()))
            table = self.tables.get(op.get("TableName"))
            if table is None:
                continue
            attrs = op.get("Key") or op.get("Item") or {}
            hk = DynamoType(attrs[table.hash_key_attr]) if table.hash_key_attr in attrs else None
            rk = (DynamoType(attrs[table.range_key_attr])
                  if table.range_key_attr and table.range_key_attr in attrs else None)
            touched.append((table.name, hk, rk))
        local.touched, local.snapshots = touched, {}
        try:
            return original(self, transact_items)
        finally:
            local.touched, local.snapshots = None, {}

    dynamo_models.copy = _Copy()
    dynamo_models.DynamoDBBackend.transact_write_items = transact_write_items
    # moto rolls a cancelled transaction back by restoring the snapshot taken when it began,
    # which would silently undo writes other threads made meanwhile (DynamoDB isolates them).
    # One lock around the item operations of the in-process server restores that isolation.
    lock = threading.RLock()
    for name in ("get_item", "put_item", "update_item", "delete_item", "transact_write_items",
                 "batch_write_item", "transact_get_items", "query", "scan"):
        op = getattr(dynamo_models.DynamoDBBackend, name, None)
        if op is None:
            continue

        def locked(*args: Any, _op: Any = op, **kwargs: Any) -> Any:
            with lock:
                return _op(*args, **kwargs)

        setattr(dynamo_models.DynamoDBBackend, name, locked)


def _refuse_requests_over_limits() -> None:
    """Make moto's DynamoDB handler refuse what AWS refuses, with AWS's error and message."""
    from moto.dynamodb.exceptions import MockValidationException
    from moto.dynamodb.responses import DynamoHandler

    def check_batch_write(body: dict[str, Any]) -> None:
        batches = body.get("RequestItems") or {}
        for table, requests in batches.items():
            if len(requests) > AWS_MAX_BATCH_WRITE:
                raise MockValidationException(
                    f"1 validation error detected: Value at 'requestItems.{table}.member' failed "
                    f"to satisfy constraint: Map value must satisfy constraint: [Member must have "
                    f"length less than or equal to {AWS_MAX_BATCH_WRITE}, Member must have "
                    f"length greater than or equal to 1]")
        if sum(len(r) for r in batches.values()) > AWS_MAX_BATCH_WRITE:
            raise MockValidationException("Too many items requested for the BatchWriteItem call")

    def check_batch_get(body: dict[str, Any]) -> None:
        batches = body.get("RequestItems") or {}
        for table, request in batches.items():
            if len(request.get("Keys", [])) > AWS_MAX_BATCH_GET:
                raise MockValidationException(
                    f"1 validation error detected: Value at 'requestItems.{table}.member.keys' "
                    f"failed to satisfy constraint: Member must have length less than or equal "
                    f"to {AWS_MAX_BATCH_GET}")
        if sum(len(r.get("Keys", [])) for r in batches.values()) > AWS_MAX_BATCH_GET:
            raise MockValidationException("Too many items requested for the BatchGetItem call")

    def check_transact_write(body: dict[str, Any]) -> None:
        if len(body.get("TransactItems") or []) > AWS_MAX_TRANSACT_ITEMS:
            raise MockValidationException(
                "1 validation error detected at 'transactItems' failed to satisfy constraint: "
                f"Member must have length less than or equal to {AWS_MAX_TRANSACT_ITEMS}")

    for name, check in (("batch_write_item", check_batch_write),
                        ("batch_get_item", check_batch_get),
                        ("transact_write_items", check_transact_write)):
        original = getattr(DynamoHandler, name)

        def checked(self: Any, _original: Any = original, _check: Any = check) -> Any:
            _check(self.body)
            return _original(self)

        setattr(DynamoHandler, name, checked)


def _refuse_set_growth_over_item_limit() -> None:
    """Make moto's ``ADD`` to a set refuse to grow an item past 400 KB, as AWS does."""
    from moto.dynamodb.exceptions import ItemSizeTooLarge
    from moto.dynamodb.models.dynamo_type import DynamoType
    from moto.dynamodb.parsing import executors

    original = executors.AddExecutor.execute

    def execute(self: Any, item: Any) -> None:
        value = self.get_action_value()
        if isinstance(value, DynamoType) and value.is_set():
            try:
                current = self.get_item_at_end_of_path(item)
                present = set(current.value) if isinstance(current, DynamoType) else set()
            except Exception:  # moto's ProvidedKeyDoesNotExist: a new set
                present = set()
            member = value.type[0]
            added = sum(DynamoType({member: v}).size() for v in set(value.value) - present)
            if added and item.size() + added > AWS_MAX_ITEM_BYTES:
                raise ItemSizeTooLarge  # moto's update_item answers ItemSizeToUpdateTooLarge
        original(self, item)

    executors.AddExecutor.execute = execute


def level1_table_properties() -> dict[str, Any]:
    """``Properties`` of ``Level1Table`` in the SAM template."""
    from alertprod.local.template import find_template, load_template

    return load_template(find_template())["Resources"]["Level1Table"]["Properties"]


def create_level1_table(client: Any, name: str | None = None) -> str:
    """Create a fresh Level 1 table with the template's keys and TTL; returns its name."""
    props = level1_table_properties()
    name = name or f"level1-{uuid.uuid4().hex[:10]}"
    client.create_table(TableName=name, AttributeDefinitions=props["AttributeDefinitions"],
                        KeySchema=props["KeySchema"],
                        BillingMode=props.get("BillingMode", "PAY_PER_REQUEST"))
    ttl = props.get("TimeToLiveSpecification")
    if ttl:
        client.update_time_to_live(TableName=name, TimeToLiveSpecification={
            "AttributeName": ttl["AttributeName"], "Enabled": True})
    return name


@contextmanager
def moto_dynamodb() -> Iterator[Any]:
    """moto's server on a free local port; yields a low-level DynamoDB client for it."""
    import boto3
    from moto.server import ThreadedMotoServer

    patch_moto_transactions()
    server = ThreadedMotoServer(port=0, ip_address="127.0.0.1", verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        yield boto3.client("dynamodb", endpoint_url=f"http://{host}:{port}",
                           region_name="us-east-1", aws_access_key_id="testing",
                           aws_secret_access_key="testing")
    finally:
        server.stop()


class FailAfter:
    """Client wrapper that raises ``RuntimeError`` on the call after ``n`` calls (a crash)."""

    def __init__(self, client: Any, n: int, *, methods: tuple[str, ...] = ("transact_write_items",)):
        self._client, self.remaining, self._methods = client, n, methods

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._client, name)
        if name not in self._methods:
            return attr

        def call(*args: Any, **kwargs: Any) -> Any:
            if self.remaining <= 0:
                raise RuntimeError(f"injected crash before {name}")
            self.remaining -= 1
            return attr(*args, **kwargs)

        return call

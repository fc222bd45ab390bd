"""The DynamoDB Level 1 backend passes the contract suite on moto's server (the embedded stack).

One server for the module, one fresh table per test. The embedded stack refuses what AWS
refuses (:func:`alertprod.local.dynamodb.patch_moto_transactions`), so a backend that forgot to
split a request fails here as it would on AWS; the last tests check that refusal itself.
"""

from __future__ import annotations

import itertools
import time

import pytest
from contract.apdb_contract import (
    ApdbContract,
    CcdLedgerContract,
    LeaseManagerContract,
    run_case,
)

from alertprod.apdb import dynamo_level1
from alertprod.apdb.dynamodb import _calls, _leases, _store
from alertprod.apdb.memory import memory_level1
from alertprod.apdb.testing import make_ccd_writes, make_objects
from alertprod.local.dynamodb import create_level1_table, moto_dynamodb, patch_moto_transactions

pytest.importorskip("moto")
pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def dynamodb():
    with moto_dynamodb() as client:
        yield client


class BeforeTransaction:
    """Client wrapper calling ``hook(n)`` before its n-th TransactWriteItems request."""

    def __init__(self, client, hook):
        self._client, self._hook, self._count = client, hook, itertools.count(1)

    def __getattr__(self, name):
        attr = getattr(self._client, name)
        if name != "transact_write_items":
            return attr

        def call(*args, **kwargs):
            self._hook(next(self._count))
            return attr(*args, **kwargs)

        return call


def dynamo_connector(dynamodb):
    """The contract's ``connect`` on one fresh Level 1 table."""
    table = create_level1_table(dynamodb)

    def connect(*, clock=time.time, sleep=time.sleep, before_transaction=None):
        client = (dynamodb if before_transaction is None
                  else BeforeTransaction(dynamodb, before_transaction))
        return dynamo_level1(client, table, clock=clock, sleep=sleep)

    return connect


class _OnDynamoDB:
    @pytest.fixture
    def connect(self, dynamodb):
        return dynamo_connector(dynamodb)


class TestApdbOnDynamoDB(_OnDynamoDB, ApdbContract):
    pass


class TestCcdLedgerOnDynamoDB(_OnDynamoDB, CcdLedgerContract):
    pass


class TestLeaseManagerOnDynamoDB(_OnDynamoDB, LeaseManagerContract):
    pass


def _item(table, k):
    return {"pk": {"S": f"T#{k}"}, "sk": {"S": "X"}}


def _error_code(call):
    with pytest.raises(Exception) as info:  # noqa: B017 - botocore's ClientError, checked below
        call()
    return info.value.response["Error"]["Code"]


def test_embedded_stack_refuses_requests_aws_refuses(dynamodb):
    patch_moto_transactions()  # idempotent: a second call changes nothing
    table = create_level1_table(dynamodb)
    puts = [{"PutRequest": {"Item": _item(table, k)}} for k in range(26)]
    assert _error_code(lambda: dynamodb.batch_write_item(RequestItems={table: puts})) == \
        "ValidationException"
    keys = [_item(table, k) for k in range(101)]
    assert _error_code(lambda: dynamodb.batch_get_item(
        RequestItems={table: {"Keys": keys}})) == "ValidationException"
    ops = [{"Put": {"TableName": table, "Item": _item(table, k)}} for k in range(101)]
    assert _error_code(lambda: dynamodb.transact_write_items(TransactItems=ops)) == \
        "ValidationException"
    assert dynamodb.scan(TableName=table)["Count"] == 0  # nothing of them was written
    dynamodb.batch_write_item(RequestItems={table: puts[:25]})
    assert len(dynamodb.batch_get_item(RequestItems={table: {"Keys": keys[:100]}})[
        "Responses"][table]) == 25
    dynamodb.transact_write_items(TransactItems=ops[25:100])
    assert dynamodb.scan(TableName=table)["Count"] == 100


@pytest.mark.parametrize(("contract", "case", "limits"), [
    pytest.param(ApdbContract, "test_ccd_larger_than_one_transaction_is_stored_whole",
                 [(_calls, "MAX_TRANSACT_ITEMS"), (_store, "MAX_TRANSACT_ITEMS")],
                 id="transaction"),
    pytest.param(LeaseManagerContract, "test_more_cells_than_one_transaction_are_leased_whole",
                 [(_calls, "MAX_TRANSACT_ITEMS"), (_leases, "MAX_TRANSACT_ITEMS")],
                 id="lease-transaction"),
    pytest.param(ApdbContract, "test_reads_beyond_one_batch_return_everything",
                 [(_calls, "MAX_BATCH_GET")], id="batch-get"),
    pytest.param(CcdLedgerContract, "test_alert_marks_beyond_one_batch_are_all_recorded",
                 [(_calls, "MAX_BATCH_WRITE")], id="batch-write"),
])
def test_dynamodb_backend_that_skips_splitting_fails_on_the_embedded_stack(
        dynamodb, monkeypatch, contract, case, limits):
    for module, name in limits:  # the backend's own limits lifted: it sends one big request
        monkeypatch.setattr(module, name, 10_000)
    with pytest.raises(Exception, match="ValidationException"):
        run_case(contract, case, dynamo_connector(dynamodb))


def test_memory_backend_charges_the_requests_dynamodb_sends(dynamodb):
    """The in-memory request model matches the DynamoDB backend on one pipeline-like script."""
    charged = []
    for level1 in (dynamo_level1(dynamodb, create_level1_table(dynamodb)), memory_level1()):
        objs = make_objects(40, 150.0, 2.0, 0.02)
        lease = level1.leases.acquire([1, 2, 3], "ccd", ttl_s=60)
        level1.apdb.store_ccd(make_ccd_writes(objs, 1, 1, 60000.2, new=True), lease=lease)
        got = level1.apdb.get_dia_objects_by_id(objs["diaObjectId"])
        level1.apdb.get_dia_history(got["diaObjectId"], 60001.2)
        update = make_ccd_writes(got, 2, 1, 60001.2, detected=[True] * 10 + [False] * 30)
        level1.apdb.store_ccd(update, lease=lease)
        level1.leases.release(lease)
        level1.ledger.put_ccd_record(2, 1, "stored")
        level1.ledger.mark_alerts(range(60), "published")
        level1.apdb.new_dia_objects(60000.0, 60001.0)
        level1.apdb.find_exposures(150.0, 2.0, 60000.0, 60002.0)
        charged.append(level1.metrics.snapshot())
    assert charged[0] == charged[1], charged

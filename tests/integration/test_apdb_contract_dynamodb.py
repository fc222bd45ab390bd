"""The DynamoDB Level 1 backend passes the contract suite on moto's server (the embedded stack).

One server for the module, one fresh table per test. The embedded stack refuses what AWS
refuses (:func:`alertprod.local.dynamodb.patch_moto_transactions`), so a backend that forgot to
split a request fails here as it would on AWS; the last tests check that refusal itself.
"""

from __future__ import annotations

import itertools
import time

import numpy as np
import pytest
from contract.apdb_contract import (
    ApdbContract,
    CcdLedgerContract,
    LeaseManagerContract,
    run_case,
)
from contract.runs_contract import LARGE_RUN_UNITS, long_unit_keys

from alertprod.apdb import dynamo_level1
from alertprod.apdb._codec import pack_rows
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


class BeforeRequest:
    """Client wrapper calling ``hook(operation)`` before every request it sends."""

    def __init__(self, client, hook):
        self._client, self._hook = client, hook

    def __getattr__(self, name):
        attr = getattr(self._client, name)
        if not callable(attr) or name.startswith("_") or name == "exceptions":
            return attr

        def call(*args, **kwargs):
            self._hook(name)
            return attr(*args, **kwargs)

        return call


def dynamo_connector(dynamodb):
    """The contract's ``connect`` on one fresh Level 1 table."""
    table = create_level1_table(dynamodb)

    def connect(*, clock=time.time, sleep=time.sleep, before_transaction=None,
                before_request=None):
        client = (dynamodb if before_transaction is None
                  else BeforeTransaction(dynamodb, before_transaction))
        if before_request is not None:
            client = BeforeRequest(client, before_request)
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


def test_embedded_stack_refuses_to_grow_an_item_past_400_kb(dynamodb):
    """moto checks an item's size when an attribute is set but grew sets unchecked; AWS refuses
    both, and so does the embedded stack."""
    table = create_level1_table(dynamodb)
    key = {"pk": {"S": "PRECOVERY#old-layout"}, "sk": {"S": "RUN"}}

    def add(keys):
        dynamodb.update_item(TableName=table, Key=key, UpdateExpression="ADD done :k",
                             ExpressionAttributeValues={":k": {"SS": keys}})

    keys = long_unit_keys(LARGE_RUN_UNITS)
    for k in range(0, 400, 50):  # 400 keys of 1,000 bytes: 400 KB minus a little
        add(keys[k:k + 50])
    add(keys[:50])  # members already there add nothing
    assert _error_code(lambda: add(keys[400:410])) == "ValidationException"
    item = dynamodb.get_item(TableName=table, Key=key)["Item"]
    assert len(item["done"]["SS"]) == 400  # the refused ADD wrote nothing
    with pytest.raises(Exception, match="Item size"):
        dynamodb.put_item(TableName=table, Item={**key, "objects": {"B": b"\0" * 480_000}})


def test_precovery_run_of_the_former_layout_reads_and_completes(dynamodb):
    """A run recorded by the former layout (one item: done-set and ids) is read, completed and
    finalised once by this release, its done units counted once."""
    table = create_level1_table(dynamodb)
    dynamodb.put_item(TableName=table, Item={
        "pk": {"S": "PRECOVERY#60000.00000"}, "sk": {"S": "RUN"}, "expected": {"N": "4"},
        "objects": {"B": np.array([3, 5], np.int64).tobytes()}, "validityStart": {"N": "60001.5"},
        "done": {"SS": ["a", "b"]}})
    apdb = dynamo_level1(dynamodb, table).apdb
    run = apdb.get_precovery_run("60000.00000")
    assert (run.expected_units, run.done_units, list(run.object_ids), run.finalized) == (
        4, {"a", "b"}, [3, 5], False)
    assert apdb.complete_precovery_unit("60000.00000", "a") is False  # in the old done-set
    assert apdb.complete_precovery_unit("60000.00000", "c") is False
    assert apdb.complete_precovery_unit("60000.00000", "b") is False
    assert apdb.complete_precovery_unit("60000.00000", "d") is True
    assert apdb.complete_precovery_unit("60000.00000", "d") is False
    run = apdb.get_precovery_run("60000.00000")
    assert run.done_units == {"a", "b", "c", "d"} and run.finalized


def test_rerun_of_a_former_layout_run_keeps_its_done_units(dynamodb):
    table = create_level1_table(dynamodb)
    dynamodb.put_item(TableName=table, Item={
        "pk": {"S": "PRECOVERY#r"}, "sk": {"S": "RUN"}, "expected": {"N": "3"},
        "objects": {"B": np.array([3], np.int64).tobytes()}, "validityStart": {"N": "60001.5"},
        "done": {"SS": ["a", "b"]}})
    apdb = dynamo_level1(dynamodb, table).apdb
    apdb.start_precovery_run("r", n_units=3, object_ids=np.array([8, 9]),
                             validity_start_mjd_tai=60001.5)
    run = apdb.get_precovery_run("r")
    assert run.done_units == {"a", "b"} and list(run.object_ids) == [8, 9]
    assert apdb.complete_precovery_unit("r", "b") is False
    assert apdb.complete_precovery_unit("r", "c") is True


def _item_bytes(item):
    """DynamoDB's size of a stored item (names and values; numbers as their text)."""
    def size(v):
        (kind, value), = v.items()
        if kind in ("SS", "NS", "BS"):
            return sum(len(x if isinstance(x, bytes) else x.encode()) for x in value)
        return len(value if isinstance(value, bytes) else str(value).encode())
    return sum(len(name) + size(v) for name, v in item.items())


def test_deep_drilling_history_fills_its_item_then_hour_parts_below_400_kb(dynamodb):
    table = create_level1_table(dynamodb)
    level1 = dynamo_level1(dynamodb, table)
    run_case(ApdbContract, "test_deep_drilling_month_of_one_object_is_stored_and_read_whole",
             lambda **kw: level1)
    items = [i for i in dynamodb.scan(TableName=table)["Items"] if i["pk"]["S"].startswith("HIST#")]
    heads = [i for i in items if "#P" not in i["sk"]["S"]]
    parts = [i for i in items if "#P" in i["sk"]["S"]]
    assert len(heads) == 1 and len(parts) > 100
    assert sorted(int(p) for p in heads[0]["parts"]["NS"]) == sorted(
        int(i["sk"]["S"].rsplit("#P", 1)[1]) for i in parts)
    assert 250_000 < _item_bytes(heads[0]) < 310_000
    assert max(_item_bytes(i) for i in parts) < 10_000


@pytest.mark.parametrize(("case", "prefix"), [
    ("test_image_index_of_a_deep_drilling_month_holds_every_exposure", "IMG#"),
    ("test_observations_of_an_asteroid_watched_for_years_are_all_counted", "SSOBJ#"),
])
def test_index_item_fills_to_300_kb_then_spills_to_parts(dynamodb, case, prefix):
    table = create_level1_table(dynamodb)
    level1 = dynamo_level1(dynamodb, table)
    run_case(ApdbContract, case, lambda **kw: level1)
    items = [i for i in dynamodb.scan(TableName=table)["Items"]
             if i["pk"]["S"].startswith(prefix) and i["sk"]["S"] != "ROW"]
    heads = [i for i in items if "#P" not in i["sk"]["S"]]
    parts = [i for i in items if "#P" in i["sk"]["S"]]
    assert len(heads) == 1 and len(parts) == 1
    assert 290_000 < _item_bytes(heads[0]) < 310_000 and int(heads[0]["b"]["N"]) <= 300_000
    assert 100_000 < _item_bytes(parts[0]) < 200_000


def test_memory_backend_charges_the_runs_and_spills_dynamodb_sends(dynamodb):
    """The in-memory request model matches DynamoDB's on precovery runs and spilling items."""
    charged = []
    field = np.array([[-1, -1], [1, -1], [1, 1], [-1, 1]]) * 0.005 + [53.125, -28.1]
    for level1 in (dynamo_level1(dynamodb, create_level1_table(dynamodb)), memory_level1()):
        apdb = level1.apdb
        apdb.start_precovery_run("r", n_units=3, object_ids=np.arange(50_000),
                                 validity_start_mjd_tai=60001.5)
        for key in ("a", "b", "a", "c", "c"):
            apdb.complete_precovery_unit("r", key)
        apdb.get_precovery_run("r")
        for k in range(90):  # 4.1 KB entries: the item fills after 73
            apdb.index_exposure(1000 + k, 42, "r", 60000.05 + k * 0.25, field,
                                ["science", "difference-" + "k" * 4000])
        apdb.find_exposures(53.125, -28.1, 60000.0, 60030.0)
        charged.append(level1.metrics.snapshot())
    assert charged[0] == charged[1], charged


def test_items_of_the_former_layout_near_400_kb_spill_when_they_refuse_a_write(dynamodb):
    """Items written before the byte counters existed may already be near 400 KB: a write they
    refuse for its size goes to continuation parts, and reads return old and new entries."""
    from contract.sizes_contract import _FIELD, deep_drilling_sources, history_writes

    from alertprod.apdb._layout import exposure_entry
    from alertprod.apdb.dynamodb import _keys as keys
    from alertprod.ids import time_bucket
    from alertprod.pixelization import pixel_of

    table = create_level1_table(dynamodb)
    apdb = dynamo_level1(dynamodb, table).apdb
    kinds = ["science", "difference-" + "k" * 4000]
    pixel = int(pixel_of(53.125, -28.1, order=8))
    entry_bytes = len(exposure_entry(900, 42, "r", 60000.05, _FIELD, kinds)) + 7
    n_old = 404_500 // entry_bytes  # one more entry passes the embedded stack's limit
    old = {f"e{900 + k}_42": {"S": exposure_entry(900 + k, 42, "r", 60000.05 + k * 0.01, _FIELD,
                                                  kinds)} for k in range(n_old)}
    dynamodb.put_item(TableName=table, Item={**keys.image_index(pixel, time_bucket(60000.05)),
                                             **old})
    apdb.index_exposure(1000, 42, "r", 60001.05, _FIELD, kinds)
    assert len(apdb.find_exposures(53.125, -28.1, 60000.0, 60030.0)) == n_old + 1

    rows = deep_drilling_sources(5)[:1100]
    packed = pack_rows(rows, "DiaSource")
    n_old = 404_500 // (len(packed[0]) + 11)
    head = keys.history(5, time_bucket(60000.0))
    dynamodb.put_item(TableName=table, Item={**head, **{
        keys.source_attr(i): {"B": r} for i, r in zip(rows["diaSourceId"][:n_old].tolist(),
                                                      packed[:n_old], strict=True)}})
    apdb.store_ccd(history_writes(rows[n_old:]), lease=None)
    assert len(apdb.get_dia_sources([5], 60030.0)) == 1100
    spilled = {i["pk"]["S"].split("#")[0] for i in dynamodb.scan(TableName=table)["Items"]
               if "#P" in i["sk"]["S"]}
    assert spilled == {"IMG", "HIST"}

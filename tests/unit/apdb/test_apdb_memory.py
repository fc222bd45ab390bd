"""The in-memory Level 1 backend passes the contract suite (milliseconds, no moto)."""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable

import numpy as np
import pytest
from contract.apdb_contract import ApdbContract, CcdLedgerContract, LeaseManagerContract

from alertprod.apdb import Level1, memory_level1
from alertprod.apdb.memory import MemoryApdb, MemoryCcdLedger, MemoryLeaseManager, MemoryStore
from alertprod.apdb.testing import make_ccd_writes, make_objects
from alertprod.errors import StorageError

pytestmark = pytest.mark.unit


def memory_connector(*, apdb_cls: type[MemoryApdb] = MemoryApdb,
                     ledger_cls: type[MemoryCcdLedger] = MemoryCcdLedger,
                     leases_cls: type[MemoryLeaseManager] = MemoryLeaseManager
                     ) -> Callable[..., Level1]:
    """The contract's ``connect`` on one fresh :class:`MemoryStore` (backend classes swappable)."""
    store = MemoryStore()

    def connect(*, clock=time.time, sleep=time.sleep, before_transaction=None,
                before_request=None) -> Level1:
        base = memory_level1(store=store, clock=clock, sleep=sleep)
        metrics = base.metrics
        apdb = apdb_cls(store, metrics=metrics)
        if before_transaction is not None or before_request is not None:
            count, send = itertools.count(1), apdb._request

            def request(operation, n_items=1):
                if before_request is not None:
                    before_request(operation)
                if operation == "transact_write_items" and before_transaction is not None:
                    before_transaction(next(count))
                send(operation, n_items)

            apdb._request = request
        return Level1(apdb=apdb, ledger=ledger_cls(store, metrics=metrics, clock=clock),
                      leases=leases_cls(store, metrics=metrics, clock=clock, sleep=sleep))

    return connect


class _OnMemory:
    @pytest.fixture
    def connect(self):
        return memory_connector()


class TestApdbOnMemory(_OnMemory, ApdbContract):
    pass


class TestCcdLedgerOnMemory(_OnMemory, CcdLedgerContract):
    pass


class TestLeaseManagerOnMemory(_OnMemory, LeaseManagerContract):
    pass


def test_memory_level1_shares_one_store_and_one_metrics_hook():
    level1 = memory_level1()
    assert level1.apdb.store is level1.ledger.store is level1.leases.store
    assert level1.apdb.metrics is level1.ledger.metrics is level1.leases.metrics is level1.metrics
    other = memory_level1(store=level1.apdb.store)
    level1.ledger.put_ccd_record(1, 1, "started")
    assert other.ledger.get_ccd_record(1, 1)["state"] == "started"
    assert other.metrics.total() == 1 and level1.metrics.total() == 1


def test_a_request_over_dynamodbs_limit_is_refused():
    apdb = MemoryApdb()
    for operation, limit in (("batch_get_item", 100), ("batch_write_item", 25),
                             ("transact_write_items", 100)):
        apdb._request(operation, limit)
        with pytest.raises(StorageError, match=str(limit)):
            apdb._request(operation, limit + 1)
    assert apdb.metrics.snapshot() == {"batch_get_item": 1, "batch_write_item": 1,
                                       "transact_write_items": 1}


def test_requests_are_charged_as_dynamodb_would_send_them():
    level1 = memory_level1()
    objs = make_objects(40, 150.0, 2.0, 0.02)
    stats = level1.apdb.store_ccd(make_ccd_writes(objs, 1, 1, 60000.2, new=True), lease=None)
    # 40 x (Last, version, history) + ~5 pixels: 2 transactions; then the CCD's new-object
    # index item, outside them (one BatchWriteItem)
    assert stats.requests == {"batch_get_item": 1, "transact_write_items": 2,
                              "batch_write_item": 1}
    before = level1.metrics.snapshot()
    level1.apdb.get_dia_history(objs["diaObjectId"], 60001.0)  # 40 x 13 buckets = 520 keys
    assert level1.metrics.requests["batch_get_item"] - before["batch_get_item"] == 6


def test_a_thousand_object_ccd_is_stored_in_well_under_a_second():
    level1 = memory_level1()
    objs = make_objects(1000, 150.0, 2.0, 0.1)
    start = time.perf_counter()
    stats = level1.apdb.store_ccd(make_ccd_writes(objs, 1, 1, 60000.2, new=True), lease=None)
    got = level1.apdb.get_dia_objects_by_id(objs["diaObjectId"])
    assert time.perf_counter() - start < 1.0
    assert stats.objects_written == len(got) == 1000


def test_an_lsst_night_of_precovery_units_finalizes_once_in_seconds():
    """93,000 units (an LSST night; the former one-item record broke near 28,000)."""
    apdb = memory_level1().apdb
    keys = [f"{60000 + k // 189:08d}:{k % 189:03d}:0" for k in range(93_000)]
    apdb.start_precovery_run("night", n_units=len(keys), object_ids=np.arange(50_000),
                             validity_start_mjd_tai=60001.5)
    start = time.perf_counter()
    won = sum(apdb.complete_precovery_unit("night", k) for k in keys)
    assert won == 1 and time.perf_counter() - start < 10.0
    run = apdb.get_precovery_run("night")
    assert run.finalized and len(run.done_units) == 93_000 and len(run.object_ids) == 50_000


def test_a_write_that_would_pass_400_kb_is_refused():
    MemoryApdb._check_item_size("an item", 400 * 1024)
    with pytest.raises(StorageError, match="400 KB"):
        MemoryApdb._check_item_size("an item", 400 * 1024 + 1)

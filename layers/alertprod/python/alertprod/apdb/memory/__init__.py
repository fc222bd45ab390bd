"""The Level 1 database, CCD ledger and sky-cell leases in process memory.

- :class:`MemoryApdb` — :class:`~alertprod.apdb.Apdb`;
- :class:`MemoryCcdLedger` — :class:`~alertprod.apdb.CcdLedger`;
- :class:`MemoryLeaseManager` — :class:`~alertprod.apdb.LeaseManager`;
- :func:`memory_level1` — all three on one :class:`MemoryStore`, sharing one metrics hook.

The same guarantees as the DynamoDB backend (the contract suite in ``tests/contract/`` runs on
both): atomic, fenced, idempotent CCD writes; forward-only ledger; all-or-none leases with
increasing tokens. It also keeps DynamoDB's request limits and charges the requests the
DynamoDB backend would send, so pipeline tests see realistic request counts in milliseconds.
Thread-safe: one lock per store.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from alertprod.apdb.interface import Level1, StorageMetrics
from alertprod.apdb.memory._apdb import MemoryApdb
from alertprod.apdb.memory._coordination import MemoryCcdLedger, MemoryLeaseManager
from alertprod.apdb.memory._state import MemoryStore

__all__ = ["MemoryApdb", "MemoryCcdLedger", "MemoryLeaseManager", "MemoryStore", "memory_level1"]


def memory_level1(*, store: MemoryStore | None = None, metrics: StorageMetrics | None = None,
                  clock: Callable[[], float] = time.time,
                  sleep: Callable[[float], None] = time.sleep) -> Level1:
    """The APDB, CCD ledger and lease manager on one in-memory store.

    Parameters
    ----------
    store : MemoryStore, keyword-only, optional
        The storage; pass another connection's (``level1.apdb.store``) to share it, as
        Lambda containers share a table. A new one by default.
    metrics : StorageMetrics, keyword-only, optional
        Hook counting the requests of all three.
    clock, sleep : callable, keyword-only
        Unix time and sleep for the ledger and leases (injectable for tests).
    """
    store = store if store is not None else MemoryStore()
    metrics = metrics if metrics is not None else StorageMetrics()
    return Level1(apdb=MemoryApdb(store, metrics=metrics),
                  ledger=MemoryCcdLedger(store, metrics=metrics, clock=clock),
                  leases=MemoryLeaseManager(store, metrics=metrics, clock=clock, sleep=sleep))

"""The Level 1 database on one DynamoDB table (``pk`` S / ``sk`` S), by key lookups only.

- :class:`DynamoApdb` — :class:`~alertprod.apdb.Apdb` on the table;
- :class:`DynamoCcdLedger` — :class:`~alertprod.apdb.CcdLedger` records in the same table;
- :class:`DynamoLeaseManager` — :class:`~alertprod.apdb.LeaseManager` items in the same table;
- :func:`dynamo_level1` — all three on one client, sharing one metrics hook.

Everything else in this package (item keys, row packing, request limits, transaction
planning) is private to the backend. See docs/apdb.md for the item layout and request counts.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from alertprod.apdb.dynamodb._apdb import DynamoApdb
from alertprod.apdb.dynamodb._calls import InstrumentedClient
from alertprod.apdb.dynamodb._leases import DynamoLeaseManager
from alertprod.apdb.dynamodb._ledger import DynamoCcdLedger
from alertprod.apdb.interface import Level1, StorageMetrics

__all__ = ["DynamoApdb", "DynamoCcdLedger", "DynamoLeaseManager", "dynamo_level1"]


def dynamo_level1(client: Any, table_name: str, *, metrics: StorageMetrics | None = None,
                  clock: Callable[[], float] = time.time,
                  sleep: Callable[[float], None] = time.sleep) -> Level1:
    """The APDB, CCD ledger and lease manager on one DynamoDB table.

    Parameters
    ----------
    client : botocore client
        Low-level DynamoDB client (injected; the embedded stack's or AWS's).
    table_name : str
        The Level 1 table.
    metrics : StorageMetrics, keyword-only, optional
        Hook counting the requests of all three.
    clock, sleep : callable, keyword-only
        Unix time and sleep for the ledger and leases (injectable for tests).
    """
    counted = client if isinstance(client, InstrumentedClient) else InstrumentedClient(client, metrics)
    return Level1(apdb=DynamoApdb(counted, table_name),
                  ledger=DynamoCcdLedger(counted, table_name, clock=clock),
                  leases=DynamoLeaseManager(counted, table_name, clock=clock, sleep=sleep))

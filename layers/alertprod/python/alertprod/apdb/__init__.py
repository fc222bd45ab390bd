"""The Level 1 database (APDB): DiaObject versions, DiaSource, DiaForcedSource, SSObject.

Interfaces the pipeline and precovery depend on:

- :class:`Apdb` — the science-speaking database (after Rubin's ``dax_apdb``);
- :class:`CcdLedger` (:class:`CcdState`) and :class:`LeaseManager` (:class:`Lease`,
  :func:`leased`) — exactly-once processing and concurrency;
- :class:`Level1` — the three together, as one deployment provides them.

Backends: :mod:`alertprod.apdb.dynamodb` (one DynamoDB table; :func:`dynamo_level1`) and
:mod:`alertprod.apdb.memory` (in process; :func:`memory_level1`). Schema:
:mod:`~alertprod.apdb.schema` (Rubin ``apdb.yaml`` columns, ``empty_table``, ``conform``).

See docs/apdb.md.
"""

from alertprod.apdb._archiveindex import ARCHIVE_INDEX_ORDER, ARCHIVE_KINDS
from alertprod.apdb.coordination import (
    LEASE_ORDER,
    CcdLedger,
    CcdState,
    Lease,
    LeaseManager,
    cells_for_footprint,
    leased,
)
from alertprod.apdb.dynamodb import DynamoApdb, dynamo_level1
from alertprod.apdb.export import write_export
from alertprod.apdb.interface import (
    PREV_VALIDITY_COLUMN,
    Apdb,
    CcdWrites,
    Level1,
    PrecoveryRun,
    StorageMetrics,
    StoreStats,
)
from alertprod.apdb.memory import MemoryApdb, memory_level1
from alertprod.apdb.schema import TABLE_NAMES, conform, empty_table

__all__ = [
    "ARCHIVE_INDEX_ORDER",
    "ARCHIVE_KINDS",
    "LEASE_ORDER",
    "PREV_VALIDITY_COLUMN",
    "TABLE_NAMES",
    "Apdb",
    "CcdLedger",
    "CcdState",
    "CcdWrites",
    "DynamoApdb",
    "Lease",
    "LeaseManager",
    "Level1",
    "MemoryApdb",
    "PrecoveryRun",
    "StorageMetrics",
    "StoreStats",
    "cells_for_footprint",
    "conform",
    "dynamo_level1",
    "empty_table",
    "leased",
    "memory_level1",
    "write_export",
]

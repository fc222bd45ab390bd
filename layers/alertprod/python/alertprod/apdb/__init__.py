"""The Level 1 database (APDB) on DynamoDB: DiaObject versions, DiaSource, DiaForcedSource, SSObject.

- :class:`Apdb` — the science-speaking interface (after Rubin's ``dax_apdb``);
- :class:`DynamoApdb` — its implementation on one DynamoDB table, key lookups only;
- :class:`LeaseManager` / :class:`Lease` — sky-cell leases with fencing tokens;
- :class:`CcdLedger` — per-CCD processing states and alert publish marks;
- :mod:`~alertprod.apdb.schema` — Rubin ``apdb.yaml`` columns, ``empty_table``, ``conform``.

See docs/apdb.md.
"""

from alertprod.apdb.calls import InstrumentedClient
from alertprod.apdb.dynamodb import DynamoApdb
from alertprod.apdb.export import write_export
from alertprod.apdb.interface import PREV_VALIDITY_COLUMN, Apdb, CcdWrites, StoreStats
from alertprod.apdb.leases import LEASE_ORDER, Lease, LeaseManager, cells_for_footprint
from alertprod.apdb.ledger import CCD_STATES, CcdLedger
from alertprod.apdb.schema import TABLE_NAMES, conform, empty_table

__all__ = [
    "CCD_STATES",
    "LEASE_ORDER",
    "PREV_VALIDITY_COLUMN",
    "TABLE_NAMES",
    "Apdb",
    "CcdLedger",
    "CcdWrites",
    "DynamoApdb",
    "InstrumentedClient",
    "Lease",
    "LeaseManager",
    "StoreStats",
    "cells_for_footprint",
    "conform",
    "empty_table",
    "write_export",
]

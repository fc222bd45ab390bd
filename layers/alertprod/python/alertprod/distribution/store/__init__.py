"""Storage of the filter API and the filtering service: one interface, two backends.

- :class:`ServiceStore` — the interface (``interface``): tokens, filters and versions,
  counters, delivery records;
- :class:`MemoryServiceStore` — in process (tests, tools, the embedded demo);
- :class:`DynamoServiceStore` — one DynamoDB table, single-table layout (see its module).
"""

from alertprod.distribution.store.dynamodb import DynamoServiceStore
from alertprod.distribution.store.interface import MAX_NOTICES, MAX_TRANSPORTS, ServiceStore
from alertprod.distribution.store.memory import MemoryServiceStore

__all__ = ["ServiceStore", "MemoryServiceStore", "DynamoServiceStore", "MAX_NOTICES", "MAX_TRANSPORTS"]

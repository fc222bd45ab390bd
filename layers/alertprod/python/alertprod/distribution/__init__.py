"""The filtering and delivery service: users' filters on every alert, matches to their transports.

- :mod:`~alertprod.distribution.records`    tokens, filters, versions, delivery records, counters
- :mod:`~alertprod.distribution.store`      :class:`ServiceStore` and its memory/DynamoDB backends
- :mod:`~alertprod.distribution.service`    :class:`FilterService`: a batch of alert messages →
  evaluated filters → delivery records → transports; held matches; redelivery
- :mod:`~alertprod.distribution.dispatch`   concurrent sending, dead letters
- :mod:`~alertprod.distribution.transports` transport settings → transports (SQS, webhook, S3,
  e-mail, VTP)
- :mod:`~alertprod.distribution.trial`      a filter on past nights, and explain
- :mod:`~alertprod.distribution.config`     :class:`ServiceSettings`
- :mod:`~alertprod.distribution.watchlists` users' own watchlists (uploads, storage, loading)
- :mod:`~alertprod.distribution.precovery_orders` precovery jobs ordered by filters, capped daily
- :mod:`~alertprod.distribution.relay`      the stream relay to public VOEvent brokers
- :mod:`~alertprod.distribution.messages`   what the alert queues carry

See docs/distribution.md.
"""

from alertprod.distribution.archive import AlertArchive
from alertprod.distribution.config import ServiceSettings
from alertprod.distribution.dispatch import DeadLetters, Dispatcher, MemoryDeadLetters
from alertprod.distribution.records import (
    DeliveryRecord,
    FilterRecord,
    FilterVersion,
    Notice,
    TokenRecord,
    delivery_id,
    utc_day,
)
from alertprod.distribution.service import (
    AlertMessage,
    BatchReport,
    ClaimCheckPendingError,
    FilterService,
    RedeliveryReport,
)
from alertprod.distribution.store import DynamoServiceStore, MemoryServiceStore, ServiceStore
from alertprod.distribution.transports import TransportClients, TransportFactory

__all__ = [
    "AlertArchive", "AlertMessage", "BatchReport", "ClaimCheckPendingError", "DeadLetters", "DeliveryRecord",
    "Dispatcher", "DynamoServiceStore", "FilterRecord", "FilterService", "FilterVersion", "MemoryDeadLetters",
    "MemoryServiceStore", "Notice", "RedeliveryReport", "ServiceSettings", "ServiceStore",
    "TokenRecord", "TransportClients", "TransportFactory", "delivery_id", "utc_day",
]

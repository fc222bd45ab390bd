"""Build the store, the service and the API context of one deployment from injected clients.

Handlers and the CLI call :meth:`DistributionResources.from_env` and :func:`build_distribution`;
nothing else here reads the environment.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple

from alertprod.aws.blobs import MemoryBlobStore
from alertprod.aws.s3 import S3BlobStore
from alertprod.aws.sqs import SqsQueue
from alertprod.distribution.archive import AlertArchive
from alertprod.distribution.config import ServiceSettings
from alertprod.distribution.dispatch import Dispatcher, MemoryDeadLetters
from alertprod.distribution.service import FilterService
from alertprod.distribution.store import DynamoServiceStore, ServiceStore
from alertprod.distribution.transports import TransportClients, TransportFactory
from alertprod.errors import ConfigError

__all__ = ["DistributionResources", "Distribution", "build_distribution"]


@dataclass(frozen=True)
class DistributionResources:
    """Resource names of the distribution service (set by the template).

    Attributes
    ----------
    service_table : str
        ``SERVICE_TABLE``: the DynamoDB table of the service store.
    alert_bucket : str
        ``ALERT_BUCKET``: the alert archive.
    delivery_dlq_url : str
        ``DELIVERY_DLQ_URL``: dead letters of failed deliveries ("" keeps them in memory: tools).
    """

    service_table: str
    alert_bucket: str
    delivery_dlq_url: str = ""

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> DistributionResources:
        env = os.environ if environ is None else environ
        missing = [n for n in ("SERVICE_TABLE", "ALERT_BUCKET") if not env.get(n)]
        if missing:
            raise ConfigError(f"environment variable(s) {', '.join(missing)} not set")
        return cls(env["SERVICE_TABLE"], env["ALERT_BUCKET"], env.get("DELIVERY_DLQ_URL", ""))


class Distribution(NamedTuple):
    """The pieces of one deployment."""

    store: ServiceStore
    service: FilterService
    archive: AlertArchive
    settings: ServiceSettings


def build_distribution(resources: DistributionResources, *, dynamodb: Any, s3: Any, sqs: Any, ses: Any = None,
                       settings: ServiceSettings | None = None, store: ServiceStore | None = None) -> Distribution:
    """The store (DynamoDB unless given), the archive, and the service with its transports."""
    settings = settings or ServiceSettings()
    store = store if store is not None else DynamoServiceStore(dynamodb, resources.service_table)
    archive = AlertArchive(S3BlobStore(s3, resources.alert_bucket) if s3 is not None
                           else MemoryBlobStore(resources.alert_bucket))
    dead = SqsQueue(sqs, resources.delivery_dlq_url) if resources.delivery_dlq_url else MemoryDeadLetters()
    factory = TransportFactory(TransportClients(sqs=sqs, s3=s3, ses=ses), settings)
    dispatcher = Dispatcher(store, factory, dead, workers=settings.transport_workers,
                            budget_s=settings.dispatch_budget_s)
    service = FilterService(store, archive, dispatcher, settings=settings, s3_client=s3)
    return Distribution(store, service, archive, settings)

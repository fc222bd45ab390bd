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
from alertprod.distribution.precovery_orders import OrderPrecovery, PrecoveryOrders
from alertprod.distribution.service import FilterService
from alertprod.distribution.store import DynamoServiceStore, ServiceStore
from alertprod.distribution.transports import TransportClients, TransportFactory
from alertprod.distribution.watchlists import WatchlistLibrary
from alertprod.errors import ConfigError

__all__ = ["DistributionResources", "Distribution", "build_distribution", "job_service_orderer",
           "job_service_orderer_from_env"]


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
    watchlists: WatchlistLibrary | None = None
    precovery: PrecoveryOrders | None = None


def job_service_orderer(job_context: Any) -> OrderPrecovery:
    """``order_precovery(owner, body, *, idempotency_key) -> job id`` over the precovery job service.

    The key is passed on when the job service's ``submit_job`` takes one; the filter service's
    own order records make a repeat unlikely either way (docs/distribution.md).
    """
    import inspect

    from alertprod.precovery.jobservice import submit_job

    takes_key = "idempotency_key" in inspect.signature(submit_job).parameters

    def order_precovery(owner: str, body: dict, *, idempotency_key: str) -> str:
        extra = {"idempotency_key": idempotency_key} if takes_key else {}
        record, _ = submit_job(job_context, owner, body, **extra)
        return record.job.job_id

    return order_precovery


def job_service_orderer_from_env(environ: Mapping[str, str] | None = None, *, dynamodb: Any,
                                 sqs: Any) -> tuple[OrderPrecovery | None, str]:
    """The job service's orderer for a function whose environment names its job queue.

    Returns ``(orderer, "")``, or ``(None, reason)`` when the job service is not deployed beside
    the filtering service (``PRECOVERY_JOB_QUEUE_URL`` unset): filters' precovery is then not
    ordered, and the reason is logged once per filter.
    """
    env = os.environ if environ is None else environ
    queue_url, table = env.get("PRECOVERY_JOB_QUEUE_URL", ""), env.get("SERVICE_TABLE", "")
    if not queue_url or not table:
        return None, "PRECOVERY_JOB_QUEUE_URL is not set: no precovery job service beside this function"
    try:
        from alertprod.precovery.jobservice import DynamoJobStore, JobContext, JobServiceSettings
    except ImportError as exc:  # a layer without the job service
        return None, f"the precovery job service is not installed ({exc})"
    # submission needs only the store, the job queue and the settings; the rest is the workers'
    context = JobContext(store=DynamoJobStore(dynamodb, table), apdb=None, bucket=None, images=None,
                         archive=None, job_queue=SqsQueue(sqs, queue_url), tick_queue=None,
                         unit_queue=None, settings=JobServiceSettings.from_env(env))
    return job_service_orderer(context), ""


def build_distribution(resources: DistributionResources, *, dynamodb: Any, s3: Any, sqs: Any, ses: Any = None,
                       settings: ServiceSettings | None = None, store: ServiceStore | None = None,
                       order_precovery: OrderPrecovery | None = None,
                       precovery_disabled_reason: str = "no precovery job service is configured") -> Distribution:
    """The store (DynamoDB unless given), the archive, users' watchlists, and the service with its
    transports and precovery ordering (disabled, with the reason logged, without ``order_precovery``)."""
    settings = settings or ServiceSettings()
    store = store if store is not None else DynamoServiceStore(dynamodb, resources.service_table)
    blobs = S3BlobStore(s3, resources.alert_bucket) if s3 is not None else MemoryBlobStore(resources.alert_bucket)
    archive = AlertArchive(blobs)
    presign = None
    if s3 is not None:  # large watchlists are PUT straight to the bucket through a pre-signed URL
        def presign(key: str, expires_s: int) -> str:
            return s3.generate_presigned_url("put_object", ExpiresIn=expires_s,
                                             Params={"Bucket": resources.alert_bucket, "Key": key})
    library = WatchlistLibrary(store, blobs, presign=presign)
    precovery = PrecoveryOrders(store, order_precovery, disabled_reason=precovery_disabled_reason)
    dead = SqsQueue(sqs, resources.delivery_dlq_url) if resources.delivery_dlq_url else MemoryDeadLetters()
    factory = TransportFactory(TransportClients(sqs=sqs, s3=s3, ses=ses), settings)
    dispatcher = Dispatcher(store, factory, dead, workers=settings.transport_workers,
                            budget_s=settings.dispatch_budget_s)
    service = FilterService(store, archive, dispatcher, settings=settings, s3_client=s3,
                            watchlist_resolver=library.resolver(ttl_s=settings.filter_cache_s),
                            precovery=precovery)
    return Distribution(store, service, archive, settings, library, precovery)

"""The adapters a handler needs, built once per container from :class:`alertprod.config.Resources`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from alertprod.aws.clients import AwsClients, make_clients
from alertprod.aws.s3 import S3BlobStore
from alertprod.aws.sns import SnsTopic
from alertprod.aws.sqs import SqsQueue
from alertprod.config import Resources

__all__ = ["Services"]


@dataclass(frozen=True)
class Services:
    """Storage and messaging of one deployment.

    Attributes
    ----------
    resources : Resources
        The names everything was built from.
    clients : AwsClients
        The raw boto3 clients.
    uploads, images, alert_archive : S3BlobStore
        The upload bucket, the image cache and the alert archive.
    dynamodb : botocore.client.DynamoDB
        Raw client; the APDB wraps it.
    alert_topic : SnsTopic or None
        ``None`` when the deployment has no alert topic.
    precovery_queue : SqsQueue or None
        ``None`` when the deployment has no precovery queue.
    orbit_refresh_queue : SqsQueue or None
        ``None`` when the deployment has no orbit-refresh queue.
    """

    resources: Resources
    clients: AwsClients
    uploads: S3BlobStore
    images: S3BlobStore
    alert_archive: S3BlobStore
    dynamodb: Any
    alert_topic: SnsTopic | None
    precovery_queue: SqsQueue | None
    orbit_refresh_queue: SqsQueue | None = None

    @classmethod
    def from_resources(cls, resources: Resources, clients: AwsClients | None = None) -> Services:
        """Build every adapter; ``clients`` defaults to :func:`~alertprod.aws.clients.make_clients`."""
        c = clients if clients is not None else make_clients()
        return cls(
            resources=resources,
            clients=c,
            uploads=S3BlobStore(c.s3, resources.upload_bucket),
            images=S3BlobStore(c.s3, resources.image_bucket),
            alert_archive=S3BlobStore(c.s3, resources.alert_bucket),
            dynamodb=c.dynamodb,
            alert_topic=SnsTopic(c.sns, resources.alert_topic_arn) if resources.alert_topic_arn else None,
            precovery_queue=(
                SqsQueue(c.sqs, resources.precovery_queue_url) if resources.precovery_queue_url else None
            ),
            orbit_refresh_queue=(
                SqsQueue(c.sqs, resources.orbit_refresh_queue_url)
                if resources.orbit_refresh_queue_url else None
            ),
        )

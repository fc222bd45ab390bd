"""Build the job service's context from its resource names (what each handler does once)."""

from __future__ import annotations

from typing import Any

from alertprod.apdb import dynamo_level1
from alertprod.aws.s3 import S3BlobStore
from alertprod.aws.sqs import SqsQueue
from alertprod.precovery.jobservice.config import JobServiceResources, JobServiceSettings
from alertprod.precovery.jobservice.context import JobContext
from alertprod.precovery.jobservice.dynamodb import DynamoJobStore
from alertprod.precovery.jobservice.orbit_lookup import catalog_lookup

__all__ = ["build_job_context"]


def build_job_context(resources: JobServiceResources, settings: JobServiceSettings, *,
                      dynamodb: Any, s3: Any, sqs: Any, ses: Any = None) -> JobContext:
    """The job service on AWS (or the embedded stack): DynamoDB store, S3 buckets, SQS queues.

    Parameters
    ----------
    resources : JobServiceResources
        The names, from :meth:`JobServiceResources.from_env` in a handler.
    settings : JobServiceSettings
    dynamodb, s3, sqs, ses : botocore clients
        Injected (``ses`` only for completion e-mails).
    """
    level1 = dynamo_level1(dynamodb, resources.level1_table)
    image_bucket = resources.image_bucket or resources.job_bucket
    archive_bucket = resources.archive_bucket or resources.job_bucket
    return JobContext(
        store=DynamoJobStore(dynamodb, resources.service_table), apdb=level1.apdb,
        bucket=S3BlobStore(s3, resources.job_bucket), images=S3BlobStore(s3, image_bucket),
        archive=S3BlobStore(s3, archive_bucket), job_queue=SqsQueue(sqs, resources.job_queue_url),
        tick_queue=SqsQueue(sqs, resources.tick_queue_url),
        unit_queue=SqsQueue(sqs, resources.unit_queue_url), settings=settings, ses=ses,
        orbit_lookup=catalog_lookup(level1.apdb))

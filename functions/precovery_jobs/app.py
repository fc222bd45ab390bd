"""Precovery job service: admit a submitted job, plan one the dispatcher released, or assemble
one whose last unit reported.

One job-queue message per record (alertprod.precovery.jobservice.messages); every step is
idempotent, so a redelivery does nothing twice.
"""

import boto3
from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.batch import (
    BatchProcessor,
    EventType,
    process_partial_response,
)
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

from alertprod.aws.clients import CLIENT_CONFIG
from alertprod.precovery.jobservice import JobServiceResources, JobServiceSettings
from alertprod.precovery.jobservice.handlers import handle_job_message
from alertprod.precovery.jobservice.wiring import build_job_context

logger = Logger(service="alertprod-precovery-jobs")
processor = BatchProcessor(event_type=EventType.SQS)
ctx = build_job_context(JobServiceResources.from_env(), JobServiceSettings.from_env(),
                        **{n: boto3.client(n, config=CLIENT_CONFIG) for n in ("dynamodb", "s3", "sqs", "ses")})


def record_handler(record: SQSRecord) -> dict:
    result = handle_job_message(ctx, record.body)
    logger.info("precovery job message handled", extra=result)
    return result


@logger.inject_lambda_context
def lambda_handler(event, context):
    return process_partial_response(event=event, record_handler=record_handler,
                                    processor=processor, context=context)

"""Precovery unit worker: forced photometry of one released unit of a service job.

The attempt number (SQS's ApproximateReceiveCount) lets the last allowed attempt record the
unit as failed rows instead of failing again, so a job never waits on a dead unit.
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
from alertprod.precovery.jobservice.handlers import handle_unit_message
from alertprod.precovery.jobservice.wiring import build_job_context

logger = Logger(service="alertprod-precovery-units")
processor = BatchProcessor(event_type=EventType.SQS)
ctx = build_job_context(JobServiceResources.from_env(), JobServiceSettings.from_env(),
                        **{n: boto3.client(n, config=CLIENT_CONFIG) for n in ("dynamodb", "s3", "sqs")})


def record_handler(record: SQSRecord) -> dict:
    attempt = int(record.attributes.approximate_receive_count or 1)
    result = handle_unit_message(ctx, record.body, attempt=attempt)
    logger.info("precovery unit handled", extra=result)
    return result


@logger.inject_lambda_context
def lambda_handler(event, context):
    return process_partial_response(event=event, record_handler=record_handler,
                                    processor=processor, context=context)

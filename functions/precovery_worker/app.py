"""Precovery worker: one queue message (a unit, or a finalisation chunk) per record."""

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.batch import (
    BatchProcessor,
    EventType,
    process_partial_response,
)
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

from alertprod.apdb import dynamo_level1
from alertprod.aws import Services
from alertprod.config import Resources
from alertprod.precovery import handle_message
from alertprod.times import now_mjd_tai

logger = Logger(service="alertprod-precovery-worker")
processor = BatchProcessor(event_type=EventType.SQS)
services = Services.from_resources(Resources.from_env())
level1 = dynamo_level1(services.dynamodb, services.resources.level1_table)


def record_handler(record: SQSRecord) -> dict:
    result = handle_message(record.body, level1=level1, images=services.images,
                            queue=services.precovery_queue, processed_mjd_tai=now_mjd_tai())
    logger.info("precovery message handled", extra=result)
    return result


@logger.inject_lambda_context
def lambda_handler(event, context):
    return process_partial_response(event=event, record_handler=record_handler,
                                    processor=processor, context=context)

"""Orbit refresh worker: one queue message per record — a refresh request (plan it: the night of
the message's sending time) or a chunk of orbits to integrate; the chunk that completes the
night stores its catalog in the Level 1 database and logs the refresh's cost."""

import os

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
from alertprod.orbitrefresh import RefreshConfig, handle_message

logger = Logger(service="alertprod-orbit-refresh-worker")
processor = BatchProcessor(event_type=EventType.SQS)
services = Services.from_resources(Resources.from_env())
level1 = dynamo_level1(services.dynamodb, services.resources.level1_table)
config = RefreshConfig(chunk_orbits=int(os.environ.get("ORBIT_REFRESH_CHUNK_ORBITS", "10000")),
                       worker_memory_mb=int(os.environ.get("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "1769")))


def record_handler(record: SQSRecord) -> dict:
    report = handle_message(record.body, apdb=level1.apdb, staging=services.alert_archive,
                            queue=services.orbit_refresh_queue,
                            sent_timestamp_ms=record.attributes.sent_timestamp, config=config)
    logger.info("orbit refresh message handled", extra=report)
    return report


@logger.inject_lambda_context
def lambda_handler(event, context):
    return process_partial_response(event=event, record_handler=record_handler,
                                    processor=processor, context=context)

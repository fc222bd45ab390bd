"""Stream relay: each batch of alerts from the alert topic, as VOEvents, to the public brokers."""

import os

import boto3
from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.batch import (
    BatchProcessor,
    EventType,
    process_partial_response,
)
from aws_lambda_powertools.utilities.data_classes import SQSEvent

from alertprod.aws.clients import CLIENT_CONFIG
from alertprod.delivery.brokers import load_broker_config
from alertprod.distribution import AlertMessage, DynamoServiceStore
from alertprod.distribution.relay import RelayPendingError, StreamRelay

logger = Logger(service="alertprod-voevent-relay")
processor = BatchProcessor(event_type=EventType.SQS)
relay = StreamRelay(
    DynamoServiceStore(boto3.client("dynamodb", config=CLIENT_CONFIG), os.environ["SERVICE_TABLE"]),
    load_broker_config(os.environ.get("ALERTPROD_VOEVENT_BROKERS", "")),
    s3_client=boto3.client("s3", config=CLIENT_CONFIG))


@logger.inject_lambda_context
def lambda_handler(event, context):
    records = list(SQSEvent(event).records)  # the whole batch is one relay, per broker
    report = relay.process_batch([AlertMessage(r.body) for r in records])
    logger.info("batch relayed", extra={"alerts": report.alerts, "undecodable": len(report.undecodable),
                                        "retry": len(report.retry),
                                        "brokers": {k: vars(v) for k, v in report.brokers.items()}})
    retry = {records[k].message_id for k in report.retry}

    def record_handler(record):
        if record.message_id in retry:
            raise RelayPendingError(f"alert of message {record.message_id} not accepted by every broker yet")

    return process_partial_response(event=event, record_handler=record_handler, processor=processor,
                                    context=context)

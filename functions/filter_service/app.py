"""Filtering service: every active filter on each batch of alert messages; matches to their owners."""

import boto3
from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.batch import (
    BatchProcessor,
    EventType,
    process_partial_response,
)
from aws_lambda_powertools.utilities.data_classes import SQSEvent

from alertprod.aws.clients import CLIENT_CONFIG
from alertprod.distribution import AlertMessage, ClaimCheckPendingError
from alertprod.distribution.config import ServiceSettings
from alertprod.distribution.wiring import (
    DistributionResources,
    build_distribution,
    job_service_orderer_from_env,
)

logger = Logger(service="alertprod-filter-service")
processor = BatchProcessor(event_type=EventType.SQS)
clients = {name: boto3.client(name, config=CLIENT_CONFIG) for name in ("dynamodb", "s3", "sqs", "ses")}
order_precovery, why_not = job_service_orderer_from_env(dynamodb=clients["dynamodb"], sqs=clients["sqs"])
parts = build_distribution(DistributionResources.from_env(), settings=ServiceSettings.from_env(),
                           order_precovery=order_precovery, precovery_disabled_reason=why_not, **clients)


@logger.inject_lambda_context
def lambda_handler(event, context):
    records = list(SQSEvent(event).records)  # the whole batch is one evaluation
    report = parts.service.process_batch(
        [AlertMessage(r.body, int(r.attributes.sent_timestamp) / 1000.0) for r in records])
    logger.info("batch filtered", extra={k: v for k, v in vars(report).items() if k != "retry"})
    retry = {records[k].message_id for k in report.retry}  # claim-checks not readable yet

    def record_handler(record):
        if record.message_id in retry:
            raise ClaimCheckPendingError(f"claim-check of message {record.message_id} not readable yet")

    return process_partial_response(event=event, record_handler=record_handler, processor=processor,
                                    context=context)

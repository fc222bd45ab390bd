"""Ingest function: S3 upload notifications (through SQS) → per-CCD nightly processing.

Built once per container: adapters from the environment the template sets, and the pipeline.
Each SQS record is handled on its own; failures are reported per record (partial batch
response), so one bad message never holds back the others.
"""

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.utilities.batch import (
    BatchProcessor,
    EventType,
    process_partial_response,
)
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

from alertprod.aws import Services
from alertprod.config import Resources
from alertprod.pipeline import build_pipeline
from alertprod.pipeline.dispatch import handle_upload_message

logger = Logger(service="alertprod-ingest")
metrics = Metrics()  # namespace and service from the template (the latency alarm's dimensions)
processor = BatchProcessor(event_type=EventType.SQS)
services = Services.from_resources(Resources.from_env())
pipeline = build_pipeline(services, metrics=metrics)
MAX_RECEIVES = 3  # UploadQueue's maxReceiveCount (infra/template.yaml)


def record_handler(record: SQSRecord) -> list[dict]:
    outcomes = handle_upload_message(record.body, services, pipeline=pipeline,
                                     receive_count=int(record.attributes.approximate_receive_count),
                                     max_receives=MAX_RECEIVES)
    for o in outcomes:
        logger.info("upload handled", extra={"key": o.key, "status": o.status, "reason": o.reason,
                                             "seconds": o.detail.get("seconds"),
                                             "stages": o.detail.get("stages")})
    return [o.__dict__ for o in outcomes]


@logger.inject_lambda_context
@metrics.log_metrics  # flushed as EMF log lines at the end of each invocation
def lambda_handler(event, context):
    return process_partial_response(event=event, record_handler=record_handler,
                                    processor=processor, context=context)

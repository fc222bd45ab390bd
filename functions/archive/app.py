"""Archive function: image-cache notifications (through SQS) → the long-term image archive.

Built once per container: the image cache, the archive bucket and the Level 1 table (the
archive index). Each record names one uploaded science or template image; it is copied,
tile-compressed, into the archive and indexed, off the nightly upload path. Refused images
are recorded and acknowledged; other failures are reported per record (partial batch response).
"""

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.batch import (
    BatchProcessor,
    EventType,
    process_partial_response,
)
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

from alertprod.apdb import DynamoApdb
from alertprod.archive import handle_archive_message
from alertprod.aws import S3BlobStore, Services
from alertprod.config import Resources

logger = Logger(service="alertprod-archive")
processor = BatchProcessor(event_type=EventType.SQS)
services = Services.from_resources(Resources.from_env())
archive = S3BlobStore(services.clients.s3, services.resources.archive_bucket)
apdb = DynamoApdb(services.dynamodb, services.resources.level1_table)


def record_handler(record: SQSRecord) -> list[dict]:
    outcomes = handle_archive_message(record.body, images=services.images, archive=archive, apdb=apdb)
    for o in outcomes:
        logger.info("image archived", extra=o.as_dict())
    return [o.as_dict() for o in outcomes]


@logger.inject_lambda_context
def lambda_handler(event, context):
    return process_partial_response(event=event, record_handler=record_handler,
                                    processor=processor, context=context)

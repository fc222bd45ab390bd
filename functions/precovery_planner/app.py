"""Precovery planner: the daily schedule → one precovery unit per cached exposure, on the queue.

EventBridge delivers at least once: Powertools idempotency (keyed on the event's ``time``)
makes a duplicate delivery return the first plan's report without planning again. A manual
rerun of a day (another event) is safe too: units rewrite the same forced rows.
"""

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.idempotency import (
    DynamoDBPersistenceLayer,
    IdempotencyConfig,
    idempotent,
)

from alertprod.apdb import dynamo_level1
from alertprod.aws import Services
from alertprod.config import Resources
from alertprod.precovery import event_time_mjd_tai, plan_and_enqueue

logger = Logger(service="alertprod-precovery-planner")
services = Services.from_resources(Resources.from_env())
level1 = dynamo_level1(services.dynamodb, services.resources.level1_table)
persistence = DynamoDBPersistenceLayer(table_name=services.resources.idempotency_table,
                                       boto3_client=services.dynamodb)
idempotency = IdempotencyConfig(event_key_jmespath='["time", "resources"]', expires_after_seconds=3 * 86400)


@logger.inject_lambda_context
@idempotent(persistence_store=persistence, config=idempotency)
def lambda_handler(event, context):
    report = plan_and_enqueue(level1, services.precovery_queue, now_mjd_tai=event_time_mjd_tai(event))
    logger.info("precovery planned", extra=report.__dict__)
    return report.__dict__

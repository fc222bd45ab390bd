"""Orbit refresh planner: the daily schedule (12:00 UTC, before the night) → one message per
chunk of the base orbit catalog on the orbit-refresh queue.

EventBridge delivers at least once: Powertools idempotency (keyed on the event's ``time``)
answers a duplicate from the first plan's record. Anything else that asks again (a manual
rerun, a request after an MPCORB upload) is safe too: a night already refreshed from the
current catalog is left alone, one in progress gets only its missing chunks again.
"""

import os

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.idempotency import (
    DynamoDBPersistenceLayer,
    IdempotencyConfig,
    idempotent,
)

from alertprod.apdb import dynamo_level1
from alertprod.aws import Services
from alertprod.config import Resources
from alertprod.orbitrefresh import RefreshConfig, plan_and_enqueue
from alertprod.precovery import event_time_mjd_tai

logger = Logger(service="alertprod-orbit-refresh-planner")
services = Services.from_resources(Resources.from_env())
level1 = dynamo_level1(services.dynamodb, services.resources.level1_table)
config = RefreshConfig(chunk_orbits=int(os.environ.get("ORBIT_REFRESH_CHUNK_ORBITS", "10000")))
persistence = DynamoDBPersistenceLayer(table_name=services.resources.idempotency_table,
                                       boto3_client=services.dynamodb)
idempotency = IdempotencyConfig(event_key_jmespath='["time", "resources"]', expires_after_seconds=3 * 86400)


@logger.inject_lambda_context
@idempotent(persistence_store=persistence, config=idempotency)
def lambda_handler(event, context):
    report = plan_and_enqueue(level1.apdb, services.alert_archive, services.orbit_refresh_queue,
                              now_mjd_tai=event_time_mjd_tai(event), reason="schedule",
                              config=config)
    logger.info("orbit refresh planned", extra=report.as_dict())
    return report.as_dict()

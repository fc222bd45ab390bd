"""Precovery planner: the daily schedule → one precovery unit per cached exposure, on the queue."""

from aws_lambda_powertools import Logger

from alertprod.apdb import DynamoApdb
from alertprod.aws import Services
from alertprod.config import Resources
from alertprod.precovery import event_time_mjd_tai, plan_and_enqueue

logger = Logger(service="alertprod-precovery-planner")
services = Services.from_resources(Resources.from_env())
apdb = DynamoApdb(services.dynamodb, services.resources.level1_table)


@logger.inject_lambda_context
def lambda_handler(event, context):
    report = plan_and_enqueue(apdb, services.precovery_queue, now_mjd_tai=event_time_mjd_tai(event))
    logger.info("precovery planned", extra=report.__dict__)
    return report.__dict__

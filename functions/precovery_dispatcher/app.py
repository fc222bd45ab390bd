"""Precovery dispatcher: release queued units fairly (deficit round robin) up to the in-flight cap.

Fed by the tick queue (a batch of ticks is one dispatch; a direct invocation without records
dispatches too); reserved concurrency 1, and every cursor move is a compare-and-set, so a
second invocation could only re-send units, which the workers absorb (docs/precovery-service.md).
"""

import boto3
from aws_lambda_powertools import Logger

from alertprod.aws.clients import CLIENT_CONFIG
from alertprod.precovery.jobservice import JobServiceResources, JobServiceSettings
from alertprod.precovery.jobservice.handlers import handle_ticks
from alertprod.precovery.jobservice.messages import tick_message
from alertprod.precovery.jobservice.wiring import build_job_context

logger = Logger(service="alertprod-precovery-dispatcher")
ctx = build_job_context(JobServiceResources.from_env(), JobServiceSettings.from_env(),
                        **{n: boto3.client(n, config=CLIENT_CONFIG) for n in ("dynamodb", "s3", "sqs")})


@logger.inject_lambda_context
def lambda_handler(event, context):
    records = event.get("Records") or []
    bodies = [r["body"] for r in records] if records else [tick_message("direct")]
    result = handle_ticks(ctx, bodies)  # an error fails the batch: the ticks come back
    logger.info("precovery dispatch", extra=result)
    return {**result, "batchItemFailures": []}

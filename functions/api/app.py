"""Filter management API (HTTP API, payload 2.0): routes live in alertprod.api."""

import boto3
from aws_lambda_powertools import Logger

from alertprod.api import ApiContext, ApiHandler
from alertprod.aws.clients import CLIENT_CONFIG
from alertprod.distribution.config import ServiceSettings
from alertprod.distribution.wiring import DistributionResources, build_distribution
from alertprod.precovery.jobservice import JobServiceResources, JobServiceSettings
from alertprod.precovery.jobservice.wiring import build_job_context

logger = Logger(service="alertprod-api")
parts = build_distribution(
    DistributionResources.from_env(), settings=ServiceSettings.from_env(),
    **{name: boto3.client(name, config=CLIENT_CONFIG) for name in ("dynamodb", "s3", "sqs", "ses")})
precovery = build_job_context(  # the precovery service's routes (interfaces.md §6)
    JobServiceResources.from_env(), JobServiceSettings.from_env(),
    **{name: boto3.client(name, config=CLIENT_CONFIG) for name in ("dynamodb", "s3", "sqs", "ses")})
handler = ApiHandler(ApiContext(store=parts.store, service=parts.service, archive=parts.archive,
                                settings=parts.settings, watchlist_library=parts.watchlists,
                                precovery=precovery))


@logger.inject_lambda_context
def lambda_handler(event, context):
    return handler(event, context)

"""HTTP API Lambda authorizer (payload 2.0, simple responses): bearer token → user id."""

import os

import boto3
from aws_lambda_powertools import Logger

from alertprod.api import authorize
from alertprod.aws.clients import CLIENT_CONFIG
from alertprod.distribution import DynamoServiceStore

logger = Logger(service="alertprod-api-authorizer")
store = DynamoServiceStore(boto3.client("dynamodb", config=CLIENT_CONFIG), os.environ["SERVICE_TABLE"])


def lambda_handler(event, context):
    response = authorize(event, store)
    logger.info("authorized" if response["isAuthorized"] else "refused",
                extra={"route": event.get("routeKey"), "user": response["context"].get("userId")})
    return response

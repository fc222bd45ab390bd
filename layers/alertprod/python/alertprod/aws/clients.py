"""boto3 clients for one deployment, configured once.

No endpoint is named here: boto3 reads ``AWS_ENDPOINT_URL`` itself, which the embedded stack
sets and AWS leaves unset.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import boto3
from botocore.config import Config

__all__ = ["AwsClients", "make_clients", "CLIENT_CONFIG"]

#: Standard retry mode (exponential backoff with jitter, throttling-aware), bounded timeouts
#: so a stuck call fails well inside a Lambda's budget.
CLIENT_CONFIG = Config(
    retries={"mode": "standard", "max_attempts": 5},
    connect_timeout=5,
    read_timeout=30,
    max_pool_connections=32,
)


class AwsClients(NamedTuple):
    """The boto3 clients the adapters use."""

    s3: Any
    dynamodb: Any
    sns: Any
    sqs: Any


def make_clients(region: str | None = None, *, config: Config | None = None) -> AwsClients:
    """Build S3, DynamoDB, SNS and SQS clients in ``region`` (default: boto3's own lookup)."""
    session = boto3.session.Session(region_name=region)
    cfg = config or CLIENT_CONFIG
    return AwsClients(
        s3=session.client("s3", config=cfg),
        dynamodb=session.client("dynamodb", config=cfg),
        sns=session.client("sns", config=cfg),
        sqs=session.client("sqs", config=cfg),
    )

"""Deployment settings: which buckets, tables, topics and queues the functions use.

The SAM template (infra/template.yaml) sets these as environment variables on every function;
the embedded stack sets the same variables locally. Only function handlers and the CLI call
:meth:`Resources.from_env`; library code receives a :class:`Resources` (or adapters built from
it) as an argument. The AWS endpoint is never configured here: boto3 reads
``AWS_ENDPOINT_URL`` itself, which the embedded stack sets and AWS leaves unset.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, fields

from alertprod.errors import ConfigError

__all__ = ["Resources", "ENV_NAMES"]

#: Environment variable of each :class:`Resources` field.
ENV_NAMES: dict[str, str] = {
    "upload_bucket": "UPLOAD_BUCKET",
    "image_bucket": "IMAGE_BUCKET",
    "alert_bucket": "ALERT_BUCKET",
    "level1_table": "LEVEL1_TABLE",
    "idempotency_table": "IDEMPOTENCY_TABLE",
    "alert_topic_arn": "ALERT_TOPIC_ARN",
    "precovery_queue_url": "PRECOVERY_QUEUE_URL",
    "orbit_refresh_queue_url": "ORBIT_REFRESH_QUEUE_URL",
    "filter_table": "FILTER_TABLE",
    "archive_bucket": "ARCHIVE_BUCKET",
}


@dataclass(frozen=True)
class Resources:
    """Names of the cloud resources of one deployment.

    Attributes
    ----------
    upload_bucket : str
        Bucket receiving DiaSource catalogs (``diasources/``), orbit catalogs (``config/``) and
        holding quarantine records (``quarantine/``).
    image_bucket : str
        The 30-day image cache (``visits/{V:08d}/{D:03d}/{kind}.fits``).
    alert_bucket : str
        Archive of every alert packet (``alerts/...``) and claim-check target.
    level1_table : str
        DynamoDB table holding the Level 1 database (APDB).
    idempotency_table : str
        DynamoDB table for Powertools idempotency records.
    alert_topic_arn : str
        SNS topic the alerts are published to.
    precovery_queue_url : str
        SQS queue of daytime precovery work units ("" when not deployed).
    filter_table : str
        DynamoDB table of user filters ("" when not deployed).
    orbit_refresh_queue_url : str
        SQS queue of orbit-refresh requests and chunks ("" when not deployed).
    archive_bucket : str
        The long-term image archive (``archive/visits/{V:08d}/{D:03d}/{kind}.fits``, tile
        compressed; docs/archive.md) ("" when not deployed).
    """

    upload_bucket: str
    image_bucket: str
    alert_bucket: str
    level1_table: str
    idempotency_table: str = ""
    alert_topic_arn: str = ""
    precovery_queue_url: str = ""
    filter_table: str = ""
    orbit_refresh_queue_url: str = ""
    archive_bucket: str = ""

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Resources:
        """Read the resource names from the environment the template sets.

        Raises
        ------
        ConfigError
            When a required variable (the three buckets and the Level 1 table) is unset.
        """
        env = os.environ if environ is None else environ
        values: dict[str, str] = {}
        for f in fields(cls):
            name = ENV_NAMES[f.name]
            value = env.get(name, "")
            if not value and f.default is not None and f.default == "" and f.name in (
                "idempotency_table", "alert_topic_arn", "precovery_queue_url", "filter_table",
                "orbit_refresh_queue_url", "archive_bucket",
            ):
                values[f.name] = ""
                continue
            if not value:
                raise ConfigError(f"environment variable {name} is not set")
            values[f.name] = value
        return cls(**values)

    def to_env(self) -> dict[str, str]:
        """The environment variables that describe these resources."""
        return {ENV_NAMES[f.name]: getattr(self, f.name) for f in fields(self) if getattr(self, f.name)}

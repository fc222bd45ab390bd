"""Request bodies of the filter API (pydantic; unknown fields refused)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["SqsTransportIn", "WebhookTransportIn", "S3TransportIn", "EmailTransportIn",
           "VtpTransportIn", "TransportIn", "FilterCreate", "FilterUpdate", "TrialRequest",
           "ExpressionTrialRequest", "ExplainRequest", "RedeliverRequest"]

_STRICT = ConfigDict(extra="forbid", str_strip_whitespace=False)


class SqsTransportIn(BaseModel):
    """Your own SQS queue; its policy lets the service's role send."""

    model_config = _STRICT
    kind: Literal["sqs"]
    queue_url: str = Field(max_length=512, pattern=r"^https?://[A-Za-z0-9.\-:]+/\d{12}/[A-Za-z0-9_\-]{1,80}(\.fifo)?$")


class WebhookTransportIn(BaseModel):
    """An HTTPS endpoint; requests are signed with a secret the API returns once."""

    model_config = _STRICT
    kind: Literal["webhook"]
    url: str = Field(max_length=2048)


class S3TransportIn(BaseModel):
    """A bucket (and prefix) whose policy lets the service's role put objects."""

    model_config = _STRICT
    kind: Literal["s3"]
    bucket: str = Field(pattern=r"^[a-z0-9][a-z0-9.\-]{1,61}[a-z0-9]$")
    prefix: str = Field(default="", max_length=512, pattern=r"^([A-Za-z0-9!_.*'()\-]+/)*$")


class EmailTransportIn(BaseModel):
    """An e-mail digest (SES), one message per batch window."""

    model_config = _STRICT
    kind: Literal["email"]
    to: str = Field(max_length=254, pattern=r"^[^@\s\"<>,;]+@[A-Za-z0-9\-]+(\.[A-Za-z0-9\-]+)+$")


class VtpTransportIn(BaseModel):
    """VOEvents over the VOEvent Transport Protocol to a broker at host:port."""

    model_config = _STRICT
    kind: Literal["vtp"]
    host: str = Field(max_length=253, pattern=r"^[A-Za-z0-9.\-]+$")
    port: int = Field(default=8098, ge=1, le=65535)


TransportIn = Annotated[SqsTransportIn | WebhookTransportIn | S3TransportIn | EmailTransportIn |
                        VtpTransportIn, Field(discriminator="kind")]


class FilterCreate(BaseModel):
    """A new filter."""

    model_config = _STRICT
    name: str = Field(min_length=1, max_length=100)
    expression: str = Field(min_length=1, max_length=10_000)
    transports: list[TransportIn] = Field(min_length=1, max_length=8)
    payload: Literal["avro", "voevent"] = "avro"
    quota_per_day: int | None = Field(default=None, ge=1)
    expires_days: int | None = Field(default=None, ge=1)


class FilterUpdate(BaseModel):
    """Changes to a filter; a new expression makes a new version."""

    model_config = _STRICT
    name: str | None = Field(default=None, min_length=1, max_length=100)
    expression: str | None = Field(default=None, min_length=1, max_length=10_000)
    transports: list[TransportIn] | None = Field(default=None, min_length=1, max_length=8)
    payload: Literal["avro", "voevent"] | None = None
    quota_per_day: int | None = Field(default=None, ge=1)
    expires_days: int | None = Field(default=None, ge=1)


class TrialRequest(BaseModel):
    """Run a stored filter on the last N nights of the archive."""

    model_config = _STRICT
    nights: int = Field(default=1, ge=1)


class ExpressionTrialRequest(TrialRequest):
    """Run an expression (not stored) on the last N nights."""

    expression: str = Field(min_length=1, max_length=10_000)


class ExplainRequest(BaseModel):
    """Why an expression matches one archived alert or not."""

    model_config = _STRICT
    expression: str = Field(min_length=1, max_length=10_000)
    alert_id: int = Field(ge=0, le=2**63 - 1)
    visit: int | None = Field(default=None, ge=0, le=99_999_999)
    detector: int | None = Field(default=None, ge=0, le=999)


class RedeliverRequest(BaseModel):
    """Re-send the filter's matches recorded since a time (ISO 8601; UTC when no offset)."""

    model_config = _STRICT
    since: datetime

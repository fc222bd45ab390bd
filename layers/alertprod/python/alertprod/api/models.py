"""Request bodies of the filter API (pydantic; unknown fields refused)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["SqsTransportIn", "WebhookTransportIn", "S3TransportIn", "EmailTransportIn",
           "VtpTransportIn", "TransportIn", "FilterCreate", "FilterUpdate", "TrialRequest",
           "ExpressionTrialRequest", "ExplainRequest", "RedeliverRequest", "PrecoveryOptionsIn",
           "PrecoverySetting", "WatchlistEntryIn", "WatchlistUpload", "WatchlistUploadDone", "WatchlistView"]

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


class PrecoveryOptionsIn(BaseModel):
    """Options of the precovery jobs a filter orders (a subset of interfaces.md §6's options)."""

    model_config = _STRICT
    stamps: bool = False
    images: Literal["nightly", "data_release"] = "nightly"


class PrecoverySetting(BaseModel):
    """Order forced photometry at each match's position over the previous visits.

    Jobs belong to the filter's owner and count against their precovery quota; at most
    ``daily_cap`` are ordered per filter per UTC day (further matches are counted, not ordered).
    """

    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    enabled: bool = True
    daily_cap: int = Field(default=20, ge=1, le=1000, alias="dailyCap")
    lookback_days: float = Field(default=3650.0, gt=0, le=36_525.0,
                                 description="visits up to this many days before the alert's are measured")
    options: PrecoveryOptionsIn = Field(default_factory=PrecoveryOptionsIn)


class FilterCreate(BaseModel):
    """A new filter."""

    model_config = _STRICT
    name: str = Field(min_length=1, max_length=100)
    expression: str = Field(min_length=1, max_length=10_000)
    transports: list[TransportIn] = Field(min_length=1, max_length=8)
    payload: Literal["avro", "voevent"] = "avro"
    quota_per_day: int | None = Field(default=None, ge=1)
    expires_days: int | None = Field(default=None, ge=1)
    precovery: PrecoverySetting | None = None


class FilterUpdate(BaseModel):
    """Changes to a filter; a new expression makes a new version."""

    model_config = _STRICT
    name: str | None = Field(default=None, min_length=1, max_length=100)
    expression: str | None = Field(default=None, min_length=1, max_length=10_000)
    transports: list[TransportIn] | None = Field(default=None, min_length=1, max_length=8)
    payload: Literal["avro", "voevent"] | None = None
    quota_per_day: int | None = Field(default=None, ge=1)
    expires_days: int | None = Field(default=None, ge=1)
    precovery: PrecoverySetting | None = None


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


class WatchlistEntryIn(BaseModel):
    """One watchlist position: degrees (ICRS), a match radius in arcsec, an optional id."""

    model_config = _STRICT
    ra: float = Field(ge=0, lt=360)
    dec: float = Field(ge=-90, le=90)
    radius: float | None = Field(default=None, gt=0, le=3600)
    id: str | None = Field(default=None, max_length=64)


class WatchlistUpload(BaseModel):
    """A watchlist as JSON (``PUT /api/watchlists/{name}``; CSV and VOTable bodies are accepted too)."""

    model_config = _STRICT
    entries: list[WatchlistEntryIn] = Field(min_length=1)
    default_radius_arcsec: float = Field(default=1.0, gt=0, le=3600)


class WatchlistUploadDone(BaseModel):
    """The file PUT to a pre-signed upload URL is complete: make it the watchlist."""

    model_config = _STRICT
    upload_id: str = Field(pattern=r"^[0-9a-f]{32}$")
    content_type: Literal["text/csv", "application/json", "application/x-votable+xml"] = "text/csv"
    radius_arcsec: float | None = Field(default=None, gt=0, le=3600)


class WatchlistView(BaseModel):
    """A stored watchlist, as its owner sees it."""

    name: str
    entries: int
    max_radius_arcsec: float
    sha256: str
    source_format: Literal["csv", "json", "votable"]
    created_at: str
    updated_at: str

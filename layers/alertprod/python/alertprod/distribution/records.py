"""What the filter API and the filtering service keep: tokens, filters, counters, deliveries.

Plain frozen dataclasses with ``to_dict``/``from_dict`` (JSON-able values only), so every
backend of :class:`~alertprod.distribution.store.ServiceStore` stores the same fields and the
API can show them. Times are Unix seconds (UTC); days are ``YYYY-MM-DD`` in UTC.
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass, field, fields, replace
from datetime import UTC, datetime
from typing import Any

__all__ = ["TokenRecord", "FilterRecord", "FilterVersion", "DeliveryRecord", "Notice", "WatchlistRecord",
           "PrecoveryOrder", "COUNTER_NAMES", "DELIVERY_STATES", "FILTER_STATES", "PRECOVERY_ORDER_STATES",
           "delivery_id", "utc_day"]

#: Per-day counters of a filter (all integers but the lag sums, in seconds); ``precovery_*``
#: count the precovery jobs the filter ordered, refused over its daily cap, or failed to order.
COUNTER_NAMES = ("evaluated", "matched", "delivered", "held", "released", "failed",
                 "precovery_ordered", "precovery_capped", "precovery_failed",
                 "lag_sum_s", "lag_count", "lag_max_s")

#: States of a precovery order of a filter's match: ``ordered`` (a job was submitted; its id is
#: kept), ``capped`` (over the filter's daily cap: never ordered), ``failed`` (the submission
#: was refused or failed; a redelivered alert tries again).
PRECOVERY_ORDER_STATES = ("ordered", "capped", "failed")

#: States of a delivery record: ``pending`` (claimed, being sent), ``delivered``, ``held``
#: (over the daily quota, waiting for release), ``overflow`` (over the quota and the hold cap:
#: recorded, reached only by redelivery), ``failed`` (dead-lettered after retries).
DELIVERY_STATES = ("pending", "delivered", "held", "overflow", "failed")

#: States of a filter: evaluated only when ``active``.
FILTER_STATES = ("active", "paused", "expired")


def utc_day(unix_s: float) -> str:
    """The UTC day ``YYYY-MM-DD`` of a Unix time (s)."""
    return datetime.fromtimestamp(unix_s, UTC).strftime("%Y-%m-%d")


def delivery_id(filter_id: str, version_hash: str, alert_id: int) -> str:
    """The delivery id of a match: a hash of (filter id, filter version hash, alert id).

    Deterministic, so a redelivered alert batch, a retry and a user's redelivery request give
    the same id, and a receiver that deduplicates on it sees each match once. 32 hex digits.
    """
    text = f"alertprod-delivery/1\n{filter_id}\n{version_hash}\n{int(alert_id)}"
    return hashlib.sha256(text.encode()).hexdigest()[:32]


class _Record:
    def to_dict(self) -> dict[str, Any]:
        return asdict(self)  # type: ignore[call-overload]

    @classmethod
    def from_dict(cls, data: dict[str, Any]):
        names = {f.name for f in fields(cls)}  # type: ignore[arg-type]
        return cls(**{k: v for k, v in data.items() if k in names})

    def replace(self, **changes: Any):
        return replace(self, **changes)  # type: ignore[type-var]


@dataclass(frozen=True)
class TokenRecord(_Record):
    """An API token, as stored: only its sha256 is kept, never the token itself.

    Attributes
    ----------
    token_hash : str
        sha256 (hex) of the token.
    user_id : str
        The user the token authenticates.
    label : str
        What the operator wrote when issuing it.
    created_unix, expires_unix : float
        Issue and expiry times (Unix s).
    revoked : bool
        A revoked token is refused.
    """

    token_hash: str
    user_id: str
    label: str
    created_unix: float
    expires_unix: float
    revoked: bool = False

    @property
    def token_id(self) -> str:
        """The short public id of the token (first 12 hex digits of its hash)."""
        return self.token_hash[:12]

    def valid_at(self, unix_s: float) -> bool:
        """Whether the token authenticates at time ``unix_s``."""
        return not self.revoked and unix_s < self.expires_unix


@dataclass(frozen=True)
class Notice(_Record):
    """A message for the owner of a filter (expiry warning, quota hold, ...)."""

    kind: str
    message: str
    created_unix: float


@dataclass(frozen=True)
class FilterRecord(_Record):
    """One user's filter: its current version, transports and limits.

    Attributes
    ----------
    filter_id, user_id, name : str
        Identity, owner, and the owner's name for it.
    expression, normalized, version_hash : str
        The filter text as written, its canonical text, and the engine's version hash.
    version : int
        1 for the first version, +1 on every change of the expression.
    state : str
        ``active``, ``paused`` or ``expired`` (:data:`FILTER_STATES`).
    payload : str
        ``avro`` (the framed Rubin packet) or ``voevent`` (VOEvent 2.0 XML).
    transports : list of dict
        Where matches go: ``{"kind": "sqs"|"webhook"|"s3"|"email"|"vtp", ...}``. A webhook's
        ``secret`` is kept to sign requests and never shown again after creation.
    quota_per_day : int
        Alerts delivered per UTC day; matches over it are held.
    created_unix, updated_unix, expires_unix : float
        Times (Unix s); at ``expires_unix`` the filter stops.
    held_pending : int
        Matches held and not yet released.
    expiry_warned : bool
        Whether the 7-day expiry warning was given for the current expiry date.
    notices : list of dict
        The most recent :class:`Notice` records (newest last, bounded).
    precovery : dict or None
        Precovery ordered for each match: ``{"enabled": bool, "daily_cap": int, "options": {...}}``
        (the options of a precovery job, interfaces.md §6), or None.
    """

    filter_id: str
    user_id: str
    name: str
    expression: str
    normalized: str
    version_hash: str
    version: int
    state: str
    payload: str
    transports: list[dict[str, Any]]
    quota_per_day: int
    created_unix: float
    updated_unix: float
    expires_unix: float
    held_pending: int = 0
    expiry_warned: bool = False
    notices: list[dict[str, Any]] = field(default_factory=list)
    precovery: dict[str, Any] | None = None


@dataclass(frozen=True)
class FilterVersion(_Record):
    """One version of a filter's expression (kept for the life of the filter)."""

    filter_id: str
    version: int
    expression: str
    normalized: str
    version_hash: str
    created_unix: float


@dataclass(frozen=True)
class DeliveryRecord(_Record):
    """One match of one filter: what was (or will be) delivered, and what became of it.

    Attributes
    ----------
    delivery_id : str
        :func:`delivery_id` of (filter id, version hash, alert id).
    filter_id, user_id, version_hash : str
        The filter version that matched and its owner.
    alert_id : int
        The alert's ``diaSourceId``.
    archive_key : str
        Where the alert packet lies in the alert archive (for release and redelivery).
    created_unix : float
        When the match was first recorded (Unix s); redelivery "since" compares with it.
    state : str
        One of :data:`DELIVERY_STATES`.
    attempts : int
        Delivery attempts so far (all transports together).
    delivered_unix : float or None
        When it was last delivered.
    error : str
        The last error, for a failed delivery.
    """

    delivery_id: str
    filter_id: str
    user_id: str
    version_hash: str
    alert_id: int
    archive_key: str
    created_unix: float
    state: str = "pending"
    attempts: int = 0
    delivered_unix: float | None = None
    error: str = ""


@dataclass(frozen=True)
class WatchlistRecord(_Record):
    """A user's watchlist, as listed: its entries lie in the object store at ``blob_key``.

    Attributes
    ----------
    user_id, name : str
        Owner and the name filters use (``in_watchlist('name')``); unique per user.
    entries : int
        Number of positions.
    max_radius_arcsec : float
        Largest per-entry match radius, arcsec.
    sha256 : str
        sha256 (hex) of the stored entries: changes whenever the content does.
    blob_key : str
        Object key of the entries (a compressed ``.npz``).
    source_format : str
        ``csv`` or ``json``: how it was uploaded.
    created_unix, updated_unix : float
        First upload and last replacement (Unix s).
    """

    user_id: str
    name: str
    entries: int
    max_radius_arcsec: float
    sha256: str
    blob_key: str
    source_format: str
    created_unix: float
    updated_unix: float


@dataclass(frozen=True)
class PrecoveryOrder(_Record):
    """The precovery job a filter ordered (or did not) for one matching alert.

    Attributes
    ----------
    filter_id, user_id : str
        The filter and its owner (who owns the job).
    alert_id : int
        The matching alert's ``diaSourceId``.
    day : str
        UTC day the order counted against (``YYYY-MM-DD``).
    state : str
        One of :data:`PRECOVERY_ORDER_STATES`.
    created_unix : float
        When the order was first recorded (Unix s).
    job_id : str
        The job's id (``ordered`` only).
    error : str
        Why the order failed (``failed`` only).
    """

    filter_id: str
    user_id: str
    alert_id: int
    day: str
    state: str
    created_unix: float
    job_id: str = ""
    error: str = ""

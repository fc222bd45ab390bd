"""Settings of the filter API and the filtering service: limits, quotas, expiry, webhook rules."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field

from alertprod.alerts.voevent import VOEventConfig
from alertprod.delivery.webhook import WebhookPolicy
from alertprod.errors import ConfigError

__all__ = ["ServiceSettings"]


@dataclass(frozen=True)
class ServiceSettings:
    """Limits and policies of the distribution service (one place; documented in docs/distribution.md).

    Attributes
    ----------
    default_quota_per_day, max_quota_per_day : int
        Alerts delivered per filter per UTC day: the default and the largest a user may set.
    held_cap : int
        Matches held per filter beyond the quota; further matches are recorded as ``overflow``
        (not released automatically; redelivery still reaches them).
    default_expiry_days, max_expiry_days : int
        A filter's life from creation or renewal, days (Lasair: 180).
    expiry_warning_days : int
        A notice is given this many days before expiry.
    max_filters_per_user : int
        Filters one user may own.
    max_body_bytes : int
        Largest request body the API accepts (413 beyond).
    max_watchlist_body_bytes : int
        Largest watchlist upload (413 beyond): under Lambda's 6 MB synchronous payload, so
        about 200,000 CSV rows through the API.
    max_watchlist_entries : int
        Entries of one watchlist (the engine's bound, 10⁶).
    max_watchlists_per_user : int
        Watchlists one user may own.
    max_watchlist_upload_bytes : int
        Largest file uploaded through a pre-signed URL (10⁶ CSV rows take about 40 MB).
    watchlist_upload_url_s : int
        Life of a pre-signed upload URL, seconds.
    max_release_per_batch : int
        Held matches released per filter per batch.
    max_redeliver : int
        Records one redelivery request re-sends (the response says when more remain).
    max_test_nights, max_test_alerts : int
        Bounds of "test this filter on the last N nights".
    filter_cache_s : float
        How long the service reuses the list of filters, seconds.
    transport_workers : int
        Transports called concurrently (one slow receiver never blocks the others).
    dispatch_budget_s : float
        Wall time one batch's deliveries may take; what is unfinished then is dead-lettered.
    email_sender : str
        Verified SES identity digests come from ("" disables e-mail).
    webhook : WebhookPolicy
        Timeouts, retries and the address rule of webhooks.
    vtp_timeout_s : float
        Timeout of a VTP exchange, seconds.
    voevent : VOEventConfig
        How VOEvent payloads are written (the deployment's IVOA authority).
    """

    default_quota_per_day: int = 10_000
    max_quota_per_day: int = 1_000_000
    held_cap: int = 10_000
    default_expiry_days: int = 180
    max_expiry_days: int = 365
    expiry_warning_days: int = 7
    max_filters_per_user: int = 100
    max_body_bytes: int = 64 * 1024
    max_watchlist_body_bytes: int = 5 * 1024 * 1024
    max_watchlist_entries: int = 1_000_000
    max_watchlists_per_user: int = 20
    max_watchlist_upload_bytes: int = 100 * 1024 * 1024
    watchlist_upload_url_s: int = 900
    max_release_per_batch: int = 1_000
    max_redeliver: int = 2_000
    max_test_nights: int = 30
    max_test_alerts: int = 100_000
    filter_cache_s: float = 30.0
    transport_workers: int = 8
    dispatch_budget_s: float = 60.0
    email_sender: str = ""
    webhook: WebhookPolicy = field(default_factory=WebhookPolicy)
    vtp_timeout_s: float = 5.0
    voevent: VOEventConfig = field(default_factory=VOEventConfig)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> ServiceSettings:
        """Settings from ``ALERTPROD_EMAIL_SENDER``, ``ALERTPROD_WEBHOOK_ALLOW_PRIVATE`` (``1``:
        tests and the local demo only), ``ALERTPROD_WEBHOOK_REQUIRE_HTTPS`` (``0`` to allow
        http), ``ALERTPROD_DEFAULT_QUOTA_PER_DAY``, ``ALERTPROD_HELD_CAP`` and
        ``ALERTPROD_DISPATCH_BUDGET_S``; the rest default."""
        env = os.environ if environ is None else environ

        def flag(name: str, default: bool) -> bool:
            value = env.get(name, "")
            if value == "":
                return default
            if value not in ("0", "1"):
                raise ConfigError(f"{name}={value!r}: expected 0 or 1")
            return value == "1"

        def integer(name: str, default: int) -> int:
            try:
                return int(env.get(name, "") or default)
            except ValueError as exc:
                raise ConfigError(f"{name}: expected an integer") from exc

        policy = WebhookPolicy(allow_private=flag("ALERTPROD_WEBHOOK_ALLOW_PRIVATE", False),
                               require_https=flag("ALERTPROD_WEBHOOK_REQUIRE_HTTPS", True))
        return cls(email_sender=env.get("ALERTPROD_EMAIL_SENDER", ""), webhook=policy,
                   default_quota_per_day=integer("ALERTPROD_DEFAULT_QUOTA_PER_DAY", 10_000),
                   held_cap=integer("ALERTPROD_HELD_CAP", 10_000),
                   dispatch_budget_s=float(integer("ALERTPROD_DISPATCH_BUDGET_S", 60)))

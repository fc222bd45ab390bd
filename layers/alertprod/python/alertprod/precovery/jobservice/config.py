"""Settings of the precovery job service: quotas, the dispatch cap, waiting, retention.

One typed place for every limit the service enforces (documented in
docs/precovery-service.md); only handlers and the CLI read them from the environment
(:meth:`JobServiceSettings.from_env`), library code receives them.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, fields

from alertprod.delivery.webhook import WebhookPolicy
from alertprod.errors import ConfigError

__all__ = ["JobServiceResources", "JobServiceSettings"]


@dataclass(frozen=True)
class JobServiceSettings:
    """Limits and policies of the precovery job service.

    Attributes
    ----------
    max_jobs_in_flight_per_user : int
        Jobs a user may have in a non-final phase at once (over it: 429).
    max_submissions_per_hour : int
        Submissions a user may make per clock hour (UTC; over it: 429 until the hour ends).
    max_units_in_flight : int
        Units the dispatcher keeps released to the unit queue at once (waiting or running):
        the fair-share window; beyond it units wait in their job's plan.
    max_plans_in_flight : int
        ``plan`` messages the dispatcher keeps on the job queue at once, shared fairly over
        users (the user with the fewest plans in flight goes next); beyond it submitted jobs
        wait ``PENDING`` in the store, so an assembly waits behind at most this many plans.
    workers : int
        Units that run at once (the unit worker's concurrency), for the ETA.
    quantum_s : float
        Deficit-round-robin quantum, unit-seconds per user per round.
    cache_days : float
        The deployment's ``ImageCacheDays``: older epochs are re-created from the archive.
    max_wait_s : float
        Longest ``?wait=`` the API honours, seconds (API Gateway ends a request at 29 s).
    wait_poll_s : float
        How often a waiting request reads the job again, seconds.
    unit_max_attempts : int
        Attempts of a unit before it is recorded as failed (rows with status ``failed``) so
        that the job still completes; below the unit queue's ``maxReceiveCount``.
    sweep_interval_s : float
        How often the dispatcher looks for jobs whose units all reported but which were never
        assembled (the ``assemble`` message lost to a dead-letter queue, say) and asks again.
    retention_days : float
        Job records and results are kept at least this long after a job ends.
    max_body_bytes : int
        Largest submission the API accepts (413 beyond): a ``batch`` of 10,000 positions fits.
    email_sender : str
        Verified SES identity completion e-mails come from ("" disables e-mail).
    webhook : WebhookPolicy
        Address rules, timeouts and retries of completion webhooks (the alert webhooks' rules).
    """

    max_jobs_in_flight_per_user: int = 24
    max_submissions_per_hour: int = 60
    max_units_in_flight: int = 64
    max_plans_in_flight: int = 4
    workers: int = 16
    quantum_s: float = 10.0
    cache_days: float = 30.0
    max_wait_s: float = 25.0
    wait_poll_s: float = 0.5
    unit_max_attempts: int = 3
    sweep_interval_s: float = 300.0
    retention_days: float = 30.0
    max_body_bytes: int = 1024 * 1024
    email_sender: str = ""
    webhook: WebhookPolicy = WebhookPolicy()

    def __post_init__(self) -> None:
        for name in ("max_jobs_in_flight_per_user", "max_submissions_per_hour",
                     "max_units_in_flight", "max_plans_in_flight", "workers", "unit_max_attempts", "max_body_bytes"):
            if int(getattr(self, name)) < 1:
                raise ConfigError(f"{name}: must be >= 1, got {getattr(self, name)!r}")
        for name in ("quantum_s", "cache_days", "wait_poll_s", "sweep_interval_s"):
            if not float(getattr(self, name)) > 0:
                raise ConfigError(f"{name}: must be > 0, got {getattr(self, name)!r}")
        if self.retention_days < 30:
            raise ConfigError(f"retention_days: the service promises >= 30 days, got {self.retention_days!r}")
        if self.max_wait_s < 0:
            raise ConfigError(f"max_wait_s: must be >= 0, got {self.max_wait_s!r}")

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> JobServiceSettings:
        """Settings from ``ALERTPROD_PRECOVERY_<FIELD>`` variables (upper case); defaults otherwise.

        ``ALERTPROD_EMAIL_SENDER`` and ``ALERTPROD_WEBHOOK_ALLOW_PRIVATE`` /
        ``ALERTPROD_WEBHOOK_REQUIRE_HTTPS`` are shared with the filter service.
        """
        env = os.environ if environ is None else environ
        values: dict = {}
        for f in fields(cls):
            if f.name in ("webhook", "email_sender"):
                continue
            raw = env.get(f"ALERTPROD_PRECOVERY_{f.name.upper()}")
            if raw is None or raw == "":
                continue
            try:
                values[f.name] = float(raw) if f.type == "float" else int(raw)
            except ValueError as exc:
                raise ConfigError(f"ALERTPROD_PRECOVERY_{f.name.upper()}: not a number: {raw!r}") from exc
        values["email_sender"] = env.get("ALERTPROD_EMAIL_SENDER", "")
        values["webhook"] = WebhookPolicy(
            allow_private=env.get("ALERTPROD_WEBHOOK_ALLOW_PRIVATE", "0") == "1",
            require_https=env.get("ALERTPROD_WEBHOOK_REQUIRE_HTTPS", "1") != "0")
        return cls(**values)


@dataclass(frozen=True)
class JobServiceResources:
    """Names of the job service's resources, as the template hands them to its functions.

    Attributes
    ----------
    service_table : str
        The service table (``SERVICE_TABLE``): job records, queue, quotas.
    job_bucket : str
        Unit lists, unit results, assembled results and stamps (``PRECOVERY_JOB_BUCKET``).
    job_queue_url : str
        Planning and assembly messages (``PRECOVERY_JOB_QUEUE_URL``).
    tick_queue_url : str
        The dispatcher's ticks (``PRECOVERY_TICK_QUEUE_URL``).
    unit_queue_url : str
        Released units (``PRECOVERY_UNIT_QUEUE_URL``).
    level1_table : str
        The Level 1 database (image indexes, the fan-in's run records).
    image_bucket, archive_bucket : str
        The image cache and the long-term archive.
    """

    service_table: str
    job_bucket: str
    job_queue_url: str
    tick_queue_url: str
    unit_queue_url: str
    level1_table: str
    image_bucket: str = ""
    archive_bucket: str = ""

    _ENV = {"service_table": "SERVICE_TABLE", "job_bucket": "PRECOVERY_JOB_BUCKET",
            "job_queue_url": "PRECOVERY_JOB_QUEUE_URL", "tick_queue_url": "PRECOVERY_TICK_QUEUE_URL",
            "unit_queue_url": "PRECOVERY_UNIT_QUEUE_URL", "level1_table": "LEVEL1_TABLE",
            "image_bucket": "IMAGE_BUCKET", "archive_bucket": "ARCHIVE_BUCKET"}

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> JobServiceResources:
        """Read the names; a missing required one is a :class:`ConfigError` naming it."""
        env = os.environ if environ is None else environ
        values = {}
        for name, var in cls._ENV.items():
            value = env.get(var, "")
            if not value and name not in ("image_bucket", "archive_bucket"):
                raise ConfigError(f"environment variable {var} is not set")
            values[name] = value
        return cls(**values)

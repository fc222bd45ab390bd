"""A filter's transport settings to a working transport, and the VTP adapter.

Transport settings are plain dicts stored with the filter (checked by the API):

=========  ==========================================================================
kind       fields
=========  ==========================================================================
sqs        ``queue_url``
webhook    ``url``, ``secret`` (the HMAC key; never shown after creation)
s3         ``bucket``, ``prefix``
email      ``to``
vtp        ``host``, ``port`` (VOEvent over the VOEvent Transport Protocol)
=========  ==========================================================================
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from alertprod.alerts.voevent import VOEventConfig, voevent_ivorn
from alertprod.delivery.email import EmailDigestTransport
from alertprod.delivery.envelope import Outbound, SendOutcome, Transport
from alertprod.delivery.s3drop import S3DropTransport
from alertprod.delivery.sqs import SqsTransport
from alertprod.delivery.webhook import WebhookPolicy, WebhookTransport, WebhookUrlError, check_host
from alertprod.distribution.config import ServiceSettings

__all__ = ["TransportClients", "TransportFactory", "VtpTransport", "TRANSPORT_KINDS"]

TRANSPORT_KINDS = ("sqs", "webhook", "s3", "email", "vtp")


class VtpTransport:
    """Sends the VOEvent of each match to a VOEvent broker over VTP (:mod:`alertprod.delivery.vtp`).

    A broker that naks an event as already seen (VOEvent brokers deduplicate on the ivorn) has
    it: that counts as delivered.
    """

    kind = "vtp"

    def __init__(self, host: str, port: int, *, policy: WebhookPolicy, timeout_s: float = 5.0,
                 voevent: VOEventConfig | None = None):
        self.host, self.port, self.policy, self.timeout_s = host, port, policy, timeout_s
        self.voevent = voevent

    def send(self, items: Sequence[Outbound]) -> SendOutcome:
        from alertprod.delivery.vtp import DeliveryError, VtpClient, VtpConfig

        out = SendOutcome()
        if not items:
            return out
        try:
            address = check_host(self.host, self.port, self.policy, what="VTP host")
        except WebhookUrlError as exc:
            out.failed = {i.delivery_id: f"VTP: {exc}" for i in items}
            return out
        by_ivorn = {voevent_ivorn(i.alert_id, config=self.voevent): i.delivery_id for i in items}
        try:
            extra = {"local_ivorn": self.voevent.author_ivorn} if self.voevent is not None else {}
            config = VtpConfig(connect_timeout_s=self.timeout_s, response_timeout_s=self.timeout_s, **extra)
            with VtpClient(address, self.port, config=config) as client:  # the checked address
                report = client.send([i.voevent or i.payload for i in items])
        except (DeliveryError, OSError) as exc:
            out.failed = {i.delivery_id: f"VTP: {exc}" for i in items}
            return out
        out.attempts = report.attempts
        for ivorn in report.acked:
            if ivorn in by_ivorn:
                out.delivered.add(by_ivorn[ivorn])
        for ivorn, reason in report.naked.items():
            if ivorn in by_ivorn:
                if "seen" in reason.lower() or "duplicate" in reason.lower():
                    out.delivered.add(by_ivorn[ivorn])
                else:
                    out.failed[by_ivorn[ivorn]] = f"VTP nak: {reason}"
        for ivorn, reason in report.failed.items():
            if ivorn in by_ivorn:
                out.failed[by_ivorn[ivorn]] = f"VTP: {reason}"
        for delivery in by_ivorn.values():
            if delivery not in out.delivered and delivery not in out.failed:
                out.failed[delivery] = "VTP: not acknowledged"
        return out


@dataclass(frozen=True)
class TransportClients:
    """Injected clients the transports use (botocore clients, or stand-ins in tests)."""

    sqs: Any = None
    s3: Any = None
    ses: Any = None


class TransportFactory:
    """Builds the transport of one settings dict.

    Parameters
    ----------
    clients : TransportClients
        SQS, S3 and SES clients.
    settings : ServiceSettings
        Webhook policy, e-mail sender, VTP timeout.
    sleep : callable, optional
        Backoff sleep of webhooks (tests pass a recorder).
    """

    def __init__(self, clients: TransportClients, settings: ServiceSettings, *,
                 sleep: Callable[[float], None] | None = None):
        self.clients, self.settings, self._sleep = clients, settings, sleep

    def build(self, config: Mapping[str, Any]) -> Transport:
        """The transport for ``config`` (``kind`` and its fields)."""
        kind = config.get("kind")
        if kind == "sqs":
            return SqsTransport(self.clients.sqs, config["queue_url"])
        if kind == "webhook":
            kwargs = {"sleep": self._sleep} if self._sleep is not None else {}
            return WebhookTransport(config["url"], config["secret"], self.settings.webhook, **kwargs)
        if kind == "s3":
            return S3DropTransport(self.clients.s3, config["bucket"], config.get("prefix", ""))
        if kind == "email":
            return EmailDigestTransport(self.clients.ses, self.settings.email_sender, config["to"])
        if kind == "vtp":
            return VtpTransport(config["host"], int(config["port"]), policy=self.settings.webhook,
                                timeout_s=self.settings.vtp_timeout_s, voevent=self.settings.voevent)
        raise ValueError(f"unknown transport kind {kind!r}")

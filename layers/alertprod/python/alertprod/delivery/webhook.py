"""Deliver matches to the user's HTTPS webhook: signed, retried with backoff, never to our network.

Each request is ``POST`` of ``{"deliveries": [envelope, ...]}`` (up to 25 matches, 1 MB) with

- ``X-Alertprod-Timestamp``: Unix seconds when it was signed;
- ``X-Alertprod-Signature``: ``v1=`` + hex HMAC-SHA256, keyed with the user's secret, of
  ``"{timestamp}." + body`` — receivers recompute it, compare in constant time and refuse old
  timestamps (replays);
- ``X-Alertprod-Delivery-Ids``: the delivery ids in the body, comma-separated.

A 2xx answer delivers the request; 408, 429, 5xx, timeouts and connection errors are retried
with exponential backoff (``backoff_s`` × 2^k, capped, with jitter) up to ``max_attempts``;
other 4xx are final. Redirects are not followed.

**No server-side request forgery.** Unless :attr:`WebhookPolicy.allow_private` is set (tests
with a loopback receiver), the host name is resolved once and refused when any address is
private, loopback, link-local, multicast, reserved or unspecified; the connection then goes to
the address that was checked (the TLS name check still uses the host name), so a DNS answer
that changes between check and connect cannot reach an internal service. Plain ``http://`` is
refused unless :attr:`WebhookPolicy.require_https` is off.
"""

from __future__ import annotations

import hashlib
import hmac
import http.client
import ipaddress
import json
import random
import socket
import ssl
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

from alertprod.delivery.envelope import Outbound, SendOutcome, envelope
from alertprod.errors import AlertprodError

__all__ = ["WebhookPolicy", "WebhookTransport", "WebhookUrlError", "check_host", "check_webhook_url", "sign",
           "verify_signature", "SIGNATURE_HEADER", "TIMESTAMP_HEADER"]

SIGNATURE_HEADER = "X-Alertprod-Signature"
TIMESTAMP_HEADER = "X-Alertprod-Timestamp"
_MAX_ITEMS, _MAX_BODY_BYTES = 25, 1024 * 1024


class WebhookUrlError(AlertprodError):
    """A webhook URL is refused (scheme, host, or an address inside a private network)."""


@dataclass(frozen=True)
class WebhookPolicy:
    """How webhooks are called.

    Attributes
    ----------
    allow_private : bool
        Allow hosts that resolve to private/loopback/link-local addresses (tests only).
    require_https : bool
        Refuse ``http://`` URLs.
    timeout_s : float
        Connect and read timeout of one request, seconds.
    max_attempts : int
        Attempts per request before the matches are dead-lettered.
    backoff_s, max_backoff_s : float
        First retry delay and its cap, seconds (doubling each retry, ±25 % jitter).
    """

    allow_private: bool = False
    require_https: bool = True
    timeout_s: float = 5.0
    max_attempts: int = 4
    backoff_s: float = 0.5
    max_backoff_s: float = 8.0


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """The ``X-Alertprod-Signature`` value of a body: ``v1=<hex HMAC-SHA256>``."""
    mac = hmac.new(secret.encode("utf-8"), f"{int(timestamp)}.".encode() + body, hashlib.sha256)
    return "v1=" + mac.hexdigest()


def verify_signature(secret: str, timestamp: str, body: bytes, signature: str, *,
                     now: float | None = None, tolerance_s: float = 300.0) -> bool:
    """What a receiver does: check the signature and that the timestamp is recent."""
    try:
        ts = int(timestamp)
    except (TypeError, ValueError):
        return False
    if abs((time.time() if now is None else now) - ts) > tolerance_s:
        return False
    return hmac.compare_digest(sign(secret, ts, body), signature or "")


def _public(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_global and not (ip.is_private or ip.is_loopback or ip.is_link_local
                                 or ip.is_multicast or ip.is_reserved or ip.is_unspecified)


def check_host(host: str, port: int, policy: WebhookPolicy, *,
               resolve: Callable[..., list] = socket.getaddrinfo, what: str = "host") -> str:
    """Resolve ``host`` and return the address to connect to; refuse non-public addresses.

    Raises
    ------
    WebhookUrlError
        When the name does not resolve, or (unless ``policy.allow_private``) any of its
        addresses is private, loopback, link-local, multicast, reserved or unspecified.
    """
    try:
        infos = resolve(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError) as exc:
        raise WebhookUrlError(f"{what}: cannot resolve {host!r} ({exc})") from exc
    addresses = [info[4][0] for info in infos]
    if not addresses:
        raise WebhookUrlError(f"{what}: {host!r} has no address")
    if not policy.allow_private:
        bad = [a for a in addresses if not _public(a)]
        if bad:
            raise WebhookUrlError(f"{what}: {host!r} resolves to a non-public address ({bad[0]})")
    return addresses[0]


def check_webhook_url(url: str, policy: WebhookPolicy, *,
                      resolve: Callable[..., list] = socket.getaddrinfo) -> tuple[str, str, int, str]:
    """Check a webhook URL; returns ``(scheme, host, port, address to connect to)``.

    Raises
    ------
    WebhookUrlError
        For a scheme other than https (http when allowed), credentials in the URL, a missing
        host, a name that does not resolve, or (unless allowed) a non-public address.
    """
    parts = urlsplit(url)
    allowed = ("https",) if policy.require_https else ("https", "http")
    if parts.scheme not in allowed:
        raise WebhookUrlError(f"webhook url: scheme must be {' or '.join(allowed)}, got {parts.scheme!r}")
    if parts.username or parts.password:
        raise WebhookUrlError("webhook url: credentials in the URL are not allowed")
    host = parts.hostname
    if not host:
        raise WebhookUrlError("webhook url: no host")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError as exc:
        raise WebhookUrlError(f"webhook url: bad port ({exc})") from exc
    return parts.scheme, host, port, check_host(host, port, policy, resolve=resolve, what="webhook url")


class _PinnedHTTPConnection(http.client.HTTPConnection):
    def __init__(self, host: str, port: int, address: str, timeout: float):
        super().__init__(host, port, timeout=timeout)
        self._address = address

    def connect(self) -> None:
        self.sock = socket.create_connection((self._address, self.port), self.timeout)


class _PinnedHTTPSConnection(http.client.HTTPSConnection):
    def __init__(self, host: str, port: int, address: str, timeout: float):
        super().__init__(host, port, timeout=timeout, context=ssl.create_default_context())
        self._address = address

    def connect(self) -> None:
        sock = socket.create_connection((self._address, self.port), self.timeout)
        self.sock = self._context.wrap_socket(sock, server_hostname=self.host)


class WebhookTransport:
    """POSTs signed envelopes to one URL, with retries.

    Parameters
    ----------
    url : str
        The user's webhook.
    secret : str
        The HMAC key the user holds.
    policy : WebhookPolicy
        Timeouts, retries, address rules.
    sleep, clock : callable
        Injectable for tests.
    """

    kind = "webhook"

    def __init__(self, url: str, secret: str, policy: WebhookPolicy | None = None, *,
                 sleep: Callable[[float], None] = time.sleep, clock: Callable[[], float] = time.time):
        self.url, self.secret = url, secret
        self.policy = policy or WebhookPolicy()
        self._sleep, self._clock = sleep, clock

    def _chunks(self, items: Sequence[Outbound]) -> list[tuple[list[Outbound], bytes]]:
        out, chunk, size = [], [], 0
        pieces = [json.dumps(envelope(i), separators=(",", ":")) for i in items]
        for item, piece in zip(items, pieces, strict=True):
            if chunk and (len(chunk) == _MAX_ITEMS or size + len(piece) > _MAX_BODY_BYTES):
                out.append(chunk)
                chunk, size = [], 0
            chunk.append((item, piece))
            size += len(piece) + 1
        if chunk:
            out.append(chunk)
        return [([i for i, _ in c], ('{"deliveries":[' + ",".join(p for _, p in c) + "]}").encode())
                for c in out]

    def _post_once(self, body: bytes, ids: Sequence[str]) -> tuple[bool, bool, str]:
        """(delivered, retryable, error)."""
        try:
            scheme, host, port, address = check_webhook_url(self.url, self.policy)
        except WebhookUrlError as exc:
            return False, False, str(exc)
        parts = urlsplit(self.url)
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        ts = int(self._clock())
        headers = {"Content-Type": "application/json", "User-Agent": "alertprod-webhook/1",
                   TIMESTAMP_HEADER: str(ts), SIGNATURE_HEADER: sign(self.secret, ts, body),
                   "X-Alertprod-Delivery-Ids": ",".join(ids)}
        cls = _PinnedHTTPSConnection if scheme == "https" else _PinnedHTTPConnection
        conn = cls(host, port, address, self.policy.timeout_s)
        try:
            conn.request("POST", path, body=body, headers=headers)
            response = conn.getresponse()
            response.read(65536)
            status = response.status
        except (OSError, http.client.HTTPException) as exc:
            return False, True, f"{type(exc).__name__}: {exc}"
        finally:
            conn.close()
        if 200 <= status < 300:
            return True, False, ""
        return False, status in (408, 425, 429) or status >= 500, f"HTTP {status}"

    def send(self, items: Sequence[Outbound]) -> SendOutcome:
        """POST every item; each request retried up to ``max_attempts``; failures reported."""
        out = SendOutcome()
        for chunk, body in self._chunks(items):
            ids = [i.delivery_id for i in chunk]
            error, tries = "", 0
            for attempt in range(self.policy.max_attempts):
                if attempt:
                    delay = min(self.policy.max_backoff_s, self.policy.backoff_s * 2 ** (attempt - 1))
                    self._sleep(delay * random.uniform(0.75, 1.25))
                out.attempts += 1
                tries += 1
                ok, retryable, error = self._post_once(body, ids)
                if ok:
                    out.delivered.update(ids)
                    break
                if not retryable:
                    break
            if not set(ids) <= out.delivered:
                out.failed.update({i: f"webhook {error} after {tries} attempt(s)" for i in ids})
        return out

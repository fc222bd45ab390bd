"""The VOEvent Transport Protocol (IVOA VTP 2.0): an author's client that sends VOEvents to a broker.

VTP runs over TCP. Every message is an XML document preceded by its length as a 4-byte
big-endian unsigned integer. An author connects to a broker, sends a VOEvent and waits for a
``Transport`` message in return: ``role="ack"`` (accepted) or ``role="nak"`` (refused, with an
optional ``Meta/Result`` reason); the ack's ``Origin`` is the ivorn of the event it answers.
Either side may send ``role="iamalive"``, which is answered with an ``iamalive`` carrying the
sender's ``Origin`` and our identity as ``Response``. Brokers such as comet accept one event per
connection and close it after the ack, so by default the client opens one connection per event.

:class:`VtpClient` adds what a stream needs: connection and response timeouts, retries with
exponential back-off on anything but a nak (a lost ack means the event may arrive twice; brokers
deduplicate on the ivorn), and a circuit breaker that gives up the rest of a batch after several
events in a row could not be delivered. :meth:`VtpClient.send` returns which events were acked.

The framing helpers (:func:`encode_message`, :func:`read_message`, :func:`transport_message`,
:func:`parse_message`) are public: they are all a test server or a subscriber needs.
"""

from __future__ import annotations

import logging
import socket
import struct
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import NamedTuple

from alertprod.errors import AlertprodError

__all__ = [
    "TRANSPORT_NAMESPACE",
    "DeliveryError",
    "VtpProtocolError",
    "VtpConnectionClosedError",
    "VtpConfig",
    "VtpMessage",
    "SendReport",
    "VtpClient",
    "encode_message",
    "read_message",
    "transport_message",
    "parse_message",
    "parse_broker_address",
]

logger = logging.getLogger(__name__)

#: Namespace of VTP ``Transport`` messages (the one the VOEvent network and comet use).
TRANSPORT_NAMESPACE = "http://www.telescope-networks.org/xml/Transport/v1.1"
_LENGTH = struct.Struct(">I")
_VOEVENT_ROLES = ("observation", "prediction", "utility", "test")


class DeliveryError(AlertprodError):
    """Sending to a downstream endpoint (a VOEvent broker) failed."""


class VtpProtocolError(DeliveryError):
    """A peer broke the VOEvent Transport Protocol (bad length prefix, unparsable XML, ...)."""


class VtpConnectionClosedError(DeliveryError):
    """The peer closed the connection before answering."""


@dataclass(frozen=True)
class VtpConfig:
    """How a :class:`VtpClient` talks to one broker.

    Attributes
    ----------
    local_ivorn : str
        Our identity, sent as ``Response`` in ``iamalive`` replies.
    connect_timeout_s : float
        Time allowed to open the TCP connection, s.
    response_timeout_s : float
        Time allowed, after an event is sent, for its ack or nak, s (comet drops an author's
        connection after 20 s of silence).
    max_attempts : int
        Tries per event (connection refused, timeout, connection dropped); a nak is final.
    retry_delay_s, max_retry_delay_s : float
        Back-off before the second try, doubled for each further try up to the maximum, s.
    max_consecutive_failures : int
        After this many events in a row failed every try, the rest of the batch is not tried
        (reported as failed): the broker is taken to be down.
    keep_connection : bool
        Send successive events over one connection (for brokers that allow it); a connection
        the broker has closed is reopened transparently. Default: one connection per event.
    max_message_bytes : int
        Largest message accepted from the broker (a guard against a bad length prefix), bytes.
    """

    local_ivorn: str = "ivo://alertprod.invalid/alertprod"
    connect_timeout_s: float = 5.0
    response_timeout_s: float = 20.0
    max_attempts: int = 3
    retry_delay_s: float = 0.5
    max_retry_delay_s: float = 10.0
    max_consecutive_failures: int = 3
    keep_connection: bool = False
    max_message_bytes: int = 1_000_000

    def __post_init__(self) -> None:
        for name in ("connect_timeout_s", "response_timeout_s"):
            if not getattr(self, name) > 0:
                raise DeliveryError(f"{name}={getattr(self, name)!r} must be > 0")
        for name in ("retry_delay_s", "max_retry_delay_s"):
            if not getattr(self, name) >= 0:
                raise DeliveryError(f"{name}={getattr(self, name)!r} must be >= 0")
        for name in ("max_attempts", "max_consecutive_failures", "max_message_bytes"):
            if not getattr(self, name) >= 1:
                raise DeliveryError(f"{name}={getattr(self, name)!r} must be >= 1")


class VtpMessage(NamedTuple):
    """A parsed VTP message: a VOEvent (``ivorn`` set) or a ``Transport`` (``origin`` set)."""

    kind: str             # "voevent" or "transport"
    role: str             # VOEvent role, or ack / nak / iamalive / authenticate
    ivorn: str | None     # the VOEvent's ivorn
    origin: str | None    # Transport/Origin
    response: str | None  # Transport/Response
    result: str | None    # Transport/Meta/Result (the reason of a nak)


@dataclass
class SendReport:
    """What became of a batch sent to one broker.

    Attributes
    ----------
    acked : list of str
        Ivorns the broker acknowledged, in sending order.
    naked : dict
        Ivorn → the broker's reason (``Meta/Result``, or ``"no reason given"``).
    failed : dict
        Ivorn → why it was not delivered (the last error, or the circuit breaker).
    attempts : int
        Events written to a socket, retries included.
    connections : int
        TCP connections opened.
    """

    acked: list[str] = field(default_factory=list)
    naked: dict[str, str] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)
    attempts: int = 0
    connections: int = 0

    @property
    def all_acked(self) -> bool:
        """True when every event of the batch was acknowledged."""
        return not self.naked and not self.failed


def parse_broker_address(address: str, *, default_port: int = 8098) -> tuple[str, int]:
    """``host:port`` (``[v6]:port``, or a bare host with ``default_port``) as ``(host, port)``."""
    text = address.strip()
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        port_text = rest[1:] if rest.startswith(":") else ""
    elif text.count(":") == 1:
        host, port_text = text.split(":")
    else:
        host, port_text = text, ""
    try:
        port = int(port_text) if port_text else default_port
    except ValueError:
        raise DeliveryError(f"broker address {address!r}: port {port_text!r} is not a number") from None
    if not host or not 0 < port < 65536:
        raise DeliveryError(f"broker address {address!r} is not host:port")
    return host, port


def encode_message(document: bytes) -> bytes:
    """One VTP message on the wire: the 4-byte big-endian length, then the XML bytes."""
    if not isinstance(document, (bytes, bytearray)):
        raise DeliveryError(f"document must be bytes, got {type(document).__name__}")
    if len(document) >= 2**32:
        raise DeliveryError(f"document of {len(document)} bytes does not fit a VTP length prefix")
    return _LENGTH.pack(len(document)) + bytes(document)


def _recv_exactly(sock: socket.socket, n: int, deadline: float) -> bytes:
    chunks, got = [], 0
    while got < n:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError(f"no complete message within the timeout ({got} of {n} bytes)")
        sock.settimeout(remaining)
        chunk = sock.recv(min(n - got, 65536))
        if not chunk:
            raise VtpConnectionClosedError(f"connection closed by the peer after {got} of {n} bytes")
        chunks.append(chunk)
        got += len(chunk)
    return b"".join(chunks)


def read_message(sock: socket.socket, *, timeout_s: float,
                 max_message_bytes: int = 1_000_000) -> bytes:
    """Read one length-prefixed message from ``sock`` within ``timeout_s`` seconds.

    Raises
    ------
    TimeoutError
        Nothing complete arrived in time.
    DeliveryError
        The peer closed the connection (:class:`VtpConnectionClosedError`), or announced a message
        larger than ``max_message_bytes`` (:class:`VtpProtocolError`).
    """
    deadline = time.monotonic() + timeout_s
    (length,) = _LENGTH.unpack(_recv_exactly(sock, _LENGTH.size, deadline))
    if length > max_message_bytes:
        raise VtpProtocolError(f"peer announced a {length}-byte message (limit "
                               f"{max_message_bytes}): not a VTP peer, or a little-endian prefix")
    return _recv_exactly(sock, length, deadline)


def _utc_now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def transport_message(role: str, origin: str, *, response: str | None = None,
                      result: str | None = None, timestamp: str | None = None) -> bytes:
    """A VTP ``Transport`` message (ack, nak, iamalive, authenticate) as XML bytes.

    Parameters
    ----------
    role : str
        ``ack``, ``nak``, ``iamalive`` or ``authenticate``.
    origin : str
        ``Origin``: for an ack/nak the ivorn of the event answered, else the sender's identity.
    response : str, optional
        ``Response``: the identity of whoever answers.
    result : str, optional
        ``Meta/Result``: the reason of a nak.
    timestamp : str, optional
        ``TimeStamp`` (UTC ISO-8601); default now.
    """
    if role not in ("ack", "nak", "iamalive", "authenticate"):
        raise DeliveryError(f"role={role!r} is not a Transport role")
    root = ET.Element("trn:Transport", {"xmlns:trn": TRANSPORT_NAMESPACE, "version": "1.0",
                                        "role": role})
    ET.SubElement(root, "Origin").text = origin
    if response:
        ET.SubElement(root, "Response").text = response
    ET.SubElement(root, "TimeStamp").text = timestamp or _utc_now()
    if result:
        ET.SubElement(ET.SubElement(root, "Meta"), "Result").text = result
    return ET.tostring(root, encoding="UTF-8", xml_declaration=True)


def parse_message(data: bytes) -> VtpMessage:
    """Parse a VTP message: a VOEvent or a ``Transport`` (matched on the local names).

    Raises
    ------
    VtpProtocolError
        Not XML, or neither a VOEvent nor a Transport message.
    """
    try:
        root = ET.fromstring(data)
    except ET.ParseError as exc:
        raise VtpProtocolError(f"message is not XML: {exc}") from exc
    local = root.tag.rsplit("}", 1)[-1]
    role = root.get("role", "")
    if local == "VOEvent":
        return VtpMessage("voevent", role or "observation", root.get("ivorn"), None, None, None)
    if local == "Transport":
        return VtpMessage("transport", role, None, (root.findtext("Origin") or "").strip() or None,
                          (root.findtext("Response") or "").strip() or None,
                          (root.findtext("Meta/Result") or "").strip() or None)
    raise VtpProtocolError(f"message root <{local}> is neither VOEvent nor Transport")


class VtpClient:
    """An author's VTP client: sends VOEvents to one broker and reports which were acked.

    Parameters
    ----------
    host : str
        Broker host name or address.
    port : int
        Broker's receiving port (comet's default is 8098).
    config : VtpConfig, optional
        Timeouts, retries, identity.
    connect : callable, optional
        ``connect((host, port), timeout) -> socket``; default :func:`socket.create_connection`
        (tests inject failures here).
    sleep : callable, optional
        Back-off sleep (tests pass a no-op).

    Notes
    -----
    Delivery is at-least-once: an event whose ack was lost (timeout, dropped connection) is
    sent again and may reach the broker twice; VOEvent brokers deduplicate on the ivorn (comet
    naks the second copy as previously seen). Not thread-safe: one client per thread.
    """

    def __init__(self, host: str, port: int, *, config: VtpConfig | None = None,
                 connect: Callable[..., socket.socket] = socket.create_connection,
                 sleep: Callable[[float], None] = time.sleep):
        if not host:
            raise DeliveryError("host must not be empty")
        if not isinstance(port, int) or not 0 < port < 65536:
            raise DeliveryError(f"port={port!r} must be an integer in 1..65535")
        self.host, self.port = host, port
        self.config = config or VtpConfig()
        self._connect, self._sleep = connect, sleep
        self._sock: socket.socket | None = None

    def __enter__(self) -> VtpClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the connection, if one is open."""
        if self._sock is not None:
            try:
                self._sock.close()
            finally:
                self._sock = None

    def send(self, documents: Iterable[bytes]) -> SendReport:
        """Send VOEvent documents in order; return which were acked, naked or not delivered.

        Parameters
        ----------
        documents : iterable of bytes
            VOEvent XML documents (e.g. :func:`alertprod.alerts.voevent.voevent_bytes`).

        Raises
        ------
        VtpProtocolError
            A document is not a VOEvent with an ivorn (nothing of the batch is sent).
        """
        batch = [(self._ivorn_of(doc), bytes(doc)) for doc in documents]
        report = SendReport()
        consecutive = 0
        try:
            for k, (ivorn, doc) in enumerate(batch):
                if consecutive >= self.config.max_consecutive_failures:
                    reason = (f"not sent: {consecutive} events in a row could not be delivered "
                              f"to {self.host}:{self.port}")
                    for skipped, _ in batch[k:]:
                        report.failed[skipped] = reason
                    logger.warning("VTP %s:%d: giving up %d events", self.host, self.port,
                                   len(batch) - k)
                    break
                outcome, detail = self._deliver(ivorn, doc, report)
                if outcome == "ack":
                    report.acked.append(ivorn)
                    consecutive = 0
                elif outcome == "nak":
                    report.naked[ivorn] = detail
                    consecutive = 0
                else:
                    report.failed[ivorn] = detail
                    consecutive += 1
        finally:
            self.close()
        return report

    @staticmethod
    def _ivorn_of(document: bytes) -> str:
        message = parse_message(document)
        if message.kind != "voevent" or not message.ivorn:
            raise VtpProtocolError("document is not a VOEvent with an ivorn")
        return message.ivorn

    def _deliver(self, ivorn: str, document: bytes, report: SendReport) -> tuple[str, str]:
        """Try one event up to ``max_attempts`` times: ``("ack"|"nak"|"failed", detail)``."""
        cfg = self.config
        error = ""
        for attempt in range(cfg.max_attempts):
            if attempt:
                self._sleep(min(cfg.retry_delay_s * 2 ** (attempt - 1), cfg.max_retry_delay_s))
            try:
                outcome, detail = self._exchange(ivorn, document, report)
            except (OSError, DeliveryError) as exc:   # TimeoutError is an OSError
                self.close()
                error = f"{type(exc).__name__}: {exc}"
                logger.info("VTP %s:%d: %s try %d failed: %s", self.host, self.port, ivorn,
                            attempt + 1, error)
                continue
            if not cfg.keep_connection:
                self.close()
            return outcome, detail
        return "failed", f"{cfg.max_attempts} tries failed, last: {error}"

    def _connection(self, report: SendReport) -> socket.socket:
        if self._sock is not None and self._peer_closed(self._sock):
            self.close()
        if self._sock is None:
            self._sock = self._connect((self.host, self.port), self.config.connect_timeout_s)
            report.connections += 1
        return self._sock

    @staticmethod
    def _peer_closed(sock: socket.socket) -> bool:
        """True when the peer has closed a kept connection (readable, and reads as EOF)."""
        try:
            sock.setblocking(False)
            try:
                return sock.recv(1, socket.MSG_PEEK) == b""
            except BlockingIOError:       # nothing to read: still open
                return False
            finally:
                sock.setblocking(True)
        except OSError:                   # reset by the peer, or already closed
            return True

    def _exchange(self, ivorn: str, document: bytes, report: SendReport) -> tuple[str, str]:
        cfg = self.config
        sock = self._connection(report)
        sock.settimeout(cfg.response_timeout_s)
        sock.sendall(encode_message(document))
        report.attempts += 1
        deadline = time.monotonic() + cfg.response_timeout_s
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"no ack or nak within {cfg.response_timeout_s} s")
            message = parse_message(read_message(sock, timeout_s=remaining,
                                                 max_message_bytes=cfg.max_message_bytes))
            if message.kind == "transport" and message.role == "iamalive":
                sock.sendall(encode_message(transport_message(
                    "iamalive", message.origin or "", response=cfg.local_ivorn)))
            elif message.kind == "transport" and message.role in ("ack", "nak"):
                if message.origin and message.origin != ivorn:
                    logger.info("VTP %s:%d: %s for %s while waiting for %s; ignored", self.host,
                                self.port, message.role, message.origin, ivorn)
                    continue
                return message.role, message.result or ("" if message.role == "ack"
                                                        else "no reason given")
            else:
                logger.info("VTP %s:%d: unexpected %s %r ignored", self.host, self.port,
                            message.kind, message.role)

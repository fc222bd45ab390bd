"""The VTP client against a tiny in-test broker: acks, naks, timeouts, dropped connections, iamalive."""

from __future__ import annotations

import contextlib
import socket
import struct
import threading
import time
import xml.etree.ElementTree as ET

import pytest

from alertprod.alerts.examples import example_alert
from alertprod.alerts.voevent import voevent_bytes
from alertprod.delivery.vtp import (
    TRANSPORT_NAMESPACE,
    DeliveryError,
    VtpClient,
    VtpConfig,
    VtpProtocolError,
    encode_message,
    parse_broker_address,
    parse_message,
    read_message,
    transport_message,
)

pytestmark = pytest.mark.unit

# generous timeouts where the broker answers (a loaded machine must not fail them), short ones
# only where a test waits for a timeout on purpose
FAST = dict(connect_timeout_s=5.0, response_timeout_s=5.0, retry_delay_s=0.0)


def _docs(n, start=0):
    return [voevent_bytes(example_alert(s, n_prv_sources=0, n_prv_forced=0, cutout_size_pix=8))
            for s in range(start, start + n)]


def _ivorn(doc):
    return ET.fromstring(doc).get("ivorn")


class ScriptedBroker:
    """A loopback VTP receiver whose answer to each event is chosen by ``script``.

    ``script(conn, ivorn, n)`` is called for the n-th event received (0-based, over all
    connections) and does whatever the test needs: send an ack, a nak, nothing, close, ...
    It returns True to keep the connection open for a further event, else it is closed.
    """

    def __init__(self, script):
        self.script = script
        self.received: list[str] = []
        self.connections = 0
        self.server = socket.create_server(("127.0.0.1", 0))
        self.server.settimeout(0.2)
        self.port = self.server.getsockname()[1]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self):
        while not self._stop.is_set():
            try:
                conn, _ = self.server.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self._handle, args=(conn,), daemon=True).start()

    def _handle(self, conn):
        with conn:
            while not self._stop.is_set():
                try:
                    message = parse_message(read_message(conn, timeout_s=5.0))
                except (DeliveryError, OSError):
                    return
                if message.kind != "voevent":
                    continue
                n = len(self.received)
                self.received.append(message.ivorn)
                if not self.script(conn, message.ivorn, n):
                    return

    def close(self):
        self._stop.set()
        self.server.close()
        self._thread.join(timeout=2)


@pytest.fixture
def broker_factory():
    brokers = []

    def make(script):
        brokers.append(ScriptedBroker(script))
        return brokers[-1]

    yield make
    for b in brokers:
        b.close()


def ack(conn, ivorn, n):
    conn.sendall(encode_message(transport_message("ack", ivorn, response="ivo://test/broker")))
    return False


def test_every_event_acked_by_a_broker_that_takes_one_event_per_connection(broker_factory):
    broker = broker_factory(ack)
    docs = _docs(5)
    with VtpClient("127.0.0.1", broker.port, config=VtpConfig(**FAST)) as client:
        report = client.send(docs)
    assert report.acked == [_ivorn(d) for d in docs] and report.all_acked
    assert broker.received == report.acked
    assert report.connections == 5 and report.attempts == 5


def test_nak_is_final_and_reports_the_brokers_reason(broker_factory):
    def nak_second(conn, ivorn, n):
        role = "nak" if n == 1 else "ack"
        conn.sendall(encode_message(transport_message(role, ivorn, result="Previously seen")))
        return False

    broker = broker_factory(nak_second)
    docs = _docs(3)
    report = VtpClient("127.0.0.1", broker.port, config=VtpConfig(**FAST)).send(docs)
    assert report.acked == [_ivorn(docs[0]), _ivorn(docs[2])]
    assert report.naked == {_ivorn(docs[1]): "Previously seen"}
    assert len(broker.received) == 3   # the nak'd event was not retried


def _silent(conn, ivorn, n):
    conn.settimeout(10.0)
    with contextlib.suppress(OSError):
        conn.recv(1)          # says nothing; returns when the client gives up and closes
    return False


def test_silent_broker_times_out_and_the_event_is_retried_then_failed(broker_factory):
    broker = broker_factory(_silent)
    docs = _docs(1)
    cfg = VtpConfig(**{**FAST, "response_timeout_s": 0.2, "max_attempts": 2})
    start = time.monotonic()
    report = VtpClient("127.0.0.1", broker.port, config=cfg).send(docs)
    assert list(report.failed) == [_ivorn(docs[0])]
    assert "2 tries failed" in report.failed[_ivorn(docs[0])]
    assert "Timeout" in report.failed[_ivorn(docs[0])]
    assert report.attempts == 2 and time.monotonic() - start < 8.0


def test_connection_dropped_before_the_ack_is_retried_on_a_new_connection(broker_factory):
    def drop_first(conn, ivorn, n):
        if n == 0:
            return False          # close without answering
        return ack(conn, ivorn, n)

    broker = broker_factory(drop_first)
    docs = _docs(2)
    report = VtpClient("127.0.0.1", broker.port, config=VtpConfig(**FAST)).send(docs)
    assert report.all_acked and report.acked == [_ivorn(d) for d in docs]
    # at-least-once: the first event reached the broker twice
    assert broker.received == [_ivorn(docs[0]), _ivorn(docs[0]), _ivorn(docs[1])]
    assert report.attempts == 3 and report.connections == 3


def test_iamalive_while_waiting_is_answered_and_the_ack_still_counts(broker_factory):
    answers = []

    def alive_then_ack(conn, ivorn, n):
        conn.sendall(encode_message(transport_message("iamalive", "ivo://test/broker")))
        answers.append(parse_message(read_message(conn, timeout_s=2.0)))
        return ack(conn, ivorn, n)

    broker = broker_factory(alive_then_ack)
    cfg = VtpConfig(**FAST, local_ivorn="ivo://alerts.example.org/alertprod")
    report = VtpClient("127.0.0.1", broker.port, config=cfg).send(_docs(1))
    assert report.all_acked
    (reply,) = answers
    assert (reply.kind, reply.role) == ("transport", "iamalive")
    assert reply.origin == "ivo://test/broker"
    assert reply.response == "ivo://alerts.example.org/alertprod"


def test_ack_for_another_event_is_ignored(broker_factory):
    def stale_then_right(conn, ivorn, n):
        conn.sendall(encode_message(transport_message("ack", "ivo://other/x#1")))
        return ack(conn, ivorn, n)

    broker = broker_factory(stale_then_right)
    report = VtpClient("127.0.0.1", broker.port, config=VtpConfig(**FAST)).send(_docs(1))
    assert report.all_acked and report.attempts == 1


def test_garbage_length_prefix_is_a_protocol_error_and_fails_the_event(broker_factory):
    def garbage(conn, ivorn, n):
        conn.sendall(struct.pack("<I", 200) + b"x" * 200)   # little-endian: 3.3 GB announced
        return False

    broker = broker_factory(garbage)
    cfg = VtpConfig(**{**FAST, "max_attempts": 1})
    report = VtpClient("127.0.0.1", broker.port, config=cfg).send(_docs(1))
    (reason,) = report.failed.values()
    assert "VtpProtocolError" in reason and "little-endian" in reason


def test_unreachable_broker_trips_the_breaker_and_the_rest_is_not_tried():
    with socket.socket() as s:       # a port with nobody listening
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    sleeps = []
    cfg = VtpConfig(**{**FAST, "max_attempts": 2, "retry_delay_s": 0.25,
                       "max_consecutive_failures": 2})
    docs = _docs(5)
    report = VtpClient("127.0.0.1", port, config=cfg, sleep=sleeps.append).send(docs)
    assert set(report.failed) == {_ivorn(d) for d in docs} and not report.acked
    assert report.attempts == 0 and sleeps == [0.25, 0.25]  # 2 events x 1 back-off each
    assert "in a row" in report.failed[_ivorn(docs[4])]


def test_backoff_doubles_up_to_the_maximum():
    sleeps = []

    def refuse(address, timeout):
        raise ConnectionRefusedError("refused")

    cfg = VtpConfig(**{**FAST, "max_attempts": 5, "retry_delay_s": 1.0, "max_retry_delay_s": 3.0})
    report = VtpClient("broker.invalid", 8098, config=cfg, connect=refuse,
                       sleep=sleeps.append).send(_docs(1))
    assert sleeps == [1.0, 2.0, 3.0, 3.0]
    assert "ConnectionRefusedError" in next(iter(report.failed.values()))


def test_kept_connection_carries_several_events_and_reopens_when_the_broker_closes(broker_factory):
    def keep_two(conn, ivorn, n):
        ack(conn, ivorn, n)
        return n % 2 == 0        # keep the connection after events 0, 2, 4; close after 1, 3

    broker = broker_factory(keep_two)
    docs = _docs(5)
    cfg = VtpConfig(**FAST, keep_connection=True)
    report = VtpClient("127.0.0.1", broker.port, config=cfg).send(docs)
    assert report.all_acked
    assert broker.received == report.acked          # no event reached the broker twice
    assert report.connections == 3                  # one more after each close
    # an event sent while the broker's close is still in flight fails and is retried on the
    # new connection (one more attempt; the broker never read it)
    assert 5 <= report.attempts <= 7


def test_a_document_that_is_not_a_voevent_is_refused_before_anything_is_sent(broker_factory):
    broker = broker_factory(ack)
    with pytest.raises(VtpProtocolError):
        VtpClient("127.0.0.1", broker.port).send(_docs(1) + [b"<html/>"])
    with pytest.raises(VtpProtocolError):
        VtpClient("127.0.0.1", broker.port).send([b"not xml"])
    assert broker.received == []


def test_messages_are_length_prefixed_big_endian():
    framed = encode_message(b"<x/>")
    assert framed == b"\x00\x00\x00\x04<x/>"
    a, b = socket.socketpair()
    with a, b:
        a.sendall(framed + encode_message(b"<y/>"))
        assert read_message(b, timeout_s=1) == b"<x/>"
        assert read_message(b, timeout_s=1) == b"<y/>"
        a.close()
        with pytest.raises(DeliveryError, match="closed"):
            read_message(b, timeout_s=1)


def test_transport_messages_round_trip():
    doc = transport_message("nak", "ivo://a/b#1", response="ivo://broker", result="bad <schema>",
                            timestamp="2026-01-01T00:00:00Z")
    root = ET.fromstring(doc)
    assert root.tag == f"{{{TRANSPORT_NAMESPACE}}}Transport" and root.get("role") == "nak"
    assert parse_message(doc) == ("transport", "nak", None, "ivo://a/b#1", "ivo://broker",
                                  "bad <schema>")
    with pytest.raises(DeliveryError, match="role"):
        transport_message("hello", "x")


@pytest.mark.parametrize("text, expected", [
    ("broker.example.org:8099", ("broker.example.org", 8099)),
    ("broker.example.org", ("broker.example.org", 8098)),
    ("[::1]:9000", ("::1", 9000)),
    ("127.0.0.1:8098", ("127.0.0.1", 8098)),
])
def test_broker_addresses_parse(text, expected):
    assert parse_broker_address(text) == expected


@pytest.mark.parametrize("text", ["", ":80", "host:port", "host:0", "host:70000"])
def test_bad_broker_addresses_are_refused(text):
    with pytest.raises(DeliveryError):
        parse_broker_address(text)


@pytest.mark.parametrize("field", ["connect_timeout_s", "response_timeout_s", "max_attempts",
                                   "max_consecutive_failures"])
def test_config_refuses_non_positive_limits_naming_the_field(field):
    with pytest.raises(DeliveryError, match=field):
        VtpConfig(**{field: 0})

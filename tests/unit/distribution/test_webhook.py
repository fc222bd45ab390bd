"""Webhooks: no request reaches a private address; retries only where a retry can help."""

from __future__ import annotations

import socket

import pytest
from distribution_harness import WebhookReceiver

from alertprod.delivery.envelope import Outbound
from alertprod.delivery.webhook import (
    WebhookPolicy,
    WebhookTransport,
    WebhookUrlError,
    check_webhook_url,
    sign,
    verify_signature,
)

pytestmark = pytest.mark.unit

STRICT = WebhookPolicy()


def resolver(*addresses):
    def resolve(host, port, type=None):  # noqa: A002 - getaddrinfo's name
        return [(socket.AF_INET6 if ":" in a else socket.AF_INET, socket.SOCK_STREAM, 6, "", (a, port))
                for a in addresses]
    return resolve


@pytest.mark.parametrize("address", ["127.0.0.1", "10.0.0.8", "172.16.5.4", "192.168.1.1", "169.254.169.254",
                                     "100.64.0.1", "0.0.0.0", "::1", "fe80::1", "fd00::1", "::ffff:127.0.0.1",
                                     "224.0.0.1"])
def test_names_resolving_to_internal_addresses_are_refused(address):
    with pytest.raises(WebhookUrlError, match="non-public"):
        check_webhook_url("https://innocent.example.org/hook", STRICT, resolve=resolver(address))


def test_one_internal_address_among_public_ones_is_enough_to_refuse():
    with pytest.raises(WebhookUrlError):
        check_webhook_url("https://x.example.org/", STRICT, resolve=resolver("93.184.215.14", "10.0.0.1"))


def test_public_name_is_pinned_to_the_checked_address():
    assert check_webhook_url("https://x.example.org:8443/h", STRICT, resolve=resolver("93.184.215.14")) == \
        ("https", "x.example.org", 8443, "93.184.215.14")


@pytest.mark.parametrize("url", ["http://x.example.org/", "ftp://x.example.org/", "https://user:pw@x.example.org/",
                                 "https:///nohost", "file:///etc/passwd", "https://x.example.org:99999/"])
def test_bad_urls_are_refused(url):
    with pytest.raises(WebhookUrlError):
        check_webhook_url(url, STRICT, resolve=resolver("93.184.215.14"))


def test_unresolvable_names_are_refused():
    def fail(*a, **k):
        raise socket.gaierror("no such name")
    with pytest.raises(WebhookUrlError, match="resolve"):
        check_webhook_url("https://nowhere.invalid/", STRICT, resolve=fail)


def _items(n=2):
    return [Outbound(f"d{i}", "f-1", "h", "alice", i, "avro", b"packet-%d" % i) for i in range(n)]


def test_a_4xx_answer_is_final_and_not_retried():
    receiver = WebhookReceiver("reject")
    try:
        sleeps = []
        policy = WebhookPolicy(allow_private=True, require_https=False, max_attempts=4, backoff_s=0.01)
        out = WebhookTransport(receiver.url, "s", policy, sleep=sleeps.append).send(_items())
        assert len(receiver.requests) == 1 and not sleeps and set(out.failed) == {"d0", "d1"}
        assert "HTTP 400" in out.failed["d0"]
    finally:
        receiver.close()


def test_the_production_policy_never_calls_a_loopback_receiver():
    receiver = WebhookReceiver()
    try:
        out = WebhookTransport(receiver.url.replace("http://", "https://"), "s", STRICT).send(_items())
        assert not receiver.requests and "non-public" in out.failed["d0"]
    finally:
        receiver.close()


def test_large_batches_are_split_into_requests_of_at_most_25():
    receiver = WebhookReceiver()
    try:
        policy = WebhookPolicy(allow_private=True, require_https=False)
        out = WebhookTransport(receiver.url, "s", policy).send(_items(60))
        assert len(out.delivered) == 60 and [len(r) for r in [receiver.envelopes()]] == [60]
        assert len(receiver.requests) == 3
    finally:
        receiver.close()


def test_signature_is_hmac_sha256_of_timestamp_and_body():
    import hashlib
    import hmac

    body = b'{"deliveries": []}'
    assert sign("k", 1700000000, body) == "v1=" + hmac.new(b"k", b"1700000000." + body, hashlib.sha256).hexdigest()
    assert verify_signature("k", "1700000000", body, sign("k", 1700000000, body), now=1700000100)
    assert not verify_signature("k", "not-a-time", body, "v1=00")

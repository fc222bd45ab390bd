"""A batch of real alerts through the filtering service: every transport gets exactly its matches."""

from __future__ import annotations

import base64
import time

import pytest
from distribution_harness import WebhookReceiver, add_filter, harness, make_alerts, messages

from alertprod.alerts.serialize import deserialize_alert
from alertprod.delivery.webhook import SIGNATURE_HEADER, TIMESTAMP_HEADER, verify_signature
from alertprod.distribution import AlertMessage, delivery_id

pytestmark = pytest.mark.unit

Q1 = "https://sqs.us-east-1.amazonaws.com/123456789012/alice"
Q2 = "https://sqs.us-east-1.amazonaws.com/123456789012/bob"
SNR = [3, 12, 25, 40, 8, 55, 21, 2]  # bands alternate g, r


@pytest.fixture
def receiver():
    r = WebhookReceiver()
    yield r
    r.close()


def ids_where(alerts, predicate):
    return {a["diaSourceId"] for a in alerts if predicate(a["diaSource"])}


def test_each_transport_receives_every_match_and_nothing_else(receiver):
    h = harness()
    alerts = make_alerts(8, snr=SNR)
    bright = add_filter(h.store, "f-bright", "alice", "diaSource.snr > 20", [
        {"kind": "sqs", "queue_url": Q1}, {"kind": "webhook", "url": receiver.url, "secret": "k" * 32},
        {"kind": "s3", "bucket": "alice-drop", "prefix": "alerts/"}, {"kind": "email", "to": "alice@example.org"}])
    add_filter(h.store, "f-green", "bob", "diaSource.band = 'g'", [{"kind": "sqs", "queue_url": Q2}])
    report = h.service.process_batch(messages(alerts))
    want_bright = ids_where(alerts, lambda s: s["snr"] > 20)
    want_green = ids_where(alerts, lambda s: s["band"] == "g")
    assert report.delivered == len(want_bright) + len(want_green) and report.failed == 0
    assert {b["alertId"] for b in h.sqs.bodies(Q1)} == want_bright and len(h.sqs.bodies(Q1)) == len(want_bright)
    assert {b["alertId"] for b in h.sqs.bodies(Q2)} == want_green and len(h.sqs.bodies(Q2)) == len(want_green)
    assert {e["alertId"] for e in receiver.envelopes()} == want_bright
    assert {int(m["Metadata"]["alert-id"]) for (b, _), m in h.s3.objects.items() if b == "alice-drop"} == want_bright
    (mail,) = h.ses.sent  # one digest per user per batch
    text = mail["Message"]["Body"]["Text"]["Data"]
    assert mail["Destination"]["ToAddresses"] == ["alice@example.org"]
    assert all(str(i) in text for i in want_bright) and not any(str(i) in text for i in set(
        a["diaSourceId"] for a in alerts) - want_bright)
    # the delivered packet is the alert itself, with the ids a receiver dedupes on
    for body in h.sqs.bodies(Q1):
        assert body["deliveryId"] == delivery_id("f-bright", bright.version_hash, body["alertId"])
        assert body["filterVersionHash"] == bright.version_hash and body["filterId"] == "f-bright"
        assert deserialize_alert(base64.b64decode(body["payload"]))["diaSourceId"] == body["alertId"]


def test_webhook_body_is_signed_and_timestamped(receiver):
    h = harness()
    add_filter(h.store, "f-1", "alice", "diaSource.snr > 0", [{"kind": "webhook", "url": receiver.url,
                                                                "secret": "the-users-secret"}])
    h.service.process_batch(messages(make_alerts(3)))
    headers, body = receiver.requests[0]
    assert verify_signature("the-users-secret", headers[TIMESTAMP_HEADER], body, headers[SIGNATURE_HEADER])
    assert not verify_signature("another-secret", headers[TIMESTAMP_HEADER], body, headers[SIGNATURE_HEADER])
    assert not verify_signature("the-users-secret", headers[TIMESTAMP_HEADER], body + b" ", headers[SIGNATURE_HEADER])
    assert not verify_signature("the-users-secret", str(int(headers[TIMESTAMP_HEADER]) - 3600), body,
                                headers[SIGNATURE_HEADER])


def test_redelivered_batch_is_recorded_and_sent_once():
    h = harness()
    add_filter(h.store, "f-1", "alice", "diaSource.snr > 20", [{"kind": "sqs", "queue_url": Q1}])
    batch = messages(make_alerts(8, snr=SNR))
    first = h.service.process_batch(batch)
    again = h.service.process_batch(batch + batch[:2])  # SQS redelivers, duplicates inside too
    assert first.delivered == 4 and again.delivered == 0 and again.skipped_known == 4
    assert len(h.sqs.bodies(Q1)) == 4
    day = h.store.get_counts("f-1", ["2027-01-15"])["2027-01-15"]
    assert (day["matched"], day["delivered"], day["evaluated"]) == (4, 4, 16)


def test_failing_webhook_is_retried_then_dead_lettered_while_others_receive():
    failing, slow = WebhookReceiver("fail"), WebhookReceiver("slow", slow_s=1.0)
    try:
        h = harness()
        object.__setattr__(h.settings.webhook, "timeout_s", 0.3)
        alerts = make_alerts(8, snr=SNR)
        add_filter(h.store, "f-broken", "mallory", "diaSource.snr > 0",
                   [{"kind": "webhook", "url": failing.url, "secret": "s"}])
        add_filter(h.store, "f-slow", "sloth", "diaSource.snr > 0", [{"kind": "webhook", "url": slow.url, "secret": "s"}])
        add_filter(h.store, "f-ok", "alice", "diaSource.snr > 20", [{"kind": "sqs", "queue_url": Q1}])
        start = time.perf_counter()
        report = h.service.process_batch(messages(alerts))
        elapsed = time.perf_counter() - start
        assert len(h.sqs.bodies(Q1)) == 4  # the healthy user got everything
        assert len(failing.requests) == h.settings.webhook.max_attempts  # one request, retried
        assert len(h.sleeps) >= 2 * (h.settings.webhook.max_attempts - 1)  # backoff between attempts
        dead = h.dead.records
        assert {d["record"]["filter_id"] for d in dead} == {"f-broken", "f-slow"}
        assert {d["record"]["alert_id"] for d in dead if d["record"]["filter_id"] == "f-broken"} == \
            {a["diaSourceId"] for a in alerts}
        assert all(d["record"]["state"] == "failed" for d in dead)
        assert report.failed == 16 and elapsed < 5.0  # bounded: timeouts x attempts, in parallel
        day = h.store.get_counts("f-broken", ["2027-01-15"])["2027-01-15"]
        assert day["failed"] == 8 and day.get("delivered", 0) == 0
    finally:
        failing.close()
        slow.close()


def test_quota_holds_matches_and_releases_them_next_day():
    h = harness()
    alerts = make_alerts(8, snr=SNR)
    h.archive(alerts)
    add_filter(h.store, "f-1", "alice", "diaSource.snr > 10", [{"kind": "sqs", "queue_url": Q1}], quota=2)
    report = h.service.process_batch(messages(alerts))
    assert (report.delivered, report.held) == (2, 3)
    f = h.store.get_filter("f-1")
    assert f.held_pending == 3 and f.notices[-1]["kind"] == "quota_hold"
    assert h.service.process_batch([]).released == 0  # quota spent today
    h.clock.t += 86400  # next UTC day
    h.service.invalidate()
    assert h.service.process_batch([]).released == 2
    h.clock.t += 86400
    h.service.invalidate()
    assert h.service.process_batch([]).released == 1
    assert h.store.get_filter("f-1").held_pending == 0
    sent = [b["alertId"] for b in h.sqs.bodies(Q1)]
    assert sorted(sent) == sorted(ids_where(alerts, lambda s: s["snr"] > 10)) and len(sent) == 5
    day3 = h.store.get_counts("f-1", ["2027-01-17"])["2027-01-17"]
    assert (day3["released"], day3["delivered"]) == (1, 1)


def test_raising_the_quota_releases_held_matches_at_once():
    h = harness()
    alerts = make_alerts(8, snr=SNR)
    h.archive(alerts)
    f = add_filter(h.store, "f-1", "alice", "diaSource.snr > 10", [{"kind": "sqs", "queue_url": Q1}], quota=1)
    h.service.process_batch(messages(alerts))
    h.store.update_filter(f.replace(quota_per_day=100, updated_unix=f.updated_unix + 1),
                          expected_updated_unix=f.updated_unix)
    h.service.invalidate()
    assert h.service.release_held(h.clock()) == 4
    assert len(h.sqs.bodies(Q1)) == 5


def test_matches_over_the_hold_cap_are_recorded_as_overflow_and_redeliverable():
    h = harness(held_cap=2)
    alerts = make_alerts(8, snr=SNR)
    h.archive(alerts)
    f = add_filter(h.store, "f-1", "alice", "diaSource.snr > 0", [{"kind": "sqs", "queue_url": Q1}], quota=1)
    report = h.service.process_batch(messages(alerts))
    assert (report.delivered, report.held) == (1, 7)
    assert h.store.get_filter("f-1").held_pending == 2
    assert len(h.store.deliveries_since("f-1", 0, state="overflow")) == 5
    assert "overflow" in h.store.get_filter("f-1").notices[-1]["message"]
    assert h.service.redeliver(f, 0).redelivered == 6  # delivered + overflow; held ones wait for quota


def test_expiry_warns_a_week_before_and_stops_the_filter():
    h = harness()
    alerts = make_alerts(3)
    add_filter(h.store, "f-1", "alice", "diaSource.snr > 0", [{"kind": "sqs", "queue_url": Q1}], expires_days=5)
    assert h.service.process_batch(messages(alerts)).delivered == 3
    f = h.store.get_filter("f-1")
    assert f.expiry_warned and f.notices[-1]["kind"] == "expiry_warning"
    h.service.process_batch(messages(make_alerts(2, seed0=10)))
    assert [n["kind"] for n in h.store.get_filter("f-1").notices].count("expiry_warning") == 1
    h.clock.t += 5 * 86400 + 1
    report = h.service.process_batch(messages(make_alerts(3, seed0=20)))
    assert report.filters == 0 and report.delivered == 0
    f = h.store.get_filter("f-1")
    assert f.state == "expired" and f.notices[-1]["kind"] == "expired"


def test_redelivery_since_a_time_sends_the_same_delivery_ids():
    h = harness()
    first, later = make_alerts(4, snr=[30] * 4), make_alerts(3, seed0=50, snr=[30] * 3)
    h.archive(first + later)
    f = add_filter(h.store, "f-1", "alice", "diaSource.snr > 20", [{"kind": "sqs", "queue_url": Q1}])
    h.service.process_batch(messages(first))
    h.clock.t += 3600
    outage = h.clock()
    h.service.process_batch(messages(later))
    originally = [b["deliveryId"] for b in h.sqs.bodies(Q1)]
    h.clock.t += 3600
    report = h.service.redeliver(f, outage)
    again = [b["deliveryId"] for b in h.sqs.bodies(Q1)][len(originally):]
    assert report.redelivered == 3 and sorted(again) == sorted(originally[4:]) == sorted(report.delivery_ids)


def test_voevent_payload_goes_to_the_drop_as_xml():
    h = harness()
    add_filter(h.store, "f-1", "alice", "diaSource.snr > 20", [{"kind": "s3", "bucket": "drop", "prefix": ""}],
               payload="voevent")
    h.service.process_batch(messages(make_alerts(8, snr=SNR)))
    assert len(h.s3.objects) == 4
    for (_, key), obj in h.s3.objects.items():
        assert key.endswith(".xml") and b"<voe:VOEvent" in obj["Body"] or b"VOEvent" in obj["Body"]


def test_undecodable_messages_are_dropped_and_the_rest_filtered():
    h = harness()
    add_filter(h.store, "f-1", "alice", "diaSource.snr > 0", [{"kind": "sqs", "queue_url": Q1}])
    report = h.service.process_batch([AlertMessage("not base64 !!"), *messages(make_alerts(2))])
    assert report.alerts == 2 and len(report.undecodable) == 1 and report.delivered == 2


def test_delivery_lag_and_last_delivery_are_counted():
    h = harness()
    add_filter(h.store, "f-1", "alice", "diaSource.snr > 0", [{"kind": "sqs", "queue_url": Q1}])
    h.service.process_batch(messages(make_alerts(2), sent_unix=h.clock() - 4.0))
    row = h.store.get_counts("f-1", ["2027-01-15"])["2027-01-15"]
    assert row["lag_count"] == 2 and row["lag_sum_s"] == pytest.approx(8.0) and row["lag_max_s"] == pytest.approx(4.0)
    assert row["last_delivery_unix"] == h.clock()


def test_receivers_past_the_dispatch_budget_are_dead_lettered_not_waited_for():
    slow = WebhookReceiver("slow", slow_s=1.5)
    try:
        h = harness()
        h.service.dispatcher.budget_s = 0.5
        add_filter(h.store, "f-slow", "sloth", "diaSource.snr > 0", [{"kind": "webhook", "url": slow.url, "secret": "s"}])
        add_filter(h.store, "f-ok", "alice", "diaSource.snr > 0", [{"kind": "sqs", "queue_url": Q1}])
        start = time.perf_counter()
        report = h.service.process_batch(messages(make_alerts(2)))
        assert time.perf_counter() - start < 1.4
        assert report.delivered == 2 and report.failed == 2 and len(h.sqs.bodies(Q1)) == 2
        assert all("budget" in d["record"]["error"] for d in h.dead.records)
    finally:
        slow.close()


def test_messages_wrapped_in_an_sns_envelope_are_unwrapped():
    import json

    h = harness()
    add_filter(h.store, "f-1", "alice", "diaSource.snr > 0", [{"kind": "sqs", "queue_url": Q1}])
    wrapped = [AlertMessage(json.dumps({"Type": "Notification", "MessageId": "m", "Message": m.body}))
               for m in messages(make_alerts(2))]
    assert h.service.process_batch(wrapped).delivered == 2

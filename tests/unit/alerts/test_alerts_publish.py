"""Publishing: archive layout, message attributes, claim-check, batching within SNS limits, ledger."""

from __future__ import annotations

import base64
import json

import numpy as np
import pytest

from alertprod.alerts import (
    AlertMarksLedger,
    AlertPublisher,
    MemoryPublishLedger,
    alert_attributes,
    decode_message,
    deserialize_alert,
    read_alert_container,
)
from alertprod.alerts.examples import example_alert
from alertprod.alerts.publish import MAX_SNS_BATCH_ENTRIES, MAX_SNS_MESSAGE_BYTES, message_size
from alertprod.aws import MemoryBlobStore
from alertprod.aws.sns import batch_indices
from alertprod.errors import ConfigError

pytestmark = pytest.mark.unit


class RecordingTopic:
    """A topic that keeps what it is sent, one list per PublishBatch call (SNS's limits enforced)."""

    def __init__(self):
        self.calls: list[list[tuple[str, dict]]] = []

    def publish_batch(self, entries, *, on_batch=None):
        entries = list(entries)
        sizes = [message_size(b, a) for b, a in entries]
        for positions in batch_indices(sizes, MAX_SNS_BATCH_ENTRIES, MAX_SNS_MESSAGE_BYTES):
            self.send([entries[i] for i in positions])
            if on_batch is not None:
                on_batch(positions)
        return [str(i) for i in range(len(entries))]

    def send(self, entries):  # one PublishBatch call
        assert len(entries) <= 10
        assert sum(message_size(b, a) for b, a in entries) <= MAX_SNS_MESSAGE_BYTES
        assert all(len(a) <= 10 for _, a in entries)
        self.calls.append(entries)

    @property
    def messages(self):
        return [m for call in self.calls for m in call]


@pytest.fixture(scope="module")
def alerts():
    return [example_alert(i, n_prv_sources=5, n_prv_forced=5, cutout_size_pix=20, band="gr"[i % 2])
            for i in range(12)]


def test_alerts_are_archived_under_visit_detector_and_announced_inline(alerts):
    archive, topic = MemoryBlobStore("alert-bucket"), RecordingTopic()
    stats = AlertPublisher(archive, topic).publish(alerts)
    assert stats.published == 12 and stats.claim_checked == 0 and stats.skipped == 0
    assert stats.batches == len(topic.calls) >= 2
    for alert in alerts:
        key = f"alerts/00001234/042/{alert['diaSourceId']}.avro"
        assert list(read_alert_container(archive.get(key))) == [alert]
    decoded = {deserialize_alert(base64.b64decode(body))["diaSourceId"]: attrs
               for body, attrs in topic.messages}
    assert set(decoded) == {a["diaSourceId"] for a in alerts}
    assert stats.packet_bytes > 0 and stats.message_bytes > stats.packet_bytes


def test_attributes_carry_filterable_quantities():
    alert = example_alert(3, n_prv_sources=2, n_prv_forced=0, cutout_size_pix=8, band="i", snr=42.123456)
    attrs = alert_attributes(alert)
    assert attrs["band"] == "i" and attrs["snr"] == pytest.approx(42.12346, abs=1e-9)
    assert attrs["alert_id"] == str(alert["diaSourceId"]) and attrs["schema_version"] == "11.1"
    assert attrs["is_new_object"] == "false" and attrs["is_solar_system"] == "false"
    assert attrs["ra"] == pytest.approx(alert["diaSource"]["ra"], abs=1e-5)
    assert len(attrs) <= 9


def test_new_object_and_solar_system_flags():
    alert = example_alert(4, n_prv_sources=0, n_prv_forced=0, cutout_size_pix=8)
    alert["diaObject"]["diaObjectId"] = alert["diaSourceId"]  # created by this source (alertprod.ids)
    alert["diaSource"]["ssObjectId"] = 12345
    alert["diaSource"]["reliability"] = None
    attrs = alert_attributes(alert)
    assert attrs["is_new_object"] == "true" and attrs["is_solar_system"] == "true"
    assert "reliability" not in attrs


def test_oversized_alert_goes_by_claim_check_and_resolves_from_archive():
    big = example_alert(9, n_prv_sources=2, n_prv_forced=2, cutout_size_pix=8)
    big["cutoutScience"] = np.random.default_rng(0).bytes(200_000)  # 267 KB once base64-encoded
    archive, topic = MemoryBlobStore("alert-bucket"), RecordingTopic()
    stats = AlertPublisher(archive, topic).publish([big])
    assert stats.claim_checked == 1
    ((body, attrs),) = topic.messages
    assert attrs["claim_check"] == "true" and len(attrs) <= 10
    pointer = json.loads(body)
    assert pointer == {"claimCheck": f"memory://alert-bucket/alerts/00001234/042/{big['diaSourceId']}.avro",
                       "alertId": str(big["diaSourceId"])}

    class ArchiveAsS3:  # what a consumer's S3 client returns, backed by the same archive
        def get_object(self, Bucket, Key):
            import io
            return {"Body": io.BytesIO(archive.get(Key))}

    alert, claimed = decode_message(body.replace("memory://", "s3://"), ArchiveAsS3())
    assert claimed and alert == big


def test_ledger_skips_published_alerts_and_marks_each(alerts):
    ledger = MemoryPublishLedger()
    ledger.mark_published([alerts[0]["diaSourceId"]])
    archive, topic = MemoryBlobStore(), RecordingTopic()
    publisher = AlertPublisher(archive, topic, ledger=ledger, max_workers=1)
    stats = publisher.publish(alerts[:4])
    assert stats.skipped == 1 and stats.published == 3 and len(ledger) == 4
    again = publisher.publish(alerts[:4])
    assert again.published == 0 and again.skipped == 4 and len(topic.messages) == 3


def test_alert_marks_ledger_adapts_a_per_alert_state_store(alerts):
    class Marks:  # the shape of the APDB's CCD ledger: per-alert states
        def __init__(self):
            self.states = {alerts[1]["diaSourceId"]: "published", alerts[2]["diaSourceId"]: "archived"}

        def get_alert_marks(self, ids):
            return {i: self.states[i] for i in ids if i in self.states}

        def mark_alerts(self, ids, state):
            self.states.update(dict.fromkeys(ids, state))

    marks = Marks()
    topic = RecordingTopic()
    stats = AlertPublisher(MemoryBlobStore(), topic, ledger=AlertMarksLedger(marks)).publish(alerts[:4])
    assert stats.skipped == 1 and stats.published == 3
    assert all(marks.states[a["diaSourceId"]] == "published" for a in alerts[:4])
    with pytest.raises(ConfigError, match="get_alert_marks"):
        AlertMarksLedger(object())


def test_failed_batch_leaves_unsent_alerts_unmarked(alerts):
    class FailingSecondCall(RecordingTopic):
        def send(self, entries):
            if self.calls:
                raise RuntimeError("SNS unavailable")
            return super().send(entries)

    ledger = MemoryPublishLedger()
    with pytest.raises(RuntimeError):
        AlertPublisher(MemoryBlobStore(), FailingSecondCall(), ledger=ledger).publish(alerts)
    assert 0 < len(ledger) < len(alerts)


def test_publisher_checks_its_options():
    with pytest.raises(ConfigError, match="max_message_bytes"):
        AlertPublisher(MemoryBlobStore(), RecordingTopic(), max_message_bytes=MAX_SNS_MESSAGE_BYTES + 1)

"""Containers built from already-serialised packets read back like fastavro's own."""

from __future__ import annotations

import io

import fastavro

from alertprod.alerts import prepare_alerts
from alertprod.alerts.examples import example_alert
from alertprod.alerts.serialize import (
    alert_container_bytes,
    container_from_packets,
    read_alert_container,
    serialize_alert,
)


def test_container_of_packets_equals_container_of_records():
    alerts = [example_alert(seed=i, n_prv_sources=3, n_prv_forced=2) for i in range(4)]
    ours = list(read_alert_container(container_from_packets(serialize_alert(a) for a in alerts)))
    reference = list(read_alert_container(alert_container_bytes(alerts)))
    assert ours == reference
    assert len(list(fastavro.reader(io.BytesIO(container_from_packets([serialize_alert(alerts[0])]))))) == 1


def test_empty_container_is_valid():
    assert list(read_alert_container(container_from_packets([]))) == []


def test_prepared_alert_carries_one_encoding_and_its_attributes():
    alert = example_alert(seed=7, n_prv_sources=1, n_prv_forced=1)
    (prep,) = prepare_alerts([alert])
    assert prep.packet == serialize_alert(alert)
    assert prep.alert_id == alert["diaSourceId"]
    assert prep.attributes["alert_id"] == str(alert["diaSourceId"])
    assert prep.archive_key.endswith(f"/{alert['diaSourceId']}.avro")

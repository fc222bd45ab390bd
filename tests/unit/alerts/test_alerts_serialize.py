"""Wire format and container files: what a broker holding only lsst-alert-packet can decode."""

from __future__ import annotations

import io
import math

import fastavro
import pytest
from lsst.alert.packet import Schema

from alertprod.alerts import (
    SCHEMA_ID,
    alert_container_bytes,
    deserialize_alert,
    frame,
    read_alert_container,
    serialize_alert,
    unframe,
    write_alert_container,
)
from alertprod.alerts.examples import example_alert
from alertprod.errors import AlertSchemaError

pytestmark = pytest.mark.unit


@pytest.fixture(scope="module")
def alert():
    return example_alert(7)


def test_packet_starts_with_confluent_header_and_round_trips(alert):
    data = serialize_alert(alert)
    assert data[0] == 0
    assert int.from_bytes(data[1:5], "big") == SCHEMA_ID == 1101
    assert deserialize_alert(data) == alert


def test_frame_unframe_round_trip():
    framed = frame(b"payload", schema_id=1100)
    assert framed == b"\x00\x00\x00\x04\x4c" + b"payload"
    assert unframe(framed) == (1100, b"payload")


def test_bad_magic_byte_is_a_clear_error(alert):
    data = bytearray(serialize_alert(alert))
    data[0] = 0x4F
    with pytest.raises(AlertSchemaError, match="magic byte"):
        deserialize_alert(bytes(data))
    with pytest.raises(AlertSchemaError, match="shorter than"):
        unframe(b"\x00\x00")


def test_unknown_schema_id_is_a_clear_error(alert):
    payload = unframe(serialize_alert(alert)).payload
    with pytest.raises(AlertSchemaError, match="9999|99.99"):
        deserialize_alert(frame(payload, schema_id=9999))


def test_lsst_alert_packet_decodes_our_packets_to_the_same_record(alert):
    broker_schema = Schema.from_file()  # the latest schema, as a broker would load it
    data = serialize_alert(alert)
    assert broker_schema.deserialize(data[5:]) == alert
    assert broker_schema.serialize(alert) == data[5:]


def test_nan_survives_the_wire():
    alert = example_alert(2, n_prv_sources=1, n_prv_forced=1, cutout_size_pix=8)
    alert["diaSource"]["x"] = float("nan")
    assert math.isnan(deserialize_alert(serialize_alert(alert))["diaSource"]["x"])


def test_container_round_trip_and_fastavro_reader(alert):
    other = example_alert(8, n_prv_sources=0, n_prv_forced=0, cutout_size_pix=8)
    buf = io.BytesIO()
    write_alert_container([alert, other], buf)
    data = buf.getvalue()
    assert list(read_alert_container(data)) == [alert, other]
    reader = fastavro.reader(io.BytesIO(data))
    assert reader.writer_schema["name"] == "lsst.v11_1.alert"
    assert [r["diaSourceId"] for r in reader] == [alert["diaSourceId"], other["diaSourceId"]]
    _, records = Schema.from_file().retrieve_alerts(io.BytesIO(data))
    assert [r["diaSourceId"] for r in records] == [alert["diaSourceId"], other["diaSourceId"]]


def test_archive_bytes_are_identical_on_retry(alert):
    assert alert_container_bytes([alert]) == alert_container_bytes([alert])


def test_garbage_is_not_a_container():
    with pytest.raises(AlertSchemaError):
        list(read_alert_container(b"not avro at all"))


def test_alert_with_two_30kb_cutouts_fits_the_82kb_budget(alert):
    assert 25_000 <= len(alert["cutoutDifference"]) <= 35_000
    assert 25_000 <= len(alert["cutoutTemplate"]) <= 35_000
    assert len(alert["prvDiaSources"]) == 30 and len(alert["prvDiaForcedSources"]) == 30
    assert len(serialize_alert(alert)) <= 82 * 1024


def test_record_not_fitting_schema_raises_schema_error(alert):
    broken = dict(alert, diaSource=dict(alert["diaSource"], ra="north"))
    with pytest.raises(AlertSchemaError):
        serialize_alert(broken)

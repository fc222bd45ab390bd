"""``alertprod alerts voevent`` and ``vtp-send``: an operator turns alert files into VOEvents and sends them."""

from __future__ import annotations

import argparse
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import xmlschema

from alertprod.alerts import alert_container_bytes, serialize_alert
from alertprod.alerts.examples import example_alert
from alertprod.cli import alerts as alerts_cli

pytestmark = pytest.mark.unit

XSD = Path(__file__).resolve().parents[2] / "data" / "voevent" / "VOEvent-v2.0.xsd"


def _run(argv):
    parser = argparse.ArgumentParser(prog="alertprod")
    alerts_cli.register(parser.add_subparsers())
    args = parser.parse_args(argv)
    return args.func(args)


def test_voevent_writes_one_valid_document_per_alert_of_containers_and_packets(tmp_path):
    a, b, c = (example_alert(s, n_prv_sources=1, n_prv_forced=1, cutout_size_pix=8) for s in range(3))
    (tmp_path / "two.avro").write_bytes(alert_container_bytes([a, b]))
    (tmp_path / "one.packet").write_bytes(serialize_alert(c))
    out = tmp_path / "xml"
    assert _run(["alerts", "voevent", str(tmp_path / "two.avro"), str(tmp_path / "one.packet"),
                 "--out", str(out), "--authority", "alerts.example.org"]) == 0
    schema = xmlschema.XMLSchema(XSD)
    written = sorted(out.glob("*.xml"))
    assert sorted(p.name for p in written) == sorted(f"{x['diaSourceId']}.xml" for x in (a, b, c))
    for path in written:
        schema.validate(str(path))
        root = ET.parse(path).getroot()
        assert root.get("ivorn") == f"ivo://alerts.example.org/alertprod#{path.stem}"


def test_voevent_output_is_identical_across_runs(tmp_path):
    a = example_alert(4, n_prv_sources=1, n_prv_forced=1, cutout_size_pix=8)
    (tmp_path / "a.avro").write_bytes(alert_container_bytes([a]))
    for run in ("one", "two"):
        assert _run(["alerts", "voevent", str(tmp_path / "a.avro"), "--out", str(tmp_path / run)]) == 0
    name = f"{a['diaSourceId']}.xml"
    assert (tmp_path / "one" / name).read_bytes() == (tmp_path / "two" / name).read_bytes()


def test_voevent_reports_unreadable_files_and_converts_the_rest(tmp_path, capsys):
    a = example_alert(5, n_prv_sources=1, n_prv_forced=1, cutout_size_pix=8)
    (tmp_path / "junk.avro").write_bytes(b"junk")
    (tmp_path / "a.avro").write_bytes(alert_container_bytes([a]))
    out = tmp_path / "xml"
    assert _run(["alerts", "voevent", str(tmp_path / "junk.avro"), str(tmp_path / "missing.avro"),
                 str(tmp_path / "a.avro"), "--out", str(out)]) == 1
    err = capsys.readouterr().err
    assert "junk.avro" in err and "missing.avro" in err
    assert [p.name for p in out.glob("*.xml")] == [f"{a['diaSourceId']}.xml"]


def test_voevent_refuses_a_bad_authority(tmp_path, capsys):
    assert _run(["alerts", "voevent", "x.avro", "--out", str(tmp_path), "--authority", "a b"]) == 2
    assert "authority" in capsys.readouterr().err


def test_vtp_send_to_an_unreachable_broker_fails_every_event(tmp_path, capsys):
    import socket

    a = example_alert(6, n_prv_sources=1, n_prv_forced=1, cutout_size_pix=8)
    (tmp_path / "a.avro").write_bytes(alert_container_bytes([a]))
    assert _run(["alerts", "voevent", str(tmp_path / "a.avro"), "--out", str(tmp_path / "x")]) == 0
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    code = _run(["alerts", "vtp-send", *map(str, (tmp_path / "x").glob("*.xml")),
                 "--broker", f"127.0.0.1:{port}", "--attempts", "1", "--timeout-s", "1"])
    assert code == 1
    assert capsys.readouterr().out.startswith(f"fail ivo://alertprod.invalid/alertprod#{a['diaSourceId']}")

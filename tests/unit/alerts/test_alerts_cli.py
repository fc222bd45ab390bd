"""``alertprod alerts show``: an operator reads archived and exported alert files."""

from __future__ import annotations

import argparse
import json

import pytest

from alertprod.alerts import alert_container_bytes, serialize_alert
from alertprod.alerts.examples import example_alert
from alertprod.cli import alerts as alerts_cli

pytestmark = pytest.mark.unit


def _run(argv):
    parser = argparse.ArgumentParser(prog="alertprod")
    alerts_cli.register(parser.add_subparsers())
    args = parser.parse_args(argv)
    return args.func(args)


def test_show_prints_one_line_per_alert_of_containers_and_packets(tmp_path, capsys):
    a, b = (example_alert(s, n_prv_sources=1, n_prv_forced=1, cutout_size_pix=8, band="z") for s in (1, 2))
    (tmp_path / "two.avro").write_bytes(alert_container_bytes([a, b]))
    (tmp_path / "one.packet").write_bytes(serialize_alert(a))
    assert _run(["alerts", "show", str(tmp_path / "two.avro"), str(tmp_path / "one.packet")]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [int(line.split()[0]) for line in lines] == [a["diaSourceId"], b["diaSourceId"], a["diaSourceId"]]
    assert all(line.split()[1] == "z" for line in lines)


def test_show_json_replaces_cutouts_by_sizes(tmp_path, capsys):
    a = example_alert(3, n_prv_sources=1, n_prv_forced=1, cutout_size_pix=8)
    a["diaSource"]["x"] = float("nan")
    (tmp_path / "a.avro").write_bytes(alert_container_bytes([a]))
    assert _run(["alerts", "show", "--json", str(tmp_path / "a.avro")]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["cutoutDifference"] == {"bytes": len(a["cutoutDifference"])}
    assert doc["diaSource"]["x"] is None and doc["diaSourceId"] == a["diaSourceId"]


def test_show_reports_files_that_are_not_alerts(tmp_path, capsys):
    (tmp_path / "junk.avro").write_bytes(b"junk")
    assert _run(["alerts", "show", str(tmp_path / "junk.avro")]) == 1
    assert "junk.avro" in capsys.readouterr().err

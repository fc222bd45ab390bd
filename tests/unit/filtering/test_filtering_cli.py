"""``alertprod filters check|run|explain``: a scientist tries a filter on exported alerts."""

from __future__ import annotations

import numpy as np
import pytest

from alertprod.alerts import alert_container_bytes, serialize_alert
from alertprod.cli import main
from alertprod.filtering import AlertBatch, compile_filter

pytestmark = pytest.mark.unit

FILTER = "diaSource.snr > 5 AND diaSource.band IN ('g', 'r')"


@pytest.fixture
def alert_files(tmp_path, filter_alerts):
    container = tmp_path / "alerts.avro"
    container.write_bytes(alert_container_bytes(filter_alerts[:100]))
    packet = tmp_path / "one.packet"
    packet.write_bytes(serialize_alert(filter_alerts[100]))
    return container, packet


def test_check_prints_the_normalized_filter(capsys):
    assert main(["filters", "check", "diaSource.snr>5 and diaSource.band in ('g','r')"]) == 0
    assert capsys.readouterr().out == FILTER + "\n"


def test_check_refuses_with_exit_2_and_a_caret_under_the_token(capsys):
    assert main(["filters", "check", "diaSource.snr > 5 AND diaSource.SNR < 9"]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    lines = err.splitlines()
    assert "unknown field 'diaSource.SNR'" in lines[0] and "position 22" in lines[0]
    assert lines[2].index("^") - 2 == 22


def test_run_prints_matching_ids_of_containers_and_framed_packets(alert_files, filter_alerts, capsys):
    container, packet = alert_files
    assert main(["filters", "run", FILTER, str(container), str(packet)]) == 0
    printed = [int(x) for x in capsys.readouterr().out.split()]
    compiled = compile_filter(FILTER)
    alerts = filter_alerts[:101]
    expected = [a["diaSourceId"] for a, m in zip(alerts, compiled.evaluate(AlertBatch.from_records(alerts)), strict=True) if m]
    assert printed == expected and 0 < len(printed) < 101


def test_run_refuses_an_invalid_filter_with_exit_2(alert_files, capsys):
    assert main(["filters", "run", "diaSource.snr >", str(alert_files[0])]) == 2
    assert "end of expression" in capsys.readouterr().err


def test_run_reports_unreadable_files_and_goes_on(alert_files, tmp_path, capsys):
    bad = tmp_path / "bad.avro"
    bad.write_bytes(b"not avro")
    assert main(["filters", "run", "TRUE", str(bad), str(alert_files[1])]) == 1
    out, err = capsys.readouterr()
    assert "bad.avro" in err and len(out.split()) == 1


def test_explain_one_alert_by_id(alert_files, filter_alerts, capsys):
    target = filter_alerts[3]["diaSourceId"]
    assert main(["filters", "explain", FILTER, str(alert_files[0]), "--id", str(target)]) == 0
    out = capsys.readouterr().out
    assert f"for alert {target}" in out.splitlines()[0]
    assert "diaSource.snr > 5  →  " in out
    assert main(["filters", "explain", FILTER, str(alert_files[0]), "--id", "1"]) == 1


def test_watchlist_option_makes_in_watchlist_available(alert_files, filter_alerts, tmp_path, capsys):
    src = filter_alerts[0]["diaSource"]
    csv = tmp_path / "mine.csv"
    csv.write_text(f"ra,dec,radius\n{src['ra']!r},{src['dec']!r},1.0\n")
    assert main(["filters", "run", "in_watchlist('mine')", str(alert_files[0]),
                 "--watchlist", f"mine={csv}"]) == 0
    assert capsys.readouterr().out.split() == [str(filter_alerts[0]["diaSourceId"])]
    assert main(["filters", "check", "in_watchlist('mine')"]) == 2


def test_fields_lists_the_schema_fields(capsys):
    assert main(["filters", "fields"]) == 0
    rows = dict(line.split()[:2] for line in capsys.readouterr().out.splitlines())
    assert rows["diaObject.r_psfFluxMean"] == "float" and rows["diaSource.band"] == "str"
    assert np.all([t in ("int", "float", "bool", "str") for t in rows.values()])


def test_run_over_one_alert_per_file_as_the_export_writes_them(tmp_path, filter_alerts, capsys, monkeypatch):
    from alertprod.cli import filters as filters_cli

    monkeypatch.setattr(filters_cli, "RUN_BATCH_ALERTS", 7)  # several batches
    paths = []
    for a in filter_alerts[:30]:
        path = tmp_path / f"{a['diaSourceId']}.avro"
        path.write_bytes(alert_container_bytes([a]))
        paths.append(str(path))
    assert main(["filters", "run", FILTER, *paths]) == 0
    compiled = compile_filter(FILTER)
    expected = [a["diaSourceId"] for a, m in
                zip(filter_alerts[:30], compiled.evaluate(AlertBatch.from_records(filter_alerts[:30])), strict=True) if m]
    assert [int(x) for x in capsys.readouterr().out.split()] == expected

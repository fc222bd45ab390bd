"""``alertprod precovery submit``'s flags turned into the §6 target and options, and refusals.

The commands against a served API are in tests/unit/precovery/test_precovery_client.py.
"""

from __future__ import annotations

import json

import pytest

from alertprod.cli import build_parser, main
from alertprod.cli.precovery import read_positions_csv, target_from_args
from alertprod.errors import PrecoveryError

pytestmark = pytest.mark.unit


def _submit(*argv):
    return target_from_args(build_parser().parse_args(["precovery", "submit", *argv]))


def test_ra_dec_is_a_position_and_options_keep_their_units_names():
    target, options = _submit("--ra", "150.5", "--dec", "-2.25", "--mjd-min", "60000",
                              "--stamps", "--images", "data_release")
    assert target == {"kind": "position", "ra": 150.5, "dec": -2.25}
    assert options == {"mjd_min": 60000.0, "mjd_max": None, "images": "data_release", "stamps": True}


def test_proper_motion_flags_make_a_gaia_convention_target_with_zero_parallax_by_default():
    target, _ = _submit("--ra", "10", "--dec", "20", "--pmra", "300", "--pmdec", "-150",
                        "--epoch", "2016.0")
    assert target == {"kind": "proper_motion", "ra": 10.0, "dec": 20.0, "pmra": 300.0,
                      "pmdec": -150.0, "parallax": 0.0, "epoch": 2016.0}


def test_asteroid_by_designation_or_by_an_mpcorb_line_from_a_file(tmp_path):
    assert _submit("--designation", "2014 QX17")[0] == {"kind": "orbit", "designation": "2014 QX17"}
    line = "00433    10.39  0.46 K2555 356.81029  178.90197  304.27007   10.82846  0.2228360"
    (tmp_path / "eros.txt").write_text(f"\n{line}\n")
    assert _submit("--mpcorb", f"@{tmp_path / 'eros.txt'}")[0] == {"kind": "orbit", "mpcorb": line}


def test_a_csv_of_positions_becomes_a_region_or_a_batch(tmp_path):
    path = tmp_path / "targets.csv"
    path.write_text("name,RA,Dec\nsn1,10.0,-5.0\nsn2,10.01,-5.02\n")
    positions = [{"ra": 10.0, "dec": -5.0}, {"ra": 10.01, "dec": -5.02}]
    assert _submit("--positions", str(path))[0] == {"kind": "positions", "positions": positions}
    assert _submit("--batch", str(path))[0] == {"kind": "batch", "positions": positions}


@pytest.mark.parametrize("text, message", [("x,y\n1,2\n", "needs 'ra' and 'dec'"),
                                           ("ra,dec\n1,abc\n", "line 2"),
                                           ("ra,dec\n1,nan\n", "finite"),
                                           ("ra,dec\n", "no positions")])
def test_a_bad_positions_file_is_refused_naming_the_problem(tmp_path, text, message):
    path = tmp_path / "bad.csv"
    path.write_text(text)
    with pytest.raises(PrecoveryError, match=message):
        read_positions_csv(path)


def test_a_whole_json_request_keeps_its_options_and_flags_add_to_them():
    body = {"target": {"kind": "position", "ra": 1.0, "dec": 2.0}, "options": {"stamps": True}}
    target, options = _submit("--json", json.dumps(body), "--mjd-max", "61000")
    assert target == body["target"]
    assert options == {"stamps": True, "mjd_max": 61000.0}


@pytest.mark.parametrize("argv", [(), ("--ra", "1", "--dec", "2", "--designation", "Eros"),
                                  ("--ra", "1"), ("--designation", "Eros", "--pmra", "3"),
                                  ("--ra", "1", "--dec", "2", "--pmra", "3")])
def test_no_target_two_targets_or_half_a_target_is_refused(argv):
    with pytest.raises(PrecoveryError):
        _submit(*argv)


def test_without_a_service_url_the_command_says_how_to_get_one(monkeypatch, capsys):
    monkeypatch.delenv("ALERTPROD_URL", raising=False)
    monkeypatch.delenv("ALERTPROD_TOKEN", raising=False)
    assert main(["precovery", "status", "j1"]) == 2
    assert "ALERTPROD_URL" in capsys.readouterr().err


def test_a_non_finite_coordinate_is_refused_by_the_parser(capsys):
    with pytest.raises(SystemExit):
        build_parser().parse_args(["precovery", "submit", "--ra", "nan", "--dec", "0"])

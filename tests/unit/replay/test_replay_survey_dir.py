"""Reading a survey directory: every file under ``diasources/`` is replayed, in time order."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from alertprod.replay.survey_dir import scan_survey_dir

pytestmark = pytest.mark.unit

CORPUS = Path(__file__).resolve().parents[2] / "data" / "bad_inputs"


def _survey(tmp_path: Path, files: dict[str, bytes]) -> Path:
    for rel, data in files.items():
        path = tmp_path / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return tmp_path


def _good(kind: str = "catalog") -> bytes:
    return (CORPUS / "good" / f"{kind}.fits").read_bytes()


def test_zero_length_catalog_alone_in_its_visit_comes_last_without_a_time(tmp_path):
    root = _survey(tmp_path, {"diasources/00000001/000.fits": _good(),
                              "diasources/00000009/000.fits": b""})
    visits, mpcorb = scan_survey_dir(root)
    assert [v.visit for v in visits] == [1, 9] and mpcorb is None
    assert math.isfinite(visits[0].mjd_tai) and visits[1].mjd_tai == math.inf


def test_a_broken_first_catalog_does_not_date_its_whole_visit(tmp_path):
    root = _survey(tmp_path, {"diasources/00000001/000.fits": b"",
                              "diasources/00000001/001.fits": _good()})
    (visit,) = scan_survey_dir(root)[0]
    assert visit.mjd_tai == pytest.approx(60000.10)
    assert [c.detector for c in visit.ccds] == [0, 1]


def test_keys_outside_the_contract_are_replayed_under_their_own_path(tmp_path):
    root = _survey(tmp_path, {"diasources/00000001/000.fits": _good(),
                              "diasources/1/0.fits": _good(),
                              "diasources/00000001/000.fits.bak": _good(),
                              "diasources/notes.txt": b"hello"})
    visits, _ = scan_survey_dir(root)
    keys = [c.catalog_key for v in visits for c in v.ccds]
    assert sorted(keys) == ["diasources/00000001/000.fits", "diasources/00000001/000.fits.bak",
                            "diasources/1/0.fits", "diasources/notes.txt"]
    strays = [v for v in visits if v.visit == -1]
    assert len(strays) == 3 and all(c.visit is None and c.image_keys() == {}
                                    for v in strays for c in v.ccds)
    assert visits[-1].mjd_tai == math.inf  # the text file has no time: last

"""End to end: a survey whose MPCORB.DAT is 150 days old, replayed with the nightly orbit refresh.

The simulator's ``tiny-stale-orbits`` survey moves its asteroids on perturbed orbits and
writes their elements at an epoch 150 days before the first night, so two-body predictions
from them miss by arcseconds (no asteroid is matched without the refresh). The replay uploads
the catalog first (its upload refreshes the first night) and its clock fires the 12:00 UTC
schedule before every later night: every night's CCDs find their night refreshed, and every
asteroid detection of the truth is associated with its own SSObject.
"""

from __future__ import annotations

import numpy as np
import pytest
from astropy.table import Table

from alertprod.apdb import dynamo_level1
from alertprod.orbitrefresh import night_of
from alertprod.replay.runner import replay
from alertprod.replay.survey_dir import scan_survey_dir
from alertprod.sky import load_truth, simulate_survey
from alertprod.sky.presets import PRESETS

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

PRESET = "tiny-stale-orbits"


@pytest.fixture(scope="module")
def replayed(tmp_path_factory):
    if PRESET not in PRESETS:
        pytest.skip(f"the simulator has no {PRESET!r} preset")
    root = tmp_path_factory.mktemp("stale")
    survey, out = root / "survey", root / "export"
    simulate_survey(survey, preset=PRESET, seed=3, progress=False)
    visits, _ = scan_survey_dir(survey)
    warnings: dict[tuple[int, int], list[str]] = {}

    def collect_warnings(stack):
        ledger = dynamo_level1(stack.clients.dynamodb, stack.resources.level1_table).ledger
        for v in visits:
            for c in v.ccds:
                warnings[(c.visit, c.detector)] = (ledger.get_ccd_record(c.visit, c.detector)
                                                   or {}).get("warnings", [])

    result = replay(survey, out, progress=False, before_export=collect_warnings)
    return survey, out, result, visits, warnings


def test_every_night_was_refreshed_before_its_visits(replayed):
    _, _, result, visits, warnings = replayed
    nights = sorted({night_of(v.mjd_tai) for v in visits})
    refreshed = result.summary["orbitRefresh"]
    assert [r["night"] for r in refreshed] == nights and len(nights) == 3
    assert all(r["refreshed"] and r["orbits"] == 10 for r in refreshed)
    assert warnings and not [w for ws in warnings.values() for w in ws if w.startswith("orbit_refresh")]


def test_every_asteroid_detection_is_associated_with_its_own_ssobject(replayed):
    survey, out, _, _, _ = replayed
    truth = load_truth(survey)
    objects = truth.objects[np.asarray(truth.objects["kind"]) == "asteroid"]
    ss_of = dict(zip(np.asarray(objects["truthId"]).tolist(),
                     np.asarray(objects["ssObjectId"], np.int64).tolist(), strict=True))
    detections = truth.diasources
    expected = {d: ss_of[t] for d, t in zip(np.asarray(detections["diaSourceId"]).tolist(),
                                            np.asarray(detections["truthId"]).tolist(), strict=True)
                if t in ss_of}
    sources = Table.read(out / "DiaSource.fits")
    got = dict(zip(np.asarray(sources["diaSourceId"], np.int64).tolist(),
                   np.asarray(np.ma.filled(np.ma.asarray(sources["ssObjectId"]), 0),
                              np.int64).tolist(), strict=True))
    assert len(expected) > 20
    assert {d: got.get(d) for d in expected} == expected

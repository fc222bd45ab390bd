"""Precovery-service light curves: derived columns, baseline, CSV / JSON / VOTable."""

from __future__ import annotations

import csv
import io
import json

import numpy as np
import pytest
from astropy.io.votable import parse_single_table

from alertprod.precovery.flags import PrecoveryFlag
from alertprod.precovery.results import (
    add_derived_columns,
    baseline_table,
    rows_from_records,
    to_csv,
    to_json,
    to_votable,
)

pytestmark = pytest.mark.unit


def _rows(n=40, seed=1):
    rng = np.random.default_rng(seed)
    flux = rng.normal(120.0, 50.0, n)  # a quiet baseline of 120 nJy
    flux[-3:] = [5000.0, 8000.0, 3000.0]  # then a transient
    flags = np.zeros(n, int)
    flags[5] = int(PrecoveryFlag.EDGE)
    flags[6] = int(PrecoveryFlag.OFF_IMAGE)
    records = [{"target": 0, "ra": 10.0, "dec": -5.0, "visit": 100 + i, "detector": 3,
                "band": "gr"[i % 2], "midpointMjdTai": 60000.0 + i, "psfFlux": float(flux[i]),
                "psfFluxErr": 50.0, "scienceFlux": 1e4, "scienceFluxErr": 80.0,
                "recreated": i < 20, "flags": int(flags[i]), "template": "nightly:upload"}
               for i in range(n)]
    records[6]["psfFlux"] = None
    return rows_from_records(records)


def test_detections_have_snr_and_non_detections_a_five_sigma_limit():
    t = add_derived_columns(_rows())
    assert t["snr"][-2] == pytest.approx(160.0)
    assert np.isnan(t["upperLimit"][-2])
    quiet = np.abs(t["snr"]) < 5
    np.testing.assert_allclose(t["upperLimit"][quiet], np.fmax(t["psfFlux"][quiet], 0) + 250.0)
    assert list(t["status"][4:8]) == ["ok", "flagged", "off_image", "ok"]


def test_baseline_is_the_clipped_weighted_mean_of_the_quiet_epochs_per_band():
    base = baseline_table(_rows())
    assert list(base["band"]) == ["g", "r"]
    for row in base:
        assert row["baseline"] == pytest.approx(120.0, abs=3 * row["baselineErr"] + 1)
        assert row["nEpochs"] >= 15  # the transient's epochs are not in it


def test_csv_json_and_votable_carry_the_same_rows():
    rows = _rows()
    parsed = list(csv.DictReader(io.StringIO(to_csv(rows))))
    doc = json.loads(to_json(rows))
    vot = parse_single_table(io.BytesIO(to_votable(rows))).to_table()
    assert len(parsed) == len(doc["rows"]) == len(vot) == len(rows)
    assert parsed[0].keys() >= {"target", "ra", "dec", "visit", "detector", "band",
                                "midpointMjdTai", "psfFlux", "psfFluxErr", "scienceFlux",
                                "scienceFluxErr", "recreated", "flags"}
    assert doc["rows"][6]["psfFlux"] is None and parsed[6]["psfFlux"] == ""  # NaN as null / empty
    assert float(parsed[-1]["psfFlux"]) == doc["rows"][-1]["psfFlux"] == pytest.approx(vot["psfFlux"][-1])
    assert str(vot["psfFlux"].unit) == "nJy" and doc["baseline"][0]["band"] == "g"
    assert [r["recreated"] for r in doc["rows"][18:22]] == [True, True, False, False]

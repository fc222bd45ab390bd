"""Building and validating Rubin alert packets from Level 1 rows."""

from __future__ import annotations

import math

import numpy as np
import pytest
from astropy.table import MaskedColumn, Table

from alertprod.alerts import SCHEMA_ID, SCHEMA_VERSION, build_alert, validate_alert
from alertprod.alerts.examples import example_alert, example_row
from alertprod.alerts.packet import AlertFieldError
from alertprod.alerts.schema import record_spec
from alertprod.errors import AlertSchemaError

pytestmark = pytest.mark.unit

MINIMAL_SOURCE = {"diaSourceId": 11, "visit": 7, "detector": 3, "midpointMjdTai": 60900.1,
                  "ra": 10.5, "dec": -5.25, "x": 100.0, "y": 200.0, "timeProcessedMjdTai": 60900.2}


def _build(source, **kw):
    args = dict(dia_object=None, prv_dia_sources=[], prv_dia_forced_sources=[],
                cutout_difference=None, cutout_template=None)
    args.update(kw)
    return build_alert(source, **args)


def test_schema_is_latest_lsst_alert_packet_version_with_rubin_registry_id():
    from lsst.alert.packet import Schema, get_latest_schema_version

    major, minor = get_latest_schema_version()
    assert SCHEMA_VERSION == f"{major}.{minor}" == "11.1"
    assert SCHEMA_ID == Schema.from_file().get_schema_id() == 1101


def test_alert_with_every_diasource_field_validates_and_keeps_values():
    rng = np.random.default_rng(1)
    source = example_row("diaSource", rng, diaSourceId=99, band="g", diaObjectId=5)
    alert = _build(source, dia_object=example_row("diaObject", rng, diaObjectId=5),
                   prv_dia_sources=[example_row("diaSource", rng) for _ in range(3)],
                   prv_dia_forced_sources=[example_row("diaForcedSource", rng) for _ in range(2)],
                   cutout_difference=b"FITS-d", cutout_template=b"FITS-t")
    validate_alert(alert)
    assert set(alert["diaSource"]) == {s.name for s in record_spec("diaSource")}
    for name, value in source.items():
        assert alert["diaSource"][name] == value, name
    assert alert["diaSourceId"] == 99
    assert len(alert["prvDiaSources"]) == 3 and len(alert["prvDiaForcedSources"]) == 2
    assert alert["cutoutDifference"] == b"FITS-d" and alert["cutoutScience"] is None


def test_minimal_row_fills_nullable_fields_with_none_and_counters_with_zero():
    alert = _build(MINIMAL_SOURCE)
    validate_alert(alert)
    src = alert["diaSource"]
    assert src["psfFlux"] is None and src["band"] is None and src["diaObjectId"] is None
    assert src["psfNdata"] == src["trailNdata"] == src["dipoleNdata"] == src["bboxSize"] == 0
    assert alert["diaObject"] is None and alert["prvDiaSources"] == []


def test_missing_required_field_names_its_path():
    row = dict(MINIMAL_SOURCE)
    del row["midpointMjdTai"]
    with pytest.raises(AlertSchemaError, match=r"diaSource\.midpointMjdTai") as err:
        _build(row)
    assert err.value.path == "diaSource.midpointMjdTai"
    forced = [example_row("diaForcedSource", np.random.default_rng(0)) for _ in range(3)]
    del forced[2]["diaObjectId"]
    with pytest.raises(AlertFieldError) as err:
        _build(MINIMAL_SOURCE, prv_dia_forced_sources=forced)
    assert err.value.path == "prvDiaForcedSources[2].diaObjectId"


def test_nan_is_null_in_nullable_floats_and_stays_nan_in_required_floats():
    row = {**MINIMAL_SOURCE, "psfFlux": np.float32("nan"), "x": float("nan"), "snr": np.float64(7.5)}
    alert = _build(row)
    assert alert["diaSource"]["psfFlux"] is None
    assert math.isnan(alert["diaSource"]["x"])
    assert alert["diaSource"]["snr"] == 7.5 and type(alert["diaSource"]["snr"]) is float
    kept = _build(row, nan_as_null=False)
    assert math.isnan(kept["diaSource"]["psfFlux"])
    validate_alert(kept)


def test_nan_in_required_integer_is_refused():
    with pytest.raises(AlertFieldError, match="NaN") as err:
        _build({**MINIMAL_SOURCE, "visit": float("nan")})
    assert err.value.path == "diaSource.visit"


def test_numpy_scalars_are_coerced_to_python_types():
    row = {**MINIMAL_SOURCE, "diaSourceId": np.int64(2**60), "detector": np.int16(3),
           "isDipole": np.bool_(True), "band": np.str_("r"), "reliabilityVersion": b"v2",
           "visit": np.float64(7.0)}
    src = _build(row)["diaSource"]
    assert src["diaSourceId"] == 2**60 and type(src["diaSourceId"]) is int
    assert src["isDipole"] is True and src["band"] == "r" and src["reliabilityVersion"] == "v2"
    assert src["visit"] == 7 and type(src["visit"]) is int


def test_unknown_keys_are_dropped_and_old_time_names_are_mapped():
    row = {**MINIMAL_SOURCE, "pixelId": 123, "validityEndMjdTai": 1.0, "filterName": "i"}
    del row["midpointMjdTai"]
    row["midPointTai"] = 60901.5
    src = _build(row)["diaSource"]
    assert "pixelId" not in src and "validityEndMjdTai" not in src
    assert src["midpointMjdTai"] == 60901.5 and src["band"] == "i"
    obj = {"diaObjectId": 11, "validityStart": 60900.0, "ra": 1.0, "dec": 2.0, "validityEndMjdTai": None}
    alert = _build(MINIMAL_SOURCE, dia_object=obj)
    assert alert["diaObject"]["validityStartMjdTai"] == 60900.0
    assert "validityEndMjdTai" not in alert["diaObject"]


def test_values_that_cannot_take_their_type_are_refused_with_path():
    with pytest.raises(AlertFieldError) as err:
        _build({**MINIMAL_SOURCE, "detector": 2**40})
    assert err.value.path == "diaSource.detector"
    with pytest.raises(AlertFieldError) as err:
        _build({**MINIMAL_SOURCE, "psfFlux": "bright"})
    assert err.value.path == "diaSource.psfFlux"
    with pytest.raises(AlertFieldError) as err:
        _build({**MINIMAL_SOURCE, "psfFlux": 1.5e39})  # a 32-bit float field
    assert err.value.path == "diaSource.psfFlux"
    assert _build({**MINIMAL_SOURCE, "ra": 1.5e39})["diaSource"]["ra"] == 1.5e39  # a double
    with pytest.raises(AlertFieldError):
        _build(MINIMAL_SOURCE, cutout_difference="not bytes")


def test_astropy_table_rows_with_masked_values_become_records():
    rng = np.random.default_rng(3)
    rows = [example_row("diaSource", rng, ssObjectId=5) for _ in range(4)]
    table = Table(rows=rows)
    table["ssObjectId"] = MaskedColumn(table["ssObjectId"], mask=[True, False, True, False])
    alert = _build(table[0], prv_dia_sources=table)
    validate_alert(alert)
    assert alert["diaSource"]["ssObjectId"] is None
    assert [r["ssObjectId"] for r in alert["prvDiaSources"]] == [None, 5, None, 5]
    assert alert["prvDiaSources"][1]["psfFlux"] == pytest.approx(rows[1]["psfFlux"])


def test_ss_source_takes_ids_from_the_diasource():
    row = {**MINIMAL_SOURCE, "ssObjectId": 77}
    ss = {"eclLambda": 10.0, "eclBeta": 1.0, "galLon": 100.0, "galLat": -20.0, "phaseAngle": 12.0}
    alert = _build(row, ss_source=ss)
    validate_alert(alert)
    assert alert["ssSource"]["diaSourceId"] == 11 and alert["ssSource"]["ssObjectId"] == 77


def test_validate_names_first_offending_field():
    alert = example_alert(5, n_prv_sources=4, n_prv_forced=2, cutout_size_pix=8)
    validate_alert(alert)
    alert["prvDiaSources"][3]["psfFlux"] = "x"
    with pytest.raises(AlertFieldError) as err:
        validate_alert(alert)
    assert err.value.path == "prvDiaSources[3].psfFlux"
    alert["prvDiaSources"][3]["psfFlux"] = 1.0
    alert["diaObject"]["nDiaSources"] = None
    with pytest.raises(AlertFieldError, match="non-null") as err:
        validate_alert(alert)
    assert err.value.path == "diaObject.nDiaSources"
    alert["diaObject"]["nDiaSources"] = 3
    alert["extra"] = 1
    with pytest.raises(AlertFieldError) as err:
        validate_alert(alert)
    assert err.value.path == "extra"

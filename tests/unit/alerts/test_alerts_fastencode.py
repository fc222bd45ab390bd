"""The column-wise alert encoder writes exactly fastavro's bytes, and defers to fastavro otherwise."""

from __future__ import annotations

import copy
import io
import math

import fastavro
import numpy as np
import pytest

from alertprod.alerts import deserialize_alert, serialize_alert
from alertprod.alerts._fastencode import avro_long, encode_alert, encode_records
from alertprod.alerts.examples import example_alert, example_row
from alertprod.alerts.schema import parsed_schema, record_spec
from alertprod.errors import AlertSchemaError

pytestmark = pytest.mark.unit

_SPECIAL_FLOATS = (math.nan, math.inf, -math.inf, -0.0, 0.0, 1e-45, 3.4e38, 1e39, -1e39, 5e-324)
_SPECIAL_INTS = (0, -1, 1, 63, 64, -64, -65, 2**31 - 1, -(2**31), 2**62, 2**63 - 1, -(2**63))
_STRINGS = ("", "r", "v1", "é→✓", "x" * 200)


def _fastavro(alert) -> bytes:
    buf = io.BytesIO()
    fastavro.schemaless_writer(buf, parsed_schema(), alert)
    return buf.getvalue()


def _scramble_row(row: dict, record: str, rng: np.random.Generator) -> None:
    """Nulls in nullable fields, extreme floats and integers, unicode strings, in place."""
    for spec in record_spec(record):
        if spec.name not in row or spec.kind in ("record", "array", "bytes"):
            continue
        u = rng.random()
        if spec.nullable and u < 0.3:
            row[spec.name] = None
        elif u < 0.45:
            if spec.kind in ("float", "double"):
                row[spec.name] = _SPECIAL_FLOATS[rng.integers(len(_SPECIAL_FLOATS))]
            elif spec.kind == "long":
                row[spec.name] = _SPECIAL_INTS[rng.integers(len(_SPECIAL_INTS))]
            elif spec.kind == "int":
                row[spec.name] = int(rng.integers(-(2**31), 2**31))
            elif spec.kind == "string":
                row[spec.name] = _STRINGS[rng.integers(len(_STRINGS))]


def _random_alert(seed: int) -> dict:
    rng = np.random.default_rng(1000 + seed)
    # history lengths on both sides of the row-by-row / column-wise switch
    n_src, n_forced = (int(x) for x in rng.choice([0, 1, 3, 5, 30, 40], size=2))
    alert = example_alert(seed, n_prv_sources=n_src, n_prv_forced=n_forced, cutout_size_pix=5)
    for key, record in (("diaSource", "diaSource"), ("diaObject", "diaObject")):
        _scramble_row(alert[key], record, rng)
    for key, record in (("prvDiaSources", "diaSource"), ("prvDiaForcedSources", "diaForcedSource")):
        for row in alert[key]:
            _scramble_row(row, record, rng)
        if rng.random() < 0.15:
            alert[key] = None
    if rng.random() < 0.4:
        alert["ssSource"] = example_row("ssSource", rng)
        _scramble_row(alert["ssSource"], "ssSource", rng)
    if rng.random() < 0.3:
        alert["diaObject"] = None
    for key in ("cutoutDifference", "cutoutTemplate", "cutoutScience"):
        if rng.random() < 0.3:
            alert[key] = None if alert[key] is not None else b"\x00\x01" * int(rng.integers(0, 100))
    alert["observation_reason"] = None if rng.random() < 0.5 else "ToO é"
    return alert


@pytest.mark.parametrize("seed", range(24))
def test_random_alerts_encode_to_fastavros_exact_bytes(seed):
    alert = _random_alert(seed)
    payload = encode_alert(alert)
    assert payload is not None  # every value here is of the exact type the plan covers
    assert payload == _fastavro(alert)
    assert serialize_alert(alert)[5:] == payload


def test_typical_alert_is_byte_identical_and_round_trips():
    alert = example_alert(3)
    payload = encode_alert(alert)
    assert payload == _fastavro(alert)
    assert deserialize_alert(serialize_alert(alert)) == alert


def test_nan_payload_and_negative_zero_survive_column_wise_encoding():
    rows = [example_row("diaForcedSource", np.random.default_rng(k)) for k in range(40)]
    rows[5]["psfFlux"], rows[6]["psfFlux"] = math.nan, -0.0
    encoded = encode_records(rows, "diaForcedSource")
    schema = {"type": "array", "items": parsed_schema()["__named_schemas"]["lsst.v11_1.diaForcedSource"]}
    buf = io.BytesIO()
    fastavro.schemaless_writer(buf, schema, rows)
    assert avro_long(len(rows)) + encoded + b"\x00" == buf.getvalue()


@pytest.mark.parametrize("n", [0, 1, 2, 3, 4, 5, 30])
def test_diasource_lists_of_any_length_match_fastavro(n):
    rng = np.random.default_rng(n)
    rows = [example_row("diaSource", rng) for _ in range(n)]
    for row in rows:
        _scramble_row(row, "diaSource", rng)
    schema = parsed_schema()["__named_schemas"]["lsst.v11_1.diaSource"]
    expected = b""
    for row in rows:
        buf = io.BytesIO()
        fastavro.schemaless_writer(buf, schema, row)
        expected += buf.getvalue()
    assert encode_records(rows, "diaSource") == expected


def test_avro_long_is_zigzag_varint():
    assert [avro_long(n) for n in (0, -1, 1, -64, 64)] == [b"\x00", b"\x01", b"\x02", b"\x7f", b"\x80\x01"]
    buf = io.BytesIO()
    fastavro.schemaless_writer(buf, "long", -(2**63))
    assert avro_long(-(2**63)) == buf.getvalue()


@pytest.mark.parametrize("change", ["int_in_double", "numpy_float",
                                    "mpc_orbits", "missing_field", "tagged_union"])
def test_unusual_values_fall_back_to_fastavro_with_identical_bytes(change):
    alert = example_alert(5, n_prv_sources=30, n_prv_forced=30, cutout_size_pix=5)
    src, prv = alert["diaSource"], alert["prvDiaSources"]
    if change == "int_in_double":
        prv[3]["ra"] = 10
    elif change == "numpy_float":
        src["psfFlux"] = np.float32(3.5)
    elif change == "mpc_orbits":  # timestamp-micros fields are fastavro's
        alert["mpc_orbits"] = example_row("mpc_orbits", np.random.default_rng(0))
    elif change == "missing_field":
        del alert["prvDiaForcedSources"][2]["band"]
    else:
        alert["diaObject"] = ("lsst.v11_1.diaObject", alert["diaObject"])
    assert encode_alert(alert) is None
    assert serialize_alert(alert)[5:] == _fastavro(alert)


def test_values_fastavro_rejects_are_still_schema_errors():
    alert = example_alert(6, n_prv_sources=30, n_prv_forced=30, cutout_size_pix=5)
    bad = copy.deepcopy(alert)
    bad["prvDiaSources"][7]["psfFlux"] = "12.5"  # numpy would parse it; fastavro must reject it
    assert encode_alert(bad) is None
    with pytest.raises(AlertSchemaError, match="does not fit"):
        serialize_alert(bad)
    bad = copy.deepcopy(alert)
    bad["prvDiaSources"][4]["psfFlux"] = True  # numpy would take it as 1.0
    assert encode_alert(bad) is None
    with pytest.raises(AlertSchemaError, match="does not fit"):
        serialize_alert(bad)
    bad = copy.deepcopy(alert)
    bad["prvDiaSources"][2]["isDipole"] = 1
    assert encode_alert(bad) is None
    with pytest.raises(AlertSchemaError, match="does not fit"):
        serialize_alert(bad)

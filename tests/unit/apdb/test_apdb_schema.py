"""The generated columns.json equals Rubin's apdb.yaml; empty_table and conform follow it, with
alertprod's extension columns appended."""

import json

import numpy as np
import pytest
from astropy.table import Table

from alertprod.apdb.schema import (
    COLUMNS_JSON,
    EXTENSION_COLUMNS,
    TABLE_NAMES,
    columns,
    columns_from_apdb_yaml,
    conform,
    empty_table,
    rubin_columns,
)
from alertprod.errors import CatalogError

pytest.importorskip("lsst.sdm.schemas")


def test_columns_json_equals_what_apdb_yaml_says():
    assert json.loads(COLUMNS_JSON.read_text()) == columns_from_apdb_yaml()


def test_every_stored_table_has_rubin_key_columns_with_units():
    assert set(TABLE_NAMES) == {"DiaObject", "DiaObjectLast", "DiaSource", "DiaForcedSource",
                                "SSObject"}
    by_name = {c["name"]: c for c in columns("DiaSource")}
    assert by_name["diaSourceId"]["datatype"] == "long" and not by_name["diaSourceId"]["nullable"]
    assert by_name["psfFlux"]["unit"] == "nJy"
    assert by_name["ra"]["unit"] == "deg"
    assert by_name["midpointMjdTai"]["datatype"] == "double"


def test_empty_table_has_schema_columns_in_order():
    t = empty_table("DiaForcedSource", 2)
    assert t.colnames == [c["name"] for c in columns("DiaForcedSource")]
    assert np.all(np.isnan(t["psfFlux"]))
    assert t["diaObjectId"].mask.all()
    assert str(t["psfFlux"].unit) == "nJy"


def test_conform_fills_missing_nullable_columns_and_drops_extras():
    t = Table({"diaForcedSourceId": [1], "diaObjectId": [2], "ra": [10.0], "dec": [-5.0],
               "visit": [3], "detector": [4], "midpointMjdTai": [60000.5],
               "timeProcessedMjdTai": [60000.6], "band": ["g"], "foo": [1]})
    out = conform(t, "DiaForcedSource")
    assert "foo" not in out.colnames
    assert np.isnan(out["psfFlux"][0])
    assert out["detector"].dtype == np.int16
    assert out["band"].dtype.kind == "S" and out["band"][0] == "g"
    assert "foo" in conform(t, "DiaForcedSource", keep_extra=True).colnames


def test_conform_refuses_missing_required_column_naming_it():
    with pytest.raises(CatalogError, match="diaObjectId"):
        conform(Table({"ra": [1.0]}), "DiaObject")


def test_conform_refuses_unknown_table():
    with pytest.raises(CatalogError, match="name"):
        conform(Table({"ra": [1.0]}), "NoSuchTable")


SNAP = ["snapDiffFlux", "snapDiffFluxErr"]


def test_snap_difference_fluxes_are_extension_columns_of_dia_source_and_forced_source():
    rubin = json.loads(COLUMNS_JSON.read_text())
    for name in ("DiaSource", "DiaForcedSource"):
        ext = {c["name"]: c for c in EXTENSION_COLUMNS[name]}
        assert all(c not in {r["name"] for r in rubin[name]} for c in ext), "now in apdb.yaml"
        for col in SNAP:
            assert ext[col]["datatype"] == "float" and ext[col]["unit"] == "nJy"
            assert ext[col]["nullable"]
        assert [c["name"] for c in columns(name)][-len(ext):] == list(ext)  # appended, in order


def test_every_snap_column_detection_emits_is_stored():
    from alertprod.imaging.detection import SNAPDIFF_COLUMNS

    stored = {c["name"] for c in columns("DiaSource")}
    assert {c for c, _ in SNAPDIFF_COLUMNS} <= stored


def test_every_column_the_forced_row_builder_emits_is_stored():
    from alertprod.photometry.dia_forced import DIA_FORCED_COLUMNS

    assert set(DIA_FORCED_COLUMNS) <= {c["name"] for c in columns("DiaForcedSource")}


def test_conform_keeps_snap_difference_columns_of_a_catalog():
    t = Table({"diaSourceId": [1], "visit": [3], "detector": [4], "diaObjectId": [2],
               "ssObjectId": [0], "midpointMjdTai": [60000.5], "ra": [10.0], "dec": [-5.0],
               "x": [10.5], "y": [20.5], "band": ["g"], "psfNdata": [25], "trailNdata": [0], "dipoleNdata": [0],
               "bboxSize": [15], "timeProcessedMjdTai": [60000.6],
               "snapDiffFlux": [12.5], "snapDiffFluxErr": [3.25]})
    out = conform(t, "DiaSource")
    assert out["snapDiffFlux"][0] == np.float32(12.5) and out["snapDiffFluxErr"][0] == np.float32(3.25)
    assert str(out["snapDiffFlux"].unit) == "nJy"
    t.remove_columns(SNAP)
    assert np.isnan(conform(t, "DiaSource")["snapDiffFlux"][0])


def test_rubin_columns_strips_the_extension_columns():
    for name in ("DiaSource", "DiaForcedSource"):
        kept = rubin_columns(empty_table(name, 1), name).colnames
        assert kept == [c["name"] for c in json.loads(COLUMNS_JSON.read_text())[name]]

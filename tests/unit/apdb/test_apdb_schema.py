"""The generated columns.json equals Rubin's apdb.yaml; empty_table and conform follow it."""

import json

import numpy as np
import pytest
from astropy.table import Table

from alertprod.apdb.schema import (
    COLUMNS_JSON,
    TABLE_NAMES,
    columns,
    columns_from_apdb_yaml,
    conform,
    empty_table,
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

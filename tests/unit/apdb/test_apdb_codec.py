"""Packed rows round-trip every column type, NaN and null."""

import numpy as np
import pytest

from alertprod.apdb.codec import FORMAT_VERSION, pack_rows, row_size, unpack_rows
from alertprod.apdb.schema import columns, empty_table
from alertprod.errors import CatalogError


@pytest.mark.parametrize("name", ["DiaObject", "DiaSource", "DiaForcedSource", "SSObject"])
def test_round_trip_every_column_type_with_nulls(name):
    rng = np.random.default_rng(1)
    t = empty_table(name, 5)
    for col in columns(name):
        c = t[col["name"]]
        kind = c.dtype.kind
        if kind == "f":
            vals = rng.normal(size=5).astype(c.dtype)
            if col["nullable"]:
                vals[1] = np.nan
            c[:] = vals
        elif kind in "iu":
            c[:] = rng.integers(-100, 100, 5) if col["nullable"] else rng.integers(0, 100, 5)
        elif kind == "b":
            c[:] = rng.integers(0, 2, 5).astype(bool)
        elif kind == "S":
            c[:] = [b"r", b"g", b"i", b"z", b"y"]
        if hasattr(c, "mask"):
            c.mask = [False, False, True, False, False] if col["nullable"] else False
    blobs = pack_rows(t, name)
    assert all(len(b) == row_size(name) and b[0] == FORMAT_VERSION for b in blobs)
    back = unpack_rows(blobs, name)
    assert back.colnames == t.colnames
    for col in t.colnames:
        a, b = t[col], back[col]
        assert a.dtype == b.dtype, col
        assert np.array_equal(np.ma.getmaskarray(a), np.ma.getmaskarray(b)), col
        keep = ~np.ma.getmaskarray(a)
        assert np.array_equal(np.ma.getdata(a)[keep], np.ma.getdata(b)[keep],
                              equal_nan=a.dtype.kind == "f"), col


def _one_source():
    t = empty_table("DiaSource", 1)
    for col in columns("DiaSource"):
        if not col["nullable"]:
            t[col["name"]] = np.zeros(1, t[col["name"]].dtype)
    return t


def test_nan_float_and_extreme_ints_survive():
    t = _one_source()
    t["diaSourceId"][0] = 2**62 + 12345
    t["ra"][0] = 359.99999999999994
    t["psfFlux"][0] = np.nan
    back = unpack_rows(pack_rows(t, "DiaSource"), "DiaSource")
    assert back["diaSourceId"][0] == 2**62 + 12345
    assert back["ra"][0] == 359.99999999999994
    assert np.isnan(back["psfFlux"][0])


def test_rows_of_another_table_are_refused():
    blobs = pack_rows(_one_source(), "DiaSource")
    with pytest.raises(CatalogError, match="blobs"):
        unpack_rows(blobs, "DiaForcedSource")


def test_empty_input_gives_empty_schema_table():
    assert pack_rows(empty_table("DiaSource"), "DiaSource") == []
    assert len(unpack_rows([], "DiaSource")) == 0

"""Packed rows round-trip every column type, NaN and null; rows of every released format read."""

import base64
import hashlib
import json

import numpy as np
import pytest
from astropy.table import Table

from alertprod.apdb._codec import (
    ADDED_COLUMNS,
    FORMAT_VERSION,
    layout,
    pack_rows,
    row_dtype,
    row_size,
    unpack_rows,
)
from alertprod.apdb.schema import columns, conform, empty_table, numpy_dtype
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


# --- versioned layouts: rows written by earlier releases stay readable -----------------------

#: Rows packed by release 1's codec (format 1, before the snap-difference columns), frozen here
#: as bytes: a nightly and a precovery DiaForcedSource, and one DiaSource.
RELEASE_1_FORCED = [
    "AQAgywT7cR8BAAAqAAAAAAAAADMzMzMzw2JAzczMzMzMAEAHAAAAAAAAAAMAAAD3QgAAJEEAAAAACEztQAAgekQAAEhB"
    "cgAAAAAQTO1AAAAAAAAA+H8A",
    "AUAgzAT7cR8BAAArAAAAAAAAAGZmZmZmxmJAmpmZmZmZAUAIAAAAAAAAAAQAAADAfwAAOEEAAAAAKEztQAAQ+kQAAFhB"
    "ZwAAAABQTO1AAAAAAAAA+H8B",
]
RELEASE_1_SOURCE = (
    "AWCh/tj/73///0/9/3/qFrBMAgAAAAcAAAAAAAAAAwAqAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAD4fwAAAAAI"
    "TO1AAADAfzMzMzMzw2JArMUnN83MzMzMzABArMUnNwAAwH8AAMlCAADAfwBASEMAAMB/AAAAwH8AAMB/AAAAAABAQQAA"
    "90IAACRBAADAfwAAwH8ZAAAAAAAAAADAfwAAwH8AAAAAAAD4fwAAwH8AAAAAAAD4fwAAwH8AAMB/AADAfwAAwH8AAMB/"
    "AADAfwAAAAAAAAAAAAAAAMB/AADAfwAAwH8AAMB/AADAfwAAwH8AAMB/AAAAAAAAwH8AAMB/AAAAAADAfwAAwH8AAMB/"
    "AADAfwAAwH8AAMB/AADAfwAAwH8AAAAAAADAfwAAwH8AAAAAAAAAcgAAAAAAABBM7UAAAAAAAAD4fw8AAAAAAAAAAAAA"
    "AAAAAAAAAAAAAAAAAAA="
)

#: Format 1's DiaForcedSource columns, in packing order (apdb.yaml's, then isPrecovery).
V1_FORCED_COLUMNS = ["diaForcedSourceId", "diaObjectId", "ra", "dec", "visit", "detector",
                     "psfFlux", "psfFluxErr", "midpointMjdTai", "scienceFlux", "scienceFluxErr",
                     "band", "timeProcessedMjdTai", "timeWithdrawnMjdTai", "isPrecovery"]

#: sha256[:16] of each layout's numpy record descr: a change of columns.json or of the extension
#: columns that alters a released layout fails here instead of misreading stored rows.
FROZEN_LAYOUTS = {
    1: {"DiaObject": "25511f77dbe8b2e8", "DiaObjectLast": "e2ce2e9aba2905a1",
        "DiaSource": "90e53f2a066a37a4", "DiaForcedSource": "831e67c238d65447",
        "SSObject": "b4d5d767c877eae4"},
    2: {"DiaObject": "25511f77dbe8b2e8", "DiaObjectLast": "e2ce2e9aba2905a1",
        "DiaSource": "23cf40f1dfed24e1", "DiaForcedSource": "0681d79c0c518a9a",
        "SSObject": "b4d5d767c877eae4"},
}
SNAP = ("snapDiffFlux", "snapDiffFluxErr")


def _digest(dtype):
    return hashlib.sha256(json.dumps(np.dtype(dtype).descr).encode()).hexdigest()[:16]


def _pack_v1(table, name, column_names):
    """Pack rows as release 1 did, with its column list given explicitly (not today's code)."""
    by_name = {c["name"]: c for c in columns(name)}
    cols = [by_name[c] for c in column_names]
    dtype = np.dtype([(c["name"], numpy_dtype(c)) for c in cols])
    t = conform(table, name)
    rec = np.zeros(len(t), dtype)
    nulls = np.zeros((len(t), len(cols)), bool)
    for j, c in enumerate(cols):
        col = t[c["name"]]
        rec[c["name"]] = np.ma.getdata(col)
        nulls[:, j] = np.isnan(rec[c["name"]]) if rec[c["name"]].dtype.kind == "f" else \
            np.ma.getmaskarray(col)
    bits = np.packbits(nulls, axis=1, bitorder="little")
    head = np.ones((len(t), 1), np.uint8)
    rows = np.concatenate([head, bits, rec.view(np.uint8).reshape(len(t), dtype.itemsize)], axis=1)
    return [r.tobytes() for r in rows]


def _forced(n=3, *, snap=True, seed=2):
    rng = np.random.default_rng(seed)
    t = Table({"diaForcedSourceId": np.arange(100, 100 + n), "diaObjectId": np.arange(1, n + 1),
               "ra": rng.uniform(0, 360, n), "dec": rng.uniform(-60, 10, n),
               "visit": np.full(n, 7), "detector": np.full(n, 3),
               "psfFlux": rng.normal(0, 100, n), "psfFluxErr": np.full(n, 50.0),
               "midpointMjdTai": np.full(n, 60000.25), "scienceFlux": rng.normal(1e4, 10, n),
               "scienceFluxErr": np.full(n, 60.0), "band": np.full(n, "r"),
               "timeProcessedMjdTai": np.full(n, 60000.5), "isPrecovery": np.arange(n) % 2 == 1})
    if snap:
        t["snapDiffFlux"] = rng.normal(0, 80, n)
        t["snapDiffFluxErr"] = np.full(n, 80.0)
    return t


def test_released_layouts_are_frozen():
    for version, tables in FROZEN_LAYOUTS.items():
        for name, digest in tables.items():
            assert _digest(row_dtype(name, version)) == digest, (version, name)


def test_format_1_layout_is_release_1_column_list():
    assert [c["name"] for c in layout("DiaForcedSource", 1)] == V1_FORCED_COLUMNS
    assert [c["name"] for c in layout("DiaSource", 1)] == [
        c["name"] for c in columns("DiaSource") if c["name"] not in SNAP]


def test_columns_added_after_format_1_are_nullable_snap_difference_fluxes():
    assert ADDED_COLUMNS[2] == {"DiaSource": SNAP, "DiaForcedSource": SNAP}
    for name in ("DiaSource", "DiaForcedSource"):
        by_name = {c["name"]: c for c in columns(name)}
        assert all(by_name[c]["nullable"] and by_name[c]["unit"] == "nJy" for c in SNAP)


def test_new_rows_are_written_in_the_latest_format():
    blobs = pack_rows(_forced(), "DiaForcedSource")
    assert FORMAT_VERSION == 2
    assert all(b[0] == 2 and len(b) == row_size("DiaForcedSource", 2) for b in blobs)


def test_rows_written_by_release_1_still_read():
    forced = unpack_rows([base64.b64decode(b) for b in RELEASE_1_FORCED], "DiaForcedSource")
    assert forced.colnames == [c["name"] for c in columns("DiaForcedSource")]
    assert list(forced["diaForcedSourceId"]) == [1234567890123, 1234567890124]
    assert list(forced["ra"]) == [150.1, 150.2]
    assert forced["psfFlux"][0] == np.float32(123.5) and np.isnan(forced["psfFlux"][1])
    assert list(forced["band"]) == ["r", "g"]
    assert list(forced["isPrecovery"]) == [False, True]
    assert np.all(np.isnan(forced["snapDiffFlux"])) and np.all(np.isnan(forced["snapDiffFluxErr"]))
    source = unpack_rows([base64.b64decode(RELEASE_1_SOURCE)], "DiaSource")
    assert source["diaSourceId"][0] == 9876543210 and source["x"][0] == np.float32(100.5)
    assert source["psfNdata"][0] == 25 and source["bboxSize"][0] == 15
    assert np.isnan(source["snapDiffFlux"][0]) and np.isnan(source["apFlux"][0])


@pytest.mark.parametrize("name", ["DiaSource", "DiaForcedSource"])
def test_v1_rows_packed_with_the_v1_column_list_read_with_null_snap_columns(name):
    if name == "DiaForcedSource":
        t, v1 = _forced(snap=False), V1_FORCED_COLUMNS
    else:
        t, v1 = _one_source(), [c["name"] for c in columns(name) if c["name"] not in SNAP]
        t["psfFlux"][0] = 321.5
    blobs = _pack_v1(t, name, v1)
    assert all(b[0] == 1 and len(b) == row_size(name, 1) for b in blobs)
    back = unpack_rows(blobs, name)
    expected = unpack_rows(pack_rows(t, name), name)  # the same rows written today
    for col in back.colnames:
        a, b = back[col], expected[col]
        assert np.array_equal(np.ma.getmaskarray(a), np.ma.getmaskarray(b)), col
        assert np.array_equal(np.ma.getdata(a), np.ma.getdata(b), equal_nan=a.dtype.kind == "f"), col
    assert np.all(np.isnan(back["snapDiffFlux"]))


def test_mixed_v1_and_v2_rows_decode_into_one_table_in_order():
    old = _pack_v1(_forced(4, snap=False, seed=5), "DiaForcedSource", V1_FORCED_COLUMNS)
    new_rows = _forced(3, seed=6)
    new_rows["diaForcedSourceId"] += 1000
    new = pack_rows(new_rows, "DiaForcedSource")
    mixed = [new[0], old[0], old[1], new[1], old[2], new[2], old[3]]
    back = unpack_rows(mixed, "DiaForcedSource")
    assert list(back["diaForcedSourceId"]) == [1100, 100, 101, 1101, 102, 1102, 103]
    is_new = np.array([1, 0, 0, 1, 0, 1, 0], bool)
    assert np.all(np.isfinite(back["snapDiffFlux"][is_new]))
    assert np.all(np.isnan(back["snapDiffFlux"][~is_new]))
    assert np.allclose(back["snapDiffFlux"][is_new], new_rows["snapDiffFlux"], rtol=1e-6)
    assert list(back["isPrecovery"]) == [False, False, True, True, False, False, True]


def test_unknown_format_byte_is_refused_naming_the_row():
    blobs = pack_rows(_forced(2), "DiaForcedSource")
    blobs[1] = bytes([9]) + blobs[1][1:]
    with pytest.raises(CatalogError, match="row 1 has format byte 9"):
        unpack_rows(blobs, "DiaForcedSource")


def test_plan_staged_before_the_snap_columns_loads_and_stores():
    """A write-ahead plan staged by release 1 (no snap columns) replays into today's rows.

    Storing packs each table with :func:`pack_rows` (``_store.py``); that is what is checked.
    """
    from alertprod.apdb.interface import CcdWrites
    from alertprod.aws.blobs import MemoryBlobStore
    from alertprod.pipeline.write_ahead import StagedPlan, load_plan, stage_plan

    forced = _forced(3, snap=False)
    sources = _one_source()
    sources.remove_columns([c for c in SNAP if c in sources.colnames])
    store = MemoryBlobStore()
    stage_plan(store, StagedPlan(CcdWrites(visit=7, detector=3, visit_time_mjd_tai=60000.25,
                                           dia_sources=sources, dia_forced_sources=forced,
                                           dia_objects=Table()), []))
    writes = load_plan(store, 7, 3).writes
    assert "snapDiffFlux" not in writes.dia_forced_sources.colnames
    stored = unpack_rows(pack_rows(writes.dia_forced_sources, "DiaForcedSource"), "DiaForcedSource")
    assert list(stored["diaForcedSourceId"]) == [100, 101, 102]
    assert np.all(np.isnan(stored["snapDiffFlux"]))
    assert list(stored["isPrecovery"]) == [False, True, False]
    stored_sources = unpack_rows(pack_rows(writes.dia_sources, "DiaSource"), "DiaSource")
    assert np.isnan(stored_sources["snapDiffFlux"][0])

"""Ledger, alert marks, image-cache index, new-object lookup, orbit catalog, SSObjects, export."""

import numpy as np
import pytest
from astropy.table import Table

from alertprod.apdb import dynamo_level1, write_export
from alertprod.apdb.dynamodb import _apdb as dynamodb_module
from alertprod.apdb.testing import make_ccd_writes, make_objects
from alertprod.errors import ConflictError, NotFoundError
from alertprod.ids import ss_object_id
from alertprod.local.dynamodb import create_level1_table, moto_dynamodb

pytest.importorskip("moto")
pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def client():
    with moto_dynamodb() as c:
        yield c


@pytest.fixture
def level1(client):
    return dynamo_level1(client, create_level1_table(client))


@pytest.fixture
def apdb(level1):
    return level1.apdb


def test_ccd_ledger_moves_forward_only(level1):
    assert level1.ledger.get_ccd_record(7, 3) is None
    level1.ledger.put_ccd_record(7, 3, "started", attempt=1)
    level1.ledger.put_ccd_record(7, 3, "stored", n_sources=12)
    record = level1.ledger.get_ccd_record(7, 3)
    assert record["state"] == "stored" and record["attempt"] == 1 and record["n_sources"] == 12
    level1.ledger.put_ccd_record(7, 3, "stored")  # a retry repeats its state
    with pytest.raises(ConflictError):
        level1.ledger.put_ccd_record(7, 3, "started")


def test_alert_marks_tell_a_retry_what_was_published(level1):
    level1.ledger.mark_alerts(range(100, 160), "published")
    level1.ledger.mark_alert(5, "archived")
    marks = level1.ledger.get_alert_marks([5, 100, 159, 160])
    assert marks == {5: "archived", 100: "published", 159: "published"}
    assert level1.metrics.requests["batch_write_item"] == 4  # 61 marks, 25 per request


def test_find_exposures_by_position_and_time(apdb):
    square = np.array([[10.0, 0.0], [10.2, 0.0], [10.2, 0.2], [10.0, 0.2]])
    apdb.index_exposure(1, 5, "r", 60000.1, square, ["science", "difference"])
    apdb.index_exposure(2, 5, "g", 60040.1, square, ["science"])
    apdb.index_exposure(3, 6, "r", 60000.2, square + [0.3, 0.0], ["science"])
    found = apdb.find_exposures(10.1, 0.1, 59990.0, 60100.0)
    assert list(found["visit"]) == [1, 2]
    assert found["kinds"][0] == "science,difference"
    assert list(apdb.find_exposures(10.1, 0.1, 60010.0, 60100.0)["visit"]) == [2]
    assert len(apdb.find_exposures(10.25, 0.1, 59990.0, 60100.0)) == 0  # in the gap


def test_new_dia_objects_of_a_night(apdb):
    objs = make_objects(6, 30.0, -20.0, 0.02)
    apdb.store_ccd(make_ccd_writes(objs, 1, 1, 60010.3, new=True), lease=None)
    later = make_objects(2, 30.0, -20.0, 0.02, first_id=100)
    apdb.store_ccd(make_ccd_writes(later, 2, 1, 60011.3, new=True), lease=None)
    night = apdb.new_dia_objects(60010.0, 60011.0)
    assert list(night["diaObjectId"]) == list(objs["diaObjectId"])
    assert np.allclose(night["ra"], objs["ra"])
    assert len(apdb.new_dia_objects(60010.0, 60012.0)) == 8


def test_orbit_catalog_is_chunked_versioned_and_cached(apdb, monkeypatch):
    monkeypatch.setattr(dynamodb_module, "ORBIT_CHUNK_BYTES", 1000)
    rng = np.random.default_rng(3)
    text = "\n".join(f"K{i:05d} {rng.uniform(0, 360):.6f}" for i in range(3000)).encode()
    with pytest.raises(NotFoundError):
        apdb.get_orbit_catalog()
    version = apdb.store_orbit_catalog(text)
    assert apdb.get_orbit_catalog_version() == version
    assert apdb.get_orbit_catalog() == text
    calls = apdb.metrics.requests["batch_get_item"]
    assert apdb.get_orbit_catalog() == text
    assert apdb.metrics.requests["batch_get_item"] == calls  # served from the cache
    assert apdb.store_orbit_catalog(text + b"\nK99999 1.0") != version


def test_ss_objects_round_trip(apdb):
    t = Table()
    t["ssObjectId"] = np.array([ss_object_id("K24A00B"), ss_object_id("00433")], np.int64)
    t["designation"] = ["2024 AB", "433"]
    for col in ["nObs", "u_nObs", "u_nObsUsed", "g_nObs", "g_nObsUsed", "r_nObs", "r_nObsUsed",
                "i_nObs", "i_nObsUsed", "z_nObs", "z_nObsUsed", "y_nObs", "y_nObsUsed"]:
        t[col] = np.array([3, 4], np.int32)
    t["arc"] = np.array([1.5, 2000.0], np.float32)
    apdb.store_ss_objects(t)
    assert sorted(apdb.get_ss_objects()["ssObjectId"]) == sorted(t["ssObjectId"])
    one = apdb.get_ss_objects([ss_object_id("00433")])
    assert one["designation"][0] == "433" and one["arc"][0] == np.float32(2000.0)


def test_write_export_writes_the_five_fits_tables(apdb, tmp_path):
    objs = make_objects(3, 30.0, -20.0, 0.02)
    apdb.store_ccd(make_ccd_writes(objs, 1, 1, 60010.3, new=True), lease=None)
    paths = write_export(apdb.export(), tmp_path)
    assert sorted(paths) == ["DiaForcedSource", "DiaObject", "DiaObjectHistory", "DiaSource",
                             "SSObject"]
    back = Table.read(paths["DiaObject"])
    assert list(back["diaObjectId"]) == list(objs["diaObjectId"])
    assert str(back["ra"].unit) == "deg"

"""The contract of the Level 1 database's services: solar system, orbits, image index, export.

Mixed into :class:`contract.apdb_contract.ApdbContract` (see there for the fixture API).
"""

from __future__ import annotations

import threading

import numpy as np
import pytest
from astropy.table import Table
from contract._data import (
    DEC,
    RA,
    RADIUS,
    T0,
    T1,
    create_objects,
    run_threads,
    ss_objects,
    ss_sources,
)
from contract.runs_contract import PrecoveryRunsContract
from contract.sizes_contract import ItemSizesContract

from alertprod.apdb import PREV_VALIDITY_COLUMN
from alertprod.apdb.export import EXPORT_ORDER, EXPORT_TABLES
from alertprod.apdb.schema import columns
from alertprod.apdb.testing import make_ccd_writes, make_objects
from alertprod.archive import ARCHIVE_INDEX_ORDER
from alertprod.errors import CatalogError, NotFoundError
from alertprod.pixelization import pixel_of, pixels_covering

__all__ = ["ApdbServicesContract"]


class ApdbServicesContract(PrecoveryRunsContract, ItemSizesContract):
    """What every :class:`~alertprod.apdb.Apdb` guarantees beyond DiaObjects and their history."""

    # -- solar system --------------------------------------------------------------------------
    def test_ss_objects_are_upserted_and_read_back(self, level1):
        apdb = level1.apdb
        apdb.store_ss_objects(ss_objects([11, 12], ["2024 AB", "433"]))
        apdb.store_ss_objects(ss_objects([12, 13], ["433 Eros", "1"]))
        everything = apdb.get_ss_objects()
        assert list(everything["ssObjectId"]) == [11, 12, 13]
        one = apdb.get_ss_objects([12, 99])
        assert list(one["ssObjectId"]) == [12] and one["designation"][0] in (b"433 Eros",
                                                                            "433 Eros")
        assert one["arc"][0] == np.float32(2000.0)

    def test_ss_observations_count_each_source_once(self, level1):
        apdb = level1.apdb
        apdb.store_ss_objects(ss_objects([11, 12], ["a", "b"]))
        src = ss_sources([11, 11, 12, 0], ["g", "r", "r", "r"], [T0, T0 + 2, T0 + 1, T0])
        assert apdb.record_ss_observations(src) == 2
        assert apdb.record_ss_observations(src) == 2  # a retried CCD counts nothing twice
        rows = apdb.get_ss_objects([11, 12])
        assert list(rows["nObs"]) == [2, 1] and list(rows["g_nObs"]) == [1, 0]
        assert list(rows["r_nObs"]) == [1, 1]
        assert list(rows["firstObservationMjdTai"]) == [T0, T0 + 1]
        assert np.allclose(rows["arc"], [2.0, 0.0])
        apdb.record_ss_observations(ss_sources([11], ["i"], [T0 + 5], first_id=500))
        assert apdb.get_ss_objects([11])["nObs"][0] == 3
        assert list(apdb.export()["SSObject"]["nObs"]) == [3, 1]

    def test_concurrent_ss_observations_are_all_counted(self, connect):
        connect().apdb.store_ss_objects(ss_objects([11], ["a"]))
        connections = [connect() for _ in range(6)]
        barrier = threading.Barrier(len(connections))

        def record(k):
            barrier.wait()
            connections[k].apdb.record_ss_observations(
                ss_sources([11, 11], ["r", "g"], [T0 + k, T0 + k + 0.5], first_id=10 * k + 1))

        run_threads(record, len(connections))
        assert connect().apdb.get_ss_objects([11])["nObs"][0] == 12

    # -- orbit catalog -------------------------------------------------------------------------
    def test_orbit_catalog_is_versioned_by_content(self, level1, connect):
        apdb, reader = level1.apdb, connect().apdb
        assert apdb.get_orbit_catalog_version() is None
        with pytest.raises(NotFoundError):
            apdb.get_orbit_catalog()
        rng = np.random.default_rng(3)
        text = "\n".join(f"K{i:05d} {rng.uniform(0, 360):.6f}" for i in range(3000))
        version = apdb.store_orbit_catalog(text)
        assert apdb.store_orbit_catalog(text.encode()) == version
        assert reader.get_orbit_catalog_version() == version
        assert reader.get_orbit_catalog() == text.encode()
        newer = apdb.store_orbit_catalog(text + "\nK99999 1.0")
        assert newer != version and reader.get_orbit_catalog_version() == newer
        assert reader.get_orbit_catalog() == (text + "\nK99999 1.0").encode()  # cache refreshed

    def test_night_catalogs_are_kept_per_night_beside_the_base(self, level1, connect):
        apdb, reader = level1.apdb, connect().apdb
        base = apdb.store_orbit_catalog("K00001 base catalog")
        assert apdb.get_orbit_catalog_version(night_mjd=61000) is None
        with pytest.raises(NotFoundError, match="61000"):
            apdb.get_orbit_catalog(night_mjd=61000)
        # incompressible bytes of ~1 MB: several items on DynamoDB
        first = np.random.default_rng(5).bytes(1_000_000)
        v1 = apdb.store_orbit_catalog(first, night_mjd=61000)
        assert v1 != base and reader.get_orbit_catalog_version(night_mjd=61000) == v1
        assert reader.get_orbit_catalog(night_mjd=61000) == first
        assert reader.get_orbit_catalog_version() == base  # the base catalog is untouched
        assert reader.get_orbit_catalog() == b"K00001 base catalog"
        assert reader.get_orbit_catalog_version(night_mjd=61001) is None
        second = first[::-1]
        v2 = apdb.store_orbit_catalog(second, night_mjd=61000)  # a later refresh replaces it
        assert v2 != v1 and reader.get_orbit_catalog(night_mjd=61000) == second
        assert apdb.store_orbit_catalog(second, night_mjd=np.int64(61001)) == v2  # by content
        assert reader.get_orbit_catalog(night_mjd=61001) == second
        newer = apdb.store_orbit_catalog("K00002 newer base")  # a new upload leaves nights alone
        assert reader.get_orbit_catalog_version() == newer
        assert reader.get_orbit_catalog_version(night_mjd=61000) == v2

    @pytest.mark.parametrize("night", [60000.5, "60000", True, -1, float("nan")])
    def test_night_of_an_orbit_catalog_must_be_a_whole_mjd(self, level1, night):
        apdb = level1.apdb
        with pytest.raises(ValueError, match="night_mjd"):
            apdb.store_orbit_catalog(b"x", night_mjd=night)
        with pytest.raises(ValueError, match="night_mjd"):
            apdb.get_orbit_catalog_version(night_mjd=night)
        with pytest.raises(ValueError, match="night_mjd"):
            apdb.get_orbit_catalog(night_mjd=night)
        assert apdb.get_orbit_catalog_version(night_mjd=60000.0) is None  # a whole float is a night

    # -- image-cache index ---------------------------------------------------------------------
    def test_find_exposures_by_position_and_time(self, level1):
        apdb = level1.apdb
        square = np.array([[10.0, 0.0], [10.2, 0.0], [10.2, 0.2], [10.0, 0.2]])
        apdb.index_exposure(2, 5, "g", 60040.1, square, ["science"])
        apdb.index_exposure(1, 5, "r", 60000.1, square, ["science", "difference"])
        apdb.index_exposure(3, 6, "r", 60000.2, square + [0.3, 0.0], ["science"])
        found = apdb.find_exposures(10.1, 0.1, 59990.0, 60100.0)
        assert list(found["visit"]) == [1, 2] and list(found["detector"]) == [5, 5]
        assert list(found["band"]) == ["r", "g"] and found["kinds"][0] == "science,difference"
        assert found["corners"].shape == (2, 4, 2) and np.allclose(found["corners"][0], square)
        assert list(apdb.find_exposures(10.1, 0.1, 60010.0, 60100.0)["visit"]) == [2]
        assert len(apdb.find_exposures(10.1, 0.1, 60000.1 - 1, 60000.1)) == 0  # end exclusive
        assert len(apdb.find_exposures(10.25, 0.1, 59990.0, 60100.0)) == 0  # in the gap

    def test_reindexing_an_exposure_replaces_its_entry(self, level1):
        apdb = level1.apdb
        square = np.array([[10.0, 0.0], [10.2, 0.0], [10.2, 0.2], [10.0, 0.2]])
        apdb.index_exposure(1, 5, "r", 60000.1, square, ["science"])
        apdb.index_exposure(1, 5, "r", 60000.1, square, ["science", "template"])
        found = apdb.find_exposures(10.1, 0.1, 59990.0, 60100.0)
        assert list(found["kinds"]) == ["science,template"]

    # -- long-term archive index --------------------------------------------------------------
    def test_archived_images_are_found_by_cell_and_time_for_years(self, level1):
        apdb = level1.apdb
        square = np.array([[10.0, 0.0], [10.05, 0.0], [10.05, 0.05], [10.0, 0.05]])
        cell = int(pixel_of(10.025, 0.025, order=ARCHIVE_INDEX_ORDER))
        apdb.index_archived_exposure(1, 5, "science", "r", 60000.1, square)
        apdb.index_archived_exposure(1, 5, "template", "r", 60000.1, square)
        apdb.index_archived_exposure(2, 5, "science", "g", 63650.9, square)  # ten years later
        apdb.index_archived_exposure(3, 6, "science", "r", 60000.2, square + [1.0, 0.0])
        found = apdb.find_archived_exposures([cell], 59990.0, 63700.0)
        assert list(zip(found["visit"], found["kind"], found["band"], strict=True)) == [
            (1, "science", "r"), (1, "template", "r"), (2, "science", "g")]
        assert found["corners"].shape == (3, 4, 2) and np.allclose(found["corners"][0], square)
        assert np.allclose(found["midpointMjdTai"], [60000.1, 60000.1, 63650.9])
        assert list(apdb.find_archived_exposures([cell], 60000.1, 63650.9)["visit"]) == [1, 1]
        assert len(apdb.find_archived_exposures([cell], 60000.2, 60001.0)) == 0  # start inclusive only
        assert len(apdb.find_archived_exposures([], 59990.0, 63700.0)) == 0

    def test_an_archived_image_is_listed_once_however_often_and_wherever_indexed(self, level1):
        apdb = level1.apdb
        # a footprint over several order-9 cells, indexed three times (redelivered messages)
        big = np.array([[20.0, 0.0], [20.25, 0.0], [20.25, 0.25], [20.0, 0.25]])
        for _ in range(3):
            apdb.index_archived_exposure(4, 7, "science", "i", 60100.5, big)
        cells = pixels_covering(big, order=ARCHIVE_INDEX_ORDER)
        assert len(cells) > 4
        found = apdb.find_archived_exposures(cells, 60100.0, 60101.0)
        assert list(zip(found["visit"], found["detector"], found["kind"], strict=True)) == [
            (4, 7, "science")]

    def test_archive_index_refuses_bad_arguments_before_writing(self, level1):
        apdb = level1.apdb
        square = np.array([[10.0, 0.0], [10.05, 0.0], [10.05, 0.05], [10.0, 0.05]])
        with pytest.raises(ValueError, match="kind"):
            apdb.index_archived_exposure(1, 1, "difference", "r", T0, square)
        with pytest.raises(ValueError, match="band"):
            apdb.index_archived_exposure(1, 1, "science", "q", T0, square)
        with pytest.raises(ValueError, match="corners_radec"):
            apdb.index_archived_exposure(1, 1, "science", "r", T0, np.zeros((2, 2)))
        with pytest.raises(ValueError, match="mjd_end"):
            apdb.find_archived_exposures([1], T1, T0)
        with pytest.raises(ValueError, match="pixels"):
            apdb.find_archived_exposures([1.5], T0, T1)
        cell = int(pixel_of(10.025, 0.025, order=ARCHIVE_INDEX_ORDER))
        assert len(apdb.find_archived_exposures([cell], T0 - 1, T1 + 1)) == 0

    # -- export and input checks ---------------------------------------------------------------
    def test_export_holds_every_table_with_rubin_columns(self, level1):
        apdb = level1.apdb
        got = create_objects(apdb, 3)
        apdb.store_ccd(make_ccd_writes(got, 2, 1, T1, detected=[True, False, False]), lease=None)
        apdb.store_ss_objects(ss_objects([11], ["a"]))
        out = apdb.export()
        assert sorted(out) == sorted(EXPORT_TABLES)
        for name, table in out.items():
            assert table.colnames == [c["name"] for c in columns(EXPORT_TABLES[name])]
            keys = list(zip(*(table[c].tolist() for c in EXPORT_ORDER[name]), strict=True))
            assert keys == sorted(keys)
        assert [len(out[n]) for n in ("DiaObject", "DiaObjectHistory", "DiaSource",
                                      "DiaForcedSource", "SSObject")] == [3, 4, 4, 2, 1]
        assert str(out["DiaObject"]["ra"].unit) == "deg"

    def test_invalid_arguments_are_refused_naming_the_argument(self, level1):
        apdb = level1.apdb
        with pytest.raises(TypeError, match="writes"):
            apdb.store_ccd("not writes", lease=None)
        with pytest.raises(TypeError, match="ids"):
            apdb.get_dia_objects_by_id([1.5])
        with pytest.raises(ValueError, match="visit_time_mjd_tai"):
            apdb.get_dia_history([1], float("nan"))
        with pytest.raises(ValueError, match="months"):
            apdb.get_dia_history([1], T0, months=-1)
        with pytest.raises(ValueError, match="mjd_end"):
            apdb.new_dia_objects(T1, T0)
        with pytest.raises(ValueError, match="mjd_end"):
            apdb.find_exposures(10.0, 0.0, T1, T0)
        with pytest.raises(ValueError, match="corners_radec"):
            apdb.index_exposure(1, 1, "r", T0, np.zeros((2, 2)), ["science"])
        with pytest.raises(ValueError, match="ssObjectId"):
            apdb.store_ss_objects(Table({"designation": ["x"]}))

    def test_malformed_ccd_writes_are_refused_before_anything_is_written(self, level1):
        apdb = level1.apdb
        objs = make_objects(3, RA, DEC, RADIUS)
        orphan = make_ccd_writes(objs, 1, 1, T0, new=True)
        orphan.dia_sources["diaObjectId"][1] = 0  # neither diaObjectId nor ssObjectId
        twins = make_ccd_writes(objs, 1, 1, T0, new=True)
        twins.dia_objects["diaObjectId"][1] = twins.dia_objects["diaObjectId"][0]
        unversioned = make_ccd_writes(objs, 1, 1, T0, new=True)
        unversioned.dia_objects.remove_column(PREV_VALIDITY_COLUMN)
        timeless = make_ccd_writes(objs, 1, 1, float("nan"), new=True)
        for writes in (orphan, twins, unversioned, timeless):
            with pytest.raises(CatalogError):
                apdb.store_ccd(writes, lease=None)
        assert all(len(t) == 0 for t in apdb.export().values())

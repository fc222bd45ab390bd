"""The next DiaObject version: one builder for the nightly pipeline and daytime precovery."""

import numpy as np
import pytest
from astropy.table import Table

from alertprod.apdb import PREV_VALIDITY_COLUMN
from alertprod.apdb.testing import make_forced, make_sources
from alertprod.summary.versions import VERSION_EPSILON_DAYS, next_object_versions

pytestmark = pytest.mark.unit

T0 = 60000.2


def _previous(ids, start, n_sources, first):
    t = Table()
    t["diaObjectId"] = np.asarray(ids, np.int64)
    t["validityStartMjdTai"] = np.asarray(start, float)
    t["nDiaSources"] = np.asarray(n_sources, np.int64)
    t["firstDiaSourceMjdTai"] = np.asarray(first, float)
    return t


def _sources(ids, mjd, visit, first_id):
    ids = np.asarray(ids, np.int64)
    return make_sources(ids, np.full(ids.size, 150.0), np.full(ids.size, 2.0), visit, 0, mjd,
                        first_id=first_id)


def test_new_object_starts_its_first_version_at_the_visit():
    new = _sources([7, 8], T0, 1, 100)
    versions = next_object_versions(new, Table(), Table(), Table(), Table(),
                                    validity_start_mjd_tai=T0)
    assert list(versions["diaObjectId"]) == [7, 8]
    assert list(versions["nDiaSources"]) == [1, 1]
    assert np.all(np.isnan(versions[PREV_VALIDITY_COLUMN]))
    assert np.all(versions["validityStartMjdTai"] == T0)
    assert np.all(np.isnan(versions["validityEndMjdTai"]))


def test_known_object_carries_its_all_time_count_and_first_detection():
    new = _sources([7, 7], T0, 2, 200)
    prev = _previous([7], [T0 - 1], [41], [T0 - 900])  # its history is older than 12 months
    versions = next_object_versions(new, prev, Table(), Table(), Table(), validity_start_mjd_tai=T0)
    assert versions["nDiaSources"][0] == 43  # 41 before + 2 now, though only 2 are read back
    assert versions["firstDiaSourceMjdTai"][0] == T0 - 900
    assert versions[PREV_VALIDITY_COLUMN][0] == T0 - 1


def test_version_committed_out_of_time_order_starts_just_after_the_one_it_replaces():
    new = _sources([7], T0, 2, 200)
    prev = _previous([7], [T0 + 0.5], [3], [T0 - 10])  # a later visit was committed first
    versions = next_object_versions(new, prev, Table(), Table(), Table(), validity_start_mjd_tai=T0)
    assert versions["validityStartMjdTai"][0] == T0 + 0.5 + VERSION_EPSILON_DAYS


def test_precovery_refresh_adds_forced_fluxes_and_keeps_the_counts():
    history = _sources([7, 7], T0, 1, 100)
    history["midpointMjdTai"] = [T0, T0 + 1]
    forced = make_forced([7, 7, 7], [150.0] * 3, [2.0] * 3, 9, 0, T0 - 5)
    forced["psfFlux"] = [10.0, 20.0, 30.0]
    forced["band"] = ["r"] * 3
    prev = _previous([7], [T0 + 1], [2], [T0])
    run_time = T0 + 1.5
    versions = next_object_versions(Table(), prev, history, forced, Table(),
                                    validity_start_mjd_tai=run_time)
    assert versions["nDiaSources"][0] == 2 and versions["firstDiaSourceMjdTai"][0] == T0
    assert versions["validityStartMjdTai"][0] == run_time
    assert versions["r_fpFluxMean"][0] == pytest.approx(20.0)


def test_solar_system_sources_make_no_dia_object_version():
    new = _sources([0, 5], T0, 1, 100)  # the first belongs to an asteroid
    versions = next_object_versions(new, Table(), Table(), Table(), Table(),
                                    validity_start_mjd_tai=T0)
    assert list(versions["diaObjectId"]) == [5]


def test_nothing_to_summarise_gives_no_versions():
    assert len(next_object_versions(Table(), Table(), Table(), Table(), Table(),
                                    validity_start_mjd_tai=T0)) == 0

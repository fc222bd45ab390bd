"""Daytime precovery planning: only cached exposures of the last 30 days, before discovery.

Uses the Level 1 database on moto's server and the image-cache index; images expired from
the cache between planning and measuring are skipped, not failed.
"""

from __future__ import annotations

import numpy as np
import pytest

from alertprod.apdb import DynamoApdb
from alertprod.apdb.testing import make_ccd_writes, make_objects
from alertprod.aws import MemoryBlobStore
from alertprod.local.dynamodb import create_level1_table, moto_dynamodb
from alertprod.precovery import plan_precovery, run_unit

pytestmark = pytest.mark.integration

RA, DEC = 150.0, 2.0
T_NIGHT = 60100.2  # discovery visit (TAI MJD)
T_PLAN = 60100.65  # the next day's schedule


def _square(ra, dec, half_deg=0.05):
    c = np.cos(np.deg2rad(dec))
    return np.array([[ra - half_deg / c, dec - half_deg], [ra + half_deg / c, dec - half_deg],
                     [ra + half_deg / c, dec + half_deg], [ra - half_deg / c, dec + half_deg]])


@pytest.fixture(scope="module")
def apdb():
    with moto_dynamodb() as client:
        db = DynamoApdb(client, create_level1_table(client))
        objects = make_objects(3, RA, DEC, 0.01, seed=1, first_id=500)
        db.store_ccd(make_ccd_writes(objects, 900, 0, T_NIGHT, new=True), lease=None)
        # exposures covering the objects: 45 and 31 days before (out of the cache), 29 and
        # 2 days before, the discovery visit itself, and one that misses them
        for visit, dt in ((101, -45.0), (102, -31.0), (103, -29.0), (104, -2.0), (900, 0.0)):
            db.index_exposure(visit, 0, "r", T_NIGHT + dt, _square(RA, DEC), ["science", "difference"])
        db.index_exposure(105, 0, "r", T_NIGHT - 1.0, _square(RA + 1.0, DEC), ["difference"])
        yield db


def test_only_exposures_of_the_last_30_days_before_discovery_are_planned(apdb):
    plan = plan_precovery(apdb, now_mjd_tai=T_PLAN)
    assert plan.new_objects == 3
    visits = sorted({u.visit for u in plan.units})
    assert visits == [103, 104]  # not 101/102 (older than the cache), 900 (discovery), 105 (elsewhere)
    for u in plan.units:
        assert sorted(u.dia_object_ids) == [500, 501, 502]


def test_planning_twice_gives_the_same_units(apdb):
    a = plan_precovery(apdb, now_mjd_tai=T_PLAN)
    b = plan_precovery(apdb, now_mjd_tai=T_PLAN)
    assert a.units == b.units


def test_an_image_expired_from_the_cache_is_skipped_not_failed(apdb):
    unit = plan_precovery(apdb, now_mjd_tai=T_PLAN).units[0]
    result = run_unit(unit, apdb=apdb, images=MemoryBlobStore(), processed_mjd_tai=T_PLAN)
    assert result.skipped_expired and result.measured == 0

"""Daily precovery of a CCD stored after its day's run: precovered once, by the next run.

The planner claims what it plans in the new-object index (``Apdb.claim_new_dia_objects``), so a
run plans the day's new objects and any earlier ones (within the cache's 30 days) that no run
planned yet. The scene's cached exposure (visit 42, ``stores`` in conftest) covers two new
objects discovered the next night; one of their CCDs is stored after that day's run.
"""

from __future__ import annotations

import numpy as np
import pytest

from alertprod.apdb import memory_level1
from alertprod.apdb.testing import make_ccd_writes, make_objects
from alertprod.precovery import handle_message, plan_and_enqueue, run_day_inline

NIGHT = 60501.3  # the discovery night (the cached exposure is at 60500.2)
DAY_1, DAY_2 = 60501.65, 60502.65  # the schedules after it


class _Queue:
    """The precovery queue as the worker sees it: messages in order, each received once."""

    def __init__(self):
        self.bodies: list[str] = []

    def send_batch(self, bodies):
        self.bodies.extend(bodies)


@pytest.fixture
def scene(stores):
    images, _, ra, dec = stores
    level1 = memory_level1()
    margin = 0.002
    lo_ra, hi_ra, lo_dec, hi_dec = ra.min() - margin, ra.max() + margin, dec.min() - margin, \
        dec.max() + margin
    corners = np.array([[lo_ra, lo_dec], [hi_ra, lo_dec], [hi_ra, hi_dec], [lo_ra, hi_dec]])
    level1.apdb.index_exposure(42, 3, "r", 60500.2, corners, ["science", "difference"])
    objs = make_objects(2, float(ra[0]), float(dec[0]), 0.0, first_id=700)
    objs["ra"], objs["dec"] = ra[:2], dec[:2]
    on_time = make_ccd_writes(objs[:1], 900, 0, NIGHT, new=True)
    late = make_ccd_writes(objs[1:], 900, 1, NIGHT + 0.01, new=True)
    return level1, images, on_time, late


def _precovery(level1):
    forced = level1.apdb.export()["DiaForcedSource"]
    pre = forced[np.asarray(forced["isPrecovery"], bool)]
    return sorted(zip(pre["diaObjectId"].tolist(), pre["visit"].tolist(), strict=True))


def _version_starts(level1, ids):
    got = level1.apdb.get_dia_objects_by_id(ids)
    return dict(zip(got["diaObjectId"].tolist(), got["validityStartMjdTai"].tolist(), strict=True))


def test_ccd_stored_after_its_days_run_is_precovered_once_by_the_next_run(scene):
    level1, images, on_time, late = scene
    level1.apdb.store_ccd(on_time, lease=None)
    first = run_day_inline(level1, images, now_mjd_tai=DAY_1)
    level1.apdb.store_ccd(late, lease=None)  # a delayed upload: its day's run is over
    assert (first.new_objects, first.measured, first.finalized) == (1, 1, 1)
    second = run_day_inline(level1, images, now_mjd_tai=DAY_2)
    assert (second.new_objects, second.measured, second.finalized) == (1, 1, 1)
    assert _precovery(level1) == [(700, 42), (701, 42)]
    assert _version_starts(level1, [700, 701]) == {700: DAY_1, 701: DAY_2}
    third = run_day_inline(level1, images, now_mjd_tai=DAY_2 + 1.0)
    assert (third.new_objects, third.measured) == (0, 0)  # nothing left to precover


def test_rerun_of_a_day_plans_what_it_planned_and_adds_nothing(scene):
    level1, images, on_time, late = scene
    level1.apdb.store_ccd(on_time, lease=None)
    level1.apdb.store_ccd(late, lease=None)
    run_day_inline(level1, images, now_mjd_tai=DAY_1)
    before = level1.apdb.export()
    again = run_day_inline(level1, images, now_mjd_tai=DAY_1)  # a duplicated schedule
    assert (again.new_objects, again.measured, again.finalized) == (2, 2, 0)
    later = run_day_inline(level1, images, now_mjd_tai=DAY_1 + 1 / 1440)  # an operator, a minute on
    assert (later.new_objects, later.units) == (0, 0)
    after = level1.apdb.export()
    assert len(after["DiaForcedSource"]) == len(before["DiaForcedSource"])
    assert len(after["DiaObject"]) == len(before["DiaObject"])


def test_queued_service_precovers_a_late_ccd_at_the_next_run(scene):
    level1, images, on_time, late = scene
    queue = _Queue()

    def run(now):
        report = plan_and_enqueue(level1, queue, now_mjd_tai=now)
        while queue.bodies:
            handle_message(queue.bodies.pop(0), level1=level1, images=images, queue=queue,
                           processed_mjd_tai=now)
        return report

    level1.apdb.store_ccd(on_time, lease=None)
    assert run(DAY_1).new_objects == 1
    level1.apdb.store_ccd(late, lease=None)
    assert (run(DAY_1).new_objects, run(DAY_1).units) == (0, 0)  # a finished run is not redone
    report = run(DAY_2)
    assert (report.new_objects, report.units) == (1, 1)
    assert list(level1.apdb.get_precovery_run(report.run_id).object_ids) == [701]
    assert _precovery(level1) == [(700, 42), (701, 42)]
    assert _version_starts(level1, [700, 701]) == {700: DAY_1, 701: DAY_2}

"""The write-ahead record of a CCD (``alertprod.pipeline.write_ahead``): what a retry replays."""

from __future__ import annotations

import pytest

from alertprod.aws import MemoryBlobStore
from alertprod.errors import NotFoundError
from alertprod.pipeline.compute import compute_ccd
from alertprod.pipeline.config import PipelineConfig
from alertprod.pipeline.orbit_cache import OrbitCache
from alertprod.pipeline.timing import StageTimer
from alertprod.pipeline.write_ahead import (
    StagedPlan,
    alerts_key,
    load_alerts,
    load_plan,
    plan_key,
    stage_plan,
)

pytestmark = pytest.mark.unit

T1, T2 = 60000.10, 60000.11
TABLES = ("dia_sources", "dia_forced_sources", "dia_objects")


def _compute(deployment, upload):
    apdb = deployment.level1.apdb
    return compute_ccd(upload, apdb, OrbitCache(apdb), PipelineConfig(), StageTimer())


@pytest.fixture(scope="module")
def plan(sky, sky_sources, new_deployment) -> StagedPlan:
    """The plan of a second visit: updated and new objects, a forced source, four alerts."""
    deployment = new_deployment()
    first = sky_sources(4, seed=21)
    c1 = _compute(deployment, deployment.validated(sky.upload(1, 0, T1, first)))
    deployment.level1.apdb.store_ccd(c1.writes, lease=None)
    second = [(ra + 0.1 / 3600, dec, f, i != 3) for i, (ra, dec, f, _) in enumerate(first)]
    second.append((*sky.radec(0, 30.0, 170.0), 5000.0, True))
    c2 = _compute(deployment, deployment.validated(sky.upload(2, 0, T2, second)))
    assert c2.counts["forcedSources"] == 1 and c2.counts["updatedDiaObjects"] == 3
    return StagedPlan(c2.writes, c2.alerts)


@pytest.fixture(scope="module")
def staged(plan) -> MemoryBlobStore:
    store = MemoryBlobStore("alerts")
    stage_plan(store, plan)
    return store


def test_staged_plan_loads_back_with_the_same_rows_and_alert_packets(plan, staged,
                                                                     assert_same_tables):
    loaded = load_plan(staged, 2, 0)
    w, back = plan.writes, loaded.writes
    assert (back.visit, back.detector, back.visit_time_mjd_tai) == (w.visit, w.detector,
                                                                    w.visit_time_mjd_tai)
    for name in TABLES:
        assert len(getattr(w, name)) > 0, name
        assert_same_tables(getattr(w, name), getattr(back, name), name)
    assert [(a.alert_id, a.archive_key, a.packet) for a in loaded.alerts] == \
        [(a.alert_id, a.archive_key, a.packet) for a in plan.alerts]
    assert load_alerts(staged, 2, 0) == loaded.alerts


def test_staged_alerts_keep_their_message_attributes(plan, staged):
    loaded = load_alerts(staged, 2, 0)
    assert [a.attributes for a in loaded] == [a.attributes for a in plan.alerts]


def test_alerts_are_staged_before_the_writes_that_complete_a_plan(plan):
    class RecordingStore(MemoryBlobStore):
        def __init__(self):
            super().__init__("alerts")
            self.order = []

        def put(self, key, data, **kwargs):
            self.order.append(key)
            super().put(key, data, **kwargs)

    store = RecordingStore()
    stage_plan(store, plan)
    assert store.order == [alerts_key(2, 0), plan_key(2, 0)]
    assert plan_key(2, 0) == "staging/00000002/000.writes.fits"  # under the expiring prefix


def test_a_ccd_that_staged_nothing_has_no_plan_to_replay():
    with pytest.raises(NotFoundError):
        load_plan(MemoryBlobStore(), 2, 0)

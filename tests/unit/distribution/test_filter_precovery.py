"""A filter orders precovery for what it matches: owner's jobs, a daily cap, nothing twice.

The jobs are submitted to the precovery job service itself (memory store and queues).
"""

from __future__ import annotations

import logging

import pytest
from distribution_harness import add_filter, harness, make_alerts, messages

from alertprod.distribution.precovery_orders import PrecoveryOrders, precovery_job_body
from alertprod.distribution.records import utc_day
from alertprod.distribution.wiring import job_service_orderer
from alertprod.precovery.jobservice import (
    JobContext,
    JobServiceSettings,
    MemoryJobStore,
    MemoryQueue,
    list_jobs,
)

QUEUE = "https://sqs.us-east-1.amazonaws.com/210987654321/alice-alerts"
SETTING = {"enabled": True, "daily_cap": 2, "lookback_days": 100.0,
           "options": {"stamps": False, "images": "nightly"}}


def _job_context(h, **settings) -> JobContext:
    # submission uses the store, the job queue and the settings; the workers' resources stay unset
    return JobContext(store=MemoryJobStore(), apdb=None, bucket=None, images=None, archive=None,
                      job_queue=MemoryQueue(), tick_queue=None, unit_queue=None,
                      settings=JobServiceSettings(**settings), clock=h.clock)


@pytest.fixture
def p():
    h = harness()
    jobs = _job_context(h)
    h.service.precovery = PrecoveryOrders(h.store, job_service_orderer(jobs))
    add_filter(h.store, "f-pre", "alice", "diaSource.snr > 0", [{"kind": "sqs", "queue_url": QUEUE}])
    f = h.store.get_filter("f-pre")
    h.store.update_filter(f.replace(precovery=SETTING), expected_updated_unix=f.updated_unix)
    return h, jobs


def _today(h):
    day = utc_day(h.clock())
    return h.store.get_counts("f-pre", [day]).get(day, {})


def test_matches_order_the_owners_jobs_up_to_the_daily_cap(p):
    h, jobs = p
    alerts = make_alerts(5)
    h.service.process_batch(messages(alerts))
    mine = list_jobs(jobs, "alice")
    assert len(mine) == 2 and list_jobs(jobs, "bob") == []
    ordered = {(j.job.parameters["target"]["ra"], j.job.parameters["target"]["dec"]) for j in mine}
    positions = {(a["diaSource"]["ra"] % 360, a["diaSource"]["dec"]) for a in alerts}
    assert ordered <= positions
    for j in mine:
        mjd_max = j.job.parameters["options"]["mjd_max"]
        assert j.job.parameters["options"]["mjd_min"] == pytest.approx(mjd_max - 100.0)
    counts = _today(h)
    assert (counts["precovery_ordered"], counts["precovery_capped"]) == (2, 3)
    # every match is still delivered: the cap limits precovery, not delivery
    assert len(h.sqs.bodies(QUEUE)) == 5


def test_the_cap_resets_the_next_utc_day(p):
    h, jobs = p
    h.service.process_batch(messages(make_alerts(3)))
    h.clock.t += 86400.0
    h.service.process_batch(messages(make_alerts(3, seed0=10)))
    assert len(list_jobs(jobs, "alice")) == 4
    assert _today(h)["precovery_ordered"] == 2


def test_a_redelivered_batch_orders_nothing_twice(p):
    h, jobs = p
    batch = messages(make_alerts(4))
    h.service.process_batch(batch)
    before = sorted(j.job_id for j in list_jobs(jobs, "alice"))
    h.service.process_batch(batch)
    h.clock.t += 86400.0  # also on a later day: a capped alert stays capped, an ordered one ordered
    h.service.process_batch(batch)
    assert sorted(j.job_id for j in list_jobs(jobs, "alice")) == before and len(before) == 2
    day0 = utc_day(h.clock() - 86400.0)
    counts = h.store.get_counts("f-pre", [day0])[day0]
    assert (counts["precovery_ordered"], counts["precovery_capped"]) == (2, 2)
    assert "precovery_ordered" not in _today(h)


def test_an_order_the_job_service_refuses_is_recorded_noticed_and_retried_on_redelivery(p):
    h, _ = p
    jobs = _job_context(h, max_submissions_per_hour=1)
    h.service.precovery = PrecoveryOrders(h.store, job_service_orderer(jobs))
    alerts = make_alerts(2)
    h.service.process_batch(messages(alerts))
    assert len(list_jobs(jobs, "alice")) == 1
    assert _today(h)["precovery_failed"] == 1
    (notice,) = [n for n in h.store.get_filter("f-pre").notices if n["kind"] == "precovery_failed"]
    assert "submissions this hour" in notice["message"]
    h.clock.t += 3600.0  # the next hour: the quota allows one more, and the failed order is retried
    h.service.process_batch(messages(alerts))
    assert len(list_jobs(jobs, "alice")) == 2
    assert _today(h)["precovery_ordered"] == 2


def test_a_filter_without_the_setting_orders_nothing(p):
    h, jobs = p
    f = h.store.get_filter("f-pre")
    h.store.update_filter(f.replace(precovery={**SETTING, "enabled": False}, updated_unix=f.updated_unix + 1),
                          expected_updated_unix=f.updated_unix)
    h.service.invalidate()
    h.service.process_batch(messages(make_alerts(3)))
    assert list_jobs(jobs, "alice") == [] and "precovery_ordered" not in _today(h)


def test_without_a_job_service_ordering_is_disabled_with_the_reason_logged(p, caplog):
    h, _ = p
    h.service.precovery = PrecoveryOrders(h.store, None, disabled_reason="no job queue here")
    with caplog.at_level(logging.WARNING):
        report = h.service.process_batch(messages(make_alerts(3)))
    assert report.delivered == 3
    assert [r.getMessage() for r in caplog.records if "precovery" in r.getMessage()] == [
        "filter f-pre asks for precovery, not ordered: no job queue here"]


def test_solar_system_alerts_and_alerts_without_a_position_are_not_ordered():
    alert = make_alerts(1)[0]
    assert precovery_job_body(alert, SETTING)["target"]["kind"] == "position"
    moving = {**alert, "diaSource": {**alert["diaSource"], "ssObjectId": 42}}
    assert precovery_job_body(moving, SETTING) is None
    nowhere = {**alert, "diaSource": {**alert["diaSource"], "ra": None}}
    assert precovery_job_body(nowhere, SETTING) is None

"""A job's way through plan, fair-share dispatch, units and assembly, on memory backends."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest
from conftest import EPOCH_MJD, NOW, Clock, batch_body, make_context, scene_apdb
from distribution_harness import WebhookReceiver

from alertprod.delivery.webhook import WebhookPolicy, verify_signature
from alertprod.errors import NotFoundError
from alertprod.precovery.jobservice import (
    JobServiceSettings,
    QuotaError,
    abort_job,
    delete_job,
    dispatch,
    job_document,
    read_result,
    submit_job,
    wait_job,
)
from alertprod.precovery.jobservice.handlers import drain, handle_job_message, handle_unit_message
from alertprod.precovery.jobservice.messages import job_message, parse_job_message

pytestmark = pytest.mark.unit


def _rows(ctx, owner, job_id):
    return json.loads(read_result(ctx, owner, job_id, "json")[0])["rows"]


def _plan_all(ctx):
    """Admit and plan every submitted job (each plan as the dispatcher would release it), no unit released."""
    while (body := ctx.job_queue.pop()) is not None:
        handle_job_message(ctx, body)
        msg = parse_job_message(body)
        if msg.action == "admit":
            handle_job_message(ctx, job_message("plan", msg.owner, msg.job_id))


def test_a_unit_delivered_twice_gives_no_duplicate_rows(stores):
    ctx = make_context(stores, apdb=scene_apdb(stores, cached=True, visits=[(42, EPOCH_MJD)]))
    record, _ = submit_job(ctx, "alice", batch_body(stores))
    _plan_all(ctx)
    dispatch(ctx)
    unit = ctx.unit_queue.pop()
    ctx.unit_queue.send_batch([unit, unit])  # SQS's at-least-once: the same unit twice
    drain(ctx)
    rows = _rows(ctx, "alice", record.job_id)
    assert sorted(r["target"] for r in rows) == [0, 1, 2]
    assert job_document(ctx, ctx.store.get("alice", record.job_id))["units"]["done"] == 1


def test_cached_and_recreated_epochs_are_both_measured_and_flagged(stores, true_fluxes):
    # visit 42 is 14 days old: cached with cache_days=30, re-created with cache_days=5
    for cache_days, recreated in ((30.0, False), (5.0, True)):
        ctx = make_context(stores, settings=JobServiceSettings(cache_days=cache_days))
        record, _ = submit_job(ctx, "alice", batch_body(stores))
        drain(ctx)
        rows = _rows(ctx, "alice", record.job_id)
        assert [r["recreated"] for r in rows] == [recreated] * 3
        pulls = (np.array([r["psfFlux"] for r in rows]) - true_fluxes) / np.array([r["psfFluxErr"] for r in rows])
        assert np.all(np.abs(pulls) < 4)
        assert ctx.store.unit_costs() != type(ctx.store.unit_costs())()  # measured durations fed in


def test_ten_light_users_are_served_while_a_heavy_users_queue_drains(stores):
    visits = [(100 + k, EPOCH_MJD - k) for k in range(4)]  # 4 cached units per job
    clock = Clock(NOW.timestamp())
    ctx = make_context(stores, apdb=scene_apdb(stores, cached=True, visits=visits), clock=clock,
                       settings=JobServiceSettings(max_units_in_flight=8, max_jobs_in_flight_per_user=50))
    heavy = []
    for _ in range(10):
        heavy.append(submit_job(ctx, "heavy", batch_body(stores))[0].job_id)
        clock.t += 1
    for k in range(10):
        submit_job(ctx, f"light{k}", batch_body(stores))
    _plan_all(ctx)
    released = []  # (owner, job) in release order; popping empties the in-flight window
    while True:
        dispatch(ctx)
        batch = []
        while (body := ctx.unit_queue.pop()) is not None:
            batch.append(json.loads(body))
        if not batch:
            break
        released += [(m["owner"], m["jobId"]) for m in batch]
    assert len(released) == 4 * 20 and len(set(map(tuple, released))) == 20
    last_light = max(i for i, (owner, _) in enumerate(released) if owner != "heavy")
    heavy_before = sum(owner == "heavy" for owner, _ in released[:last_light])
    # every light job is out after at most 3 DRR rounds of the heavy user (5 units per round);
    # first come, first served would have released all 40 heavy units first
    assert heavy_before <= 15
    assert released[-1][1] == heavy[-1]


def test_the_eta_of_a_light_users_job_is_earlier_than_a_heavy_users_last(stores):
    visits = [(100 + k, EPOCH_MJD - k) for k in range(6)]
    clock = Clock(NOW.timestamp())
    ctx = make_context(stores, apdb=scene_apdb(stores, cached=True, visits=visits), clock=clock,
                       settings=JobServiceSettings(max_units_in_flight=2, workers=2))
    heavy = []
    for _ in range(5):
        heavy.append(submit_job(ctx, "heavy", batch_body(stores))[0].job_id)
        clock.t += 1
    light = submit_job(ctx, "light", batch_body(stores))[0].job_id
    _plan_all(ctx)
    dispatch(ctx)
    docs = {j: job_document(ctx, ctx.store.get(o, j)) for o, j in [("heavy", h) for h in heavy] + [("light", light)]}
    assert docs[light]["etaSeconds"] < docs[heavy[-1]]["etaSeconds"]
    assert docs[light]["queuePosition"] < docs[heavy[-1]]["queuePosition"]
    assert all(d["etaAtSubmission"] is not None for d in docs.values())


def test_an_aborted_jobs_released_units_are_skipped(stores):
    ctx = make_context(stores)
    record, _ = submit_job(ctx, "alice", batch_body(stores))
    _plan_all(ctx)
    dispatch(ctx)
    assert ctx.unit_queue.approximate_depth() == 1
    assert abort_job(ctx, "alice", record.job_id).job.phase == "ABORTED"
    body = ctx.unit_queue.pop()
    assert handle_unit_message(ctx, body)["outcome"] == "skipped"
    drain(ctx)
    assert ctx.store.get("alice", record.job_id).job.phase == "ABORTED" and ctx.store.queued() == []
    assert not list(ctx.bucket.list(f"precovery-jobs/{record.job_id}/parts/"))
    with pytest.raises(NotFoundError, match="ABORTED"):
        read_result(ctx, "alice", record.job_id, "csv")


def test_a_deleted_job_leaves_nothing_behind(ctx, stores):
    record, _ = submit_job(ctx, "alice", batch_body(stores))
    drain(ctx)
    assert list(ctx.bucket.list(f"precovery-results/{record.job_id}/"))
    delete_job(ctx, "alice", record.job_id)
    assert ctx.store.get("alice", record.job_id) is None
    assert not list(ctx.bucket.list(f"precovery-results/{record.job_id}/"))
    assert not list(ctx.bucket.list(f"precovery-jobs/{record.job_id}/"))


def test_wait_blocks_up_to_the_cap_while_not_final_and_returns_at_once_when_final(ctx, stores):
    record, _ = submit_job(ctx, "alice", batch_body(stores))
    t0 = ctx.clock()
    assert wait_job(ctx, "alice", record.job_id, 3600).job.phase == "PENDING"
    assert ctx.clock() - t0 == pytest.approx(ctx.settings.max_wait_s)
    drain(ctx)
    t1 = ctx.clock()
    assert wait_job(ctx, "alice", record.job_id, 20).job.phase == "COMPLETED" and ctx.clock() == t1


def test_a_unit_failing_on_its_last_attempt_becomes_failed_rows_not_a_hung_job(stores):
    # visit 99 is indexed in the archive but its images are not there: re-creation fails
    ctx = make_context(stores, apdb=scene_apdb(stores, cached=False, visits=[(99, EPOCH_MJD)]))
    record, _ = submit_job(ctx, "alice", batch_body(stores))
    _plan_all(ctx)
    dispatch(ctx)
    body = ctx.unit_queue.pop()
    with pytest.raises(NotFoundError):
        handle_unit_message(ctx, body, attempt=1)  # the queue redelivers it
    assert handle_unit_message(ctx, body, attempt=3)["outcome"] == "failed"
    drain(ctx)
    assert ctx.store.get("alice", record.job_id).job.phase == "COMPLETED"
    rows = _rows(ctx, "alice", record.job_id)
    assert [r["status"] for r in rows] == ["failed"] * 3 and all(r["psfFlux"] is None for r in rows)


def test_a_target_no_image_covers_completes_with_an_empty_light_curve(ctx):
    record, _ = submit_job(ctx, "alice", {"target": {"kind": "position", "ra": 10.0, "dec": -40.0}})
    drain(ctx)
    assert ctx.store.get("alice", record.job_id).job.phase == "COMPLETED"
    assert _rows(ctx, "alice", record.job_id) == []


def test_a_region_the_planner_refuses_ends_in_error_with_the_numbers_and_frees_its_slot(stores):
    _, _, ra, dec = stores
    ctx = make_context(stores, settings=JobServiceSettings(max_jobs_in_flight_per_user=1))
    # one position on the image, one 0.1 deg away on none: twice the images of their centroid
    region = {"kind": "positions", "positions": [{"ra": float(ra[0]), "dec": float(dec[0])},
                                                 {"ra": float(ra[0]) + 0.1, "dec": float(dec[0])}]}
    record, _ = submit_job(ctx, "alice", {"target": region, "options": {"mjd_min": 60000.0}})
    drain(ctx)
    failed = ctx.store.get("alice", record.job_id)
    assert failed.job.phase == "ERROR" and any(ch.isdigit() for ch in failed.job.error)
    assert job_document(ctx, failed)["errors"] == [failed.job.error]
    submit_job(ctx, "alice", batch_body(stores))  # no QuotaError: an ended job is not in flight


def test_over_the_hourly_submissions_is_a_quota_error_until_the_hour_ends(stores):
    clock = Clock(NOW.timestamp() + 59 * 60 + 30)  # 12:59:30
    ctx = make_context(stores, clock=clock, settings=JobServiceSettings(max_submissions_per_hour=2))
    for _ in range(2):
        record, _ = submit_job(ctx, "alice", batch_body(stores))
        abort_job(ctx, "alice", record.job_id)
    with pytest.raises(QuotaError, match="this hour") as err:
        submit_job(ctx, "alice", batch_body(stores))
    assert err.value.retry_after_s == 30
    clock.t += 31
    submit_job(ctx, "alice", batch_body(stores))


def test_a_repeated_submission_with_one_idempotency_key_is_one_job(ctx, stores):
    a, _ = submit_job(ctx, "alice", batch_body(stores), idempotency_key="order-7")
    b, _ = submit_job(ctx, "alice", batch_body(stores), idempotency_key="order-7")
    c, _ = submit_job(ctx, "bob", batch_body(stores), idempotency_key="order-7")
    assert a.job_id == b.job_id != c.job_id and ctx.job_queue.approximate_depth() == 2


def test_completion_is_posted_to_the_webhook_signed_with_the_secret_shown_once(stores):
    receiver = WebhookReceiver()
    try:
        ctx = make_context(stores)
        ctx.settings = replace(ctx.settings, webhook=WebhookPolicy(allow_private=True, require_https=False))
        body = {**batch_body(stores), "notify": {"webhook": receiver.url}}
        record, secret = submit_job(ctx, "alice", body)
        assert secret and "secret" not in json.dumps(record.job.parameters)
        drain(ctx)
    finally:
        receiver.close()
    (headers, payload), = receiver.requests
    headers = {k.lower(): v for k, v in headers.items()}
    assert verify_signature(secret, headers["x-alertprod-timestamp"], payload,
                            headers["x-alertprod-signature"])
    doc = json.loads(payload)
    assert doc["event"] == "precovery.job.finished" and doc["job"]["phase"] == "COMPLETED"


def test_a_dispatcher_crashing_between_send_and_save_resends_and_rows_stay_unique(ctx, stores):
    record, _ = submit_job(ctx, "alice", batch_body(stores))
    _plan_all(ctx)
    save = ctx.store.save

    def crash_on_cursor(r):  # the dispatcher's process dies after sending, before its cursor write
        if r.dispatched:
            raise RuntimeError("killed")
        return save(r)

    ctx.store.save = crash_on_cursor
    with pytest.raises(RuntimeError):
        dispatch(ctx)
    ctx.store.save = save
    dispatch(ctx)  # the next tick sends the unit again
    assert ctx.unit_queue.approximate_depth() == 2
    drain(ctx)
    assert sorted(r["target"] for r in _rows(ctx, "alice", record.job_id)) == [0, 1, 2]


def test_a_redelivered_unit_of_a_complete_run_asks_for_assembly_again_and_the_job_completes(stores):
    ctx = make_context(stores)
    record, _ = submit_job(ctx, "alice", batch_body(stores))
    _plan_all(ctx)
    dispatch(ctx)
    body = ctx.unit_queue.pop()
    handle_unit_message(ctx, body)  # counts the run's last unit and asks for assembly ...
    assert json.loads(ctx.job_queue.pop())["action"] == "assemble"  # ... which is lost: the worker died
    drain(ctx)
    assert ctx.store.get("alice", record.job_id).job.phase == "EXECUTING"  # nothing else asks
    handle_unit_message(ctx, body, attempt=2)  # SQS redelivers the unit whose handler failed
    drain(ctx)
    assert ctx.store.get("alice", record.job_id).job.phase == "COMPLETED"
    assert sorted(r["target"] for r in _rows(ctx, "alice", record.job_id)) == [0, 1, 2]


def test_a_job_whose_assemble_message_was_lost_is_assembled_by_the_dispatchers_sweep(stores):
    clock = Clock(NOW.timestamp())
    ctx = make_context(stores, clock=clock, settings=JobServiceSettings(sweep_interval_s=300.0))
    record, _ = submit_job(ctx, "alice", batch_body(stores))
    _plan_all(ctx)
    dispatch(ctx)
    handle_unit_message(ctx, ctx.unit_queue.pop())  # the run's last unit asks for assembly ...
    assert json.loads(ctx.job_queue.pop())["action"] == "assemble"  # ... dead-lettered: lost
    dispatch(ctx)  # the dispatch that released the unit swept a moment ago: not due
    clock.t += 200.0
    dispatch(ctx)
    assert ctx.job_queue.pop() is None and ctx.store.get("alice", record.job_id).job.phase == "EXECUTING"
    clock.t += 100.0  # 300 s since the last sweep
    dispatch(ctx)
    body = ctx.job_queue.pop()
    assert json.loads(body)["action"] == "assemble" and ctx.job_queue.pop() is None
    handle_job_message(ctx, body)
    assert ctx.store.get("alice", record.job_id).job.phase == "COMPLETED"
    assert sorted(r["target"] for r in _rows(ctx, "alice", record.job_id)) == [0, 1, 2]
    clock.t += 400.0
    dispatch(ctx)  # a final job leaves the queue: nothing more to sweep
    assert ctx.job_queue.pop() is None and ctx.store.queued() == []


def test_a_second_assemble_of_a_completed_job_changes_nothing(ctx, stores):
    record, _ = submit_job(ctx, "alice", batch_body(stores))
    drain(ctx)
    done = ctx.store.get("alice", record.job_id)
    curve = read_result(ctx, "alice", record.job_id, "csv")[0]
    message = job_message("assemble", "alice", record.job_id)
    assert handle_job_message(ctx, message)["assembled"] == "COMPLETED"
    assert ctx.store.get("alice", record.job_id) == done  # not saved again, not notified again
    assert read_result(ctx, "alice", record.job_id, "csv")[0] == curve


def test_a_heavy_users_submissions_take_one_planning_slot_while_light_users_wait(stores):
    clock = Clock(NOW.timestamp())
    ctx = make_context(stores, clock=clock, settings=JobServiceSettings(max_plans_in_flight=4))
    for _ in range(10):
        submit_job(ctx, "heavy", batch_body(stores))
        clock.t += 1
    for k in range(3):
        submit_job(ctx, f"light{k}", batch_body(stores))
    while (body := ctx.job_queue.pop()) is not None:
        assert handle_job_message(ctx, body)["admitted"] == "PENDING"
    dispatch(ctx)
    plans = [json.loads(b) for b in iter(ctx.job_queue.pop, None)]
    # first come, first served would plan four of the heavy user's jobs first
    assert sorted(p["owner"] for p in plans) == ["heavy", "light0", "light1", "light2"]
    assert {p["action"] for p in plans} == {"plan"}
    dispatch(ctx)  # the slots are taken until those plans finish: nothing more
    assert ctx.job_queue.pop() is None
    for p in plans[:2]:
        handle_job_message(ctx, json.dumps(p))
    dispatch(ctx)
    more = list(iter(ctx.job_queue.pop, None))
    assert [json.loads(b)["owner"] for b in more] == ["heavy", "heavy"]
    for body in [json.dumps(p) for p in plans[2:]] + more:
        handle_job_message(ctx, body)
    drain(ctx)  # every job planned and run in the end, each once
    records = [r for u in ("heavy", "light0", "light1", "light2") for r in ctx.store.list_jobs(u)]
    assert len(records) == 13 and {r.job.phase for r in records} == {"COMPLETED"}


def test_a_released_plan_that_never_ran_is_released_again_after_its_slot_expires(stores):
    clock = Clock(NOW.timestamp())
    ctx = make_context(stores, clock=clock, settings=JobServiceSettings(max_plans_in_flight=1))
    record, _ = submit_job(ctx, "alice", batch_body(stores))
    handle_job_message(ctx, ctx.job_queue.pop())
    dispatch(ctx)
    assert json.loads(ctx.job_queue.pop())["action"] == "plan"  # lost (e.g. to the dead-letter queue)
    dispatch(ctx)
    assert ctx.job_queue.pop() is None
    clock.t += 3600
    dispatch(ctx)
    assert json.loads(ctx.job_queue.pop())["jobId"] == record.job_id


def test_the_eta_at_submission_covers_the_units_and_the_assembly(stores):
    visits = [(100 + k, EPOCH_MJD - k) for k in range(3)]  # 3 cached units
    ctx = make_context(stores, apdb=scene_apdb(stores, cached=True, visits=visits),
                       settings=JobServiceSettings(workers=1))
    for _ in range(20):  # measured: plans of 0.5 s, assemblies of 4 s
        ctx.store.observe_step("plan", 0.5)
        ctx.store.observe_step("assemble", 4.0)
    costs = ctx.store.unit_costs()
    assert costs.plan_s == pytest.approx(0.5, abs=0.1) and costs.assemble_s == pytest.approx(4.0, abs=0.4)
    record, _ = submit_job(ctx, "alice", batch_body(stores))
    _plan_all(ctx)
    eta_s = ctx.store.get("alice", record.job_id).eta_submitted.timestamp() - ctx.clock()
    assert eta_s == pytest.approx(3 * costs.cached_s + costs.assemble_s, abs=1.0)


def test_listing_many_jobs_reads_the_schedule_once(stores):
    from alertprod.precovery.jobservice import MemoryJobStore, job_documents

    class CountingStore(MemoryJobStore):
        reads = 0

        def get_schedule(self):
            CountingStore.reads += 1
            return super().get_schedule()

    ctx = make_context(stores, settings=JobServiceSettings(max_jobs_in_flight_per_user=50))
    ctx = replace(ctx, store=CountingStore())
    for _ in range(30):
        submit_job(ctx, "alice", batch_body(stores))
    _plan_all(ctx)
    dispatch(ctx)
    for schedule_kept in (True, False):  # also before the dispatcher kept any schedule
        if not schedule_kept:
            ctx.store._schedule = None
        CountingStore.reads = 0
        docs = job_documents(ctx, ctx.store.list_jobs("alice"))
        assert len(docs) == 30 and all(d["phase"] in ("QUEUED", "EXECUTING") for d in docs)
        assert CountingStore.reads == 1

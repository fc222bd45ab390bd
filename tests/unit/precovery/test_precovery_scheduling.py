"""Fair share (deficit round robin over users) and ETAs of precovery-service jobs."""

from __future__ import annotations

import pytest

from alertprod.errors import PrecoveryError
from alertprod.precovery.scheduling import QueuedJob, UnitCosts, dispatch_order, plan

pytestmark = pytest.mark.unit


def _job(job_id, user, t, n, seconds=1.0):
    return QueuedJob(job_id, user, t, [seconds] * n)


def test_light_users_are_not_starved_by_a_heavy_user_who_came_first():
    heavy = [_job(f"h{i}", "heavy", float(i), 100) for i in range(20)]  # 2,000 units, first
    light = [_job(f"l{u}", f"light{u}", 100.0 + u, 10) for u in range(10)]  # 10 users × 10 units
    plans = plan(heavy + light, workers=4, quantum_s=5.0)
    last_light = max(plans[j.job_id].finish_s for j in light)
    assert last_light < 0.1 * max(plans[j.job_id].finish_s for j in heavy)
    # first come, first served would have made them wait for all 2,000 heavy units
    assert last_light < 2000 / 4


def test_each_user_gets_an_equal_share_while_both_have_work():
    order = dispatch_order([_job("a", "u1", 0.0, 50), _job("b", "u2", 1.0, 50)], quantum_s=3.0)
    first_60 = [j for j, _ in order[:60]]
    assert abs(first_60.count("a") - first_60.count("b")) <= 3
    assert len(order) == 100


def test_a_user_runs_their_own_jobs_oldest_first():
    order = [j for j, _ in dispatch_order([_job("new", "u", 5.0, 3), _job("old", "u", 1.0, 3)])]
    assert order == ["old"] * 3 + ["new"] * 3


def test_expensive_units_carry_a_deficit_instead_of_jumping_the_queue():
    jobs = [QueuedJob("slow", "u1", 0.0, [8.0] * 4), _job("fast", "u2", 1.0, 40, seconds=1.0)]
    order = dispatch_order(jobs, quantum_s=4.0)
    slow_work = sum(s for j, s in order[:20] if j == "slow")
    fast_work = sum(s for j, s in order[:20] if j == "fast")
    assert abs(slow_work - fast_work) <= 8.0  # equal unit-seconds, not equal unit counts


def test_eta_is_the_queue_played_forward_with_busy_workers_and_positions():
    jobs = [_job("a", "u1", 0.0, 4, 2.0), _job("b", "u2", 1.0, 2, 2.0)]
    plans = plan(jobs, workers=2, busy_until_s=[3.0], quantum_s=2.0)
    # worker 0 free at 0, worker 1 at 3: a0@0-2(w0), b0@2-4(w0), a1@3-5(w1), b1@4-6, a2@5-7, a3@6-8
    assert plans["a"].start_s == 0.0 and plans["b"].start_s == 2.0
    assert plans["b"].finish_s == 6.0 and plans["a"].finish_s == 8.0
    assert (plans["a"].queue_position, plans["b"].queue_position) == (1, 2)


def test_unit_costs_follow_measurements_per_kind():
    costs = UnitCosts(cached_s=2.0, recreated_s=8.0, weight=0.5)
    costs.observe(4.0, recreated=False)
    costs.observe(20.0, recreated=True)
    assert (costs.cached_s, costs.recreated_s) == (3.0, 14.0)
    assert costs.job_unit_seconds(2, 1) == [3.0, 3.0, 14.0]
    with pytest.raises(PrecoveryError, match="duration"):
        costs.observe(float("nan"), recreated=False)
    with pytest.raises(PrecoveryError, match="workers"):
        plan([], workers=0)


def test_a_jobs_assembly_starts_after_its_last_unit_and_delays_the_next_job_on_one_worker():
    a = QueuedJob("a", "u1", 0.0, [2.0, 2.0], tail_s=3.0)
    b = QueuedJob("b", "u1", 1.0, [2.0], tail_s=3.0)
    plans = plan([a, b], workers=1, quantum_s=100.0)
    assert plans["a"].finish_s == pytest.approx(2 + 2 + 3)
    assert plans["b"].finish_s == pytest.approx(7 + 2 + 3)
    # with a worker free, the assembly still waits for the job's own last unit
    assert plan([QueuedJob("c", "u1", 0.0, [5.0], tail_s=1.0)], workers=4)["c"].finish_s == pytest.approx(6.0)


def test_plan_and_assembly_means_move_with_measurements_and_refuse_unknown_steps():
    costs = UnitCosts(weight=0.5)
    costs.observe_step("plan", 3.0)
    costs.observe_step("assemble", 5.0)
    assert (costs.plan_s, costs.assemble_s) == (2.0, 3.0)
    assert set(costs.means()) == {"cached_s", "recreated_s", "plan_s", "assemble_s"}
    with pytest.raises(PrecoveryError, match="step"):
        costs.observe_step("lunch", 1.0)

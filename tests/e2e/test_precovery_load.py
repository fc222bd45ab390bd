"""Load on the precovery service: many jobs in flight from ten users at once, on the embedded stack.

One heavy user submits its jobs, then nine light users theirs, concurrently, all through the
HTTP API with the Python client; the stack's functions run in one background thread (one
invocation at a time: the embedded stack is serial, so the deployment's
``PrecoveryUnitWorkers`` is set to what it really has). Each job is one position on
:mod:`precovery_scene`'s CCD, measured on one cached and one archived epoch (a re-created
difference). Shown:

- every job completes, none lost; its rows are exactly its planned units, no
  (target, visit, detector) twice — including a job whose unit worker died once after writing
  its part and before counting it (redelivered by SQS, measured again, counted once);
- fair share: every light user's jobs finish before the heavy user's queue drains;
- throughput in jobs per hour against DMS-REQ-0341's 10 per hour;
- the ETA given when each job was queued against its actual completion (p50/p90 error);
- the AWS requests per job, counted at the boto3 client of every function.

Sizes: CI runs 40 heavy jobs and one per light user (49 in flight, minutes on two cores); the
requirement's 240 in flight is ``ALERTPROD_LOAD_HEAVY_JOBS=150 ALERTPROD_LOAD_LIGHT_JOBS=10``
(about 5 minutes here; docs/precovery-service.md, "Load", gives both runs' figures).
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime

import numpy as np
import pytest
from precovery_scene import NPIX, TARGET, serve_precovery

from alertprod.precovery.client import FINAL_PHASES, PrecoveryClient

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.timeout(7200)]

N_HEAVY = int(os.environ.get("ALERTPROD_LOAD_HEAVY_JOBS", "40"))
N_LIGHT = int(os.environ.get("ALERTPROD_LOAD_LIGHT_JOBS", "1"))
LIGHT_USERS = tuple(f"light{i}" for i in range(1, 10))
USERS = ("heavy", *LIGHT_USERS)
#: Longest wait for every job to end [s]: generous, as the embedded stack runs one function at a
#: time on a shared machine (the figures printed are what was measured, whatever it took).
DEADLINE_S = 300.0 + 20.0 * (N_HEAVY + 9 * N_LIGHT)


def _t(text: str | None) -> float:
    return datetime.fromisoformat(str(text).replace("Z", "+00:00")).timestamp()


def _position(i: int) -> dict:
    """Distinct positions within a few arcseconds of the source, so rows tell jobs apart."""
    step = 0.5 / 3600.0
    return {"kind": "position", "ra": TARGET[0] + step * (i % 20), "dec": TARGET[1] + step * (i // 20)}


class AwsRequests:
    """Counts every AWS request the process makes (the functions run in it), by service and
    operation: botocore's client call is wrapped, the request still goes to moto."""

    def __init__(self) -> None:
        self.counts: Counter[tuple[str, str]] = Counter()
        self._lock = threading.Lock()

    def install(self, monkeypatch: pytest.MonkeyPatch) -> None:
        from botocore.client import BaseClient

        original = BaseClient._make_api_call
        counts, lock = self.counts, self._lock

        def counted(client, operation_name, api_params):
            with lock:
                counts[(client.meta.service_model.service_name, operation_name)] += 1
            return original(client, operation_name, api_params)

        monkeypatch.setattr(BaseClient, "_make_api_call", counted)


class DieOnceAfterWriting:
    """Kill the unit worker of one job once: its first unit raises after its part was written
    to the job bucket and before the fan-in counted it (as a crash or a timeout would)."""

    def __init__(self) -> None:
        self.job_id: str | None = None
        self.killed = 0
        self._lock = threading.Lock()

    def install(self, monkeypatch: pytest.MonkeyPatch) -> None:
        from alertprod.apdb import DynamoApdb

        original = DynamoApdb.complete_precovery_unit
        me = self

        def complete(apdb, run_id, unit_key):
            with me._lock:
                if me.job_id is not None and run_id.endswith(me.job_id) and me.killed == 0:
                    me.killed += 1
                    raise RuntimeError("unit worker killed after writing its part")
            return original(apdb, run_id, unit_key)

        monkeypatch.setattr(DynamoApdb, "complete_precovery_unit", complete)


@pytest.fixture(scope="module")
def service():
    limits = {"ALERTPROD_PRECOVERY_MAX_JOBS_IN_FLIGHT_PER_USER": str(N_HEAVY + N_LIGHT),
              "ALERTPROD_PRECOVERY_MAX_SUBMISSIONS_PER_HOUR": str(2 * (N_HEAVY + N_LIGHT))}
    with serve_precovery(USERS, n_cached=1, n_archived=1, environment=limits,
                         parameters={"PrecoveryUnitWorkers": 1, "PrecoveryUnitsInFlight": 4},
                         stack_name="pload") as svc:
        yield svc


def _submit_all(service, killer):
    """Heavy user's jobs first, then the light users' at once; returns {user: [job doc]}."""
    clients = {u: PrecoveryClient(service.url, service.tokens[u], max_retries=10) for u in USERS}
    submitted: dict[str, list[dict]] = {}
    submitted["heavy"] = [clients["heavy"].submit(_position(i)) for i in range(N_HEAVY)]
    with ThreadPoolExecutor(len(LIGHT_USERS)) as pool:
        light = pool.map(lambda u: [clients[u].submit(_position(200 + i)) for i in range(N_LIGHT)],
                         LIGHT_USERS)
        submitted.update(zip(LIGHT_USERS, light, strict=True))
    killer.job_id = submitted["light1"][0]["jobId"]  # its units are not released yet
    return clients, submitted


def _wait_all(clients, submitted):
    deadline = time.monotonic() + DEADLINE_S
    final: dict[str, dict] = {}
    want = {j["jobId"] for jobs in submitted.values() for j in jobs}
    while time.monotonic() < deadline and len(final) < len(want):
        for user, client in clients.items():
            if all(j["jobId"] in final for j in submitted[user]):
                continue
            for doc in client.list(limit=1000):  # the heavy user's 150 jobs: past one default page
                if doc["phase"] in FINAL_PHASES:
                    final[doc["jobId"]] = doc
        time.sleep(10.0)  # polling is API load too: keep it light
    return final


def test_jobs_from_ten_users_complete_once_each_fairly_and_measurably(service, monkeypatch):
    requests, killer = AwsRequests(), DieOnceAfterWriting()
    requests.install(monkeypatch)
    killer.install(monkeypatch)
    t0 = time.time()
    clients, submitted = _submit_all(service, killer)
    t_submitted = time.time() - t0
    final = _wait_all(clients, submitted)
    n_jobs = sum(len(v) for v in submitted.values())

    owner = {j["jobId"]: u for u, jobs in submitted.items() for j in jobs}
    created = {j: _t(d["creationTime"]) for j, d in final.items()}
    ended = {j: _t(d["endTime"]) for j, d in final.items() if d.get("endTime")}
    start = min(created.values())
    heavy_end = max((ended[j] for j in ended if owner[j] == "heavy"), default=np.inf)
    light_end = max((ended[j] for j in ended if owner[j] != "heavy"), default=np.inf)
    light_turnaround = [ended[j] - created[j] for j in ended if owner[j] != "heavy"]
    span_s = max(ended.values()) - start
    jobs_per_hour = len(ended) / span_s * 3600.0
    errors = np.asarray([abs(_t(d["etaAtSubmission"]) - ended[j]) / max(ended[j] - created[j], 1.0)
                         for j, d in final.items() if d.get("etaAtSubmission") and j in ended])

    by_service = Counter()
    for (svc, _op), n in requests.counts.items():
        by_service[svc] += n
    lam = service.stack.invocations
    gb_s = sum(i.duration_s * service.stack.lambdas.functions[i.function_id].memory_mb / 1024
               for i in lam)
    print(f"\nprecovery load: {n_jobs} jobs ({N_HEAVY} heavy + {len(LIGHT_USERS)}x{N_LIGHT} light), "
          f"2 units each ({NPIX}x{NPIX} CCD), submitted in {t_submitted:.1f} s")
    print(f"all done in {span_s:.0f} s: {jobs_per_hour:.0f} jobs/h (requirement 10/h; "
          f"{jobs_per_hour / 10:.0f}x)")
    print(f"fair share: light users done at {light_end - start:.0f} s, heavy queue drained at "
          f"{heavy_end - start:.0f} s; light turnaround p50 {np.median(light_turnaround):.0f} s, "
          f"max {max(light_turnaround):.0f} s")
    print(f"ETA error at submission: p50 {np.percentile(errors, 50):.0%}, p90 "
          f"{np.percentile(errors, 90):.0%} (goal p90 <= 50%), over {errors.size} jobs")
    print("AWS requests per job (all functions and the clients' polling): "
          + ", ".join(f"{s} {n / n_jobs:.1f}" for s, n in by_service.most_common()))
    seconds = Counter()
    for i in lam:
        seconds[i.function_id] += i.duration_s
    print("function seconds per job: " + ", ".join(f"{f} {v / n_jobs:.2f}" for f, v in seconds.most_common()))
    print(f"Lambda invocations per job {len(lam) / n_jobs:.1f}, GB-s per job {gb_s / n_jobs:.2f} "
          f"(embedded stack, this machine)")
    print("top operations: " + ", ".join(f"{s}.{o} {n / n_jobs:.1f}"
                                           for (s, o), n in requests.counts.most_common(8)))

    # all complete, none lost (the figures above are printed first, for a failing run too)
    assert len(final) == n_jobs, f"{n_jobs - len(final)} jobs not final after {DEADLINE_S} s"
    assert {d["phase"] for d in final.values()} == {"COMPLETED"}
    assert killer.killed == 1

    # none duplicated: rows are the planned units, each (target, visit, detector) once
    for job_id, doc in final.items():
        rows = clients[owner[job_id]].results(job_id)
        keys = [(r["target"], r["visit"], r["detector"]) for r in rows]
        assert len(rows) == doc["units"]["total"] == 2, (job_id, len(rows), doc["units"])
        assert len(set(keys)) == len(keys), job_id
        assert sorted(r["recreated"] for r in rows) == [False, True]

    # fair share: the light users' jobs are done before the heavy user's queue drains
    assert light_end < heavy_end
    # throughput against DMS-REQ-0341; every job was given an ETA when queued
    assert jobs_per_hour >= 10.0
    assert errors.size == n_jobs


def test_a_worker_killed_between_counting_its_last_unit_and_asking_for_assembly_still_completes(
        service, monkeypatch):
    """The unit worker that completes a job's fan-in dies at the AWS call that asks for the
    job's assembly; SQS redelivers its unit. The job must still complete, with no row twice."""
    from botocore.client import BaseClient

    client = PrecoveryClient(service.url, service.tokens["light2"])
    job = client.submit(_position(399))
    original, killed = BaseClient._make_api_call, []

    def call(aws, operation, params):
        text = json.dumps(params, default=str)
        if (operation.startswith("SendMessage") and '\\"assemble\\"' in text
                and job["jobId"] in text and not killed):
            killed.append(operation)
            raise RuntimeError("unit worker killed before asking for assembly")
        return original(aws, operation, params)

    monkeypatch.setattr(BaseClient, "_make_api_call", call)
    final = client.wait(job["jobId"], timeout_s=100)  # the unit's redelivery asks again
    assert killed, "the assembly request was never sent"
    assert final["phase"] == "COMPLETED", final
    rows = client.results(job["jobId"])
    assert len(rows) == final["units"]["total"]
    assert len({(r["target"], r["visit"], r["detector"]) for r in rows}) == len(rows)

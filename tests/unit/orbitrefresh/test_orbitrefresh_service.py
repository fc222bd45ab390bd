"""Planner → queue → workers → fan-in, on the in-memory Level 1 backend and a list for a queue.

Every delivery is a direct :func:`handle_message` call, so duplicates, crashes and reruns are
staged exactly; ``tests/integration/test_orbit_refresh.py`` runs the same on the embedded stack.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime

import numpy as np
import pytest
from refresh_orbits import NIGHT

from alertprod.apdb import MemoryApdb
from alertprod.aws import MemoryBlobStore
from alertprod.orbitrefresh import (
    RefreshConfig,
    decode_night_elements,
    handle_message,
    night_of,
    parse_message,
    plan_and_enqueue,
    request_refresh,
    run_refresh_inline,
    staged_report,
)
from alertprod.orbitrefresh import service as service_module

pytestmark = pytest.mark.unit

CONFIG = RefreshConfig(chunk_orbits=5)
#: A time in the day before the night (the schedule's 12:00 UTC), TAI MJD.
NOON = NIGHT + 0.5 + 60 / 86400


class ListQueue:
    """What the service needs of an SQS queue: it keeps the bodies sent."""

    def __init__(self) -> None:
        self.bodies: list[str] = []

    def send(self, body: str) -> str:
        self.bodies.append(body)
        return str(len(self.bodies))

    def send_batch(self, bodies) -> list[str]:
        return [self.send(b) for b in bodies]

    def take(self) -> list[str]:
        out, self.bodies = self.bodies, []
        return out


class Deployment:
    def __init__(self, text: str, apdb: MemoryApdb | None = None):
        self.apdb = apdb or MemoryApdb()
        self.staging = MemoryBlobStore("alerts")
        self.queue = ListQueue()
        self.base = self.apdb.store_orbit_catalog(text)

    def plan(self, now=NOON):
        return plan_and_enqueue(self.apdb, self.staging, self.queue, now_mjd_tai=now,
                                config=CONFIG)

    def deliver(self, body: str) -> dict:
        return handle_message(body, apdb=self.apdb, staging=self.staging, queue=self.queue,
                              sent_timestamp_ms=0, config=CONFIG)

    def stored(self) -> bytes | None:
        if self.apdb.get_orbit_catalog_version(night_mjd=NIGHT) is None:
            return None
        return self.apdb.get_orbit_catalog(night_mjd=NIGHT)


@pytest.fixture
def deployment(main_belt_text) -> Deployment:
    return Deployment(main_belt_text)


def test_chunks_fan_in_to_one_night_catalog_with_its_cost(deployment, base_catalogs):
    report = deployment.plan()
    assert (report.status, report.night_mjd, report.chunks) == ("planned", NIGHT, 6)
    chunks = deployment.queue.take()
    assert len(chunks) == 6 and deployment.stored() is None
    results = [deployment.deliver(body) for body in chunks]
    assert [r["status"] for r in results] == ["chunk_done"] * 5 + ["refreshed"]
    final = results[-1]
    night = decode_night_elements(deployment.stored())
    base = base_catalogs[0]
    assert night.base_version == deployment.base and night.night_mjd == NIGHT
    assert sorted(night.ss_object_id) == sorted(base.ss_object_ids)  # every orbit, once
    assert final["orbits"] == len(base) and final["close_approachers"] == 0
    assert final["version"] == deployment.apdb.get_orbit_catalog_version(night_mjd=NIGHT)
    cost = final["cost"]
    assert cost["cpu_seconds"] > 0 and cost["lambda_gb_seconds"] > 0 and cost["total_usd"] > 0
    assert cost["invocations"] == 7 and cost["sqs_requests"] == 18
    assert staged_report(deployment.apdb, deployment.staging, NIGHT, deployment.base) == json.loads(
        json.dumps(final))
    assert deployment.queue.take() == []


def test_duplicate_plans_and_redelivered_chunks_change_nothing(deployment):
    deployment.plan()
    chunks = deployment.queue.take()
    for body in chunks:
        deployment.deliver(body)
    stored, version = deployment.stored(), deployment.apdb.get_orbit_catalog_version(night_mjd=NIGHT)
    assert deployment.plan().status == "already_refreshed"  # the schedule delivered twice
    assert deployment.plan(now=NOON + 0.3).status == "already_refreshed"  # same night, later
    for body in (chunks[0], chunks[-1]):  # SQS redelivers a chunk
        assert deployment.deliver(body)["status"] == "chunk_done"
    assert deployment.queue.take() == []
    assert deployment.stored() == stored
    assert deployment.apdb.get_orbit_catalog_version(night_mjd=NIGHT) == version


def test_a_crashed_chunk_retried_completes_the_refresh(deployment, monkeypatch):
    deployment.plan()
    chunks = deployment.queue.take()
    calls = []
    real = service_module.refresh_elements

    def crash_once(catalog, night, **kw):
        calls.append(len(catalog))
        if len(calls) == 2:
            raise MemoryError("the worker ran out of memory")
        return real(catalog, night, **kw)

    monkeypatch.setattr(service_module, "refresh_elements", crash_once)
    outcomes = []
    for body in chunks:
        try:
            outcomes.append(deployment.deliver(body)["status"])
        except MemoryError:
            outcomes.append("crashed")
    assert outcomes == ["chunk_done", "crashed", "chunk_done", "chunk_done", "chunk_done",
                        "chunk_done"]
    assert deployment.stored() is None
    assert deployment.deliver(chunks[1])["status"] == "refreshed"  # SQS delivers it again
    assert len(decode_night_elements(deployment.stored())) == 24


def test_a_chunk_that_crashed_after_writing_its_result_is_not_computed_again(main_belt_text,
                                                                             monkeypatch):
    class CrashOnFirstCompletion(MemoryApdb):
        crashes = 1

        def complete_precovery_unit(self, run_id, unit_key):
            if self.crashes:
                self.crashes -= 1
                raise TimeoutError("DynamoDB timed out")
            return super().complete_precovery_unit(run_id, unit_key)

    integrated = []
    real = service_module.refresh_elements
    monkeypatch.setattr(service_module, "refresh_elements",
                        lambda catalog, night, **kw: integrated.append(night) or real(catalog, night, **kw))
    deployment = Deployment(main_belt_text, CrashOnFirstCompletion())
    deployment.plan()
    first, *rest = deployment.queue.take()
    with pytest.raises(TimeoutError):
        deployment.deliver(first)
    assert deployment.deliver(first)["status"] == "chunk_done"
    assert len(integrated) == 1  # its output was there: not integrated again
    assert [deployment.deliver(b)["status"] for b in rest][-1] == "refreshed"


def test_the_fan_in_that_crashed_before_storing_is_finished_by_the_redelivery(main_belt_text):
    class CrashOnFirstNightStore(MemoryApdb):
        crashes = 1

        def store_orbit_catalog(self, data, *, night_mjd=None):
            if night_mjd is not None and self.crashes:
                self.crashes -= 1
                raise TimeoutError("DynamoDB timed out")
            return super().store_orbit_catalog(data, night_mjd=night_mjd)

    deployment = Deployment(main_belt_text, CrashOnFirstNightStore())
    deployment.plan()
    chunks = deployment.queue.take()
    for body in chunks[:-1]:
        deployment.deliver(body)
    with pytest.raises(TimeoutError):
        deployment.deliver(chunks[-1])  # won the fan-in, then died
    assert deployment.stored() is None
    assert deployment.deliver(chunks[-1])["status"] == "refreshed"


def test_a_planner_rerun_resends_only_the_chunks_not_done(deployment):
    deployment.plan()
    chunks = deployment.queue.take()
    deployment.deliver(chunks[0])
    deployment.deliver(chunks[3])
    report = deployment.plan()  # e.g. chunks were lost to the dead-letter queue
    assert (report.status, report.chunks, report.chunks_sent) == ("resumed", 6, 4)
    again = deployment.queue.take()
    assert [parse_message(b).chunk for b in again] == [1, 2, 4, 5]
    assert [deployment.deliver(b)["status"] for b in again][-1] == "refreshed"


def test_a_refresh_whose_base_catalog_was_replaced_stores_nothing(deployment, main_belt_text):
    deployment.plan()
    chunks = deployment.queue.take()
    for body in chunks[:-1]:
        deployment.deliver(body)
    newer = deployment.apdb.store_orbit_catalog(main_belt_text.replace("SIMULATED", "SIMULATE2"))
    assert deployment.deliver(chunks[-1])["status"] == "superseded"
    assert deployment.stored() is None
    report = deployment.plan()  # the newer catalog's own refresh
    assert report.status == "planned" and report.base_version == newer


def test_a_request_refreshes_the_night_of_its_sending_time(deployment):
    sent = datetime(2026, 3, 10, 15, 30, tzinfo=UTC)  # in the afternoon before the night
    request_refresh(deployment.queue, reason="mpcorb-upload", base_version=deployment.base)
    (body,) = deployment.queue.take()
    report = handle_message(body, apdb=deployment.apdb, staging=deployment.staging,
                            queue=deployment.queue, sent_timestamp_ms=sent.timestamp() * 1000,
                            config=CONFIG)
    evening = int(np.floor(sent.timestamp() / 86400 + 40587))
    assert (report["status"], report["reason"], report["night_mjd"]) == (
        "planned", "mpcorb-upload", evening)
    assert all(parse_message(b).night_mjd == evening for b in deployment.queue.take())


def test_without_a_catalog_there_is_nothing_to_refresh():
    apdb, queue = MemoryApdb(), ListQueue()
    report = plan_and_enqueue(apdb, MemoryBlobStore(), queue, now_mjd_tai=NOON)
    assert report.status == "no_catalog" and queue.bodies == []


def test_inline_refresh_equals_the_queued_one(deployment, main_belt_text):
    deployment.plan()
    for body in deployment.queue.take():
        deployment.deliver(body)
    other = Deployment(main_belt_text)
    report = run_refresh_inline(other.apdb, other.staging, night_mjd=night_of(NOON), config=CONFIG)
    assert report.status == "refreshed"
    assert other.stored() == deployment.stored()  # deterministic bytes

"""The precovery service's job model: UWS 1.1 phases and documents."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from datetime import UTC, datetime, timedelta

import pytest

from alertprod.errors import PrecoveryError
from alertprod.precovery.uws import (
    FINAL_PHASES,
    PHASES,
    RETENTION,
    UWS_NS,
    job_json,
    job_xml,
    new_job,
    transition,
)

pytestmark = pytest.mark.unit

T0 = datetime(2027, 3, 10, 12, 0, tzinfo=UTC)
PARAMS = {"target": {"kind": "position", "ra": 10.0, "dec": -5.0}, "options": {"stamps": True}}


def test_a_job_runs_through_queued_and_executing_to_completed_with_times_and_results():
    job = new_job("j1", "alice", PARAMS, now=T0)
    assert job.phase == "PENDING" and job.destruction == T0 + RETENTION
    job = transition(job, "QUEUED", now=T0, queue_position=3, eta=T0 + timedelta(minutes=5))
    job = transition(job, "QUEUED", now=T0, queue_position=2, eta=T0 + timedelta(minutes=4))
    assert job.queue_position == 2
    job = transition(job, "EXECUTING", now=T0 + timedelta(minutes=1))
    assert job.start_time == T0 + timedelta(minutes=1) and job.queue_position == 0
    end = T0 + timedelta(minutes=3)
    job = transition(job, "COMPLETED", now=end, results=(("lightcurve", "/api/precovery/jobs/j1/results/lightcurve"),))
    assert job.end_time == end and job.destruction == end + RETENTION and job.eta is None
    doc = job_json(job, base_url="http://h")
    assert doc["phase"] == "COMPLETED" and doc["endTime"] == "2027-03-10T12:03:00Z"
    assert doc["results"] == [{"id": "lightcurve", "href": "http://h/api/precovery/jobs/j1/results/lightcurve"}]
    assert doc["parameters"] == PARAMS and doc["errorSummary"] is None


@pytest.mark.parametrize("start", ["PENDING", "QUEUED", "EXECUTING"])
def test_any_job_that_has_not_ended_can_be_aborted_and_nothing_leaves_a_final_phase(start):
    job = new_job("j", "bob", PARAMS, now=T0)
    path = {"PENDING": [], "QUEUED": ["QUEUED"], "EXECUTING": ["QUEUED", "EXECUTING"]}[start]
    for phase in path:
        job = transition(job, phase, now=T0)
    aborted = transition(job, "ABORTED", now=T0 + timedelta(seconds=5))
    assert aborted.phase == "ABORTED" and aborted.end_time is not None
    for phase in PHASES:  # QUEUED, EXECUTING, a final phase again: all refused
        with pytest.raises(PrecoveryError, match="cannot become"):
            transition(aborted, phase, now=T0)
    assert {"COMPLETED", "ERROR", "ABORTED"} == FINAL_PHASES


def test_an_error_needs_its_summary_and_bad_moves_are_refused():
    job = new_job("j", "bob", PARAMS, now=T0)
    with pytest.raises(PrecoveryError, match="error summary"):
        transition(job, "ERROR", now=T0)
    failed = transition(job, "ERROR", now=T0, error="no image covers the position")
    assert job_json(failed)["errorSummary"] == {"type": "fatal", "message": "no image covers the position"}
    with pytest.raises(PrecoveryError, match="cannot become"):
        transition(job, "COMPLETED", now=T0)  # PENDING cannot complete without running
    with pytest.raises(PrecoveryError, match="not one of"):
        transition(job, "RUNNING", now=T0)
    with pytest.raises(PrecoveryError, match="timezone"):
        new_job("j", "bob", PARAMS, now=datetime(2027, 1, 1))


def test_the_xml_document_is_a_uws_1_1_job():
    job = transition(new_job("j9", "carol", PARAMS, now=T0), "QUEUED", now=T0, queue_position=1,
                     eta=T0 + timedelta(minutes=2))
    root = ET.fromstring(job_xml(job))
    ns = {"uws": UWS_NS}
    assert root.tag == f"{{{UWS_NS}}}job" and root.get("version") == "1.1"
    assert root.findtext("uws:jobId", namespaces=ns) == "j9"
    assert root.findtext("uws:phase", namespaces=ns) == "QUEUED"
    assert root.findtext("uws:quote", namespaces=ns) == "2027-03-10T12:02:00Z"
    start = root.find("uws:startTime", ns)
    assert start.get("{http://www.w3.org/2001/XMLSchema-instance}nil") == "true"
    names = [p.get("id") for p in root.find("uws:parameters", ns)]
    assert names == ["target", "options"]
    # the order UWS 1.1's schema requires
    order = [child.tag.split("}")[1] for child in root]
    assert order == ["jobId", "ownerId", "phase", "quote", "creationTime", "startTime", "endTime",
                     "executionDuration", "destruction", "parameters", "results"]

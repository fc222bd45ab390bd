"""The precovery client and ``alertprod precovery`` against the real API on the embedded stack.

The stack serves the template's HTTP API (Lambda authorizer, API function) and runs the job
service's functions in a background thread; the sky is :mod:`precovery_scene`'s one CCD with
three cached and three archived epochs of a 4,000 nJy source.
"""

from __future__ import annotations

import csv
import io
import json
import zipfile

import numpy as np
import pytest
from astropy.io.votable import parse_single_table
from precovery_scene import TARGET, TARGET_FLUX, serve_precovery

from alertprod.cli import main
from alertprod.errors import PrecoveryError
from alertprod.precovery.client import PrecoveryApiError, PrecoveryClient, job_progress

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]

POSITION = {"kind": "position", "ra": TARGET[0], "dec": TARGET[1]}


@pytest.fixture(scope="module")
def service():
    # a small in-flight quota, so that throttling can be shown without hundreds of jobs
    with serve_precovery(("alice", "bob", "carol"), n_cached=3, n_archived=3,
                         environment={"ALERTPROD_PRECOVERY_MAX_JOBS_IN_FLIGHT_PER_USER": "2"},
                         stack_name="pclient") as svc:
        yield svc


@pytest.fixture(scope="module")
def done_job(service):
    """A completed position job of alice's, and the documents its wait saw."""
    client = PrecoveryClient(service.url, service.tokens["alice"])
    job = client.submit(POSITION)
    seen = []
    final = client.wait(job["jobId"], timeout_s=300, progress=seen.append)
    return client, final, seen


def test_a_position_job_completes_with_one_row_per_epoch_cached_and_recreated(done_job, service):
    client, job, _ = done_job
    assert job["phase"] == "COMPLETED", job
    rows = client.results(job["jobId"])
    visits = sorted(r["visit"] for r in rows)
    assert visits == sorted(service.epochs["cached"] + service.epochs["archived"])
    recreated = {r["visit"]: r["recreated"] for r in rows}
    assert all(recreated[v] for v in service.epochs["archived"])
    assert not any(recreated[v] for v in service.epochs["cached"])
    flux = np.array([r["psfFlux"] for r in rows])
    err = np.array([r["psfFluxErr"] for r in rows])
    assert np.all(np.abs(flux - TARGET_FLUX) < 5 * err), (flux, err)


def test_csv_and_votable_hold_the_same_rows_as_json(done_job):
    client, job, _ = done_job
    rows = client.results(job["jobId"])
    table = list(csv.DictReader(io.StringIO(client.results(job["jobId"], "csv").decode())))
    votable = parse_single_table(io.BytesIO(client.results(job["jobId"], "votable"))).to_table()
    assert len(table) == len(votable) == len(rows)
    assert sorted(int(r["visit"]) for r in table) == sorted(int(v) for v in votable["visit"])
    np.testing.assert_allclose(sorted(float(r["psfFlux"]) for r in table),
                               sorted(r["psfFlux"] for r in rows), rtol=1e-6)


def test_wait_reports_progress_up_to_every_unit_done(done_job, service):
    _, job, seen = done_job
    n = len(service.epochs["cached"]) + len(service.epochs["archived"])
    assert seen and seen[-1]["phase"] == "COMPLETED"
    assert job_progress(seen[-1]) == (n, n)
    assert all(d["jobId"] == job["jobId"] for d in seen)


def test_another_users_job_is_not_found_and_a_job_is_listed_for_its_owner_only(done_job, service):
    client, job, _ = done_job
    bob = PrecoveryClient(service.url, service.tokens["bob"])
    for call in (lambda: bob.status(job["jobId"]), lambda: bob.results(job["jobId"]),
                 lambda: bob.abort(job["jobId"]), lambda: bob.delete(job["jobId"])):
        with pytest.raises(PrecoveryApiError) as caught:
            call()
        assert caught.value.status == 404 and caught.value.message
    assert job["jobId"] in [j["jobId"] for j in client.list()]
    assert job["jobId"] not in [j["jobId"] for j in bob.list()]
    assert [j["jobId"] for j in client.list(limit=1)] == [client.list()[0]["jobId"]]  # newest first
    for bad in (0, 1001, "10", True):
        with pytest.raises(PrecoveryError, match="limit"):
            client.list(limit=bad)


def test_a_malformed_target_is_refused_with_the_apis_message(service):
    client = PrecoveryClient(service.url, service.tokens["bob"])
    with pytest.raises(PrecoveryApiError) as caught:
        client.submit({"kind": "position", "ra": 400.0, "dec": 0.0})
    assert caught.value.status == 400 and "ra" in caught.value.message


def test_a_wrong_token_is_refused_not_retried(service):
    with pytest.raises(PrecoveryApiError) as caught:
        PrecoveryClient(service.url, "not-a-token", sleep=lambda s: pytest.fail("slept")).list()
    assert caught.value.status in (401, 403)


def test_the_same_idempotency_key_returns_the_first_job(service):
    client = PrecoveryClient(service.url, service.tokens["bob"])
    first = client.submit(POSITION, idempotency_key="night-42")
    again = client.submit(POSITION, idempotency_key="night-42")
    assert again["jobId"] == first["jobId"]
    assert client.wait(first["jobId"], timeout_s=300)["phase"] == "COMPLETED"


def test_over_the_in_flight_quota_a_429_is_waited_out_and_the_submission_goes_through(service):
    carol = PrecoveryClient(service.url, service.tokens["carol"], max_retries=0)
    jobs = [carol.submit(POSITION) for _ in range(2)]
    with pytest.raises(PrecoveryApiError) as caught:
        carol.submit(POSITION)
    assert caught.value.status == 429 and caught.value.retry_after_s >= 1
    patient = PrecoveryClient(service.url, service.tokens["carol"], max_retries=30,
                              sleep=lambda s: __import__("time").sleep(min(s, 2.0)))
    third = patient.submit(POSITION)  # goes through once one of the two has finished
    for j in [*jobs, third]:
        assert patient.wait(j["jobId"], timeout_s=300)["phase"] == "COMPLETED"


def test_stamps_are_a_zip_with_one_fits_per_epoch(service):
    client = PrecoveryClient(service.url, service.tokens["bob"])
    job = client.wait(client.submit(POSITION, stamps=True)["jobId"], timeout_s=300)
    assert job["phase"] == "COMPLETED", job
    names = zipfile.ZipFile(io.BytesIO(client.stamps(job["jobId"]))).namelist()
    n = len(service.epochs["cached"]) + len(service.epochs["archived"])
    assert len([x for x in names if x.endswith(".fits")]) == n


def test_abort_ends_a_job_that_has_not_finished_and_delete_removes_it(service):
    client = PrecoveryClient(service.url, service.tokens["bob"])
    job = client.submit(POSITION)
    aborted = client.abort(job["jobId"])  # at once: planning alone takes longer
    assert aborted["phase"] == "ABORTED"
    assert client.wait(job["jobId"], timeout_s=60)["phase"] == "ABORTED"
    client.delete(job["jobId"])
    with pytest.raises(PrecoveryApiError) as caught:
        client.status(job["jobId"])
    assert caught.value.status == 404


def test_the_cli_submits_waits_and_writes_the_light_curve(service, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("ALERTPROD_URL", service.url)
    monkeypatch.setenv("ALERTPROD_TOKEN", service.tokens["bob"])
    assert main(["precovery", "submit", "--ra", str(TARGET[0]), "--dec", str(TARGET[1])]) == 0
    job_id = capsys.readouterr().out.strip()
    assert main(["precovery", "wait", job_id, "--timeout", "300"]) == 0
    out = capsys.readouterr()
    assert "COMPLETED" in out.out and "6/6" in out.err  # the bar's count
    path = tmp_path / "lc.csv"
    assert main(["precovery", "results", job_id, "-o", str(path)]) == 0
    assert len(list(csv.DictReader(path.open()))) == 6
    assert main(["precovery", "status", job_id]) == 0
    assert json.loads(capsys.readouterr().out)["phase"] == "COMPLETED"
    assert main(["precovery", "status", "pj-0000000000000000"]) == 2
    assert "404" in capsys.readouterr().err

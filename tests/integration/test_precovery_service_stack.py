"""The precovery service end to end on the embedded stack: the HTTP API, the queues, the workers.

A field with three constant transients observed at four epochs: two still in the image cache
(measured on the cached difference) and two older than the cache (re-created from the archive).
Jobs go in over the template's HTTP API with bearer tokens, run through the job, tick and unit
queues by the template's functions, and come back as light curves in CSV, JSON and VOTable that
agree with the true fluxes.
"""

from __future__ import annotations

import csv
import io
import json
import time
import urllib.error
import urllib.request
from datetime import UTC, datetime

import numpy as np
import pytest
from astropy.io.votable import parse_single_table
from astropy.time import Time
from synthetic import make_wcs

from alertprod.apdb import dynamo_level1
from alertprod.api.tokens import issue_token
from alertprod.archive import archive_key
from alertprod.aws import S3BlobStore
from alertprod.distribution.store import DynamoServiceStore
from alertprod.formats import Exposure, ExposureInfo, image_key, write_exposure
from alertprod.formats.compression import compress_exposure
from alertprod.imaging.psf import add_point_sources, gaussian_psf
from alertprod.local.stack import EmbeddedStack

pytestmark = pytest.mark.integration

N, SIGMA = 256, 20.0
FLUXES = np.array([5000.0, 2000.0, 1200.0])
#: days before now of each visit; the first two are in the 30-day cache
AGES = {101: 3.0, 102: 8.0, 103: 100.0, 104: 200.0}


def _scene(stack: EmbeddedStack) -> tuple[np.ndarray, np.ndarray]:
    """Write the four visits into the cache / archive and index them; returns the positions."""
    rng = np.random.default_rng(12)
    wcs, psf = make_wcs(nx=N, ny=N), gaussian_psf(3.0, size_pix=21)
    stars = (rng.uniform(20, N - 20, 15), rng.uniform(20, N - 20, 15), rng.uniform(2e3, 4e4, 15))
    x, y = np.array([60.3, 130.7, 200.2]), np.array([70.6, 150.1, 190.9])
    static = np.zeros((N, N))
    add_point_sources(static, psf, *stars)
    var, mask = np.full((N, N), SIGMA**2, np.float32), np.zeros((N, N), np.int32)
    images = S3BlobStore(stack.clients.s3, stack.physical_id("ImageBucket"))
    archive = S3BlobStore(stack.clients.s3, stack.physical_id("ArchiveBucket"))
    apdb = dynamo_level1(stack.clients.dynamodb, stack.physical_id("Level1Table")).apdb
    ra, dec = (np.asarray(v) for v in wcs.all_pix2world(x, y, 0))
    corners = np.array(wcs.all_pix2world([0, N - 1, N - 1, 0], [0, 0, N - 1, N - 1], 0)).T
    now_mjd = float(Time(datetime.now(UTC)).tai.mjd)
    for visit, age in AGES.items():
        mjd = now_mjd - age
        info = ExposureInfo(visit, 7, "g", mjd, 30.0)
        science_pix = static.copy()
        add_point_sources(science_pix, psf, x, y, FLUXES)
        science = Exposure((science_pix + rng.normal(0, SIGMA, (N, N))).astype(np.float32), var, mask,
                           psf, wcs, info)
        template = Exposure((static + rng.normal(0, SIGMA / 5, (N, N))).astype(np.float32), var, mask,
                            psf, wcs, info)
        for kind, exposure in (("science", science), ("template", template)):
            archive.put(archive_key(visit, 7, kind), compress_exposure(exposure))
            apdb.index_archived_exposure(visit, 7, kind, "g", mjd, corners)
        if age < 30:
            difference = Exposure(science.image - template.image, var + np.float32((SIGMA / 5) ** 2),
                                  mask, psf, wcs, info)
            images.put(image_key(visit, 7, "difference"), write_exposure(difference))
            images.put(image_key(visit, 7, "science"), write_exposure(science))
            apdb.index_exposure(visit, 7, "g", mjd, corners, ["science", "difference"])
    # the archive function would copy the cached science again: this test measures the service
    stack.clients.sqs.purge_queue(QueueUrl=stack.physical_id("ArchiveQueue"))
    return ra, dec


@pytest.fixture(scope="module")
def service():
    # the embedded stack runs one function at a time: one worker, for honest ETAs
    with EmbeddedStack(stack_name="pjobs", parameter_overrides={"PrecoveryUnitWorkers": 1}) as stack:
        ra, dec = _scene(stack)
        store = DynamoServiceStore(stack.clients.dynamodb, stack.physical_id("ServiceTable"))
        tokens = {u: issue_token(store, u, label="test").token for u in ("alice", "bob", "carol")}
        yield stack, stack.serve_api("HttpApi").url, tokens, ra, dec


def _call(url, method="GET", token=None, body=None, headers=None):
    data = None if body is None else (body if isinstance(body, bytes) else json.dumps(body).encode())
    request = urllib.request.Request(url, data=data, method=method)
    if token is not None:
        request.add_header("Authorization", f"Bearer {token}")
    if data is not None and not isinstance(body, bytes):
        request.add_header("Content-Type", "application/json")
    for k, v in (headers or {}).items():
        request.add_header(k, v)
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, response.read(), dict(response.headers)
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read(), dict(exc.headers)


def _batch(ra, dec):
    return {"target": {"kind": "batch", "positions": [{"ra": float(r), "dec": float(d)}
                                                       for r, d in zip(ra, dec, strict=True)]},
            "options": {"mjd_min": 60000.0}}


def test_a_job_runs_through_the_queues_and_its_light_curve_agrees_with_truth(service):
    stack, url, tokens, ra, dec = service
    status, body, headers = _call(f"{url}/api/precovery/jobs", "POST", tokens["alice"], _batch(ra, dec))
    assert status == 201, body
    job = json.loads(body)
    assert headers["Location"] == f"/api/precovery/jobs/{job['jobId']}" and job["phase"] == "PENDING"
    stack.run_until_idle(timeout_s=300)
    status, body, _ = _call(f"{url}/api/precovery/jobs/{job['jobId']}?wait=10", token=tokens["alice"])
    doc = json.loads(body)
    assert status == 200 and doc["phase"] == "COMPLETED", doc
    assert doc["units"] == {"total": 4, "done": 4, "cached": 2, "recreated": 2}
    assert doc["etaAtSubmission"] is not None
    assert stack.lambdas.function("PrecoveryDispatcherFunction").environment["ALERTPROD_PRECOVERY_WORKERS"] == "1"
    base = f"{url}/api/precovery/jobs/{job['jobId']}/results/lightcurve"
    rows = json.loads(_call(base + "?format=json", token=tokens["alice"])[1])["rows"]
    assert len(rows) == 12  # 3 positions x 4 epochs, no duplicates
    assert len({(r["target"], r["visit"]) for r in rows}) == 12
    for r in rows:
        assert r["recreated"] is (AGES[r["visit"]] > 30)
        assert abs((r["psfFlux"] - FLUXES[r["target"]]) / r["psfFluxErr"]) < 5, r
    table = list(csv.DictReader(io.StringIO(_call(base + "?format=csv", token=tokens["alice"])[1].decode())))
    assert [float(t["psfFlux"]) for t in table] == pytest.approx([r["psfFlux"] for r in rows])
    votable = parse_single_table(io.BytesIO(_call(base + "?format=votable", token=tokens["alice"])[1])).to_table()
    assert list(votable["psfFlux"]) == pytest.approx([r["psfFlux"] for r in rows])


def test_without_a_token_401_and_another_users_job_404(service):
    stack, url, tokens, ra, dec = service
    assert _call(f"{url}/api/precovery/jobs", "POST", None, _batch(ra, dec))[0] == 401
    status, body, _ = _call(f"{url}/api/precovery/jobs", "POST", tokens["bob"], _batch(ra, dec))
    job_id = json.loads(body)["jobId"]
    status, body, _ = _call(f"{url}/api/precovery/jobs/{job_id}", token=tokens["carol"])
    assert status == 404 and "error" in json.loads(body)
    assert _call(f"{url}/api/precovery/jobs/{job_id}", "DELETE", tokens["carol"])[0] == 404
    assert _call(f"{url}/api/precovery/jobs/{job_id}", "DELETE", tokens["bob"])[0] == 204
    assert _call(f"{url}/api/precovery/jobs/{job_id}", token=tokens["bob"])[0] == 404
    stack.run_until_idle(timeout_s=120)  # the deleted job's plan message finds nothing


def test_over_quota_is_429_with_retry_after(service):
    stack, url, tokens, ra, dec = service
    statuses = []
    for _ in range(26):  # 24 jobs in flight per user by default
        status, body, headers = _call(f"{url}/api/precovery/jobs", "POST", tokens["carol"],
                                      {"target": {"kind": "position", "ra": float(ra[0]), "dec": float(dec[0])}})
        statuses.append(status)
        if status == 429:
            break
    assert statuses[:24] == [201] * 24 and statuses[-1] == 429
    assert int(headers["Retry-After"]) >= 1 and "in flight" in json.loads(body)["error"]
    listed = json.loads(_call(f"{url}/api/precovery/jobs", token=tokens["carol"])[1])["jobs"]
    for job in listed:
        assert _call(f"{url}/api/precovery/jobs/{job['jobId']}/phase", "POST", tokens["carol"],
                     b"PHASE=ABORT", {"Content-Type": "application/x-www-form-urlencoded"})[0] == 200
    status, body, _ = _call(f"{url}/api/precovery/jobs", "POST", tokens["carol"],
                            {"target": {"kind": "position", "ra": float(ra[0]), "dec": float(dec[0])}})
    assert status == 201  # aborted jobs are no longer in flight
    t0 = time.monotonic()
    stack.run_until_idle(timeout_s=300)
    assert time.monotonic() - t0 < 300


def test_wait_returns_when_the_job_completes_while_the_workers_run_meanwhile(service):
    import threading

    stack, url, tokens, ra, dec = service
    stop = threading.Event()
    workers = threading.Thread(target=stack.lambdas.run_forever, args=(stop,), kwargs={"idle_sleep_s": 0.05})
    workers.start()
    try:
        status, body, _ = _call(f"{url}/api/precovery/jobs", "POST", tokens["bob"], _batch(ra[:1], dec[:1]))
        job_id = json.loads(body)["jobId"]
        t0 = time.monotonic()
        status, body, _ = _call(f"{url}/api/precovery/jobs/{job_id}?wait=25", token=tokens["bob"])
        waited = time.monotonic() - t0
    finally:
        stop.set()
        workers.join()
    assert status == 200 and json.loads(body)["phase"] == "COMPLETED"
    assert waited < 24  # it returned on completion, not at the end of the wait

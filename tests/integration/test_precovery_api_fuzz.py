"""The precovery API (and the filter API beside it) fuzzed from its own OpenAPI document.

schemathesis reads ``/api/openapi.json`` from the API served on the embedded stack and
generates requests for every operation: valid ones (positive) and ones that break the schema
(negative: wrong types, out-of-range numbers, missing fields, hostile strings). Each answer
must be a client's or a success, never a 5xx; every 4xx the API function gives must carry a
JSON ``{"error": "..."}`` that says something. The authorizer's answers are API Gateway's own
(``{"message": ...}``, as on AWS). Without a token every operation is 401; another user's job
is 404 on every job operation. The number of examples per operation and mode is bounded for
CI (``ALERTPROD_FUZZ_EXAMPLES``, default 10).
"""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.request

import pytest
from hypothesis import HealthCheck, given, settings
from precovery_scene import TARGET, serve_precovery

from alertprod.precovery.client import PrecoveryClient

schemathesis = pytest.importorskip("schemathesis")

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(1500)]

EXAMPLES = int(os.environ.get("ALERTPROD_FUZZ_EXAMPLES", "10"))
PREFIXES = ("/api/precovery", "/api/filters")


@pytest.fixture(scope="module")
def service():
    with serve_precovery(("alice", "bob"), n_cached=1, n_archived=0, stack_name="pfuzz") as svc:
        yield svc


@pytest.fixture(scope="module")
def schema(service):
    with urllib.request.urlopen(f"{service.url}/api/openapi.json", timeout=60) as r:
        doc = json.loads(r.read())
    return schemathesis.openapi.from_dict(doc)


@pytest.fixture(scope="module")
def operations(schema):
    ops = [r.ok() for r in schema.get_all_operations()]
    ops = [op for op in ops if op.path.startswith(PREFIXES)]
    assert any(op.path.startswith("/api/precovery/jobs/{") for op in ops), "no job operations"
    return ops


@pytest.fixture(scope="module")
def bobs_job(service):
    """A completed job of bob's (alice must not see it)."""
    bob = PrecoveryClient(service.url, service.tokens["bob"])
    job = bob.submit({"kind": "position", "ra": TARGET[0], "dec": TARGET[1]})
    return bob.wait(job["jobId"], timeout_s=300)


def _check_answer(case, response, problems):
    status = response.status_code
    where = f"{case.method} {case.formatted_path} {case.query or ''} body={str(case.body)[:120]}"
    if status >= 500:
        problems.append(f"{status} for {where}: {response.text[:200]}")
    elif status >= 400 and status not in (401, 403):
        try:
            error = response.json().get("error")
        except (ValueError, AttributeError):
            error = None
        if not isinstance(error, str) or not error.strip():
            problems.append(f"{status} without a JSON error for {where}: {response.text[:200]}")


def _fuzz(operation, mode, headers, service, problems):
    @settings(max_examples=EXAMPLES, deadline=None, database=None,
              suppress_health_check=list(HealthCheck))
    @given(case=operation.as_strategy(generation_mode=mode))
    def run(case):
        response = case.call(base_url=service.url, headers=headers, timeout=300)
        _check_answer(case, response, problems)

    run()


@pytest.mark.parametrize("mode", ["positive", "negative"])
def test_no_generated_request_gets_a_5xx_and_every_refusal_says_why(service, operations, mode):
    from schemathesis import GenerationMode

    problems: list[str] = []
    headers = {"Authorization": f"Bearer {service.tokens['alice']}"}
    for op in operations:
        _fuzz(op, GenerationMode(mode), headers, service, problems)
    assert not problems, "\n".join(problems[:20])


def _call(url, method, token=None, data=None, ctype=None):
    request = urllib.request.Request(url, data=data, method=method)
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    if ctype:
        request.add_header("Content-Type", ctype)
    try:
        with urllib.request.urlopen(request, timeout=300) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def test_every_operation_without_a_token_is_401(service, operations):
    for op in operations:
        path = op.path.replace("{job_id}", "pj-0123456789abcdef").replace("{filter_id}", "f1")
        path = path.replace("{proxy+}", "x")
        status, _ = _call(service.url + path, op.method.upper(), data=b"{}" if op.body else None,
                          ctype="application/json" if op.body else None)
        assert status == 401, (op.method, path, status)


def test_another_users_job_is_404_on_every_job_operation(service, bobs_job):
    job = bobs_job["jobId"]
    alice = service.tokens["alice"]
    base = f"{service.url}/api/precovery/jobs/{job}"
    for method, url, data, ctype in (
            ("GET", base, None, None), ("GET", base + "?wait=1", None, None),
            ("POST", base + "/phase", b"PHASE=ABORT", "application/x-www-form-urlencoded"),
            ("GET", base + "/results/lightcurve?format=csv", None, None),
            ("GET", base + "/results/stamps", None, None), ("DELETE", base, None, None)):
        status, body = _call(url, method, alice, data, ctype)
        assert status == 404, (method, url, status, body[:200])
        assert json.loads(body)["error"]
    bob = PrecoveryClient(service.url, service.tokens["bob"])
    assert bob.status(job)["phase"] == "COMPLETED"  # untouched by alice's attempts


@pytest.mark.parametrize("body, ctype, status", [
    (b"{" * 10_000, "application/json", 400),  # deeply nested / malformed JSON
    (b"\xff\xfe\x00garbage", "application/json", 400),  # not UTF-8
    (json.dumps({"target": {"kind": "batch", "positions": [{"ra": 1.0, "dec": 1.0}] * 200_000}}).encode(),
     "application/json", 413),  # oversized
    (json.dumps({"target": {"kind": "position", "ra": "1e999", "dec": 0}}).encode(), "application/json", 400),
    (json.dumps({"target": {"kind": "orbit", "mpcorb": "'; DROP TABLE jobs; --" * 10}}).encode(),
     "application/json", 400),
])
def test_hostile_bodies_are_refused_with_a_reason(service, body, ctype, status):
    got, answer = _call(f"{service.url}/api/precovery/jobs", "POST", service.tokens["alice"], body, ctype)
    assert got == status, (got, answer[:200])
    assert json.loads(answer)["error"]

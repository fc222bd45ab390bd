"""The embedded stack's HTTP API front end, on a test-only template."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from alertprod.local.stack import EmbeddedStack

pytestmark = pytest.mark.integration

TEMPLATE = Path(__file__).parents[1] / "fixtures" / "http_stack" / "template.yaml"


@pytest.fixture(scope="module")
def endpoint():
    with EmbeddedStack(TEMPLATE, stack_name="http") as stack:
        yield stack, stack.serve_http("EchoFunction")


def _call(url, *, data=None, headers=None, method=None):
    request = urllib.request.Request(url, data=data, headers=headers or {}, method=method)
    try:
        with urllib.request.urlopen(request, timeout=30) as r:
            return r.status, dict(r.headers), r.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()


def test_http_request_round_trips_through_the_function(endpoint):
    stack, api = endpoint
    status, headers, body = _call(f"{api.url}/jobs/42?band=g&band=r&x=1", data=b'{"ra": 10.5}',
                                  headers={"Content-Type": "application/json", "X-Custom": "yes"},
                                  method="POST")
    assert status == 201
    assert headers["Set-Cookie"] == "session=abc; Path=/"
    echoed = json.loads(body)
    assert echoed == {"method": "POST", "path": "/jobs/42", "query": {"band": "g,r", "x": "1"},
                      "version": "2.0", "header": "yes", "bytes": 12, "base64": False}
    stored = stack.clients.s3.get_object(Bucket=stack.physical_id("EchoBucket"), Key="last-request")
    assert stored["Body"].read() == b'{"ra": 10.5}'
    assert stack.invocations[-1].event["requestContext"]["http"]["method"] == "POST"


def test_binary_bodies_travel_base64_encoded(endpoint):
    _, api = endpoint
    payload = bytes(range(256))
    status, _, body = _call(f"{api.url}/upload", data=payload,
                            headers={"Content-Type": "application/fits"}, method="PUT")
    assert status == 201
    assert json.loads(body)["base64"] is True and json.loads(body)["bytes"] == 256


def test_bare_return_value_becomes_a_json_200_and_errors_a_500(endpoint):
    _, api = endpoint
    status, headers, body = _call(f"{api.url}/bare")
    assert status == 200 and json.loads(body) == {"just": "a dict"}
    status, _, body = _call(f"{api.url}/fail")
    assert status == 500 and json.loads(body) == {"message": "Internal Server Error"}

"""The template's HTTP API on the embedded stack: routes, the Lambda authorizer, the filter API."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from datetime import UTC, datetime

import pytest

from alertprod.api.tokens import issue_token
from alertprod.distribution.store import DynamoServiceStore
from alertprod.local.stack import EmbeddedStack

pytestmark = pytest.mark.integration

QUEUE = "https://sqs.us-east-1.amazonaws.com/210987654321/alice-alerts"


@pytest.fixture(scope="module")
def api():
    with EmbeddedStack(stack_name="api", clock_start=datetime(2027, 3, 10, tzinfo=UTC)) as stack:
        store = DynamoServiceStore(stack.clients.dynamodb, stack.physical_id("ServiceTable"))
        tokens = {user: issue_token(store, user, label="test").token for user in ("alice", "bob")}
        endpoint = stack.serve_api("HttpApi")
        yield endpoint.url, tokens


def _call(url, method="GET", token=None, body=None):
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method)
    if token is not None:
        request.add_header("Authorization", f"Bearer {token}")
    if data is not None:
        request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"null")


def test_no_token_is_401_a_wrong_one_403_and_the_openapi_document_is_public(api):
    url, _ = api
    assert _call(f"{url}/api/filters")[0] == 401
    assert _call(f"{url}/api/filters", token="not-a-token")[0] == 403
    status, doc = _call(f"{url}/api/openapi.json")
    assert status == 200 and doc["openapi"].startswith("3.")
    assert _call(f"{url}/api/nowhere", token="x")[0] == 404


def test_a_user_creates_a_filter_another_cannot_see_it(api):
    url, tokens = api
    status, created = _call(f"{url}/api/filters", "POST", tokens["alice"],
                            {"name": "bright", "expression": "diaSource.snr > 50",
                             "transports": [{"kind": "sqs", "queue_url": QUEUE}]})
    assert status == 201, created
    fid = created["filter_id"]
    status, listed = _call(f"{url}/api/filters", token=tokens["alice"])
    assert status == 200 and fid in json.dumps(listed)
    assert _call(f"{url}/api/filters/{fid}", token=tokens["bob"])[0] == 404
    assert fid not in json.dumps(_call(f"{url}/api/filters", token=tokens["bob"])[1])
    status, error = _call(f"{url}/api/filters", "POST", tokens["alice"],
                          {"name": "bad", "expression": "diaSource.snr >",
                           "transports": [{"kind": "sqs", "queue_url": QUEUE}]})
    assert status == 400 and "error" in error


def test_a_text_body_that_is_not_utf8_is_a_client_error_not_a_crash(api):
    url, tokens = api
    request = urllib.request.Request(f"{url}/api/filters", data=b"\xff\xfe{bad", method="POST")
    request.add_header("Authorization", f"Bearer {tokens['alice']}")
    request.add_header("Content-Type", "application/json")
    with pytest.raises(urllib.error.HTTPError) as caught:
        urllib.request.urlopen(request, timeout=30)
    assert 400 <= caught.value.code < 500

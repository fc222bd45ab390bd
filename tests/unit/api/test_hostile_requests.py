"""Whatever a client sends, the answer is a 4xx with {"error": ...}, never a 5xx."""

from __future__ import annotations

import json

import pytest

pytestmark = pytest.mark.unit

QUEUE = "https://sqs.us-east-1.amazonaws.com/123456789012/mine"
GOOD = {"name": "x", "expression": "diaSource.snr > 5", "transports": [{"kind": "sqs", "queue_url": QUEUE}]}


def test_huge_body_is_413(api):
    status, doc, _ = api["alice"].call("POST", "/api/filters", raw=b'{"name": "' + b"x" * 200_000 + b'"}')
    assert status == 413 and "larger" in doc["error"]


@pytest.mark.parametrize("raw", [b"{nope", b"", b"[]", b"null", b'"text"', b'{"name": 1e999999}'])
def test_malformed_bodies_are_400(api, raw):
    status, doc, _ = api["alice"].call("POST", "/api/filters", raw=raw)
    assert status == 400 and isinstance(doc["error"], str)


def test_binary_body_is_400(api):
    status, doc, _ = api["alice"].call("POST", "/api/filters", raw=b"\xff\xfe\x00",
                                       headers={"content-type": "application/octet-stream"})
    assert status == 400 and isinstance(doc["error"], str)


@pytest.mark.parametrize("body", [
    {**GOOD, "owner": "bob"},                                              # unknown field
    {**GOOD, "user_id": "bob"},                                            # no impersonation
    {**GOOD, "transports": [{"kind": "ftp", "url": "ftp://x"}]},           # unknown transport
    {**GOOD, "transports": [{"kind": "sqs", "queue_url": QUEUE, "x": 1}]},  # unknown transport field
    {**GOOD, "transports": [{"kind": "sqs", "queue_url": "file:///etc/passwd"}]},
    {**GOOD, "transports": [{"kind": "s3", "bucket": "../../etc"}]},
    {**GOOD, "transports": [{"kind": "email", "to": "a@b.c\nBcc: x@y.z"}]},
    {**GOOD, "transports": [{"kind": "vtp", "host": "broker.example.org", "port": 70000}]},
    {**GOOD, "transports": [GOOD["transports"][0]] * 9},                   # too many transports
    {**GOOD, "expression": "x" * 10_001},                                  # over the length limit
    {**GOOD, "expression": "(" * 60 + "diaSource.snr > 1" + ")" * 60},    # over the depth limit
    {**GOOD, "expression": "__import__('os').system('id')"},
    {**GOOD, "expression": "diaSource.snr > 1; DROP TABLE filters"},
    {**GOOD, "expression": "diaSource.band > 5"},                          # type mismatch
    {**GOOD, "name": ""},
    {**GOOD, "payload": "pickle"},
    {**GOOD, "quota_per_day": "many"},
    {**GOOD, "expires_days": -1},
])
def test_hostile_create_bodies_are_400(api, body):
    status, doc, _ = api["alice"].call("POST", "/api/filters", body)
    assert status == 400, doc
    assert isinstance(doc["error"], str) and doc["error"]


def test_hostile_path_ids_are_404(api):
    for fid in ("..%2F..%2Fetc", "x" * 5000, "f-1' OR '1'='1", "%00"):
        status, doc, _ = api["alice"].call("GET", f"/api/filters/{fid}")
        assert status == 404 and "error" in doc


def test_unknown_routes_and_methods_are_404(api):
    assert api["alice"].call("PUT", "/api/filters")[0] == 404
    assert api["alice"].call("GET", "/api/elsewhere")[0] == 404


@pytest.mark.parametrize("query", ["days=0", "days=1000", "days=abc"])
def test_bad_query_parameters_are_400(api, query):
    status, doc, _ = api["alice"].call("POST", "/api/filters", GOOD)
    fid = doc["filter_id"]
    status, doc, _ = api["alice"].call("GET", f"/api/filters/{fid}/counters?{query}")
    assert status == 400 and "error" in doc


@pytest.mark.parametrize("body", [{"since": "yesterday"}, {}, {"since": "2000-01-01T00:00:00Z"}, {"since": 5, "x": 1}])
def test_bad_redelivery_requests_are_400(api, body):
    fid = api["alice"].call("POST", "/api/filters", GOOD)[1]["filter_id"]
    status, doc, _ = api["alice"].call("POST", f"/api/filters/{fid}/redeliver", body)
    assert status == 400 and "error" in doc


@pytest.mark.parametrize("body", [{"expression": "diaSource.snr > 1"}, {"expression": "nope(", "alert_id": 1},
                                  {"expression": "diaSource.snr > 1", "alert_id": -1}])
def test_bad_explain_requests_are_400(api, body):
    status, doc, _ = api["alice"].call("POST", "/api/filters/explain", body)
    assert status == 400 and "error" in doc


def test_error_bodies_are_json_objects_with_error(api):
    status, doc, headers = api["alice"].call("POST", "/api/filters", raw=b"{")
    assert headers.get("Content-Type", headers.get("content-type")) == "application/json"
    assert set(doc) == {"error"} and json.dumps(doc)

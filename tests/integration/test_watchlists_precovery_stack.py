"""On the embedded stack, through the template's HTTP API and functions: a user's watchlist selects
their filter's alerts (and no one else sees it), and a filter with precovery orders the owner's
jobs from the filtering service, within its daily cap, once per alert.
"""

from __future__ import annotations

import base64
import json
import urllib.error
import urllib.request
from datetime import UTC, datetime

import numpy as np
import pytest
from distribution_harness import make_alerts

from alertprod.alerts.serialize import serialize_alert
from alertprod.api.tokens import issue_token
from alertprod.distribution.store import DynamoServiceStore
from alertprod.local.stack import EmbeddedStack
from alertprod.precovery.jobservice import DynamoJobStore

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def stack():
    with EmbeddedStack(stack_name="watch", clock_start=datetime(2027, 3, 10, tzinfo=UTC)) as s:
        s.run_until_idle(timeout_s=60)
        store = DynamoServiceStore(s.clients.dynamodb, s.physical_id("ServiceTable"))
        tokens = {user: issue_token(store, user, label="test").token for user in ("alice", "bob")}
        yield {"stack": s, "url": s.serve_api("HttpApi").url, "tokens": tokens, "store": store,
               "queues": {}}


def _call(stack, user, method, path, body=None, *, content_type="application/json"):
    data = body if isinstance(body, bytes) else (None if body is None else json.dumps(body).encode())
    request = urllib.request.Request(stack["url"] + path, data=data, method=method)
    request.add_header("Authorization", f"Bearer {stack['tokens'][user]}")
    if data is not None:
        request.add_header("Content-Type", content_type)
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            text = response.read()
            return response.status, json.loads(text) if text and response.headers.get_content_type() == "application/json" else text
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"null")


def _queue(stack, name):
    sqs = stack["stack"].clients.sqs
    return sqs.create_queue(QueueName=name)["QueueUrl"]


def _received(stack, url):
    sqs, out = stack["stack"].clients.sqs, []
    while batch := sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", []):
        for m in batch:
            out.append(json.loads(m["Body"]))
            sqs.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])
    return out


def _publish(stack, alerts):
    s = stack["stack"]
    for a in alerts:
        s.clients.sns.publish(TopicArn=s.physical_id("AlertTopic"), Message=base64.b64encode(serialize_alert(a)).decode())
    s.run_until_idle(timeout_s=240)


@pytest.fixture(scope="module")
def night(stack):
    """Both filters registered before the first alert batch (the service caches its filter list 30 s)."""
    alerts = make_alerts(4, seed0=100)
    near = alerts[2]["diaSource"]
    csv = f"ra,dec,radius,id\n{near['ra']},{near['dec'] + 0.5 / 3600},1.5,target\n".encode()
    out = {"alerts": alerts, "upload": _call(stack, "alice", "PUT", "/api/watchlists/targets", csv,
                                             content_type="text/csv")}
    out["bob_get"] = _call(stack, "bob", "GET", "/api/watchlists/targets")
    out["bob_filter"] = _call(stack, "bob", "POST", "/api/filters", {
        "name": "steal", "expression": "in_watchlist('targets')",
        "transports": [{"kind": "sqs", "queue_url": _queue(stack, "bob-watch")}]})
    out["watch_queue"], out["pre_queue"] = _queue(stack, "alice-watch"), _queue(stack, "alice-pre")
    out["watch"] = _call(stack, "alice", "POST", "/api/filters", {
        "name": "watch", "expression": "in_watchlist('targets')",
        "transports": [{"kind": "sqs", "queue_url": out["watch_queue"]}]})
    out["pre"] = _call(stack, "alice", "POST", "/api/filters", {
        "name": "pre", "expression": "diaSource.snr > 0",
        "transports": [{"kind": "sqs", "queue_url": out["pre_queue"]}],
        "precovery": {"enabled": True, "dailyCap": 2, "lookback_days": 30}})
    # bob: a million-entry list through a pre-signed upload, one entry on alert 3
    rng = np.random.default_rng(5)
    ra, dec = rng.uniform(0, 360, 10**6), rng.uniform(80, 89, 10**6)  # far from every test alert
    ra[0], dec[0] = alerts[3]["diaSource"]["ra"], alerts[3]["diaSource"]["dec"]
    assert all(a["diaSource"]["dec"] < 79 for a in alerts)
    text = "ra,dec,radius\n" + "".join(f"{r:.6f},{d:.6f},1.0\n" for r, d in zip(ra, dec, strict=True))
    out["million_bytes"] = len(text)
    status, up = _call(stack, "bob", "POST", "/api/watchlists/million/upload")
    assert status == 201, up
    put = urllib.request.Request(up["upload_url"], data=text.encode(), method="PUT",
                                 headers={"Content-Type": "text/csv"})
    with urllib.request.urlopen(put, timeout=120) as response:
        assert response.status == 200
    out["million"] = _call(stack, "bob", "POST", "/api/watchlists/million/complete", {"upload_id": up["upload_id"]})
    out["bob_queue"] = _queue(stack, "bob-million")
    out["bob_million_filter"] = _call(stack, "bob", "POST", "/api/filters", {
        "name": "million", "expression": "in_watchlist('million')",
        "transports": [{"kind": "sqs", "queue_url": out["bob_queue"]}]})
    _publish(stack, alerts)
    _publish(stack, alerts)  # the topic delivers the same alerts again: nothing is ordered twice
    return out


def test_a_watchlist_uploaded_over_http_selects_the_owners_alerts_only(stack, night):
    status, doc = night["upload"]
    assert status == 201 and doc["entries"] == 1, doc
    assert night["bob_get"][0] == 404
    status, error = night["bob_filter"]
    assert status == 400 and "targets" in error["error"]
    assert night["watch"][0] == 201, night["watch"]
    alerts = night["alerts"]
    # the second publication is deduplicated by delivery id: one message
    assert [m["alertId"] for m in _received(stack, night["watch_queue"])] == [alerts[2]["diaSourceId"]]
    status, body = _call(stack, "alice", "GET", "/api/watchlists/targets/entries")
    assert status == 200 and body.decode().splitlines()[1].endswith(",1.5,target")
    assert _call(stack, "alice", "DELETE", "/api/watchlists/targets")[0] == 409  # the filter names it


def test_a_filter_with_precovery_orders_the_owners_jobs_within_its_cap_once(stack, night):
    status, created = night["pre"]
    assert status == 201 and created["precovery"]["daily_cap"] == 2
    s = stack["stack"]
    jobs = DynamoJobStore(s.clients.dynamodb, s.physical_id("ServiceTable"))
    ordered = jobs.list_jobs("alice")
    assert len(ordered) == 2 and jobs.list_jobs("bob") == []
    targets = {(j.job.parameters["target"]["ra"], j.job.parameters["target"]["dec"]) for j in ordered}
    assert targets <= {(a["diaSource"]["ra"], a["diaSource"]["dec"]) for a in night["alerts"]}
    status, counters = _call(stack, "alice", "GET", f"/api/filters/{created['filter_id']}/counters")
    assert counters["totals"]["precovery_ordered"] == 2 and counters["totals"]["precovery_capped"] == 2
    assert len(_received(stack, night["pre_queue"])) == 4  # delivery is not capped by precovery


def test_a_million_entry_watchlist_uploads_by_url_and_selects_its_alert(stack, night):
    status, doc = night["million"]
    assert status == 201 and doc["entries"] == 10**6, doc
    assert night["million_bytes"] > 5 * 1024 * 1024  # more than one API request may carry
    assert night["bob_million_filter"][0] == 201
    assert [m["alertId"] for m in _received(stack, night["bob_queue"])] == [night["alerts"][3]["diaSourceId"]]

"""The filter API: each user sees and changes only their own filters; versions; pause/resume/delete."""

from __future__ import annotations

import pytest
from distribution_harness import make_alerts, messages

pytestmark = pytest.mark.unit

QUEUE = "https://sqs.us-east-1.amazonaws.com/123456789012/mine"


def new_filter(client, expression="diaSource.snr > 20", **kw):
    body = {"name": "bright", "expression": expression, "transports": [{"kind": "sqs", "queue_url": QUEUE}], **kw}
    status, doc, headers = client.call("POST", "/api/filters", body)
    assert status == 201, doc
    assert headers["Location"] == f"/api/filters/{doc['filter_id']}"
    return doc


def test_requests_without_a_token_get_401(api):
    for method, path in [("GET", "/api/filters"), ("POST", "/api/filters"), ("GET", "/api/filters/f-1"),
                         ("POST", "/api/filters/explain")]:
        status, doc, _ = api["anon"].call(method, path, {})
        assert status == 401 and "token" in doc["error"]


def test_a_bad_token_gets_401(api):
    status, doc, _ = api["alice"].call("GET", "/api/filters", token="apt_forged")
    assert status == 401


def test_create_returns_the_normalised_expression_and_version_hash(api):
    doc = new_filter(api["alice"], "diasource_snr_placeholder" if False else "diaSource.snr>20 and diaSource.band='r'")
    assert doc["normalized"] == "diaSource.snr > 20 AND diaSource.band = 'r'"
    assert len(doc["version_hash"]) == 64 and doc["version"] == 1 and doc["state"] == "active"
    assert doc["quota_per_day"] == 10_000 and doc["expires_at"] == "2027-07-14T08:00:00Z"  # 180 days


def test_invalid_expression_is_400_naming_token_and_position(api):
    status, doc, _ = api["alice"].call("POST", "/api/filters", {
        "name": "x", "expression": "diaSource.snr > 5 AND __class__ = 1",
        "transports": [{"kind": "sqs", "queue_url": QUEUE}]})
    assert status == 400 and doc["token"] == "__class__" and doc["position"] == 22


def test_users_see_and_change_only_their_own_filters(api):
    mine = new_filter(api["alice"])
    fid = mine["filter_id"]
    bob = api["bob"]
    assert bob.call("GET", "/api/filters")[1] == {"filters": []}
    for method, path, body in [("GET", f"/api/filters/{fid}", None),
                               ("PATCH", f"/api/filters/{fid}", {"name": "stolen"}),
                               ("POST", f"/api/filters/{fid}/pause", None),
                               ("POST", f"/api/filters/{fid}/resume", None),
                               ("DELETE", f"/api/filters/{fid}", None),
                               ("GET", f"/api/filters/{fid}/counters", None),
                               ("GET", f"/api/filters/{fid}/versions", None),
                               ("POST", f"/api/filters/{fid}/test", {"nights": 1}),
                               ("POST", f"/api/filters/{fid}/redeliver", {"since": "2027-01-15T00:00:00Z"})]:
        status, doc, _ = bob.call(method, path, body)
        assert status == 404, (method, path, doc)
    assert api["alice"].call("GET", f"/api/filters/{fid}")[1]["name"] == "bright"
    assert [f["filter_id"] for f in api["alice"].call("GET", "/api/filters")[1]["filters"]] == [fid]


def test_update_of_the_expression_makes_a_new_version(api, h):
    doc = new_filter(api["alice"])
    fid = doc["filter_id"]
    h.clock.t += 60
    status, new, _ = api["alice"].call("PATCH", f"/api/filters/{fid}", {"expression": "diaSource.snr > 50"})
    assert status == 200 and new["version"] == 2 and new["version_hash"] != doc["version_hash"]
    # a rewrite with the same meaning keeps the version
    status, same, _ = api["alice"].call("PATCH", f"/api/filters/{fid}", {"expression": "diaSource.snr>50"})
    assert same["version"] == 2 and same["version_hash"] == new["version_hash"]
    versions = api["alice"].call("GET", f"/api/filters/{fid}/versions")[1]["versions"]
    assert [v["version"] for v in versions] == [1, 2]


def test_pause_resume_and_delete(api, h):
    fid = new_filter(api["alice"], "diaSource.snr > 0")["filter_id"]
    assert api["alice"].call("POST", f"/api/filters/{fid}/pause")[1]["state"] == "paused"
    alerts = make_alerts(3)
    assert h.service.process_batch(messages(alerts)).matched == 0  # a paused filter does not run
    h.clock.t += 1
    assert api["alice"].call("POST", f"/api/filters/{fid}/resume")[1]["state"] == "active"
    assert h.service.process_batch(messages(alerts)).matched == 3
    assert api["alice"].call("DELETE", f"/api/filters/{fid}")[0] == 204
    assert api["alice"].call("GET", f"/api/filters/{fid}")[0] == 404


def test_webhook_secret_is_returned_once(api):
    body = {"name": "hook", "expression": "diaSource.snr > 5",
            "transports": [{"kind": "webhook", "url": "http://127.0.0.1:9/hook"}]}
    status, doc, _ = api["alice"].call("POST", "/api/filters", body)
    assert status == 201 and len(doc["webhook_secrets"]["http://127.0.0.1:9/hook"]) >= 32
    assert "secret" not in str(doc["transports"])
    again = api["alice"].call("GET", f"/api/filters/{doc['filter_id']}")[1]
    assert "webhook_secrets" not in again and "secret" not in str(again["transports"])


def test_webhook_to_a_private_address_is_refused_outside_tests(api, h):
    from alertprod.delivery.webhook import WebhookPolicy

    object.__setattr__(h.settings, "webhook", WebhookPolicy())  # the production rule
    for url in ("https://127.0.0.1/hook", "https://169.254.169.254/latest/meta-data", "https://10.1.2.3/",
                "http://example.org/hook"):
        status, doc, _ = api["alice"].call("POST", "/api/filters", {
            "name": "x", "expression": "diaSource.snr > 5", "transports": [{"kind": "webhook", "url": url}]})
        assert status == 400 and "webhook url" in doc["error"], (url, doc)


def test_quota_and_expiry_limits(api):
    for extra, word in [({"quota_per_day": 10**9}, "quota_per_day"), ({"quota_per_day": 0}, "quota_per_day"),
                        ({"expires_days": 10_000}, "expires_days")]:
        status, doc, _ = api["alice"].call("POST", "/api/filters", {
            "name": "x", "expression": "diaSource.snr > 5",
            "transports": [{"kind": "sqs", "queue_url": QUEUE}], **extra})
        assert status == 400 and word in doc["error"]


def test_filters_per_user_are_bounded(api, h):
    object.__setattr__(h.settings, "max_filters_per_user", 2)
    new_filter(api["alice"])
    new_filter(api["alice"])
    status, doc, _ = api["alice"].call("POST", "/api/filters", {
        "name": "x", "expression": "diaSource.snr > 5", "transports": [{"kind": "sqs", "queue_url": QUEUE}]})
    assert status == 409


def test_test_on_past_nights_counts_matches_and_cost(api, h):
    alerts = make_alerts(6)
    h.archive(alerts)
    newest = max(a["diaSource"]["midpointMjdTai"] for a in alerts)
    h.clock.t = (newest - 40587.0) * 86400.0 + 3600.0  # an hour after the newest alert
    fid = new_filter(api["alice"], "diaSource.snr > 20")["filter_id"]
    status, doc, _ = api["alice"].call("POST", f"/api/filters/{fid}/test", {"nights": 30})
    in_window = [a for a in alerts if a["diaSource"]["midpointMjdTai"] >= newest + 1 / 24 - 30 - 1e-3]
    expected = sum(a["diaSource"]["snr"] > 20 for a in in_window)
    assert status == 200 and doc["evaluated"] == len(in_window) and doc["matched"] == expected
    assert doc["cost"] > 0
    status, doc2, _ = api["alice"].call("POST", "/api/filters/test", {"expression": "diaSource.snr > 20", "nights": 30})
    assert doc2["matched"] == expected
    assert api["alice"].call("POST", f"/api/filters/{fid}/test", {"nights": 999})[0] == 400


def test_explain_gives_the_trace_for_an_archived_alert(api, h):
    alerts = make_alerts(2)
    h.archive(alerts)
    aid = alerts[1]["diaSourceId"]
    status, doc, _ = api["alice"].call("POST", "/api/filters/explain",
                                       {"expression": "diaSource.snr > 10 AND diaSource.band = 'r'", "alert_id": aid})
    assert status == 200 and doc["matched"] is True and "diaSource.snr > 10" in doc["trace"]
    assert doc["tree"]["value"] == "TRUE"
    status, doc, _ = api["alice"].call("POST", "/api/filters/explain", {"expression": "diaSource.snr > 1", "alert_id": 7})
    assert status == 404


def test_openapi_document_lists_the_routes(api):
    status, doc, _ = api["anon"].call("GET", "/api/openapi.json")
    assert status == 200 and doc["openapi"].startswith("3.")
    assert {"/api/filters", "/api/filters/{filter_id}", "/api/filters/{filter_id}/redeliver",
            "/api/filters/explain"} <= set(doc["paths"])


def test_raising_the_quota_through_the_api_releases_held_matches(api, h):
    alerts = make_alerts(5, snr=[30] * 5)
    h.archive(alerts)
    fid = new_filter(api["alice"], "diaSource.snr > 20", quota_per_day=2)["filter_id"]
    h.service.process_batch(messages(alerts))
    status, counters, _ = api["alice"].call("GET", f"/api/filters/{fid}/counters")
    assert counters["totals"]["held"] == 3 and counters["held_pending"] == 3
    h.clock.t += 1
    status, doc, _ = api["alice"].call("PATCH", f"/api/filters/{fid}", {"quota_per_day": 10})
    assert status == 200 and doc["held_pending"] == 0
    status, counters, _ = api["alice"].call("GET", f"/api/filters/{fid}/counters")
    assert (counters["totals"]["delivered"], counters["totals"]["released"]) == (5, 3)
    assert len(h.sqs.bodies(QUEUE)) == 5


def test_an_expired_filter_is_renewed_with_a_new_expiry(api, h):
    fid = new_filter(api["alice"], "diaSource.snr > 0", expires_days=1)["filter_id"]
    h.clock.t += 2 * 86400
    h.service.process_batch(messages(make_alerts(1)))
    assert api["alice"].call("GET", f"/api/filters/{fid}")[1]["state"] == "expired"
    assert api["alice"].call("POST", f"/api/filters/{fid}/resume")[0] == 409
    status, doc, _ = api["alice"].call("PATCH", f"/api/filters/{fid}", {"expires_days": 30})
    assert status == 200 and doc["state"] == "active"
    h.clock.t += 1
    assert h.service.process_batch(messages(make_alerts(2, seed0=5))).delivered == 2


def test_redelivery_through_the_api_returns_the_same_ids(api, h):
    alerts = make_alerts(3, snr=[30] * 3)
    h.archive(alerts)
    fid = new_filter(api["alice"], "diaSource.snr > 20")["filter_id"]
    h.service.process_batch(messages(alerts))
    first = sorted(b["deliveryId"] for b in h.sqs.bodies(QUEUE))
    h.clock.t += 600
    status, doc, _ = api["alice"].call("POST", f"/api/filters/{fid}/redeliver", {"since": "2027-01-15T07:00:00Z"})
    assert status == 200 and doc["redelivered"] == 3 and sorted(doc["delivery_ids"]) == first
    assert sorted(b["deliveryId"] for b in h.sqs.bodies(QUEUE)[3:]) == first


def test_vtp_broker_on_a_private_address_is_refused_outside_tests(api, h):
    from alertprod.delivery.webhook import WebhookPolicy

    object.__setattr__(h.settings, "webhook", WebhookPolicy())
    status, doc, _ = api["alice"].call("POST", "/api/filters", {
        "name": "x", "expression": "diaSource.snr > 5", "transports": [{"kind": "vtp", "host": "127.0.0.1"}]})
    assert status == 400 and "VTP host" in doc["error"]

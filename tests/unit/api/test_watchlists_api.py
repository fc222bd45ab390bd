"""Users' watchlists through the API: upload, use from a filter, isolation, limits, deletion."""

from __future__ import annotations

import io
import json

import pytest
from distribution_harness import harness, make_alerts, messages
from unit.api.conftest import Client

from alertprod.api import ApiContext, ApiHandler, issue_token
from alertprod.distribution.watchlists import WatchlistLibrary

QUEUE = "https://sqs.us-east-1.amazonaws.com/210987654321/alice-alerts"


@pytest.fixture
def w():
    h = harness(max_watchlist_entries=50, max_watchlist_body_bytes=4096)
    library = WatchlistLibrary(h.store, h.archive_blobs)
    h.service.watchlist_resolver = library.resolver(ttl_s=0.0, clock=h.clock)
    ctx = ApiContext(store=h.store, service=h.service, archive=h.service.archive, settings=h.settings,
                     clock=h.clock, watchlist_library=library)
    handler = ApiHandler(ctx)
    tokens = {u: issue_token(h.store, u, now=h.clock()).token for u in ("alice", "bob")}
    return {"h": h, "library": library, "alice": Client(handler, tokens["alice"]),
            "bob": Client(handler, tokens["bob"]), "anon": Client(handler, None)}


def _csv(rows, header="ra,dec,radius,id"):
    return header + "\n" + "\n".join(",".join(str(x) for x in r) for r in rows) + "\n"


def _put_csv(client, name, text, **query):
    q = "&".join(f"{k}={v}" for k, v in query.items())
    return client.call("PUT", f"/api/watchlists/{name}" + (f"?{q}" if q else ""), raw=text,
                       headers={"content-type": "text/csv"})


def _filter(client, expression):
    return client.call("POST", "/api/filters", {"name": "watch", "expression": expression,
                                                "transports": [{"kind": "sqs", "queue_url": QUEUE}]})


def test_csv_watchlist_selects_exactly_the_alerts_near_its_entries(w):
    alerts = make_alerts(4)
    a1, a3 = alerts[1]["diaSource"], alerts[3]["diaSource"]
    # two entries: 1" off alert 1 with a 2" radius (hit), 5" off alert 3 with a 2" radius (miss)
    text = _csv([(a1["ra"], a1["dec"] + 1 / 3600, 2.0, "sn-candidate"),
                 (a3["ra"], a3["dec"] + 5 / 3600, 2.0, "quasar")])
    status, doc, headers = _put_csv(w["alice"], "targets", text)
    assert status == 201, doc
    assert doc["entries"] == 2 and doc["max_radius_arcsec"] == 2.0 and doc["source_format"] == "csv"
    assert headers["Location"] == "/api/watchlists/targets"
    status, created, _ = _filter(w["alice"], "in_watchlist('targets')")
    assert status == 201, created
    report = w["h"].service.process_batch(messages(alerts))
    assert report.delivered == 1
    (sent,) = w["h"].sqs.bodies(QUEUE)
    assert sent["alertId"] == alerts[1]["diaSourceId"]


def test_json_upload_replaces_the_list_and_running_filters_use_the_new_one(w):
    alerts = make_alerts(4)
    first = {"entries": [{"ra": alerts[0]["diaSource"]["ra"], "dec": alerts[0]["diaSource"]["dec"]}]}
    status, doc, _ = w["alice"].call("PUT", "/api/watchlists/targets", first)
    assert status == 201 and doc["source_format"] == "json"
    assert _filter(w["alice"], "in_watchlist('targets')")[0] == 201
    w["h"].service.process_batch(messages(alerts[:2]))
    second = {"entries": [{"ra": alerts[2]["diaSource"]["ra"], "dec": alerts[2]["diaSource"]["dec"],
                           "radius": 0.5, "id": "new"}]}
    status, replaced, _ = w["alice"].call("PUT", "/api/watchlists/targets", second)
    assert status == 200 and replaced["sha256"] != doc["sha256"]
    assert replaced["created_at"] == doc["created_at"]
    w["h"].service.process_batch(messages(alerts[2:]))
    got = [b["alertId"] for b in w["h"].sqs.bodies(QUEUE)]
    assert got == [alerts[0]["diaSourceId"], alerts[2]["diaSourceId"]]
    # the replaced list's entries are gone from the object store: one blob per watchlist
    assert len(list(w["h"].archive_blobs.list("watchlists/"))) == 1


def test_another_users_watchlist_is_invisible_to_them_and_their_filters(w):
    assert _put_csv(w["alice"], "private", _csv([(10.0, 20.0, 1.0, "x")]))[0] == 201
    assert w["bob"].call("GET", "/api/watchlists/private")[0] == 404
    assert w["bob"].call("GET", "/api/watchlists/private/entries")[0] == 404
    assert w["bob"].call("DELETE", "/api/watchlists/private")[0] == 404
    assert w["bob"].call("GET", "/api/watchlists")[1] == {"watchlists": []}
    status, error, _ = _filter(w["bob"], "in_watchlist('private')")
    assert status == 400 and "private" in error["error"]
    assert [x["name"] for x in w["alice"].call("GET", "/api/watchlists")[1]["watchlists"]] == ["private"]


def test_two_users_may_use_one_name_for_different_lists(w):
    alerts = make_alerts(2)
    for user, alert in (("alice", alerts[0]), ("bob", alerts[1])):
        src = alert["diaSource"]
        assert _put_csv(w[user], "mine", _csv([(src["ra"], src["dec"], 1.0, user)]))[0] == 201
        assert _filter(w[user], "in_watchlist('mine')")[0] == 201
    w["h"].service.process_batch(messages(alerts))
    by_filter = {b["filterId"]: b["alertId"] for b in w["h"].sqs.bodies(QUEUE)}
    owners = {f.filter_id: f.user_id for f in w["h"].store.list_filters()}
    assert {owners[fid]: aid for fid, aid in by_filter.items()} == {
        "alice": alerts[0]["diaSourceId"], "bob": alerts[1]["diaSourceId"]}


@pytest.mark.parametrize(("text", "content_type", "needle"), [
    ("ra,dec\n10,95\n", "text/csv", "entry 0: dec"),
    ("ra,dec\n10,20\n400,20\n", "text/csv", "entry 1: ra"),
    ("ra,dec,radius\n10,20,-1\n", "text/csv", "entry 0: radius"),
    ("ra,dec,radius\n10,20,7200\n", "text/csv", "radius"),
    ("ra,dec\nten,20\n", "text/csv", "not a number"),
    ("ra,dec,radus\n10,20,1\n", "text/csv", "unknown column 'radus'"),
    ("ra,radius\n10,1\n", "text/csv", "needs ra and dec"),
    ("ra,dec\n10,\n", "text/csv", "entry 0: dec is empty"),
    ('{"entries": []}', "application/json", "entries"),
    ('{"entries": [{"ra": 1, "dec": 2, "colour": "red"}]}', "application/json", "colour"),
    ('{"entries": [{"ra": 1, "dec": 2}', "application/json", "not valid JSON"),
    ("ra\tdec", "image/png", "Content-Type"),
])
def test_malformed_upload_is_a_400_naming_what_is_wrong(w, text, content_type, needle):
    status, error, _ = w["alice"].call("PUT", "/api/watchlists/bad", raw=text,
                                       headers={"content-type": content_type})
    assert status == 400 and needle in error["error"], error
    assert w["alice"].call("GET", "/api/watchlists/bad")[0] == 404


def test_bad_names_empty_bodies_and_missing_tokens_are_refused(w):
    assert _put_csv(w["alice"], "no%20spaces", _csv([(1, 2, 1, "a")]))[0] == 400
    assert _put_csv(w["alice"], "x" * 65, _csv([(1, 2, 1, "a")]))[0] == 400
    assert w["alice"].call("PUT", "/api/watchlists/empty", raw="", headers={"content-type": "text/csv"})[0] == 400
    assert _put_csv(w["anon"], "mine", _csv([(1, 2, 1, "a")]))[0] == 401


def test_more_entries_than_allowed_is_a_413_and_so_is_a_body_over_the_size_limit(w):
    rows = [(float(k), 0.0, 1.0, f"e{k}") for k in range(51)]
    status, error, _ = _put_csv(w["alice"], "big", _csv(rows))
    assert status == 413 and "at most 50" in error["error"]
    status, error, _ = w["alice"].call("PUT", "/api/watchlists/big", {"entries": [{"ra": float(k), "dec": 0.0}
                                                                                  for k in range(51)]})
    assert status == 413
    huge = "ra,dec\n" + "1.000000000000,2.000000000000\n" * 200
    assert _put_csv(w["alice"], "big", huge)[0] == 413


def test_a_user_may_own_a_bounded_number_of_watchlists(w):
    limit = w["h"].settings.max_watchlists_per_user
    for k in range(limit):
        assert _put_csv(w["alice"], f"l{k}", _csv([(1, 2, 1, "a")]))[0] == 201
    assert _put_csv(w["alice"], "one-more", _csv([(1, 2, 1, "a")]))[0] == 409
    assert _put_csv(w["alice"], "l0", _csv([(3, 4, 1, "b")]))[0] == 200  # replacing is not a new one


def test_delete_is_refused_while_a_filter_names_the_list_then_removes_it(w):
    assert _put_csv(w["alice"], "targets", _csv([(1, 2, 1, "a")]))[0] == 201
    status, created, _ = _filter(w["alice"], "diaSource.snr > 5 AND in_watchlist('targets')")
    status, error, _ = w["alice"].call("DELETE", "/api/watchlists/targets")
    assert status == 409 and created["filter_id"] in error["error"]
    assert w["alice"].call("DELETE", f"/api/filters/{created['filter_id']}")[0] == 204
    assert w["alice"].call("DELETE", "/api/watchlists/targets")[0] == 204
    assert w["alice"].call("GET", "/api/watchlists/targets")[0] == 404
    assert list(w["h"].archive_blobs.list("watchlists/")) == []


def test_entries_download_as_csv_round_trips_the_upload(w):
    rows = [(10.5, -20.25, 1.5, "a"), (359.0, 89.0, 3.0, "b")]
    assert _put_csv(w["alice"], "rt", _csv(rows))[0] == 201
    handler = w["alice"].handler
    from alertprod.local.http import http_api_event

    event = http_api_event("GET", "/api/watchlists/rt/entries", {"authorization": f"Bearer {w['alice'].token}"}, b"")
    response = handler(event, None)
    assert response["statusCode"] == 200 and response["headers"]["Content-Type"] == "text/csv"
    from astropy.table import Table

    table = Table.read(response["body"], format="ascii.csv")
    assert [(float(r["ra"]), float(r["dec"]), float(r["radius"]), str(r["id"])) for r in table] == rows


def test_csv_without_radius_takes_the_query_default(w):
    status, doc, _ = _put_csv(w["alice"], "d", "ra,dec\n10,20\n11,21\n", radius_arcsec=4.5)
    assert status == 201 and doc["max_radius_arcsec"] == 4.5 and doc["entries"] == 2


def test_votable_upload_is_accepted(w):
    from astropy.table import Table

    buffer = io.BytesIO()
    Table({"ra": [10.0, 20.0], "dec": [1.0, 2.0], "radius": [2.0, 3.0]}).write(buffer, format="votable")
    status, doc, _ = w["alice"].call("PUT", "/api/watchlists/vo", raw=buffer.getvalue(),
                                     headers={"content-type": "application/x-votable+xml"})
    assert status == 201 and doc["source_format"] == "votable" and doc["entries"] == 2


def test_watchlist_routes_and_models_are_in_the_openapi_document(w):
    status, doc, _ = w["anon"].call("GET", "/api/openapi.json")
    assert status == 200
    assert {"/api/watchlists", "/api/watchlists/{name}", "/api/watchlists/{name}/entries"} <= set(doc["paths"])
    assert set(doc["paths"]["/api/watchlists/{name}"]) >= {"get", "put", "delete"}
    assert "WatchlistView" in json.dumps(doc["components"])


def test_a_large_file_goes_through_an_upload_url_then_complete(w):
    library = w["library"]
    urls = {}

    def presign(key, expires_s):  # the object store's pre-signed PUT: here the test writes the key itself
        urls[key] = expires_s
        return f"memory://upload/{key}"

    library.presign = presign
    status, doc, _ = w["alice"].call("POST", "/api/watchlists/big/upload")
    assert status == 201 and doc["method"] == "PUT" and doc["complete"] == "/api/watchlists/big/complete"
    (key,) = urls
    assert doc["upload_url"].endswith(key) and urls[key] == doc["expires_in_s"]
    rows = [(float(k) / 10, 0.0, 1.0, f"e{k}") for k in range(40)]
    w["h"].archive_blobs.put(key, _csv(rows).encode())
    assert w["bob"].call("POST", "/api/watchlists/big/complete", {"upload_id": doc["upload_id"]})[0] == 400
    status, made, _ = w["alice"].call("POST", "/api/watchlists/big/complete", {"upload_id": doc["upload_id"]})
    assert status == 201 and made["entries"] == 40
    assert not w["h"].archive_blobs.exists(key)  # taken: a second complete finds nothing
    status, error, _ = w["alice"].call("POST", "/api/watchlists/big/complete", {"upload_id": doc["upload_id"]})
    assert status == 400 and "no upload" in error["error"]


def test_an_uploaded_file_over_the_byte_limit_is_a_413_and_removed(w):
    w["library"].presign = lambda key, expires_s: f"memory://upload/{key}"
    object.__setattr__(w["h"].settings, "max_watchlist_upload_bytes", 100)
    _, doc, _ = w["alice"].call("POST", "/api/watchlists/big/upload")
    key = w["library"].upload_key("alice", "big", doc["upload_id"])
    w["h"].archive_blobs.put(key, _csv([(1.0, 2.0, 1.0, "x" * 30)] * 5).encode())
    status, error, _ = w["alice"].call("POST", "/api/watchlists/big/complete", {"upload_id": doc["upload_id"]})
    assert status == 413 and "at most 100" in error["error"]
    assert not w["h"].archive_blobs.exists(key)


def test_without_upload_urls_the_upload_route_says_so(w):
    status, error, _ = w["alice"].call("POST", "/api/watchlists/big/upload")
    assert status == 404 and "not offered" in error["error"]

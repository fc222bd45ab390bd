"""The precovery routes over the API handler in process: §6's statuses, bodies and headers."""

from __future__ import annotations

import base64
import csv
import io
import json
import xml.etree.ElementTree as ET

import pytest
from conftest import batch_body, make_context
from distribution_harness import harness

from alertprod.api import ApiContext, ApiHandler, authorize, issue_token
from alertprod.local.http import http_api_event
from alertprod.precovery.jobservice import JobServiceSettings
from alertprod.precovery.jobservice.handlers import drain

pytestmark = pytest.mark.unit


class Client:
    """One user's calls through the authorizer and the handler; returns (status, body bytes, headers)."""

    def __init__(self, handler: ApiHandler, token: str | None):
        self.handler, self.token = handler, token

    def call(self, method, path, body=None, *, raw: bytes | None = None, headers=None):
        hdrs = {"content-type": "application/json", **(headers or {})}
        if self.token:
            hdrs["authorization"] = f"Bearer {self.token}"
        data = raw if raw is not None else (b"" if body is None else json.dumps(body).encode())
        event = http_api_event(method, path, hdrs, data)
        auth = authorize(event, self.handler.ctx.store, now=self.handler.ctx.clock())
        if auth["isAuthorized"]:
            event["requestContext"]["authorizer"] = {"lambda": auth["context"]}
        r = self.handler(event, None)
        out = r.get("body") or ""
        out = base64.b64decode(out) if r.get("isBase64Encoded") else out.encode()
        return r["statusCode"], out, {k.lower(): v for k, v in (r.get("headers") or {}).items()}

    def json(self, method, path, body=None, **kw):
        status, out, headers = self.call(method, path, body, **kw)
        return status, (json.loads(out) if out else None), headers


@pytest.fixture
def api(stores):
    h = harness()
    jobs = make_context(stores, settings=JobServiceSettings(max_jobs_in_flight_per_user=2,
                                                             max_submissions_per_hour=3))
    handler = ApiHandler(ApiContext(store=h.store, service=h.service, archive=h.service.archive,
                                    settings=h.settings, clock=h.clock, precovery=jobs))
    users = {u: Client(handler, issue_token(h.store, u, now=h.clock()).token) for u in ("alice", "bob")}
    return {**users, "anon": Client(handler, None), "jobs": jobs}


def test_a_submitted_job_completes_and_serves_its_light_curve_in_three_formats(api, stores, true_fluxes):
    status, doc, headers = api["alice"].json("POST", "/api/precovery/jobs", batch_body(stores))
    assert status == 201 and headers["location"] == f"/api/precovery/jobs/{doc['jobId']}"
    assert doc["phase"] == "PENDING" and doc["units"]["total"] == 0
    drain(api["jobs"])
    status, doc, _ = api["alice"].json("GET", f"/api/precovery/jobs/{doc['jobId']}")
    assert status == 200 and doc["phase"] == "COMPLETED"
    assert doc["units"] == {"total": 1, "done": 1, "cached": 1, "recreated": 0}
    assert doc["etaAtSubmission"] is not None and doc["endTime"] is not None
    base = f"/api/precovery/jobs/{doc['jobId']}/results/lightcurve"
    rows = api["alice"].json("GET", base + "?format=json")[1]["rows"]
    assert [r["target"] for r in rows] == [0, 1, 2]
    pulls = [(r["psfFlux"] - f) / r["psfFluxErr"] for r, f in zip(rows, true_fluxes, strict=True)]
    assert max(abs(p) for p in pulls) < 4
    status, text, headers = api["alice"].call("GET", base + "?format=csv")
    assert status == 200 and headers["content-type"].startswith("text/csv")
    assert [int(r["target"]) for r in csv.DictReader(io.StringIO(text.decode()))] == [0, 1, 2]
    status, xml, _ = api["alice"].call("GET", base + "?format=votable")
    assert status == 200 and b"VOTABLE" in xml
    assert api["alice"].json("GET", base + "?format=fits")[0] == 400


def test_uws_xml_is_served_when_the_client_asks_for_it(api, stores):
    job_id = api["alice"].json("POST", "/api/precovery/jobs", batch_body(stores))[1]["jobId"]
    status, xml, headers = api["alice"].call("GET", f"/api/precovery/jobs/{job_id}",
                                             headers={"accept": "application/xml"})
    assert status == 200 and headers["content-type"] == "application/xml"
    root = ET.fromstring(xml)
    assert root.find("{http://www.ivoa.net/xml/UWS/v1.0}phase").text == "PENDING"


def test_another_users_job_is_not_found_and_no_token_is_401(api, stores):
    job_id = api["alice"].json("POST", "/api/precovery/jobs", batch_body(stores))[1]["jobId"]
    for method, path in (("GET", f"/api/precovery/jobs/{job_id}"), ("DELETE", f"/api/precovery/jobs/{job_id}"),
                         ("GET", f"/api/precovery/jobs/{job_id}/results/lightcurve?format=csv")):
        status, doc, _ = api["bob"].json(method, path)
        assert status == 404 and "error" in doc
    assert api["bob"].json("GET", "/api/precovery/jobs")[1]["jobs"] == []
    status, doc, _ = api["anon"].json("GET", "/api/precovery/jobs")
    assert status == 401 and "error" in doc


@pytest.mark.parametrize("body, word", [
    ({"target": {"kind": "position", "ra": 10.0, "dec": 95.0}}, "dec"),
    ({"target": {"kind": "ellipse"}}, "kind"),
    ({"target": {"kind": "position", "ra": 10.0, "dec": 5.0}, "options": {"mjd_min": 70000.0}}, "mjd"),
    ({"target": {"kind": "position", "ra": 10.0, "dec": 5.0}, "colour": 1}, "colour"),
    ({"target": {"kind": "position", "ra": 10.0, "dec": 5.0}, "notify": {"webhook": "ftp://x"}}, "scheme"),
])
def test_a_malformed_submission_is_400_with_a_clear_message(api, body, word):
    status, doc, _ = api["alice"].json("POST", "/api/precovery/jobs", body)
    assert status == 400 and word in doc["error"]


def test_a_body_that_is_not_json_is_400(api):
    status, doc, _ = api["alice"].json("POST", "/api/precovery/jobs", raw=b"{not json")
    assert status == 400 and doc["error"]


def test_over_the_in_flight_quota_is_429_with_retry_after(api, stores):
    for _ in range(2):
        assert api["alice"].json("POST", "/api/precovery/jobs", batch_body(stores))[0] == 201
    status, doc, headers = api["alice"].json("POST", "/api/precovery/jobs", batch_body(stores))
    assert status == 429 and "in flight" in doc["error"] and int(headers["retry-after"]) >= 1
    assert api["bob"].json("POST", "/api/precovery/jobs", batch_body(stores))[0] == 201  # per user


def test_abort_by_form_or_json_and_delete(api, stores):
    a = api["alice"].json("POST", "/api/precovery/jobs", batch_body(stores))[1]["jobId"]
    status, doc, _ = api["alice"].json("POST", f"/api/precovery/jobs/{a}/phase", raw=b"PHASE=ABORT",
                                       headers={"content-type": "application/x-www-form-urlencoded"})
    assert status == 200 and doc["phase"] == "ABORTED"
    b = api["alice"].json("POST", "/api/precovery/jobs", batch_body(stores))[1]["jobId"]
    status, doc, _ = api["alice"].json("POST", f"/api/precovery/jobs/{b}/phase", {"PHASE": "ABORT"})
    assert status == 200 and doc["phase"] == "ABORTED"
    assert api["alice"].json("POST", f"/api/precovery/jobs/{b}/phase", {"PHASE": "RUN"})[0] == 400
    assert api["alice"].call("DELETE", f"/api/precovery/jobs/{a}")[0] == 204
    assert api["alice"].json("GET", f"/api/precovery/jobs/{a}")[0] == 404
    drain(api["jobs"])  # the aborted jobs' plan messages find nothing to do
    assert api["alice"].json("GET", f"/api/precovery/jobs/{b}")[1]["phase"] == "ABORTED"


def test_the_openapi_document_describes_the_precovery_routes_with_request_models(api):
    status, doc, _ = api["anon"].json("GET", "/api/openapi.json")
    assert status == 200
    paths = doc["paths"]
    for path in ("/api/precovery/jobs", "/api/precovery/jobs/{job_id}", "/api/precovery/jobs/{job_id}/phase",
                 "/api/precovery/jobs/{job_id}/results/lightcurve", "/api/precovery/jobs/{job_id}/results/stamps"):
        assert path in paths
    body = paths["/api/precovery/jobs"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert "JobSubmission" in json.dumps(body)


def test_stamps_asked_for_come_as_one_zip_and_not_otherwise(api, stores):
    import zipfile

    job_id = api["alice"].json("POST", "/api/precovery/jobs", batch_body(stores, stamps=True))[1]["jobId"]
    plain = api["alice"].json("POST", "/api/precovery/jobs", batch_body(stores))[1]["jobId"]
    drain(api["jobs"])
    doc = api["alice"].json("GET", f"/api/precovery/jobs/{job_id}")[1]
    assert "stamps" in {r["id"] for r in doc["results"]}
    status, data, headers = api["alice"].call("GET", f"/api/precovery/jobs/{job_id}/results/stamps")
    assert status == 200 and headers["content-type"] == "application/zip"
    names = zipfile.ZipFile(io.BytesIO(data)).namelist()
    assert any(n.endswith(".fits") for n in names) and any(n.endswith(".png") for n in names)
    assert api["alice"].json("GET", f"/api/precovery/jobs/{plain}/results/stamps")[0] == 404


def test_the_job_list_filters_by_phase_and_is_limited(api, stores):
    ids = []
    for _ in range(2):
        ids.append(api["alice"].json("POST", "/api/precovery/jobs", batch_body(stores))[1]["jobId"])
        api["jobs"].clock.t += 1
    api["alice"].json("POST", f"/api/precovery/jobs/{ids[0]}/phase", {"PHASE": "ABORT"})
    listed = api["alice"].json("GET", "/api/precovery/jobs?phase=ABORTED")[1]
    assert [j["jobId"] for j in listed["jobs"]] == [ids[0]] and listed["truncated"] is False
    listed = api["alice"].json("GET", "/api/precovery/jobs?limit=1")[1]
    assert [j["jobId"] for j in listed["jobs"]] == [ids[1]] and listed["truncated"] is True
    assert api["alice"].json("GET", "/api/precovery/jobs?phase=DONE")[0] == 400

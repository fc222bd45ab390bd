"""The precovery client's HTTP behaviour that a healthy service rarely shows: throttling with
``Retry-After`` in both of its forms, giving up after a bounded number of retries, and a service
that cannot be reached. A scripted loopback server plays the throttling front end; the client's
work against the real API is in test_precovery_client.py."""

from __future__ import annotations

import json
import threading
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from alertprod.errors import PrecoveryError
from alertprod.precovery.client import PrecoveryApiError, PrecoveryClient, job_progress

pytestmark = pytest.mark.unit


class Script:
    """Answers queued (status, headers, body) in order, then 201 with a job document."""

    def __init__(self, answers):
        self.answers = list(answers)
        self.requests = []

    def next(self, method, path, headers, body):
        self.requests.append((method, path, headers.get("Authorization"), body))
        if self.answers:
            return self.answers.pop(0)
        return 201, {"Content-Type": "application/json"}, json.dumps(
            {"jobId": "j1", "phase": "QUEUED"}).encode()


@pytest.fixture
def served():
    def start(answers):
        script = Script(answers)

        class Handler(BaseHTTPRequestHandler):
            def _any(self):
                length = int(self.headers.get("Content-Length") or 0)
                status, headers, body = script.next(self.command, self.path, self.headers,
                                                    self.rfile.read(length))
                self.send_response(status)
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = do_DELETE = _any

            def log_message(self, *args):
                pass

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_address[1]}", script

    servers: list[ThreadingHTTPServer] = []
    yield start
    for s in servers:
        s.shutdown()
        s.server_close()


def _throttled(retry_after):
    return 429, {"Retry-After": retry_after, "Content-Type": "application/json"}, \
        b'{"error": "over quota: 24 jobs in flight"}'


def test_a_429_is_retried_after_its_retry_after_seconds_then_succeeds(served):
    url, script = served([_throttled("3"), _throttled("1")])
    slept = []
    client = PrecoveryClient(url, "tok", sleep=slept.append)
    job = client.submit({"kind": "position", "ra": 10.0, "dec": -5.0}, mjd_min=60000.0)
    assert job == {"jobId": "j1", "phase": "QUEUED"}
    assert slept == [3.0, 1.0]
    assert len(script.requests) == 3
    method, path, auth, body = script.requests[-1]
    assert (method, path, auth) == ("POST", "/api/precovery/jobs", "Bearer tok")
    assert json.loads(body) == {"target": {"kind": "position", "ra": 10.0, "dec": -5.0},
                                "options": {"mjd_min": 60000.0}}


def test_a_retry_after_given_as_an_http_date_is_honoured_as_seconds_from_now(served):
    import time

    url, _ = served([_throttled(formatdate(time.time() + 30, usegmt=True))])
    slept = []
    PrecoveryClient(url, "tok", sleep=slept.append).status("j1")
    assert len(slept) == 1 and 27.0 <= slept[0] <= 31.0


def test_throttling_beyond_the_retry_budget_raises_the_api_message_with_status_429(served):
    url, script = served([_throttled("0")] * 4)
    client = PrecoveryClient(url, "tok", max_retries=2, sleep=lambda s: None)
    with pytest.raises(PrecoveryApiError) as caught:
        client.status("j1")
    assert caught.value.status == 429 and caught.value.message == "over quota: 24 jobs in flight"
    assert caught.value.retry_after_s == 0.0
    assert len(script.requests) == 3  # one try and two retries


def test_a_retry_after_longer_than_the_client_accepts_is_raised_at_once(served):
    url, script = served([_throttled("3600")])
    client = PrecoveryClient(url, "tok", max_retry_after_s=60, sleep=lambda s: pytest.fail("slept"))
    with pytest.raises(PrecoveryApiError) as caught:
        client.status("j1")
    assert caught.value.retry_after_s == 3600.0 and len(script.requests) == 1


def test_other_errors_are_not_retried_and_carry_the_apis_message(served):
    url, script = served([(400, {"Content-Type": "application/json"}, b'{"error": "ra: out of range"}')])
    with pytest.raises(PrecoveryApiError) as caught:
        PrecoveryClient(url, "tok", sleep=lambda s: pytest.fail("slept")).status("j1")
    assert (caught.value.status, caught.value.message) == (400, "ra: out of range")
    assert len(script.requests) == 1


def test_an_unreachable_service_is_an_api_error_with_status_0():
    import socket

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(PrecoveryApiError) as caught:
        PrecoveryClient(f"http://127.0.0.1:{port}", "tok", timeout_s=5).status("j1")
    assert caught.value.status == 0 and "cannot reach" in caught.value.message


def test_job_ids_are_quoted_into_the_path_not_interpreted(served):
    url, script = served([(200, {"Content-Type": "application/json"}, b'{"jobId": "x"}')])
    PrecoveryClient(url, "tok").status("../filters?x=1")
    assert script.requests[0][1] == "/api/precovery/jobs/..%2Ffilters%3Fx%3D1"


@pytest.mark.parametrize("base_url, token", [("", "t"), ("ftp://h", "t"), ("http://h", ""),
                                             ("http://h", "two words")])
def test_a_client_refuses_a_url_or_token_it_could_never_use(base_url, token):
    with pytest.raises(PrecoveryError):
        PrecoveryClient(base_url, token)


def test_a_base_url_ending_in_api_is_the_same_service():
    assert PrecoveryClient("http://h:1/api/", "t").api_url == PrecoveryClient("http://h:1", "t").api_url


def test_progress_counts_failed_units_as_done_and_is_unknown_without_unit_counts():
    assert job_progress({"units": {"total": 10, "done": 6, "failed": 1}}) == (7, 10)
    assert job_progress({"phase": "PENDING"}) == (None, None)
    assert job_progress({"units": {"total": True}}) == (None, None)

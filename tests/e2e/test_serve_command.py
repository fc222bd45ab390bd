"""``alertprod serve`` as a user starts it: the lines a script reads, the page, the API's tokens."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

pytestmark = [pytest.mark.e2e]

ALERTPROD = Path(sys.executable).with_name("alertprod")


def read_line(proc: subprocess.Popen, deadline: float) -> str:
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if line:
            return line.rstrip("\n")
        if proc.poll() is not None:
            raise AssertionError(f"serve exited with {proc.returncode}: {proc.stderr.read()[-2000:]}")
    raise AssertionError("serve printed nothing in time")


def fetch(url: str, token: str | None = None) -> tuple[int, dict, bytes]:
    request = urllib.request.Request(url)
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as err:
        return err.code, dict(err.headers), err.read()


def test_serve_prints_url_and_two_tokens_on_a_pipe_and_serves_page_and_api():
    env = {**os.environ, "PYTHONUNBUFFERED": ""}  # the lines must arrive without it
    proc = subprocess.Popen([str(ALERTPROD), "serve", "--port", "0"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env)
    try:
        deadline = time.monotonic() + 120
        lines = [read_line(proc, deadline) for _ in range(3)]
        assert lines[0].startswith("url: http://")
        assert [x.split(" ", 1)[0] for x in lines[1:]] == ["token:", "token:"]
        url = lines[0].split(" ", 1)[1]
        alice, bob = (x.split(" ", 1)[1] for x in lines[1:])
        assert alice != bob

        status, headers, body = fetch(url + "/")
        assert status == 200 and b"<h1>Precovery service</h1>" in body
        assert fetch(url + "/static/app.js")[0] == 200

        assert fetch(url + "/api/precovery/jobs")[0] == 401
        assert fetch(url + "/api/precovery/jobs", "apt_not-a-token")[0] == 403  # the authorizer refuses
        status, _, body = fetch(url + "/api/precovery/jobs", alice)
        assert status == 200 and json.loads(body)["jobs"] == []
        assert fetch(url + "/api/filters", bob)[0] == 200
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0

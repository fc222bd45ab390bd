"""The precovery page's files, served by the API handler without a token, and nothing else."""

from __future__ import annotations

import re
from importlib import resources

import pytest
from distribution_harness import harness

from alertprod.api import ApiContext, ApiHandler, issue_token
from alertprod.api.pages import PAGE_FILES
from alertprod.local.http import http_api_event


@pytest.fixture(scope="module")
def handler():
    h = harness()
    ctx = ApiContext(store=h.store, service=h.service, archive=h.service.archive, settings=h.settings,
                     clock=h.clock)
    return ApiHandler(ctx), issue_token(h.store, "alice", now=h.clock()).token


def get(handler, path, token=None):
    headers = {"authorization": f"Bearer {token}"} if token else {}
    response = handler(http_api_event("GET", path, headers, b""), None)
    return response["statusCode"], {k.lower(): v for k, v in (response.get("headers") or {}).items()}, \
        response.get("body") or ""


def test_page_is_served_at_the_root_without_a_token(handler):
    status, headers, body = get(handler[0], "/")
    assert status == 200
    assert headers["content-type"].startswith("text/html")
    assert '<script type="module" src="static/app.js">' in body
    assert "script-src 'self'" in headers["content-security-policy"]


def test_every_module_the_page_imports_is_served_with_a_javascript_type(handler):
    _, _, page = get(handler[0], "/")
    wanted = set(re.findall(r'src="static/([\w.]+)"', page)) | set(re.findall(r'href="static/([\w.]+)"', page))
    seen = set()
    while wanted - seen:
        name = (wanted - seen).pop()
        seen.add(name)
        status, headers, body = get(handler[0], f"/static/{name}")
        assert status == 200, name
        if name.endswith(".js"):
            assert headers["content-type"].startswith("text/javascript")
            wanted |= set(re.findall(r'from "\./([\w.]+)"', body))
    assert seen == set(PAGE_FILES) - {"index.html"}


@pytest.mark.parametrize("path", ["/static/../pages.py", "/static/__init__.py", "/static/", "/static/missing.js",
                                  "/static/index.html/x"])
def test_no_file_outside_the_page_is_served(handler, path):
    status, _, body = get(handler[0], path)
    assert status == 404
    assert "def " not in body


def test_the_api_behind_the_page_still_needs_a_token(handler):
    h, token = handler
    assert get(h, "/api/filters")[0] == 401
    assert get(h, "/api/filters", token)[0] == 200


def test_page_files_ship_as_package_data():
    folder = resources.files("alertprod.web")
    for name in PAGE_FILES:
        assert folder.joinpath(name).is_file(), name

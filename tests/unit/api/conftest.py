"""An API client over the handler in process: HTTP API v2 events, as the authorizer would pass them."""

from __future__ import annotations

import json

import pytest
from distribution_harness import harness

from alertprod.api import ApiContext, ApiHandler, authorize, issue_token
from alertprod.local.http import http_api_event


class Client:
    """Calls the API handler with an optional bearer token, running the authorizer first."""

    def __init__(self, handler: ApiHandler, token: str | None):
        self.handler, self.token = handler, token

    def call(self, method: str, path: str, body=None, *, raw: str | bytes | None = None,
             token: str | None = "default", headers: dict | None = None):
        token = self.token if token == "default" else token
        hdrs = {"content-type": "application/json", **(headers or {})}
        if token:
            hdrs["authorization"] = f"Bearer {token}"
        data = raw if raw is not None else (b"" if body is None else json.dumps(body).encode())
        if isinstance(data, str):
            data = data.encode()
        event = http_api_event(method, path, hdrs, data)
        auth = authorize(event, self.handler.ctx.store, now=self.handler.ctx.clock())
        if token and not auth["isAuthorized"]:  # API Gateway answers 403 itself; the library 401s too
            pass
        elif auth["isAuthorized"]:
            event["requestContext"]["authorizer"] = {"lambda": auth["context"]}
        response = self.handler(event, None)
        text = response.get("body") or ""
        return response["statusCode"], (json.loads(text) if text else None), response.get("headers") or {}


@pytest.fixture
def h():
    return harness()


@pytest.fixture
def api(h):
    ctx = ApiContext(store=h.store, service=h.service, archive=h.service.archive, settings=h.settings,
                     clock=h.clock)
    handler = ApiHandler(ctx)
    alice = issue_token(h.store, "alice", label="test", now=h.clock()).token
    bob = issue_token(h.store, "bob", now=h.clock()).token
    return {"alice": Client(handler, alice), "bob": Client(handler, bob), "anon": Client(handler, None),
            "handler": handler}

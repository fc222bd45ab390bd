"""The API function's one entry point: size check, then the resolver; every error as JSON."""

from __future__ import annotations

import base64
import json
from typing import Any

from alertprod.api.pages import is_page_path
from alertprod.api.routes import ApiContext, build_api
from alertprod.api.tokens import authenticate
from alertprod.errors import StorageError

__all__ = ["ApiHandler", "PUBLIC_PATHS"]

#: Paths served without a token (and the web page's: :func:`alertprod.api.pages.is_page_path`).
PUBLIC_PATHS = ("/api/openapi.json",)


class ApiHandler:
    """Callable ``(event, context) -> response`` for HTTP API payload 2.0 events.

    Built once per container. Order: 413 for a body over ``settings.max_body_bytes``; 401
    without a user (the authorizer's ``requestContext.authorizer.lambda.userId``, or else the
    bearer token checked here, so a server without the authorizer is no weaker); then the
    routes. A storage failure is a 503 (ours, not the client's).
    """

    def __init__(self, ctx: ApiContext):
        self.ctx = ctx
        self.app = build_api(ctx)

    def __call__(self, event: dict[str, Any], context: Any = None) -> dict[str, Any]:
        body = event.get("body") or ""
        size = len(body) * 3 // 4 if event.get("isBase64Encoded") else len(body.encode("utf-8", "replace"))
        limit = (self.ctx.settings.max_watchlist_body_bytes  # watchlist uploads are larger
                 if str(event.get("rawPath") or "").startswith("/api/watchlists/") else self.ctx.settings.max_body_bytes)
        if self.ctx.precovery is not None and event.get("rawPath") == "/api/precovery/jobs":
            limit = self.ctx.precovery.settings.max_body_bytes  # a batch of 10,000 positions
        if size > limit:
            return _error(413, f"the body is larger than {limit} bytes")
        if event.get("isBase64Encoded") and body:
            try:
                event = {**event, "body": base64.b64decode(body).decode("utf-8"), "isBase64Encoded": False}
            except (ValueError, UnicodeDecodeError):
                return _error(400, "the body is not UTF-8 JSON")
        if event.get("rawPath") not in PUBLIC_PATHS and not is_page_path(event.get("rawPath")):
            try:
                user = self._user(event)
            except StorageError:
                return _error(503, "storage is unavailable; retry later")
            if user is None:
                return _error(401, "missing or invalid bearer token")
            rc = dict(event.get("requestContext") or {})
            rc["authorizer"] = {**(rc.get("authorizer") or {}), "lambda": {"userId": user}}
            event = {**event, "requestContext": rc}
        try:
            return self.app.resolve(event, context)
        except StorageError:
            return _error(503, "storage is unavailable; retry later")

    def _user(self, event: dict[str, Any]) -> str | None:
        rc = event.get("requestContext") or {}
        found = ((rc.get("authorizer") or {}).get("lambda") or {}).get("userId")
        if found:
            return str(found)
        headers = {str(k).lower(): v for k, v in (event.get("headers") or {}).items()}
        return authenticate(self.ctx.store, headers.get("authorization"), now=self.ctx.clock())


def _error(status: int, message: str) -> dict[str, Any]:
    return {"statusCode": status, "headers": {"Content-Type": "application/json"},
            "body": json.dumps({"error": message}), "isBase64Encoded": False}

"""An HTTP front end for a local function, speaking API Gateway HTTP API payload version 2.0.

Each request becomes the event API Gateway would send (``version: "2.0"``, ``rawPath``,
``headers``, ``queryStringParameters``, ``requestContext.http``, base64 bodies for binary
content); the handler's response (``statusCode``, ``headers``, ``cookies``, ``body``,
``isBase64Encoded``, or a bare value serialised as JSON) is written back.
"""

from __future__ import annotations

import base64
import json
import threading
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

__all__ = ["HttpEndpoint", "http_api_event", "serve_function"]

_TEXT_TYPES = ("text/", "application/json", "application/xml", "application/x-www-form-urlencoded",
               "application/javascript")


def http_api_event(method: str, target: str, headers: dict[str, str], body: bytes,
                   *, source_ip: str = "127.0.0.1", api_id: str = "local") -> dict[str, Any]:
    """The HTTP API v2 event for one request (``target`` is the request line's path + query)."""
    parts = urlsplit(target)
    lower: dict[str, str] = {}
    for k, v in headers.items():
        lower[k.lower()] = f"{lower[k.lower()]},{v}" if k.lower() in lower else v
    query: dict[str, str] = {}
    for k, v in parse_qsl(parts.query, keep_blank_values=True):
        query[k] = f"{query[k]},{v}" if k in query else v
    content_type = lower.get("content-type", "")
    is_text = not body or content_type.startswith(_TEXT_TYPES)
    now = datetime.now(UTC)
    event: dict[str, Any] = {
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": parts.path or "/",
        "rawQueryString": parts.query,
        "headers": lower,
        "requestContext": {
            "accountId": "123456789012",
            "apiId": api_id,
            "domainName": lower.get("host", "localhost"),
            "domainPrefix": lower.get("host", "localhost").split(".")[0],
            "http": {"method": method, "path": parts.path or "/", "protocol": "HTTP/1.1",
                     "sourceIp": source_ip, "userAgent": lower.get("user-agent", "")},
            "requestId": str(uuid.uuid4()),
            "routeKey": "$default",
            "stage": "$default",
            "time": now.strftime("%d/%b/%Y:%H:%M:%S +0000"),
            "timeEpoch": int(time.time() * 1000),
        },
        "isBase64Encoded": not is_text,
    }
    if "cookie" in lower:
        event["cookies"] = [c.strip() for c in lower["cookie"].split(";")]
    if query:
        event["queryStringParameters"] = query
    if body:
        try:
            event["body"] = body.decode("utf-8") if is_text else None
        except UnicodeDecodeError:  # a text type with bytes that are not UTF-8: sent as binary
            event["body"], event["isBase64Encoded"] = None, True
        if event["body"] is None:
            event["body"] = base64.b64encode(body).decode()
    return event


def _response_parts(response: Any) -> tuple[int, dict[str, str], list[str], bytes]:
    if not (isinstance(response, dict) and "statusCode" in response):
        # API Gateway's rule for a response without statusCode: 200, JSON body.
        body = response if isinstance(response, str) else json.dumps(response)
        return 200, {"content-type": "application/json"}, [], body.encode()
    body = response.get("body") or ""
    raw = base64.b64decode(body) if response.get("isBase64Encoded") else str(body).encode()
    headers = {str(k): str(v) for k, v in (response.get("headers") or {}).items()}
    return int(response["statusCode"]), headers, list(response.get("cookies") or []), raw


class HttpEndpoint:
    """A running local HTTP API; ``url`` is its base URL. Close it (or use ``with``)."""

    def __init__(self, server: ThreadingHTTPServer) -> None:
        self.server = server
        host, port = server.server_address[:2]
        self.url = f"http://{host}:{port}"
        self._thread = threading.Thread(target=server.serve_forever, daemon=True)
        self._thread.start()

    def close(self) -> None:
        """Stop serving and release the port."""
        self.server.shutdown()
        self.server.server_close()
        self._thread.join()

    def __enter__(self) -> HttpEndpoint:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def serve_function(invoke: Callable[[dict[str, Any]], Any], host: str = "127.0.0.1",
                   port: int = 0) -> HttpEndpoint:
    """Serve ``invoke(event) -> response`` over HTTP on ``host:port`` (0: a free port)."""

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _handle(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            event = http_api_event(self.command, self.path, dict(self.headers.items()), body,
                                   source_ip=self.client_address[0])
            try:
                status, headers, cookies, raw = _response_parts(invoke(event))
            except Exception:  # API Gateway answers 500 when the integration fails
                status, headers, cookies, raw = 500, {"content-type": "application/json"}, [], \
                    b'{"message":"Internal Server Error"}'
            self.send_response(status)
            for k, v in headers.items():
                self.send_header(k, v)
            for c in cookies:
                self.send_header("Set-Cookie", c)
            self.send_header("Content-Length", str(len(raw)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(raw)

        do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = do_OPTIONS = _handle

        def log_message(self, format: str, *args: Any) -> None:  # quiet
            pass

    return HttpEndpoint(ThreadingHTTPServer((host, port), Handler))

"""The demo's two users and their filters, registered through the HTTP API as a user would.

On the embedded stack, before the first upload: tokens for ``demo-alice`` and ``demo-bob``
(as the operator's ``alertprod tokens issue`` does), a loopback webhook receiver that checks
every request's HMAC signature, and a queue of Bob's; then, through the template's HTTP API
with each user's bearer token, Alice's filter of bright new transients to her webhook and Bob's
filter of known asteroids to his queue. After the replay, :meth:`DemoFilters.collect` reads
what each received (deduplicated on the delivery id) and the filters' counters.
"""

from __future__ import annotations

import json
import threading
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from alertprod.api.tokens import issue_token
from alertprod.delivery.webhook import SIGNATURE_HEADER, TIMESTAMP_HEADER, verify_signature
from alertprod.distribution.store import DynamoServiceStore
from alertprod.local.stack import EmbeddedStack

__all__ = ["DEMO_FILTERS", "DemoFilters"]

#: (user, filter name, expression, transport kind)
DEMO_FILTERS = (
    ("demo-alice", "bright new transients",
     "diaSource.snr > 20 AND diaObject.nDiaSources <= 2 AND diaSource.isDipole = FALSE", "webhook"),
    ("demo-bob", "known asteroids", "ssSource.ssObjectId IS NOT NULL", "sqs"),
)


class _Receiver:
    """A loopback webhook endpoint that verifies signatures and records each envelope."""

    def __init__(self) -> None:
        self.secret = ""
        self.envelopes: list[dict] = []
        self.bad_signatures = 0
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                ok = verify_signature(receiver.secret, self.headers.get(TIMESTAMP_HEADER, ""), body,
                                      self.headers.get(SIGNATURE_HEADER, ""), tolerance_s=1e12)
                if ok:
                    receiver.envelopes.extend(json.loads(body).get("deliveries", []))
                else:
                    receiver.bad_signatures += 1
                self.send_response(204 if ok else 401)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/alerts"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class DemoFilters:
    """Register the demo's filters on a running stack, and later read what they delivered."""

    def __init__(self) -> None:
        self.receiver: _Receiver | None = None
        self.queue_url = ""
        self.filters: dict[str, dict] = {}
        self.tokens: dict[str, str] = {}
        self.api_url = ""

    def register(self, stack: EmbeddedStack) -> None:
        """Tokens, receiver, queue, and both filters created through the HTTP API."""
        store = DynamoServiceStore(stack.clients.dynamodb, stack.physical_id("ServiceTable"))
        self.tokens = {user: issue_token(store, user, label="demo").token
                       for user in {u for u, *_ in DEMO_FILTERS}}
        self.receiver = _Receiver()
        self.queue_url = stack.clients.sqs.create_queue(QueueName="demo-bob-alerts")["QueueUrl"]
        self.api_url = stack.serve_api("HttpApi").url
        for user, name, expression, kind in DEMO_FILTERS:
            transport = ({"kind": "webhook", "url": self.receiver.url} if kind == "webhook"
                         else {"kind": "sqs", "queue_url": self.queue_url})
            created = self._call("POST", "/api/filters", user,
                                 {"name": name, "expression": expression, "transports": [transport]})
            if kind == "webhook":
                self.receiver.secret = next(iter(created.get("webhook_secrets", {}).values()), "")
            self.filters[user] = created

    def _call(self, method: str, path: str, user: str, body: dict | None = None) -> dict:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.api_url + path, data=data, method=method)
        request.add_header("Authorization", f"Bearer {self.tokens[user]}")
        request.add_header("Content-Type", "application/json")
        with urllib.request.urlopen(request, timeout=60) as response:
            return json.loads(response.read() or b"{}")

    def collect(self, stack: EmbeddedStack) -> dict[str, Any]:
        """What each filter delivered: unique alerts per transport, and the API's counters."""
        out: dict[str, Any] = {}
        bob = []
        while True:
            got = stack.clients.sqs.receive_message(QueueUrl=self.queue_url, MaxNumberOfMessages=10,
                                                    WaitTimeSeconds=0).get("Messages", [])
            if not got:
                break
            bob += [json.loads(m["Body"]) for m in got]
            stack.clients.sqs.delete_message_batch(
                QueueUrl=self.queue_url,
                Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(got)])
        received = {"webhook": self.receiver.envelopes if self.receiver else [], "sqs": bob}
        for user, name, expression, kind in DEMO_FILTERS:
            fid = self.filters[user]["filter_id"]
            unique = {e.get("deliveryId") for e in received[kind]}
            counters = self._call("GET", f"/api/filters/{fid}/counters?days=30", user)["totals"]
            alert_ids = sorted({int(e["alertId"]) for e in received[kind] if "alertId" in e})
            out[user] = {"filter": name, "expression": expression, "transport": kind,
                         "filter_id": fid, "received": len(received[kind]),
                         "unique_alerts": len(unique - {None}), "alert_ids": alert_ids,
                         "counters": counters}
        if self.receiver is not None:
            out["demo-alice"]["bad_signatures"] = self.receiver.bad_signatures
            self.receiver.close()
        return out

"""Shared pieces of the distribution and API tests: in-memory service, fake AWS clients, alerts."""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from alertprod.alerts.examples import example_alert
from alertprod.alerts.publish import archive_key
from alertprod.alerts.serialize import alert_container_bytes, serialize_alert
from alertprod.aws.blobs import MemoryBlobStore
from alertprod.delivery.webhook import WebhookPolicy
from alertprod.distribution import (
    AlertArchive,
    AlertMessage,
    Dispatcher,
    FilterService,
    MemoryDeadLetters,
    MemoryServiceStore,
    ServiceSettings,
    TransportClients,
    TransportFactory,
)

T0 = 1_800_000_000.0  # 2027-01-15T08:00:00Z


class Clock:
    def __init__(self, t: float = T0):
        self.t = t

    def __call__(self) -> float:
        return self.t


class FakeSqs:
    """Records send_message_batch calls per queue."""

    def __init__(self):
        self.sent: dict[str, list[dict]] = {}

    def send_message_batch(self, QueueUrl, Entries):
        self.sent.setdefault(QueueUrl, []).extend(Entries)
        return {"Successful": [{"Id": e["Id"]} for e in Entries], "Failed": []}

    def bodies(self, url):
        return [json.loads(e["MessageBody"]) for e in self.sent.get(url, [])]


class FakeS3:
    def __init__(self):
        self.objects: dict[tuple[str, str], dict] = {}

    def put_object(self, Bucket, Key, Body, **kw):
        self.objects[(Bucket, Key)] = {"Body": Body, **kw}


class FakeSes:
    def __init__(self):
        self.sent: list[dict] = []

    def send_email(self, **kw):
        self.sent.append(kw)
        return {"MessageId": str(len(self.sent))}


def make_alerts(n: int, *, seed0: int = 0, snr=None, visit: int = 1234, detector: int = 42) -> list[dict]:
    out = []
    for i in range(n):
        s = float(snr[i]) if snr is not None else 5.0 + 10.0 * i
        out.append(example_alert(seed0 + i, n_prv_sources=1, n_prv_forced=1, cutout_size_pix=8,
                                 visit=visit, detector=detector, snr=s, band="gr"[i % 2]))
    return out


def messages(alerts: list[dict], *, sent_unix: float | None = None) -> list[AlertMessage]:
    return [AlertMessage(base64.b64encode(serialize_alert(a)).decode(), sent_unix) for a in alerts]


@dataclass
class Harness:
    store: MemoryServiceStore
    archive_blobs: MemoryBlobStore
    service: FilterService
    dead: MemoryDeadLetters
    sqs: FakeSqs
    s3: FakeS3
    ses: FakeSes
    clock: Clock
    settings: ServiceSettings
    sleeps: list = field(default_factory=list)

    def archive(self, alerts: list[dict]) -> None:
        for a in alerts:
            self.archive_blobs.put(archive_key(a), alert_container_bytes([a]))


def harness(**settings: Any) -> Harness:
    store, blobs, dead = MemoryServiceStore(), MemoryBlobStore("alerts-bucket"), MemoryDeadLetters()
    sqs, s3, ses, clock = FakeSqs(), FakeS3(), FakeSes(), Clock()
    policy = WebhookPolicy(allow_private=True, require_https=False, timeout_s=2.0, max_attempts=3,
                           backoff_s=0.01, max_backoff_s=0.02)
    cfg = ServiceSettings(webhook=policy, email_sender="alerts@alertprod.example", **settings)
    sleeps: list = []
    factory = TransportFactory(TransportClients(sqs=sqs, s3=s3, ses=ses), cfg, sleep=sleeps.append)
    dispatcher = Dispatcher(store, factory, dead, clock=clock)
    archive = AlertArchive(blobs)
    service = FilterService(store, archive, dispatcher, settings=cfg, clock=clock)
    return Harness(store, blobs, service, dead, sqs, s3, ses, clock, cfg, sleeps)


class WebhookReceiver:
    """A loopback HTTP receiver recording each request; ``mode``: ``ok``, ``fail`` (500), ``reject`` (400) or ``slow``."""

    def __init__(self, mode: str = "ok", *, slow_s: float = 2.0):
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        self.mode, self.slow_s, self.requests = mode, slow_s, []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                receiver.requests.append((dict(self.headers), body))
                if receiver.mode == "slow":
                    import time
                    time.sleep(receiver.slow_s)
                status = {"fail": 500, "reject": 400}.get(receiver.mode, 204)
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"

    def envelopes(self) -> list[dict]:
        return [d for _, body in self.requests for d in json.loads(body)["deliveries"]]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def add_filter(store, fid: str, user: str, expression: str, transports: list[dict], *, now: float = T0,
               quota: int = 10_000, payload: str = "avro", expires_days: float = 180.0):
    """Store an active filter compiled with the real engine; returns its record."""
    from alertprod.distribution import FilterRecord
    from alertprod.filtering.compiler import compile_filter

    c = compile_filter(expression)
    record = FilterRecord(filter_id=fid, user_id=user, name=fid, expression=expression, normalized=c.normalized,
                          version_hash=c.version_hash, version=1, state="active", payload=payload,
                          transports=transports, quota_per_day=quota, created_unix=now, updated_unix=now,
                          expires_unix=now + expires_days * 86400.0)
    store.create_filter(record)
    return record


TEMPLATE = Path(__file__).resolve().parents[1] / "infra" / "template.yaml"


def create_service_table(client) -> str:
    """A fresh table with ServiceTable's keys and TTL, read from the template."""
    import uuid

    from alertprod.local.template import load_template

    props = load_template(TEMPLATE)["Resources"]["ServiceTable"]["Properties"]
    name = f"service-{uuid.uuid4().hex[:10]}"
    client.create_table(TableName=name, AttributeDefinitions=props["AttributeDefinitions"],
                        KeySchema=props["KeySchema"], BillingMode=props["BillingMode"])
    client.update_time_to_live(TableName=name, TimeToLiveSpecification={
        "AttributeName": props["TimeToLiveSpecification"]["AttributeName"], "Enabled": True})
    return name

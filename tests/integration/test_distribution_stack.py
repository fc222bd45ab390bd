"""Filters end to end on moto: API (through the authorizer) → alerts on the topic → the service's
queue → FilterServiceFunction → each user's SQS queue, webhook (loopback), S3 drop and SES digest.

The handlers are the deployed ones (functions/*/app.py), imported with the environment the
template gives them; the service table is built from the template.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import time
from pathlib import Path

import boto3
import pytest
from distribution_harness import WebhookReceiver, create_service_table, make_alerts
from moto_server import moto_environment

from alertprod.alerts import AlertPublisher
from alertprod.alerts.examples import example_alert
from alertprod.api import issue_token
from alertprod.aws import S3BlobStore, SnsTopic, SqsQueue
from alertprod.delivery.webhook import SIGNATURE_HEADER, TIMESTAMP_HEADER, verify_signature
from alertprod.distribution import DynamoServiceStore
from alertprod.local.http import http_api_event

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
ALERTS, DROP, SENDER = "dist-alerts", "bob-drop", "alerts@alertprod.example"


def _load(name: str):
    spec = importlib.util.spec_from_file_location(f"handler_{name}", ROOT / "functions" / name / "app.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def stack():
    restore = ("SERVICE_TABLE", "ALERT_BUCKET", "DELIVERY_DLQ_URL", "ALERTPROD_EMAIL_SENDER",
               "ALERTPROD_WEBHOOK_ALLOW_PRIVATE", "ALERTPROD_WEBHOOK_REQUIRE_HTTPS", "PRECOVERY_JOB_BUCKET",
               "LEVEL1_TABLE", "PRECOVERY_JOB_QUEUE_URL", "PRECOVERY_TICK_QUEUE_URL", "PRECOVERY_UNIT_QUEUE_URL")
    good, bad = WebhookReceiver(), WebhookReceiver("fail")
    with moto_environment(restore=restore), contextlib.ExitStack() as cleanup:
        cleanup.callback(bad.close)
        cleanup.callback(good.close)
        c = {n: boto3.client(n) for n in ("s3", "sns", "sqs", "ses", "dynamodb")}
        c["s3"].create_bucket(Bucket=ALERTS)
        c["s3"].create_bucket(Bucket=DROP)
        c["ses"].verify_email_identity(EmailAddress=SENDER)
        table = create_service_table(c["dynamodb"])
        topic = c["sns"].create_topic(Name="alerts")["TopicArn"]
        service_queue = SqsQueue.create(c["sqs"], "filter-service")
        service_queue.allow_sns_topic(topic)
        c["sns"].subscribe(TopicArn=topic, Protocol="sqs", Endpoint=service_queue.arn(),
                           Attributes={"RawMessageDelivery": "true"})
        dlq = SqsQueue.create(c["sqs"], "delivery-dlq")
        os.environ.update({"SERVICE_TABLE": table, "ALERT_BUCKET": ALERTS, "DELIVERY_DLQ_URL": dlq.queue_url,
                           "ALERTPROD_EMAIL_SENDER": SENDER, "ALERTPROD_WEBHOOK_ALLOW_PRIVATE": "1",
                           "ALERTPROD_WEBHOOK_REQUIRE_HTTPS": "0"})
        # the API function also serves the precovery service: its names, as the template sets them
        c["s3"].create_bucket(Bucket="precovery-jobs")
        os.environ.update({"PRECOVERY_JOB_BUCKET": "precovery-jobs", "LEVEL1_TABLE": "level1",
                           **{var: SqsQueue.create(c["sqs"], name).queue_url for var, name in (
                               ("PRECOVERY_JOB_QUEUE_URL", "precovery-jobs"),
                               ("PRECOVERY_TICK_QUEUE_URL", "precovery-ticks"),
                               ("PRECOVERY_UNIT_QUEUE_URL", "precovery-units"))}})
        handlers = {n: _load(n) for n in ("api_authorizer", "api", "filter_service")}
        object.__setattr__(handlers["filter_service"].parts.settings.webhook, "backoff_s", 0.01)
        store = DynamoServiceStore(c["dynamodb"], table)
        yield {"clients": c, "handlers": handlers, "store": store, "topic": topic, "service_queue": service_queue,
               "dlq": dlq, "good": good, "bad": bad,
               "tokens": {u: issue_token(store, u).token for u in ("alice", "bob", "carol")}}


class Context:
    function_name, memory_limit_in_mb, invoked_function_arn, aws_request_id = "f", 512, "arn:aws:lambda:::f", "r"


def call_api(stack, user, method, path, body=None):
    """The request as API Gateway runs it: the authorizer, then the API function with its context."""
    headers = {"content-type": "application/json"}
    if user:
        headers["authorization"] = f"Bearer {stack['tokens'][user]}"
    event = http_api_event(method, path, headers, json.dumps(body).encode() if body is not None else b"")
    event["identitySource"] = [headers.get("authorization", "")]
    auth = stack["handlers"]["api_authorizer"].lambda_handler(event, Context())
    if not auth["isAuthorized"]:
        return 403, None
    event["requestContext"]["authorizer"] = {"lambda": auth["context"]}
    r = stack["handlers"]["api"].lambda_handler(event, Context())
    return r["statusCode"], json.loads(r["body"]) if r.get("body") else None


def run_filter_service(stack, *, rounds=20):
    """Poll the service's queue as Lambda's event source does; returns the handler's responses."""
    out = []
    for _ in range(rounds):
        msgs = stack["service_queue"].receive(10, 0)
        if not msgs:
            break
        event = {"Records": [{"messageId": m.message_id, "receiptHandle": m.receipt_handle, "body": m.body,
                              "attributes": {"SentTimestamp": str(int(time.time() * 1000)),
                                             "ApproximateReceiveCount": "1"},
                              "messageAttributes": {}, "md5OfBody": "", "eventSource": "aws:sqs",
                              "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:filter-service",
                              "awsRegion": "us-east-1"} for m in msgs]}
        response = stack["handlers"]["filter_service"].lambda_handler(event, Context())
        failed = {f["itemIdentifier"] for f in response["batchItemFailures"]}
        stack["service_queue"].delete_batch([m.receipt_handle for m in msgs if m.message_id not in failed])
        out.append(response)
    return out


def received(sqs, url):
    out = []
    while msgs := sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, MessageAttributeNames=["All"]).get("Messages"):
        out += [json.loads(m["Body"]) for m in msgs]
        sqs.delete_message_batch(QueueUrl=url, Entries=[{"Id": str(k), "ReceiptHandle": m["ReceiptHandle"]}
                                                        for k, m in enumerate(msgs)])
    return out


def sent_mail(stack):
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.ses.models import ses_backends

    return list(ses_backends[DEFAULT_ACCOUNT_ID]["us-east-1"].sent_messages)


def test_a_night_flows_to_every_transport_once(stack):
    c = stack["clients"]
    alice_q = c["sqs"].create_queue(QueueName="alice-inbox")["QueueUrl"]
    carol_q = c["sqs"].create_queue(QueueName="carol-inbox")["QueueUrl"]
    status, alice = call_api(stack, "alice", "POST", "/api/filters", {
        "name": "bright", "expression": "diaSource.snr > 20",
        "transports": [{"kind": "sqs", "queue_url": alice_q}, {"kind": "webhook", "url": stack["good"].url},
                       {"kind": "email", "to": "alice@example.org"}]})
    assert status == 201, alice
    secret = alice["webhook_secrets"][stack["good"].url]
    status, bob = call_api(stack, "bob", "POST", "/api/filters", {
        "name": "green", "expression": "diaSource.band = 'g'", "payload": "voevent",
        "transports": [{"kind": "s3", "bucket": DROP, "prefix": "bob/"}]})
    assert status == 201, bob
    status, carol = call_api(stack, "carol", "POST", "/api/filters", {
        "name": "everything", "expression": "diaSource.snr > 0",
        "transports": [{"kind": "webhook", "url": stack["bad"].url}, {"kind": "sqs", "queue_url": carol_q}]})
    assert status == 201, carol
    # users cannot see each other's filters
    assert call_api(stack, "bob", "GET", f"/api/filters/{alice['filter_id']}")[0] == 404
    assert call_api(stack, None, "GET", "/api/filters")[0] == 403  # API Gateway refuses before the function

    alerts = make_alerts(10, snr=[3, 12, 25, 40, 8, 55, 21, 2, 70, 33])
    big = example_alert(99, n_prv_sources=1, n_prv_forced=1, cutout_size_pix=140, snr=80.0, band="g")
    alerts.append(big)  # > 190 KB: published as a claim-check
    publisher = AlertPublisher(S3BlobStore(c["s3"], ALERTS), SnsTopic(c["sns"], stack["topic"]))
    stats = publisher.publish(alerts)
    assert stats.claim_checked == 1
    # SQS delivers at least once: the same messages twice
    publisher.publish(alerts[:3])
    run_filter_service(stack)

    bright = {a["diaSourceId"] for a in alerts if a["diaSource"]["snr"] > 20}
    green = {a["diaSourceId"] for a in alerts if a["diaSource"]["band"] == "g"}
    everything = {a["diaSourceId"] for a in alerts}
    got = received(c["sqs"], alice_q)
    assert {b["alertId"] for b in got} == bright and len({b["deliveryId"] for b in got}) == len(bright)
    hooks = stack["good"].envelopes()
    assert {e["alertId"] for e in hooks} == bright and len({e["deliveryId"] for e in hooks}) == len(bright)
    headers, body = stack["good"].requests[0]
    assert verify_signature(secret, headers[TIMESTAMP_HEADER], body, headers[SIGNATURE_HEADER])
    keys = [o["Key"] for o in c["s3"].list_objects_v2(Bucket=DROP, Prefix="bob/").get("Contents", [])]
    heads = [c["s3"].head_object(Bucket=DROP, Key=k)["Metadata"] for k in keys]
    assert {int(m["alert-id"]) for m in heads} == green and all(k.endswith(".xml") for k in keys)
    mails = [m for m in sent_mail(stack) if "alice@example.org" in m.destinations["ToAddresses"]]
    assert len(mails) >= 1 and all(str(i) in "".join(m.body for m in mails) for i in bright)
    # carol's webhook fails: retried, dead-lettered; her queue still receives everything
    assert {b["alertId"] for b in received(c["sqs"], carol_q)} == everything
    dead = [json.loads(m.body) for m in stack["dlq"].receive(10, 0)]
    assert dead and {d["record"]["filter_id"] for d in dead} == {carol["filter_id"]}
    assert len(stack["bad"].requests) >= 3

    status, counters = call_api(stack, "alice", "GET", f"/api/filters/{alice['filter_id']}/counters")
    assert status == 200 and counters["totals"]["matched"] == len(bright)
    assert counters["totals"]["delivered"] == len(bright) and counters["last_delivery_at"]
    assert counters["delivery_lag_s"]["count"] == len(bright)
    status, counters = call_api(stack, "carol", "GET", f"/api/filters/{carol['filter_id']}/counters")
    assert counters["totals"]["failed"] == len(everything)

    # redelivery since before the night: the same delivery ids again
    status, redo = call_api(stack, "alice", "POST", f"/api/filters/{alice['filter_id']}/redeliver",
                            {"since": "2000-01-01T00:00:00Z"})
    assert status == 400  # older than the records are kept
    status, redo = call_api(stack, "alice", "POST", f"/api/filters/{alice['filter_id']}/redeliver",
                            {"since": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 3600))})
    assert status == 200 and redo["redelivered"] == len(bright)
    again = received(c["sqs"], alice_q)
    assert sorted(b["deliveryId"] for b in again) == sorted(b["deliveryId"] for b in got)


def test_the_api_and_authorizer_refuse_unknown_tokens(stack):
    event = http_api_event("GET", "/api/filters", {"authorization": "Bearer apt_nope"}, b"")
    assert stack["handlers"]["api_authorizer"].lambda_handler(event, Context()) == \
        {"isAuthorized": False, "context": {}}
    r = stack["handlers"]["api"].lambda_handler(event, Context())  # no authorizer in front: still 401
    assert r["statusCode"] == 401


def test_sample_events_are_handled(stack):
    events = ROOT / "events"
    sqs_event = json.loads((events / "sqs-alert-messages-filter-service.json").read_text())
    response = stack["handlers"]["filter_service"].lambda_handler(sqs_event, Context())
    # the inline packet is filtered; the claim-check's archive object does not exist: retried
    assert response == {"batchItemFailures": [{"itemIdentifier": sqs_event["Records"][1]["messageId"]}]}
    auth = json.loads((events / "http-api-v2-authorizer-request.json").read_text())
    assert stack["handlers"]["api_authorizer"].lambda_handler(auth, Context())["isAuthorized"] is False
    create = json.loads((events / "http-api-v2-filters-create.json").read_text())
    r = stack["handlers"]["api"].lambda_handler(create, Context())
    body = json.loads(r["body"])
    # 201, or 400 naming the webhook where its host does not resolve (no network here)
    assert (r["statusCode"], "filter_id" in body) == (201, True) or \
        (r["statusCode"] == 400 and "webhook url" in body["error"])

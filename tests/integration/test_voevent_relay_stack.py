"""The stream relay on the embedded stack: alerts on the topic → VoeventRelayFunction → a real
VOEvent broker (comet) on loopback receives its subset once; a broker that is down is retried,
then dead-lettered, without holding up the other.

The function is the deployed one (functions/voevent_relay/app.py), configured through the
template's ``VoeventBrokers`` parameter.
"""

from __future__ import annotations

import base64
import importlib.util
import json
import socket
from datetime import UTC, datetime

import pytest
from distribution_harness import make_alerts

from alertprod.alerts.client import decode_message
from alertprod.alerts.serialize import serialize_alert
from alertprod.alerts.voevent import VOEventConfig, voevent_ivorn
from alertprod.distribution.store import DynamoServiceStore
from alertprod.local.stack import EmbeddedStack

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(importlib.util.find_spec("comet") is None,
                       reason="comet (VOEvent broker) not installed: pip install -e '.[dev]'"),
]

AUTHORITY = "alerts.example.org"


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def relayed(tmp_path_factory):
    from integration.test_vtp_comet import Comet

    comet = Comet(tmp_path_factory.mktemp("comet"))
    brokers = {"voevent": {"authority": AUTHORITY},
               "vtp": {"connect_timeout_s": 2, "response_timeout_s": 15, "retry_delay_s": 0.05,
                       "max_attempts": 2},
               "brokers": [{"name": "community", "address": f"127.0.0.1:{comet.port}",
                            "select": {"min_snr": 20}},
                           {"name": "offline", "address": f"127.0.0.1:{_closed_port()}"}]}
    alerts = make_alerts(6, snr=[3, 30, 12, 45, 8, 60])
    try:
        with EmbeddedStack(stack_name="relay", clock_start=datetime(2027, 3, 10, tzinfo=UTC),
                           parameter_overrides={"VoeventBrokers": json.dumps(brokers)}) as stack:
            stack.run_until_idle(timeout_s=60)
            sns = stack.clients.sns
            for a in alerts:
                sns.publish(TopicArn=stack.physical_id("AlertTopic"),
                            Message=base64.b64encode(serialize_alert(a)).decode())
            stack.run_until_idle(timeout_s=240)
            store = DynamoServiceStore(stack.clients.dynamodb, stack.physical_id("ServiceTable"))
            dead = []
            while batch := stack.clients.sqs.receive_message(
                    QueueUrl=stack.physical_id("VoeventRelayDLQ"), MaxNumberOfMessages=10).get("Messages", []):
                dead += [m["Body"] for m in batch]
                for m in batch:
                    stack.clients.sqs.delete_message(QueueUrl=stack.physical_id("VoeventRelayDLQ"),
                                                     ReceiptHandle=m["ReceiptHandle"])
            invocations = [inv for inv in stack.invocations if inv.function_id == "VoeventRelayFunction"]
            yield {"comet": comet, "alerts": alerts, "dead": dead, "store": store, "invocations": invocations}
    finally:
        comet.stop()


def test_the_broker_receives_exactly_its_subset_once(relayed):
    config = VOEventConfig(authority=AUTHORITY)
    want = {voevent_ivorn(a["diaSourceId"], config=config) for a in relayed["alerts"] if a["diaSource"]["snr"] > 20}
    stored = relayed["comet"].stored(len(want))
    assert set(stored) == want
    # the queue delivered the bright alerts five times (the offline broker failed them), yet
    # comet received each once: the relay skipped what the broker had accepted
    lines = relayed["comet"].log.read_text(errors="replace").splitlines()  # one JSON record per line
    received = {ivorn: sum(f"VOEvent {ivorn} received from" in line for line in lines) for ivorn in want}
    assert received == dict.fromkeys(want, 1)
    ids = [a["diaSourceId"] for a in relayed["alerts"]]
    assert relayed["store"].relayed("community", ids) == {a["diaSourceId"] for a in relayed["alerts"]
                                                          if a["diaSource"]["snr"] > 20}


def test_an_offline_broker_is_retried_then_dead_lettered_without_blocking_the_other(relayed):
    deliveries = sum(len(inv.event["Records"]) for inv in relayed["invocations"])
    assert deliveries == 5 * len(relayed["alerts"])  # maxReceiveCount: 5 attempts for each alert
    # every alert waits for the offline broker in the dead-letter queue, ready for a redrive
    dead_ids = sorted(int(decode_message(body)[0]["diaSourceId"]) for body in relayed["dead"])
    assert dead_ids == sorted(a["diaSourceId"] for a in relayed["alerts"])
    assert relayed["store"].relayed("offline", [a["diaSourceId"] for a in relayed["alerts"]]) == set()

"""The alert stream on the embedded AWS stack: publish, filter, claim-check, deduplicate."""

from __future__ import annotations

import boto3
import numpy as np
import pytest
from moto_server import moto_environment

from alertprod.alerts import AlertConsumer, AlertPublisher
from alertprod.alerts.examples import example_alert
from alertprod.aws import S3BlobStore, SnsTopic

pytestmark = pytest.mark.integration

BUCKET = "alertprod-test-alerts"


@pytest.fixture(scope="module")
def aws():
    with moto_environment():
        clients = {name: boto3.client(name) for name in ("s3", "sns", "sqs")}
        clients["s3"].create_bucket(Bucket=BUCKET)
        yield clients


@pytest.fixture
def topic_arn(aws, request):
    return aws["sns"].create_topic(Name=f"alerts-{request.node.name[:40]}")["TopicArn"]


def _publisher(aws, topic_arn):
    return AlertPublisher(S3BlobStore(aws["s3"], BUCKET), SnsTopic(aws["sns"], topic_arn))


def _drain(consumer, *, polls=6):
    got = []
    for _ in range(polls):
        got += consumer.poll(max_messages=10, wait_s=0)
    return got


def test_published_alerts_reach_a_consumer_decoded(aws, topic_arn):
    alerts = [example_alert(i, n_prv_sources=10, n_prv_forced=10, cutout_size_pix=20) for i in range(5)]
    with AlertConsumer(aws["sqs"], aws["sns"], aws["s3"], topic_arn) as consumer:
        stats = _publisher(aws, topic_arn).publish(alerts)
        got = _drain(consumer)
    assert stats.published == 5 and stats.claim_checked == 0
    assert {g.alert_id: g.alert for g in got} == {a["diaSourceId"]: a for a in alerts}
    assert all(g.attributes["schema_version"] == "11.1" and not g.claim_checked for g in got)


def test_oversized_alert_travels_by_claim_check_and_still_decodes(aws, topic_arn):
    big = example_alert(40, n_prv_sources=30, n_prv_forced=30)
    big["cutoutScience"] = np.random.default_rng(1).bytes(200_000)
    with AlertConsumer(aws["sqs"], aws["sns"], aws["s3"], topic_arn) as consumer:
        stats = _publisher(aws, topic_arn).publish([big])
        got = _drain(consumer)
    assert stats.claim_checked == 1
    assert len(got) == 1 and got[0].claim_checked and got[0].alert == big
    assert got[0].attributes["claim_check"] == "true"


def test_filter_policy_on_band_delivers_only_matching_alerts(aws, topic_arn):
    alerts = [example_alert(60 + i, n_prv_sources=2, n_prv_forced=2, cutout_size_pix=10,
                            band="gri"[i % 3], snr=5.0 + 5 * i) for i in range(9)]
    policy = {"band": ["r"], "snr": [{"numeric": [">", 10]}]}
    with AlertConsumer(aws["sqs"], aws["sns"], aws["s3"], topic_arn, filter_policy=policy) as consumer:
        _publisher(aws, topic_arn).publish(alerts)
        got = _drain(consumer)
    expected = {a["diaSourceId"] for a in alerts
                if a["diaSource"]["band"] == "r" and a["diaSource"]["snr"] > 10}
    assert len(expected) == 2
    assert {g.alert_id for g in got} == expected


def test_duplicate_publish_is_deduplicated_by_the_client(aws, topic_arn):
    alerts = [example_alert(80 + i, n_prv_sources=2, n_prv_forced=2, cutout_size_pix=10) for i in range(3)]
    with AlertConsumer(aws["sqs"], aws["sns"], aws["s3"], topic_arn) as consumer:
        publisher = _publisher(aws, topic_arn)
        publisher.publish(alerts)
        publisher.publish(alerts[:2])  # a retried invocation without a ledger
        got = _drain(consumer)
        assert sorted(g.alert_id for g in got) == sorted(a["diaSourceId"] for a in alerts)
        assert consumer.duplicates == 2


def test_consumer_close_removes_its_queue_and_subscription(aws, topic_arn):
    consumer = AlertConsumer(aws["sqs"], aws["sns"], aws["s3"], topic_arn, queue_name="to-be-closed")
    consumer.close()
    consumer.close()
    urls = aws["sqs"].list_queues(QueueNamePrefix="to-be-closed").get("QueueUrls", [])
    assert urls == []
    subs = aws["sns"].list_subscriptions_by_topic(TopicArn=topic_arn)["Subscriptions"]
    assert subs == []


def test_cli_tail_prints_one_line_per_filtered_alert(aws, topic_arn, capsys, monkeypatch):
    import argparse
    import threading
    import time

    from alertprod.cli import alerts as alerts_cli

    parser = argparse.ArgumentParser(prog="alertprod")
    alerts_cli.register(parser.add_subparsers())
    args = parser.parse_args(["alerts", "tail", "--count", "2", "--wait-s", "0",
                              "--filter-policy", '{"band": ["g"]}', "--idle-timeout-s", "20"])
    monkeypatch.setenv("ALERT_TOPIC_ARN", topic_arn)
    alerts = [example_alert(90 + i, n_prv_sources=1, n_prv_forced=1, cutout_size_pix=8,
                            band="gr"[i % 2]) for i in range(4)]

    def publish_once_subscribed():
        while not aws["sns"].list_subscriptions_by_topic(TopicArn=topic_arn)["Subscriptions"]:
            time.sleep(0.05)
        _publisher(aws, topic_arn).publish(alerts)

    publisher = threading.Thread(target=publish_once_subscribed)
    publisher.start()
    assert args.func(args) == 0
    publisher.join()
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0].split()[:2] == ["alert_id", "band"]
    printed = {int(line.split()[0]): line.split()[1] for line in lines[1:]}
    assert printed == {a["diaSourceId"]: "g" for a in alerts if a["diaSource"]["band"] == "g"}

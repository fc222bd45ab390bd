"""The template's functions on the embedded stack: S3 -> SQS -> ingest, redrive, schedules, lifecycle."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from urllib.parse import unquote_plus

import boto3
import pytest

from alertprod.aws import SqsQueue
from alertprod.local.api import HttpApiRouter
from alertprod.local.stack import EmbeddedStack

pytestmark = pytest.mark.integration

#: 02:00 UTC: during the night in Chile; the daily planner runs at 15:00 UTC.
NIGHT = datetime(2027, 3, 10, 2, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def stack():
    with EmbeddedStack(stack_name="functions", clock_start=NIGHT) as s:
        s.run_until_idle(timeout_s=60)  # consume the s3:TestEvent sent when notifications are set
        yield s


def _messages_delivered(stack, function_id):
    return [r for inv in stack.invocations if inv.function_id == function_id
            for r in inv.event.get("Records", [])]


def test_every_template_resource_exists_on_the_stack(stack):
    clients = stack.clients
    found = {}
    for logical_id, spec in stack.template["Resources"].items():
        physical, rtype = stack.physical_id(logical_id), spec["Type"]
        if rtype == "AWS::S3::Bucket":
            found[logical_id] = clients.s3.head_bucket(Bucket=physical) is not None
        elif rtype == "AWS::DynamoDB::Table":
            found[logical_id] = clients.dynamodb.describe_table(TableName=physical)["Table"]["TableName"] == physical
        elif rtype == "AWS::SNS::Topic":
            found[logical_id] = physical in [t["TopicArn"] for t in clients.sns.list_topics()["Topics"]]
        elif rtype == "AWS::SQS::Queue":
            found[logical_id] = clients.sqs.get_queue_url(
                QueueName=physical.rsplit("/", 1)[-1])["QueueUrl"] == physical
        elif rtype == "AWS::SQS::QueuePolicy":
            queue = stack.physical_id(spec["Properties"]["Queues"][0]["Ref"])
            attrs = clients.sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["Policy"])["Attributes"]
            found[logical_id] = any(f"{svc}.amazonaws.com" in attrs["Policy"] for svc in ("s3", "sns"))
        elif rtype == "AWS::SNS::Subscription":
            topic = stack.physical_id(spec["Properties"]["TopicArn"]["Ref"])
            subs = clients.sns.list_subscriptions_by_topic(TopicArn=topic)["Subscriptions"]
            queue_arn = stack.resolver.resolve(spec["Properties"]["Endpoint"])
            found[logical_id] = any(sub["Endpoint"] == queue_arn for sub in subs)
        elif rtype == "AWS::SES::EmailIdentity":  # conditional: no sender configured here
            found[logical_id] = not stack.resolver.condition(spec["Condition"])
        elif rtype == "AWS::Serverless::HttpApi":
            found[logical_id] = len(HttpApiRouter(stack.template, logical_id, stack.invoke).routes) > 0
        elif rtype == "AWS::S3::BucketPolicy":  # TLS-only: not applied over loopback HTTP
            found[logical_id] = physical.endswith(logical_id.lower())
        elif rtype == "AWS::CloudWatch::Alarm":
            alarms = boto3.client("cloudwatch").describe_alarms(AlarmNames=[physical])["MetricAlarms"]
            found[logical_id] = len(alarms) == 1
        elif rtype == "AWS::Serverless::Function":
            fn = stack.lambdas.function(logical_id)
            found[logical_id] = (fn.code_dir / "app.py").parent.name in spec["Properties"]["CodeUri"]
        elif rtype == "AWS::Serverless::LayerVersion":
            found[logical_id] = physical.startswith("arn:aws:lambda:")
        elif rtype == "AWS::Logs::LogGroup":
            groups = boto3.client("logs").describe_log_groups(logGroupNamePrefix=physical)["logGroups"]
            found[logical_id] = any(g["logGroupName"] == physical for g in groups)
    assert found == {logical_id: True for logical_id in stack.template["Resources"]}


def test_queues_and_tables_follow_the_template(stack):
    sqs = stack.clients.sqs
    attrs = sqs.get_queue_attributes(QueueUrl=stack.physical_id("UploadQueue"), AttributeNames=["All"])["Attributes"]
    redrive = json.loads(attrs["RedrivePolicy"])
    assert redrive["deadLetterTargetArn"] == stack.attribute("UploadDLQ", "Arn")
    assert int(redrive["maxReceiveCount"]) == 3
    assert int(attrs["VisibilityTimeout"]) >= 6 * stack.lambdas.function("IngestFunction").timeout_s
    ttl = stack.clients.dynamodb.describe_time_to_live(TableName=stack.resources.level1_table)
    assert ttl["TimeToLiveDescription"]["AttributeName"] == "ttl"
    notif = stack.clients.s3.get_bucket_notification_configuration(Bucket=stack.resources.upload_bucket)
    prefixes = sorted(c["Filter"]["Key"]["FilterRules"][0]["Value"] for c in notif["QueueConfigurations"])
    assert prefixes == ["config/mpcorb/", "diasources/"]


def test_function_environment_names_the_stack_resources(stack):
    env = stack.lambdas.function("IngestFunction").environment
    assert env["UPLOAD_BUCKET"] == "functions-uploadbucket"
    assert env["PRECOVERY_QUEUE_URL"] == stack.physical_id("PrecoveryQueue")
    assert env["ALERT_TOPIC_ARN"].startswith("arn:aws:sns:us-east-1:")


def test_malformed_upload_is_delivered_to_ingest_and_quarantined(stack):
    uploads = stack.resources.upload_bucket
    stack.clients.s3.put_object(Bucket=uploads, Key="diasources/00000001/000.fits", Body=b"not a FITS file")
    stack.run_until_idle(timeout_s=60)
    records = _messages_delivered(stack, "IngestFunction")
    s3_events = [json.loads(r["body"]) for r in records if "Records" in json.loads(r["body"])]
    raw_key = s3_events[-1]["Records"][0]["s3"]["object"]["key"]
    assert unquote_plus(raw_key) == "diasources/00000001/000.fits"  # keys arrive URL-encoded
    assert records[-1]["eventSource"] == "aws:sqs"
    assert records[-1]["eventSourceARN"] == stack.attribute("UploadQueue", "Arn")
    quarantine = json.loads(stack.clients.s3.get_object(
        Bucket=uploads, Key="quarantine/00000001/000.json")["Body"].read())
    assert quarantine["reason"] == "not_fits"
    assert quarantine["key"] == "diasources/00000001/000.fits"


def test_failing_message_reaches_the_dlq_after_three_receives_and_nothing_else_is_lost(stack):
    queue = SqsQueue(stack.clients.sqs, stack.physical_id("UploadQueue"))
    dlq = SqsQueue(stack.clients.sqs, stack.physical_id("UploadDLQ"))
    bad_id = queue.send("this is not an S3 event")
    stack.clients.s3.put_object(Bucket=stack.resources.upload_bucket, Key="diasources/00000002/007.fits",
                                Body=b"also not FITS")
    stack.run_until_idle(timeout_s=60)
    deliveries = [r for r in _messages_delivered(stack, "IngestFunction") if r["messageId"] == bad_id]
    assert [r["attributes"]["ApproximateReceiveCount"] for r in deliveries] == ["1", "2", "3"]
    (dead,) = dlq.receive(10)
    assert dead.body == "this is not an S3 event"
    assert dlq.approximate_depth() == 0 and queue.approximate_depth() == 0
    assert stack.clients.s3.head_object(Bucket=stack.resources.upload_bucket,
                                        Key="quarantine/00000002/007.json")["ContentLength"] > 0


def test_science_and_template_uploads_are_archived_off_the_upload_path(stack, upload_factory):
    from alertprod.apdb import DynamoApdb
    from alertprod.archive import archive_key, find_archived_at
    from alertprod.formats import image_key, read_exposure

    s3, res = stack.clients.s3, stack.resources
    _, imgs = upload_factory(visit=31, detector=4, mjd=61474.1)
    for kind, data in imgs.items():
        s3.put_object(Bucket=res.image_bucket, Key=image_key(31, 4, kind), Body=data)
    s3.put_object(Bucket=res.image_bucket, Key=image_key(32, 4, "science"), Body=b"not FITS")
    stack.run_until_idle(timeout_s=60)
    delivered = [json.loads(r["body"]) for r in _messages_delivered(stack, "ArchiveFunction")]
    keys = sorted(unquote_plus(rec["s3"]["object"]["key"]) for b in delivered for rec in b.get("Records", []))
    # the notification filter sends science and template images only
    assert keys == [image_key(31, 4, "science"), image_key(31, 4, "template"), image_key(32, 4, "science")]
    assert res.archive_bucket == stack.physical_id("ArchiveBucket")
    archived = read_exposure(s3.get_object(Bucket=res.archive_bucket,
                                           Key=archive_key(31, 4, "science"))["Body"].read())
    assert archived.info.visit == 31
    record = json.loads(s3.get_object(Bucket=res.archive_bucket,
                                      Key="quarantine/visits/00000032/004/science.json")["Body"].read())
    assert record["reason"] == "not_fits"
    ra, dec = archived.wcs.all_pix2world([[100.0, 100.0]], 0)[0]
    found = find_archived_at(DynamoApdb(stack.clients.dynamodb, res.level1_table), ra, dec, 61474.0, 61475.0)
    assert sorted(found["kind"]) == ["science", "template"]
    assert SqsQueue(stack.clients.sqs, stack.physical_id("ArchiveDLQ")).approximate_depth() == 0
    for key in [*(image_key(31, 4, k) for k in imgs), image_key(32, 4, "science")]:
        s3.delete_object(Bucket=res.image_bucket, Key=key)  # the module's stack is shared


def test_daily_schedule_fires_once_per_day_crossed_and_not_before(stack):
    before = len(stack.invocations)
    start = stack.clock
    # only the orbit refresh (12:00 UTC) before 15:00
    early = stack.advance_clock(to=start.replace(hour=14, minute=59))
    assert [(i.function_id, i.event["time"]) for i in early] == [
        ("OrbitRefreshPlannerFunction", "2027-03-10T12:00:00Z")]
    fired = stack.advance_clock(to=start.replace(hour=15, minute=0) + timedelta(days=2, minutes=30))
    events = [inv.event for inv in fired if inv.function_id == "PrecoveryPlannerFunction"]
    assert [e["time"] for e in events] == ["2027-03-10T15:00:00Z", "2027-03-11T15:00:00Z",
                                           "2027-03-12T15:00:00Z"]
    assert [i.event["time"] for i in fired if i.function_id == "OrbitRefreshPlannerFunction"] == [
        "2027-03-11T12:00:00Z", "2027-03-12T12:00:00Z"]
    assert all(e["detail-type"] == "Scheduled Event" and e["source"] == "aws.events" for e in events)
    rule = next(s.rule_arn for s in stack.schedules if s.function_id == "PrecoveryPlannerFunction")
    assert all(e["resources"] == [rule] for e in events)
    assert len(stack.invocations) == before + 6
    assert stack.clock >= datetime(2027, 3, 12, 15, 30, tzinfo=UTC)
    stack.run_until_idle(timeout_s=60)  # whatever the planner queued is worked off


def test_lifecycle_expires_cached_images_older_than_30_days_only(stack):
    s3, images = stack.clients.s3, stack.resources.image_bucket
    s3.put_object(Bucket=images, Key="visits/00000010/000/difference.fits", Body=b"old")
    s3.put_object(Bucket=images, Key="calib/keep.fits", Body=b"old, outside visits/")
    stack.advance_clock(by=timedelta(days=20))
    s3.put_object(Bucket=images, Key="visits/00000020/000/difference.fits", Body=b"young")
    expired = stack.apply_lifecycle(now=stack.clock + timedelta(days=11))
    assert expired["ImageBucket"] == ["visits/00000010/000/difference.fits"]
    keys = sorted(o["Key"] for o in s3.list_objects_v2(Bucket=images)["Contents"])
    assert keys == ["calib/keep.fits", "visits/00000020/000/difference.fits"]
    assert stack.apply_lifecycle(now=stack.clock + timedelta(days=11))["ImageBucket"] == []


def test_a_failed_invocation_is_logged_with_its_function_and_error(stack, caplog):
    import logging

    with (caplog.at_level(logging.ERROR, logger="alertprod.local"),
          pytest.raises(Exception)):  # noqa: B017 - any error the handler raises
        stack.invoke("PrecoveryWorkerFunction", {"Records": "not a list"})
    failed = [r for r in caplog.records if r.name.startswith("alertprod.local")]
    assert failed and "PrecoveryWorkerFunction failed" in failed[-1].getMessage()

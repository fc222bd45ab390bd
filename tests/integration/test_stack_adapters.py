"""The boto3 adapters against the embedded stack's moto server."""

from __future__ import annotations

import json

import pytest

from alertprod.aws import MemoryBlobStore, S3BlobStore, Services, SnsTopic, SqsQueue, make_clients
from alertprod.errors import NotFoundError, StorageError
from alertprod.local.stack import EmbeddedStack

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def stack():
    with EmbeddedStack(stack_name="adapters") as s:
        yield s


@pytest.fixture(scope="module")
def services(stack):
    return Services.from_resources(stack.resources)


def test_services_are_built_from_the_stack_resources(stack, services):
    assert services.uploads.bucket == stack.physical_id("UploadBucket")
    assert services.images.bucket == stack.physical_id("ImageBucket")
    assert services.alert_archive.bucket == stack.physical_id("AlertBucket")
    assert services.alert_topic.topic_arn == stack.physical_id("AlertTopic")
    assert services.precovery_queue.queue_url == stack.physical_id("PrecoveryQueue")
    table = services.dynamodb.describe_table(TableName=stack.resources.level1_table)["Table"]
    assert table["TableStatus"] == "ACTIVE"


@pytest.mark.parametrize("store_kind", ["s3", "memory"])
def test_blob_store_round_trip_and_listing(services, store_kind):
    store = services.images if store_kind == "s3" else MemoryBlobStore("images")
    prefix = f"visits/{store_kind}/"
    store.put(prefix + "b.fits", b"\x00bytes", content_type="application/fits", metadata={"band": "r"})
    store.put(prefix + "a.fits", b"first")
    assert store.get(prefix + "b.fits") == b"\x00bytes"
    assert list(store.list(prefix)) == [prefix + "a.fits", prefix + "b.fits"]
    head = store.head(prefix + "b.fits")
    assert head["size"] == 6 and head["metadata"] == {"band": "r"}
    assert head["content_type"] == "application/fits"
    assert store.exists(prefix + "a.fits") and not store.exists(prefix + "c.fits")
    store.delete(prefix + "a.fits")
    store.delete(prefix + "a.fits")  # deleting twice is not an error, as in S3
    assert store.head(prefix + "a.fits") is None
    with pytest.raises(NotFoundError):
        store.get(prefix + "a.fits")


@pytest.mark.parametrize("store_kind", ["s3", "memory"])
def test_put_if_absent_writes_once(services, store_kind):
    store = services.alert_archive if store_kind == "s3" else MemoryBlobStore()
    key = f"alerts/once-{store_kind}.avro"
    assert store.put_if_absent(key, b"first") is True
    assert store.put_if_absent(key, b"second") is False
    assert store.get(key) == b"first"


@pytest.mark.parametrize("store_kind", ["s3", "memory"])
def test_blob_store_serves_byte_ranges_cut_at_the_end(services, store_kind):
    store = services.images if store_kind == "s3" else MemoryBlobStore("images")
    key = f"visits/ranges-{store_kind}.fits"
    data = bytes(range(256)) * 40  # 10,240 bytes
    store.put(key, data)
    assert store.size(key) == len(data)
    assert store.get_range(key, 0, 10) == data[:10]
    assert store.get_range(key, 5000, 7001) == data[5000:7001]
    assert store.get_range(key, 10_200, 20_000) == data[10_200:]  # cut at the end
    assert store.get_range(key, 20_000, 20_010) == b""  # wholly past the end
    assert store.get_range(key, 7, 7) == b""
    with pytest.raises(NotFoundError):
        store.get_range(key + ".missing", 0, 10)
    with pytest.raises(NotFoundError):
        store.size(key + ".missing")
    with pytest.raises(StorageError):
        store.get_range(key, 10, 5)
    with pytest.raises(StorageError):
        store.get_range(key, -1, 5)


def test_s3_listing_follows_continuation_pages(services):
    store = services.uploads
    for i in range(7):
        store.put(f"config/paging/{i:05d}", b"x")
    store.put("config/pagingx", b"not under the prefix")
    keys = list(store.list("config/paging/", page_size=2))  # four ListObjectsV2 pages
    assert keys == [f"config/paging/{i:05d}" for i in range(7)]


def test_uri_names_bucket_and_key(services):
    assert services.uploads.uri("diasources/x.fits") == f"s3://{services.uploads.bucket}/diasources/x.fits"


def test_sns_publish_reaches_a_subscribed_queue_with_attributes(stack, services):
    clients = make_clients()
    url = clients.sqs.create_queue(QueueName="broker")["QueueUrl"]
    arn = clients.sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    clients.sns.subscribe(TopicArn=services.alert_topic.topic_arn, Protocol="sqs", Endpoint=arn)
    broker = SqsQueue(clients.sqs, url)
    services.alert_topic.publish("alert-1", {"band": "g", "snr": 12.5, "isDipole": False})
    ids = services.alert_topic.publish_batch([(f"alert-{i}", {"n": i}) for i in range(2, 25)])
    assert len(ids) == 23 and all(ids)
    bodies = []
    while messages := broker.receive(10):
        for m in messages:
            bodies.append(json.loads(m.body))
            broker.delete(m.receipt_handle)
    assert sorted(b["Message"] for b in bodies) == sorted(f"alert-{i}" for i in range(1, 25))
    first = next(b for b in bodies if b["Message"] == "alert-1")
    assert first["MessageAttributes"]["snr"] == {"Type": "Number", "Value": "12.5"}
    assert first["MessageAttributes"]["isDipole"]["Value"] == "false"


def test_sns_refuses_a_message_over_256_kb(services):
    with pytest.raises(StorageError, match="claim-check"):
        services.alert_topic.publish("x" * 262_145)


def test_sqs_send_batch_splits_by_count_and_size(stack, services):
    queue = services.precovery_queue
    big = "y" * 100_000  # three of these exceed one 256 KB batch request
    ids = queue.send_batch([big] * 3 + [f"unit-{i}" for i in range(12)])
    assert len(set(ids)) == 15
    assert queue.approximate_depth() == 15
    seen = []
    while messages := queue.receive(10):
        seen += [m.body for m in messages]
        for m in messages:
            queue.delete(m.receipt_handle)
    assert sorted(seen) == sorted([big] * 3 + [f"unit-{i}" for i in range(12)])
    assert queue.approximate_depth() == 0 and queue.approximate_in_flight() == 0


def test_sqs_message_attributes_and_receive_count(services):
    queue = services.precovery_queue
    queue.send('{"image": "visits/00000001/000/difference.fits"}', {"kind": "difference", "n": 3})
    (m,) = queue.receive(1, visibility_timeout_s=0)
    assert m.message_attributes["kind"]["StringValue"] == "difference"
    assert m.attributes["ApproximateReceiveCount"] == "1"
    (again,) = queue.receive(1)
    assert again.attributes["ApproximateReceiveCount"] == "2"
    queue.delete(again.receipt_handle)


def test_adapters_check_their_arguments(services):
    with pytest.raises(StorageError, match="max_messages"):
        services.precovery_queue.receive(11)
    with pytest.raises(StorageError, match="key"):
        services.uploads.get("")
    with pytest.raises(StorageError, match="topic_arn"):
        SnsTopic(None, "")
    with pytest.raises(StorageError, match="bucket"):
        S3BlobStore(None, "")

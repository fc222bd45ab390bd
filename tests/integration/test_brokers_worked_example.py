"""docs/brokers.md's worked example, run as written on the embedded stack."""

from __future__ import annotations

import re
from pathlib import Path

import boto3
import pytest
from moto_server import moto_environment

from alertprod.alerts import AlertPublisher
from alertprod.aws import S3BlobStore, SnsTopic

pytestmark = pytest.mark.integration

DOC = Path(__file__).resolve().parents[2] / "docs" / "brokers.md"
BUCKET = "alertprod-test-broker-archive"


def _example_code() -> str:
    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(), flags=re.S)
    assert len(blocks) == 1, "docs/brokers.md has one worked example"
    return blocks[0]


@pytest.fixture
def stack():
    with moto_environment():
        clients = {name: boto3.client(name) for name in ("s3", "sns", "sqs")}
        clients["s3"].create_bucket(Bucket=BUCKET)
        yield clients


def test_the_worked_example_dedupes_the_live_stream_and_replays_what_the_outage_missed(stack):
    topic_arn = stack["sns"].create_topic(Name="alerts")["TopicArn"]
    publisher = AlertPublisher(S3BlobStore(stack["s3"], BUCKET), SnsTopic(stack["sns"], topic_arn))
    namespace = {"sqs": stack["sqs"], "sns": stack["sns"], "s3": stack["s3"],
                 "topic_arn": topic_arn, "bucket": BUCKET, "publish": publisher.publish}
    exec(compile(_example_code(), str(DOC), "exec"), namespace)  # the doc's own code, verbatim
    seen, missed = namespace["seen"], namespace["missed"]
    live = {a for a in seen if a not in missed}
    assert len(live) == 3 and len(missed) == 4  # three live (one retried, deduplicated), four replayed
    assert sorted(seen) == sorted(live | set(missed))
    # replayed in offset order: visit 102 before 103, detector 0 before 1
    visits = [(seen[a]["diaSource"]["visit"], seen[a]["diaSource"]["detector"]) for a in missed]
    assert visits == sorted(visits) and visits[0][0] == 102 and visits[-1][0] == 103
    assert namespace["last_offset"].startswith("alerts/00000103/001/")

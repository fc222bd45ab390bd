"""Dead-letter queues for operators (``alertprod.aws.dlq``, ``alertprod dlq``) on the embedded stack."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from alertprod.aws.dlq import dead_letter_queues, peek, redrive
from alertprod.cli import main
from alertprod.local.stack import EmbeddedStack

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def stack():
    with EmbeddedStack(stack_name="dlq", clock_start=datetime(2027, 3, 10, tzinfo=UTC)) as s:
        yield s


def test_list_finds_every_dead_letter_queue_of_the_template_with_its_source(stack):
    found = {q.url: q for q in dead_letter_queues(stack.clients.sqs, prefix="dlq-")}
    upload_dlq, upload = stack.physical_id("UploadDLQ"), stack.physical_id("UploadQueue")
    assert found[upload_dlq].sources == [upload]
    dlqs = {lid for lid, spec in stack.template["Resources"].items()
            if spec["Type"] == "AWS::SQS::Queue" and any(
                isinstance(s.get("Properties", {}).get("RedrivePolicy"), dict) and
                s["Properties"]["RedrivePolicy"].get("deadLetterTargetArn", {}).get("Fn::GetAtt", [None])[0] == lid
                for s in stack.template["Resources"].values())}
    assert {stack.physical_id(lid) for lid in dlqs} <= set(found)


def test_show_leaves_messages_and_redrive_moves_each_once_to_its_source(stack, capsys):
    sqs = stack.clients.sqs
    dlq, source = stack.physical_id("PrecoveryDLQ"), stack.physical_id("PrecoveryQueue")
    bodies = [json.dumps({"unit": i}) for i in range(13)]
    for body in bodies:
        sqs.send_message(QueueUrl=dlq, MessageBody=body)
    shown = peek(sqs, dlq, max_messages=5)
    assert len(shown) == 5 and {m.body for m in shown} <= set(bodies)
    assert [q.depth for q in dead_letter_queues(sqs, prefix="dlq-") if q.url == dlq] == [13]
    assert main(["dlq", "show", dlq, "--max", "3", "--json"]) == 0
    assert len(capsys.readouterr().out.strip().splitlines()) == 3
    moved = [m.body for m in redrive(sqs, dlq, max_messages=4)]
    assert len(moved) == 4
    assert main(["dlq", "redrive", dlq]) == 0
    assert "moved 9 message(s)" in capsys.readouterr().out
    got = []
    while True:
        batch = sqs.receive_message(QueueUrl=source, MaxNumberOfMessages=10).get("Messages", [])
        if not batch:
            break
        got += [m["Body"] for m in batch]
        for m in batch:
            sqs.delete_message(QueueUrl=source, ReceiptHandle=m["ReceiptHandle"])
    assert sorted(got) == sorted(bodies)  # every message once, none lost
    assert peek(sqs, dlq) == []

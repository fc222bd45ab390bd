"""SQS adapter: send, receive and delete messages of one queue; create and delete the queue."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, NamedTuple

from botocore.exceptions import BotoCoreError, ClientError

from alertprod.aws.sns import AttributeValue, message_attributes, send_batches
from alertprod.errors import StorageError

__all__ = ["SqsQueue", "SqsMessage", "MAX_SQS_BYTES", "MAX_SQS_BATCH"]

#: SQS limit on one message and on a whole SendMessageBatch request.
MAX_SQS_BYTES = 262_144
#: SQS limit on entries per batch request and messages per receive.
MAX_SQS_BATCH = 10


class SqsMessage(NamedTuple):
    """A received message."""

    message_id: str
    receipt_handle: str
    body: str
    attributes: dict[str, str]  #: system attributes (ApproximateReceiveCount, SentTimestamp, ...)
    message_attributes: dict[str, Any]


class SqsQueue:
    """One SQS queue.

    Parameters
    ----------
    client : botocore.client.SQS
        An SQS client.
    queue_url : str
        The queue's URL.
    """

    def __init__(self, client: Any, queue_url: str) -> None:
        if not queue_url or "://" not in str(queue_url):
            raise StorageError(f"queue_url must be an SQS queue URL, got {queue_url!r}")
        self.client = client
        self.queue_url = queue_url

    def __repr__(self) -> str:
        return f"SqsQueue(queue_url={self.queue_url!r})"

    @classmethod
    def create(cls, client: Any, name: str) -> SqsQueue:
        """Create a standard queue named ``name`` (or reuse the one of that name).

        Raises
        ------
        StorageError
            When SQS refuses, or cannot be reached.
        """
        if not name or not isinstance(name, str):
            raise StorageError(f"name must be a non-empty string, got {name!r}")
        try:
            return cls(client, client.create_queue(QueueName=name)["QueueUrl"])
        except (ClientError, BotoCoreError) as exc:
            raise StorageError(f"cannot create queue {name!r}: {exc}") from exc

    def arn(self) -> str:
        """The queue's ARN (``QueueArn``)."""
        try:
            r = self.client.get_queue_attributes(QueueUrl=self.queue_url, AttributeNames=["QueueArn"])
        except (ClientError, BotoCoreError) as exc:
            raise StorageError(f"cannot read the ARN of {self.queue_url}: {exc}") from exc
        return str(r["Attributes"]["QueueArn"])

    def allow_sns_topic(self, topic_arn: str) -> None:
        """Set the queue policy that lets the SNS topic ``topic_arn``, and only it, send here."""
        policy = {"Version": "2012-10-17", "Statement": [{
            "Effect": "Allow", "Principal": {"Service": "sns.amazonaws.com"},
            "Action": "sqs:SendMessage", "Resource": self.arn(),
            "Condition": {"ArnEquals": {"aws:SourceArn": topic_arn}}}]}
        try:
            self.client.set_queue_attributes(QueueUrl=self.queue_url,
                                             Attributes={"Policy": json.dumps(policy)})
        except (ClientError, BotoCoreError) as exc:
            raise StorageError(f"cannot set the policy of {self.queue_url}: {exc}") from exc

    def delete_queue(self) -> None:
        """Delete the queue and every message in it."""
        try:
            self.client.delete_queue(QueueUrl=self.queue_url)
        except (ClientError, BotoCoreError) as exc:
            raise StorageError(f"cannot delete queue {self.queue_url}: {exc}") from exc

    def send(self, body: str, attributes: Mapping[str, AttributeValue] | None = None) -> str:
        """Send one message; returns its MessageId.

        Raises
        ------
        StorageError
            When the body exceeds 256 KB or SQS refuses it.
        """
        if not isinstance(body, str) or not body:
            raise StorageError("body must be a non-empty str")
        if (size := len(body.encode("utf-8"))) > MAX_SQS_BYTES:
            raise StorageError(f"body: {size} bytes exceed SQS's {MAX_SQS_BYTES}")
        kwargs: dict[str, Any] = {"QueueUrl": self.queue_url, "MessageBody": body}
        if attributes:
            kwargs["MessageAttributes"] = message_attributes(attributes)
        try:
            return str(self.client.send_message(**kwargs)["MessageId"])
        except ClientError as exc:
            raise StorageError(f"cannot send to {self.queue_url}: {exc}") from exc

    def send_batch(self, bodies: Iterable[str]) -> list[str]:
        """Send many bodies in batches of at most 10 messages and 256 KB; MessageIds in order.

        Raises
        ------
        StorageError
            When a body is too large, or SQS fails any entry.
        """
        prepared = []
        for i, body in enumerate(bodies):
            if not isinstance(body, str) or not body:
                raise StorageError(f"bodies[{i}] must be a non-empty str")
            if (size := len(body.encode("utf-8"))) > MAX_SQS_BYTES:
                raise StorageError(f"bodies[{i}]: {size} bytes exceed SQS's {MAX_SQS_BYTES}")
            prepared.append(({"Id": str(i), "MessageBody": body}, size))
        return send_batches(
            lambda chunk: self.client.send_message_batch(QueueUrl=self.queue_url, Entries=chunk),
            prepared, MAX_SQS_BATCH, MAX_SQS_BYTES, where=f"SQS queue {self.queue_url}")

    def receive(
        self, max_messages: int = 1, wait_s: int = 0, *, visibility_timeout_s: int | None = None
    ) -> list[SqsMessage]:
        """Receive up to ``max_messages`` (1-10), long-polling up to ``wait_s`` seconds (0-20)."""
        if not 1 <= int(max_messages) <= MAX_SQS_BATCH:
            raise StorageError(f"max_messages must be in 1..10, got {max_messages}")
        if not 0 <= int(wait_s) <= 20:
            raise StorageError(f"wait_s must be in 0..20, got {wait_s}")
        kwargs: dict[str, Any] = {
            "QueueUrl": self.queue_url,
            "MaxNumberOfMessages": int(max_messages),
            "WaitTimeSeconds": int(wait_s),
            "MessageSystemAttributeNames": ["All"],
            "MessageAttributeNames": ["All"],
        }
        if visibility_timeout_s is not None:
            kwargs["VisibilityTimeout"] = int(visibility_timeout_s)
        try:
            r = self.client.receive_message(**kwargs)
        except (ClientError, BotoCoreError) as exc:
            raise StorageError(f"cannot receive from {self.queue_url}: {exc}") from exc
        return [
            SqsMessage(
                m["MessageId"], m["ReceiptHandle"], m["Body"],
                dict(m.get("Attributes", {})), dict(m.get("MessageAttributes", {})),
            )
            for m in r.get("Messages", [])
        ]

    def delete(self, receipt_handle: str) -> None:
        """Delete a received message."""
        try:
            self.client.delete_message(QueueUrl=self.queue_url, ReceiptHandle=receipt_handle)
        except ClientError as exc:
            raise StorageError(f"cannot delete from {self.queue_url}: {exc}") from exc

    def delete_batch(self, receipt_handles: Sequence[str]) -> list[str]:
        """Delete received messages, 10 per request; returns the handles SQS failed to delete.

        A handle that fails (it expired, the message was received again) is not an error: the
        message will be delivered again.

        Raises
        ------
        StorageError
            When a request fails as a whole.
        """
        failed: list[str] = []
        for start in range(0, len(receipt_handles), MAX_SQS_BATCH):
            chunk = list(receipt_handles[start:start + MAX_SQS_BATCH])
            entries = [{"Id": str(i), "ReceiptHandle": h} for i, h in enumerate(chunk)]
            try:
                r = self.client.delete_message_batch(QueueUrl=self.queue_url, Entries=entries)
            except (ClientError, BotoCoreError) as exc:
                raise StorageError(f"cannot delete messages from {self.queue_url}: {exc}") from exc
            failed += [chunk[int(f["Id"])] for f in r.get("Failed", [])]
        return failed

    def change_visibility(self, receipt_handle: str, timeout_s: int) -> None:
        """Make a received message visible again after ``timeout_s`` seconds (0: now)."""
        try:
            self.client.change_message_visibility(
                QueueUrl=self.queue_url, ReceiptHandle=receipt_handle, VisibilityTimeout=int(timeout_s)
            )
        except ClientError as exc:
            raise StorageError(f"cannot change visibility on {self.queue_url}: {exc}") from exc

    def approximate_depth(self) -> int:
        """Messages waiting to be received (``ApproximateNumberOfMessages``)."""
        return self._attribute("ApproximateNumberOfMessages")

    def approximate_in_flight(self) -> int:
        """Messages received but neither deleted nor visible again (``...NotVisible``)."""
        return self._attribute("ApproximateNumberOfMessagesNotVisible")

    def _attribute(self, name: str) -> int:
        try:
            r = self.client.get_queue_attributes(QueueUrl=self.queue_url, AttributeNames=[name])
        except ClientError as exc:
            raise StorageError(f"cannot read {name} of {self.queue_url}: {exc}") from exc
        return int(r["Attributes"][name])

"""SNS adapter: publish alerts (or any message) with attributes for subscriber-side filtering,
and subscribe SQS queues with a filter policy."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from alertprod.errors import StorageError

__all__ = ["SnsTopic", "MAX_SNS_BYTES", "MAX_SNS_BATCH", "message_attributes"]

#: SNS limit on one message (body plus attributes), and on a whole PublishBatch request.
MAX_SNS_BYTES = 262_144
#: SNS limit on entries per PublishBatch request.
MAX_SNS_BATCH = 10

AttributeValue = str | int | float | Sequence[str]


def message_attributes(attributes: Mapping[str, AttributeValue] | None) -> dict[str, dict]:
    """SNS/SQS ``MessageAttributes`` from plain values.

    ``str`` -> ``String``; ``int``/``float`` -> ``Number`` (bools as the strings ``"true"`` /
    ``"false"``, since SNS has no boolean type); a sequence of strings -> ``String.Array``.

    Raises
    ------
    StorageError
        When a value has another type, or more than 10 attributes are given (AWS limit).
    """
    out: dict[str, dict] = {}
    items = dict(attributes or {})
    if len(items) > 10:
        raise StorageError(f"attributes: {len(items)} given, AWS allows 10 per message")
    for name, value in items.items():
        if isinstance(value, bool):
            out[name] = {"DataType": "String", "StringValue": "true" if value else "false"}
        elif isinstance(value, str):
            out[name] = {"DataType": "String", "StringValue": value}
        elif isinstance(value, int | float):
            out[name] = {"DataType": "Number", "StringValue": repr(value)}
        elif isinstance(value, Sequence) and all(isinstance(v, str) for v in value):
            out[name] = {"DataType": "String.Array", "StringValue": json.dumps(list(value))}
        else:
            raise StorageError(f"attributes[{name!r}]: unsupported type {type(value).__name__}")
    return out


def _size(message: str, attrs: Mapping[str, dict]) -> int:
    size = len(message.encode("utf-8"))
    for name, value in attrs.items():
        size += len(name.encode()) + len(value["DataType"]) + len(value["StringValue"].encode())
    return size


class SnsTopic:
    """One SNS topic.

    Parameters
    ----------
    client : botocore.client.SNS
        An SNS client.
    topic_arn : str
        The topic's ARN.

    Notes
    -----
    Messages over 256 KB are refused here, before AWS refuses them: publish a claim-check (an
    S3 key) instead. Batches are split into requests of at most 10 entries and 256 KB.
    """

    def __init__(self, client: Any, topic_arn: str) -> None:
        if not topic_arn or not str(topic_arn).startswith("arn:"):
            raise StorageError(f"topic_arn must be an SNS topic ARN, got {topic_arn!r}")
        self.client = client
        self.topic_arn = topic_arn

    def __repr__(self) -> str:
        return f"SnsTopic(topic_arn={self.topic_arn!r})"

    def publish(
        self, message: str, attributes: Mapping[str, AttributeValue] | None = None
    ) -> str:
        """Publish one message; returns its SNS MessageId.

        Raises
        ------
        StorageError
            When the message exceeds 256 KB or SNS refuses it.
        """
        if not isinstance(message, str):
            raise StorageError(f"message must be str, got {type(message).__name__}")
        attrs = message_attributes(attributes)
        if (size := _size(message, attrs)) > MAX_SNS_BYTES:
            raise StorageError(f"message: {size} bytes exceed SNS's {MAX_SNS_BYTES}; use a claim-check")
        kwargs: dict[str, Any] = {"TopicArn": self.topic_arn, "Message": message}
        if attrs:
            kwargs["MessageAttributes"] = attrs
        try:
            return str(self.client.publish(**kwargs)["MessageId"])
        except ClientError as exc:
            raise StorageError(f"cannot publish to {self.topic_arn}: {exc}") from exc

    def publish_batch(
        self, entries: Iterable[tuple[str, Mapping[str, AttributeValue] | None]], *,
        on_batch: Callable[[list[int]], None] | None = None,
    ) -> list[str]:
        """Publish ``(message, attributes)`` pairs in as few PublishBatch calls as AWS allows.

        ``on_batch(indices)`` is called after each PublishBatch call that SNS accepted whole,
        with the input positions of its entries (the publisher marks its ledger from it).

        Returns
        -------
        list of str
            The SNS MessageId of each entry, in input order.

        Raises
        ------
        StorageError
            When an entry is too large, or SNS fails any entry (the error lists them).
        """
        prepared = []
        for i, (message, attributes) in enumerate(entries):
            attrs = message_attributes(attributes)
            size = _size(message, attrs)
            if size > MAX_SNS_BYTES:
                raise StorageError(f"entries[{i}]: {size} bytes exceed SNS's {MAX_SNS_BYTES}")
            entry: dict[str, Any] = {"Id": str(i), "Message": message}
            if attrs:
                entry["MessageAttributes"] = attrs
            prepared.append((entry, size))
        return send_batches(
            lambda chunk: self.client.publish_batch(TopicArn=self.topic_arn, PublishBatchRequestEntries=chunk),
            prepared, MAX_SNS_BATCH, MAX_SNS_BYTES, where=f"SNS topic {self.topic_arn}",
            on_batch=on_batch)

    def subscribe_queue(self, queue_arn: str, *,
                        filter_policy: Mapping[str, Any] | None = None) -> str:
        """Subscribe an SQS queue with raw message delivery; returns the subscription ARN.

        Parameters
        ----------
        queue_arn : str
            The queue (its policy must let this topic send: ``SqsQueue.allow_sns_topic``).
        filter_policy : Mapping, optional
            SNS filter policy on the message attributes, e.g.
            ``{"band": ["r"], "snr": [{"numeric": [">", 10]}]}``.

        Raises
        ------
        StorageError
            When SNS refuses (a malformed filter policy included), or cannot be reached.
        """
        attributes = {"RawMessageDelivery": "true"}
        if filter_policy:
            attributes["FilterPolicy"] = json.dumps(dict(filter_policy))
        try:
            return str(self.client.subscribe(
                TopicArn=self.topic_arn, Protocol="sqs", Endpoint=queue_arn,
                Attributes=attributes, ReturnSubscriptionArn=True)["SubscriptionArn"])
        except (ClientError, BotoCoreError) as exc:
            raise StorageError(f"cannot subscribe {queue_arn} to {self.topic_arn}: {exc}") from exc

    def unsubscribe(self, subscription_arn: str) -> None:
        """Remove a subscription of this topic."""
        try:
            self.client.unsubscribe(SubscriptionArn=subscription_arn)
        except (ClientError, BotoCoreError) as exc:
            raise StorageError(f"cannot unsubscribe {subscription_arn}: {exc}") from exc


def batch_indices(sizes: Sequence[int], max_entries: int, max_bytes: int) -> Iterable[list[int]]:
    """The one batching rule of SNS and SQS: consecutive entries, at most ``max_entries`` of
    them and ``max_bytes`` in total per request; yields the positions of each batch."""
    chunk: list[int] = []
    total = 0
    for i, size in enumerate(sizes):
        if chunk and (len(chunk) == max_entries or total + size > max_bytes):
            yield chunk
            chunk, total = [], 0
        chunk.append(i)
        total += size
    if chunk:
        yield chunk


def send_batches(call: Callable[[list[dict]], dict], prepared: Sequence[tuple[dict, int]],
                 max_entries: int, max_bytes: int, *, where: str,
                 on_batch: Callable[[list[int]], None] | None = None) -> list[str]:
    """Send ``(entry, size)`` pairs in batches within AWS's limits; message ids in entry order.

    ``call(entries)`` makes one batch request (SNS PublishBatch, SQS SendMessageBatch: both
    answer with ``Successful``/``Failed`` lists keyed by the entries' ``Id``);
    ``on_batch(indices)`` follows each batch accepted whole.
    """
    ids: list[str] = [""] * len(prepared)
    for idx in batch_indices([size for _, size in prepared], max_entries, max_bytes):
        chunk = [prepared[i][0] for i in idx]
        try:
            r = call(chunk)
        except ClientError as exc:
            raise StorageError(f"cannot send to {where}: {exc}") from exc
        if r.get("Failed"):
            failed = ", ".join(f"{f['Id']}: {f.get('Code')}" for f in r["Failed"])
            raise StorageError(f"{where} refused entries {failed}")
        for ok in r.get("Successful", []):
            ids[int(ok["Id"])] = ok["MessageId"]
        if on_batch is not None:
            on_batch(idx)
    return ids

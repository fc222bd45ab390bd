"""The consumer client: a private SQS queue subscribed to the alert topic, yielding decoded alerts.

:class:`AlertConsumer` creates a queue, subscribes it to the topic with raw message delivery and
an optional SNS filter policy on the message attributes (``{"band": ["r"], "snr": [{"numeric":
[">", 10]}]}``), and :meth:`~AlertConsumer.poll` returns decoded alerts: base64 Confluent-framed
packets are decoded with the Rubin schema their header names, claim-check pointers are resolved
from the archive, duplicates (same ``alert_id``) are dropped and every received message is
deleted. It works on AWS and on the embedded stack alike (boto3 finds the endpoint itself); it
talks to them through the :mod:`alertprod.aws` adapters (:class:`~alertprod.aws.SqsQueue`,
:class:`~alertprod.aws.SnsTopic`, :class:`~alertprod.aws.S3BlobStore`), which report every
failure as a :class:`~alertprod.errors.StorageError`.
"""

from __future__ import annotations

import base64
import binascii
import json
import uuid
from collections import OrderedDict
from collections.abc import Mapping
from typing import Any, NamedTuple
from urllib.parse import urlparse

from alertprod.alerts.serialize import deserialize_alert, read_alert_container
from alertprod.aws import S3BlobStore, SnsTopic, SqsQueue
from alertprod.errors import AlertSchemaError, ConfigError, StorageError

__all__ = ["ReceivedAlert", "AlertConsumer", "decode_message"]


class ReceivedAlert(NamedTuple):
    """One alert as a consumer receives it.

    Attributes
    ----------
    alert_id : int
        The alert's ``diaSourceId``.
    alert : dict
        The decoded alert record (Rubin schema).
    attributes : dict
        The message attributes, as plain values (``{"band": "r", "snr": 12.3, ...}``).
    claim_checked : bool
        Whether the packet was fetched from the archive through a claim-check.
    """

    alert_id: int
    alert: dict[str, Any]
    attributes: dict[str, Any]
    claim_checked: bool


def _plain_attributes(message_attributes: Mapping[str, Mapping[str, str]] | None) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, value in (message_attributes or {}).items():
        text = value.get("StringValue", "")
        if value.get("DataType", "").startswith("Number"):
            out[name] = float(text)
        else:
            out[name] = text
    return out


def decode_message(body: str, s3_client: Any = None) -> tuple[dict[str, Any], bool]:
    """Decode one alert message body: base64 of a framed packet, or a JSON claim-check pointer.

    Parameters
    ----------
    body : str
        The message body as published by :class:`~alertprod.alerts.publish.AlertPublisher`.
    s3_client : botocore.client.S3, optional
        Needed to resolve claim-checks (``s3://bucket/key``).

    Returns
    -------
    alert : dict
        The decoded alert record.
    claim_checked : bool
        Whether it came through a claim-check.

    Raises
    ------
    AlertSchemaError
        When the body is neither form or the packet does not decode.
    StorageError
        When the claim-check's archive object cannot be read (a
        :class:`~alertprod.errors.NotFoundError` when it does not exist).
    """
    text = body.strip()
    if text.startswith("{"):
        try:
            pointer = json.loads(text)
            uri = urlparse(pointer["claimCheck"])
        except (ValueError, KeyError, TypeError) as exc:
            raise AlertSchemaError(f"message body is not a claim-check pointer: {exc}") from exc
        if uri.scheme != "s3" or s3_client is None:
            raise StorageError(f"cannot resolve claim-check {pointer['claimCheck']!r} "
                               "(needs an s3:// URI and an S3 client)")
        data = S3BlobStore(s3_client, uri.netloc).get(uri.path.lstrip("/"))
        records = list(read_alert_container(data))
        if len(records) != 1:
            raise AlertSchemaError(f"claim-check {pointer['claimCheck']} holds {len(records)} records, not 1")
        return records[0], True
    try:
        packet = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise AlertSchemaError(f"message body is neither base64 nor a claim-check: {exc}") from exc
    return deserialize_alert(packet), False


class AlertConsumer:
    """A broker-side client of the alert topic, with its own SQS queue.

    Parameters
    ----------
    sqs_client, sns_client, s3_client : botocore clients
        SQS, SNS and S3 clients (S3 resolves claim-checks from the alert archive).
    topic_arn : str
        The alert topic.
    queue_name : str, optional
        Name of the queue to create (default ``alertprod-consumer-<random>``); an existing
        queue of that name is reused.
    filter_policy : Mapping, optional
        SNS filter policy on the message attributes, e.g.
        ``{"band": ["r"], "snr": [{"numeric": [">", 10]}]}``.
    max_remembered_ids : int
        How many alert ids are remembered for deduplication (oldest forgotten first).

    Notes
    -----
    The queue policy lets only this topic send to the queue. Use as a context manager, or call
    :meth:`close` to unsubscribe and delete the queue.
    """

    def __init__(self, sqs_client: Any, sns_client: Any, s3_client: Any, topic_arn: str, *,
                 queue_name: str | None = None, filter_policy: Mapping[str, Any] | None = None,
                 max_remembered_ids: int = 1_000_000) -> None:
        if not topic_arn or not str(topic_arn).startswith("arn:"):
            raise ConfigError(f"topic_arn must be an SNS topic ARN, got {topic_arn!r}")
        if max_remembered_ids < 1:
            raise ConfigError(f"max_remembered_ids={max_remembered_ids} must be >= 1")
        self.sqs, self.sns, self.s3 = sqs_client, sns_client, s3_client
        self.topic_arn = topic_arn
        self.queue_name = queue_name or f"alertprod-consumer-{uuid.uuid4().hex[:12]}"
        self.subscription_arn: str | None = None
        self._seen: OrderedDict[int, None] = OrderedDict()
        self._max_seen = max_remembered_ids
        #: Messages dropped because they repeat an alert already returned.
        self.duplicates = 0
        #: ``"<message id>: <reason>"`` of messages that could not be decoded (and were dropped).
        self.undecodable: list[str] = []
        self._topic = SnsTopic(sns_client, topic_arn)
        try:
            self._queue = SqsQueue.create(sqs_client, self.queue_name)
            self.queue_url = self._queue.queue_url
            self.queue_arn = self._queue.arn()
            self._queue.allow_sns_topic(topic_arn)
            self.subscription_arn = self._topic.subscribe_queue(self.queue_arn,
                                                                filter_policy=filter_policy)
        except StorageError as exc:
            raise StorageError(f"cannot subscribe a queue to {topic_arn}: {exc}") from exc

    def poll(self, max_messages: int = 10, wait_s: float = 1.0) -> list[ReceivedAlert]:
        """Receive, decode, deduplicate and delete up to ``max_messages`` messages.

        Parameters
        ----------
        max_messages : int
            At most this many messages are received (1-10, SQS's limit per call).
        wait_s : float
            Long-polling time, seconds (0-20).

        Returns
        -------
        list of ReceivedAlert
            New alerts, in arrival order; duplicates are counted in :attr:`duplicates`.
        """
        if not 1 <= max_messages <= 10:
            raise ConfigError(f"max_messages={max_messages} must be in [1, 10]")
        if not 0 <= wait_s <= 20:
            raise ConfigError(f"wait_s={wait_s} must be in [0, 20]")
        messages = self._queue.receive(max_messages, int(round(wait_s)))
        out: list[ReceivedAlert] = []
        done: list[str] = []
        for message in messages:
            attributes = _plain_attributes(message.message_attributes)
            known_id = attributes.get("alert_id")
            if known_id is not None and int(known_id) in self._seen:
                self.duplicates += 1
                done.append(message.receipt_handle)
                continue
            try:
                alert, claim = decode_message(message.body, self.s3)
            except AlertSchemaError as exc:
                # a poison message: never decodable, so drop it (the archive keeps every alert)
                self.undecodable.append(f"{message.message_id}: {exc}")
                done.append(message.receipt_handle)
                continue
            except StorageError:
                continue  # the claim-check could not be read now: leave it for redelivery
            done.append(message.receipt_handle)
            alert_id = int(alert["diaSourceId"])
            if alert_id in self._seen:
                self.duplicates += 1
                continue
            self._remember(alert_id)
            out.append(ReceivedAlert(alert_id, alert, attributes, claim))
        if done:
            # a message whose deletion fails comes back, and is then dropped as a duplicate
            self._queue.delete_batch(done)
        return out

    def _remember(self, alert_id: int) -> None:
        self._seen[alert_id] = None
        if len(self._seen) > self._max_seen:
            self._seen.popitem(last=False)

    def close(self) -> None:
        """Unsubscribe from the topic and delete the queue (safe to call twice)."""
        if self.subscription_arn:
            try:
                self._topic.unsubscribe(self.subscription_arn)
            finally:
                self.subscription_arn = None
                self._queue.delete_queue()

    def __enter__(self) -> AlertConsumer:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

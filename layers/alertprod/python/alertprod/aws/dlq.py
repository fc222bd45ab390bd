"""Dead-letter queues for operators: what is in them, and sending it back to be processed.

Every queue of the template has a dead-letter queue that receives a message after three failed
receives (`UploadDLQ`, `PrecoveryDLQ`, `OrbitRefreshDLQ`, `ArchiveDLQ`, `FilterServiceDLQ`,
`DeliveryDLQ`). :func:`dead_letter_queues` finds them (queues that are some queue's
dead-letter target, by SQS's ``ListDeadLetterSourceQueues``), :func:`peek` shows their
messages without taking them (each is made visible again at once), and :func:`redrive` moves
them back to their source queue — body and message attributes unchanged — deleting each from
the dead-letter queue only after its copy is sent. Every function is idempotent under
redelivery, so a message redriven twice changes nothing. Written here because SQS's own
``StartMessageMoveTask`` is not on the embedded stack and moves everything at once, where an
operator often wants to look first and move a few.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, NamedTuple

from botocore.exceptions import BotoCoreError, ClientError

from alertprod.aws.sqs import SqsMessage, SqsQueue
from alertprod.errors import StorageError

__all__ = ["DeadLetterQueue", "dead_letter_queues", "peek", "redrive"]


class DeadLetterQueue(NamedTuple):
    """A dead-letter queue, the queues it receives from, and its depth."""

    url: str
    sources: list[str]
    depth: int


def _urls(client: Any, prefix: str) -> list[str]:
    try:
        pages = client.get_paginator("list_queues").paginate(QueueNamePrefix=prefix)
        return [u for page in pages for u in page.get("QueueUrls", [])]
    except (ClientError, BotoCoreError) as exc:
        raise StorageError(f"cannot list queues: {exc}") from exc


def dead_letter_queues(client: Any, *, prefix: str = "") -> list[DeadLetterQueue]:
    """Every queue (named with ``prefix``) that is the dead-letter target of another queue."""
    out = []
    for url in _urls(client, prefix):
        try:
            sources = client.list_dead_letter_source_queues(QueueUrl=url).get("queueUrls", [])
        except (ClientError, BotoCoreError) as exc:
            raise StorageError(f"cannot list the source queues of {url}: {exc}") from exc
        if sources:
            out.append(DeadLetterQueue(url, sorted(sources), SqsQueue(client, url).approximate_depth()))
    return out


def peek(client: Any, dlq_url: str, *, max_messages: int = 10) -> list[SqsMessage]:
    """Up to ``max_messages`` messages of a queue, left in it (visible again at once)."""
    queue = SqsQueue(client, dlq_url)
    seen: dict[str, SqsMessage] = {}
    handles: list[str] = []
    try:
        for _ in range(max(1, -(-int(max_messages) // 10)) * 2):
            got = queue.receive(min(10, max(1, int(max_messages) - len(seen))), 0,
                                visibility_timeout_s=30)
            if not got:
                break
            for m in got:
                handles.append(m.receipt_handle)
                seen.setdefault(m.message_id, m)
            if len(seen) >= max_messages:
                break
    finally:
        for handle in handles:  # give every message back at once
            queue.change_visibility(handle, 0)
    return list(seen.values())[:max_messages]


def _send_copy(source: SqsQueue, message: SqsMessage) -> None:
    attributes = {k: v for k, v in message.message_attributes.items()
                  if k and isinstance(v, dict) and "DataType" in v}
    try:
        source.client.send_message(QueueUrl=source.queue_url, MessageBody=message.body,
                                   **({"MessageAttributes": attributes} if attributes else {}))
    except (ClientError, BotoCoreError) as exc:
        raise StorageError(f"cannot send to {source.queue_url}: {exc}") from exc


def redrive(client: Any, dlq_url: str, *, to_url: str | None = None,
            max_messages: int | None = None) -> Iterator[SqsMessage]:
    """Move messages from a dead-letter queue back to its source queue; yields each moved.

    Parameters
    ----------
    dlq_url : str
        The dead-letter queue.
    to_url : str, optional
        Where to send them; by default the one queue that uses ``dlq_url`` as its dead-letter
        queue (an error when there are several or none).
    max_messages : int, optional
        At most this many (default: until the queue is empty).
    """
    if to_url is None:
        sources = client.list_dead_letter_source_queues(QueueUrl=dlq_url).get("queueUrls", [])
        if len(sources) != 1:
            raise StorageError(f"{dlq_url} is the dead-letter queue of {len(sources)} queues; "
                               "say which with to_url")
        to_url = sources[0]
    dlq, source = SqsQueue(client, dlq_url), SqsQueue(client, to_url)
    moved = 0
    while max_messages is None or moved < max_messages:
        want = 10 if max_messages is None else min(10, max_messages - moved)
        got = dlq.receive(want, 0, visibility_timeout_s=60)
        if not got:
            return
        for message in got:
            _send_copy(source, message)
            dlq.delete(message.receipt_handle)
            moved += 1
            yield message

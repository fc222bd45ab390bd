"""Deliver matches to the user's own SQS queue: one message per match, the envelope as body.

The queue's policy must let the service's role send (the user grants ``sqs:SendMessage`` to
it). Messages carry the attribute ``delivery_id`` for receivers that deduplicate without
parsing the body. A match whose envelope would exceed SQS's 256 KB is sent as a claim-check
(``"claimCheck": "s3://..."``) to its archived packet.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from alertprod.aws.sns import batch_indices
from alertprod.delivery.envelope import Outbound, SendOutcome, envelope

__all__ = ["SqsTransport", "MAX_SQS_MESSAGE_BYTES"]

#: SQS's limit for one message and for one SendMessageBatch request, bytes.
MAX_SQS_MESSAGE_BYTES = 256 * 1024
_MAX_ENTRIES = 10
_ATTR_BYTES = 128  # the delivery_id attribute's share of the message size, rounded up


class SqsTransport:
    """Sends envelopes to one SQS queue with SendMessageBatch (≤ 10 entries, ≤ 256 KB per call).

    Parameters
    ----------
    client : botocore client
        SQS client (injected).
    queue_url : str
        The user's queue.
    """

    kind = "sqs"

    def __init__(self, client: Any, queue_url: str) -> None:
        self.client, self.queue_url = client, queue_url

    def _body(self, item: Outbound) -> str:
        body = json.dumps(envelope(item), separators=(",", ":"))
        if len(body.encode()) + _ATTR_BYTES > MAX_SQS_MESSAGE_BYTES:
            body = json.dumps(envelope(item, claim_check=True), separators=(",", ":"))
        return body

    def send(self, items: Sequence[Outbound]) -> SendOutcome:
        """Send every item; ids refused by SQS, or of a failed call, are reported failed."""
        out = SendOutcome()
        bodies = [self._body(i) for i in items]
        sizes = [len(b.encode()) + _ATTR_BYTES for b in bodies]
        for chunk in batch_indices(sizes, _MAX_ENTRIES, MAX_SQS_MESSAGE_BYTES):
            entries = [{"Id": str(k), "MessageBody": bodies[k], "MessageAttributes": {
                "delivery_id": {"DataType": "String", "StringValue": items[k].delivery_id}}}
                for k in chunk]
            out.attempts += 1
            try:
                response = self.client.send_message_batch(QueueUrl=self.queue_url, Entries=entries)
            except Exception as exc:  # botocore errors: the whole call failed
                for k in chunk:
                    out.failed[items[k].delivery_id] = f"SQS SendMessageBatch failed: {exc}"
                continue
            failed = {int(f["Id"]): f.get("Message", f.get("Code", "failed"))
                      for f in response.get("Failed", [])}
            for k in chunk:
                if k in failed:
                    out.failed[items[k].delivery_id] = f"SQS refused: {failed[k]}"
                else:
                    out.delivered.add(items[k].delivery_id)
        return out

"""What the alert queues carry to the filtering service and the stream relay, and how to read it.

Both are subscribed to the alert topic through SQS; a message body is the published message
(raw delivery) or, for a subscription without raw delivery, an SNS envelope around it.
"""

from __future__ import annotations

import json
from typing import NamedTuple

__all__ = ["AlertMessage", "unwrap_sns"]


class AlertMessage(NamedTuple):
    """One message of the alert queue: its body and when the topic sent it (Unix s, or None)."""

    body: str
    sent_unix: float | None = None


def unwrap_sns(body: str) -> str:
    """The published message of an SNS envelope (a subscription without raw delivery), else ``body``."""
    if not body.lstrip().startswith("{"):
        return body
    try:
        doc = json.loads(body)
    except ValueError:
        return body
    if isinstance(doc, dict) and doc.get("Type") == "Notification" and isinstance(doc.get("Message"), str):
        return doc["Message"]
    return body

"""Parsing of S3 event notifications delivered through SQS."""

from __future__ import annotations

import json
from typing import NamedTuple
from urllib.parse import unquote_plus

from alertprod.errors import EventError

__all__ = ["S3Object", "s3_objects_from_sqs_body"]


class S3Object(NamedTuple):
    """One object named by an S3 ObjectCreated notification."""

    bucket: str
    key: str  #: URL-decoded object key
    size: int
    event_name: str
    sequencer: str


def s3_objects_from_sqs_body(body: str) -> list[S3Object]:
    """Objects named by the S3 notification in an SQS message body.

    ``s3:TestEvent`` messages (sent when a notification is configured) yield an empty list.
    Keys arrive URL-encoded (``+`` for spaces) and are decoded.

    Raises
    ------
    EventError
        When the body is not an S3 notification; the message then goes back to the queue and,
        after the redrive limit, to the dead-letter queue.
    """
    try:
        doc = json.loads(body)
    except (TypeError, ValueError) as exc:
        raise EventError(f"SQS body is not JSON: {body[:80]!r}") from exc
    if not isinstance(doc, dict):
        raise EventError("SQS body is not an S3 notification object")
    if doc.get("Event") == "s3:TestEvent":
        return []
    if "Records" not in doc or not isinstance(doc["Records"], list):
        raise EventError(f"SQS body has no S3 Records: keys {sorted(doc)[:5]}")
    out = []
    for rec in doc["Records"]:
        try:
            s3 = rec["s3"]
            out.append(S3Object(s3["bucket"]["name"], unquote_plus(s3["object"]["key"]),
                                int(s3["object"].get("size", 0)), rec.get("eventName", ""),
                                s3["object"].get("sequencer", "")))
        except (KeyError, TypeError) as exc:
            raise EventError(f"malformed S3 record: {exc}") from exc
    return out

"""Deliver matches as objects in a bucket the user grants: one object per match.

Key ``{prefix}{filter_id}/{delivery_id}.avro`` (the framed packet) or ``.xml`` (VOEvent): the
key is the delivery id, so a redelivery overwrites the same object and a reader sees each
match once. Object metadata: ``delivery-id``, ``filter-id``, ``filter-version-hash``,
``alert-id``. The bucket policy must let the service's role ``s3:PutObject`` under the prefix.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from alertprod.delivery.envelope import Outbound, SendOutcome

__all__ = ["S3DropTransport", "drop_key"]


def drop_key(prefix: str, item: Outbound) -> str:
    """The object key of one match."""
    ext = "xml" if item.payload_format == "voevent" else "avro"
    return f"{prefix}{item.filter_id}/{item.delivery_id}.{ext}"


class S3DropTransport:
    """Puts one object per match in ``s3://bucket/prefix``.

    Parameters
    ----------
    client : botocore client
        S3 client (injected).
    bucket, prefix : str
        Where to write; ``prefix`` ends with ``/`` or is empty.
    """

    kind = "s3"

    def __init__(self, client: Any, bucket: str, prefix: str = "") -> None:
        self.client, self.bucket, self.prefix = client, bucket, prefix

    def send(self, items: Sequence[Outbound]) -> SendOutcome:
        out = SendOutcome()
        for item in items:
            out.attempts += 1
            content_type = "application/xml" if item.payload_format == "voevent" else "application/octet-stream"
            try:
                self.client.put_object(
                    Bucket=self.bucket, Key=drop_key(self.prefix, item), Body=item.payload,
                    ContentType=content_type,
                    Metadata={"delivery-id": item.delivery_id, "filter-id": item.filter_id,
                              "filter-version-hash": item.version_hash, "alert-id": str(item.alert_id)})
            except Exception as exc:  # botocore errors: this object failed
                out.failed[item.delivery_id] = f"S3 PutObject failed: {exc}"
            else:
                out.delivered.add(item.delivery_id)
        return out

"""S3 lifecycle expiration on the embedded stack's clock.

moto stores lifecycle rules but never applies them. :func:`expire_objects` applies a bucket's
``Expiration`` rules as S3 does: an object expires at the first midnight UTC after its creation
time plus ``ExpirationInDays`` (or on ``ExpirationDate``). Creation times come from a callable,
so the stack can place objects on its own clock rather than the wall clock moto records.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime, time, timedelta
from typing import Any

__all__ = ["expiry_time", "expire_objects", "rule_prefix"]


def rule_prefix(rule: Mapping[str, Any]) -> str:
    """The key prefix a lifecycle rule applies to (``Prefix``, ``Filter.Prefix`` or ``Filter.And.Prefix``)."""
    if "Prefix" in rule:
        return str(rule["Prefix"])
    filt = rule.get("Filter") or {}
    return str(filt.get("Prefix", (filt.get("And") or {}).get("Prefix", "")))


def expiry_time(created: datetime, days: int) -> datetime:
    """When S3 expires an object created at ``created`` under an ``ExpirationInDays: days`` rule.

    S3 adds the days to the creation time and rounds up to the next midnight UTC.
    """
    t = created.astimezone(UTC) + timedelta(days=int(days))
    midnight = datetime.combine(t.date(), time(0), tzinfo=UTC)
    return midnight if t == midnight else midnight + timedelta(days=1)


def expire_objects(
    s3_client: Any,
    bucket: str,
    rules: Iterable[Mapping[str, Any]],
    now: datetime,
    *,
    created_at: Callable[[datetime], datetime] = lambda t: t,
) -> list[str]:
    """Delete the objects of ``bucket`` whose expiration rule has come due at ``now``.

    Parameters
    ----------
    s3_client : botocore.client.S3
        Client of the bucket's endpoint.
    bucket : str
        Bucket name.
    rules : iterable of mapping
        The bucket's lifecycle rules (template form: ``ExpirationInDays``, ``ExpirationDate``).
    now : datetime
        The time to expire at (aware).
    created_at : callable
        Maps an object's ``LastModified`` to its creation time on the caller's clock.

    Returns
    -------
    list of str
        Keys deleted, in listing order.
    """
    deleted: list[str] = []
    paginator = s3_client.get_paginator("list_objects_v2")
    for rule in rules:
        if rule.get("Status") != "Enabled":
            continue
        days = rule.get("ExpirationInDays")
        date = rule.get("ExpirationDate")
        if days is None and date is None:
            continue
        for page in paginator.paginate(Bucket=bucket, Prefix=rule_prefix(rule)):
            for item in page.get("Contents", []):
                if days is not None:
                    due = expiry_time(created_at(item["LastModified"]), int(days))
                else:
                    due = datetime.fromisoformat(str(date).replace("Z", "+00:00"))
                if now >= due:
                    s3_client.delete_object(Bucket=bucket, Key=item["Key"])
                    deleted.append(item["Key"])
    return deleted

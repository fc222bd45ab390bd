"""Quarantine records: machine-readable reasons for refused uploads.

A refused upload stays where it was uploaded; a JSON record beside it, under ``quarantine/``
in the upload bucket, says why. Records are overwritten on redelivery (idempotent).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from alertprod.errors import ContractError
from alertprod.formats import quarantine_key
from alertprod.formats.layout import parse_key

__all__ = ["QUARANTINE_SCHEMA", "quarantine_record", "write_quarantine"]

#: Identifier of the record layout, for consumers of quarantine records.
QUARANTINE_SCHEMA = "alertprod.quarantine/1"


def quarantine_record(bucket: str, key: str, error: ContractError, *,
                      now: datetime | None = None) -> tuple[str, dict[str, Any]]:
    """The record key and body for a refused upload."""
    try:
        parsed = parse_key(key)
        visit, detector = parsed.visit, parsed.detector
    except ContractError:
        visit = detector = None
    body = {
        "schema": QUARANTINE_SCHEMA,
        "bucket": bucket,
        "key": key,
        "visit": visit,
        "detector": detector,
        "reason": error.reason,
        "detail": error.detail,
        "quarantinedAt": (now or datetime.now(UTC)).isoformat(),
    }
    return quarantine_key(visit, detector, key), body


def write_quarantine(store, bucket: str, key: str, error: ContractError, *,
                     now: datetime | None = None) -> str:
    """Write the quarantine record of ``key`` into ``store`` (the upload bucket); return its key."""
    qkey, body = quarantine_record(bucket, key, error, now=now)
    store.put(qkey, json.dumps(body, indent=1, sort_keys=True).encode(), content_type="application/json")
    return qkey

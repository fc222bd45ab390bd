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

__all__ = ["MAX_DETAIL_CHARS", "QUARANTINE_SCHEMA", "quarantine_record", "safe_text", "write_quarantine"]

#: Identifier of the record layout, for consumers of quarantine records.
QUARANTINE_SCHEMA = "alertprod.quarantine/1"


#: Longest ``detail`` kept in a record, characters (a hostile header value can be ~70 kB).
MAX_DETAIL_CHARS = 1000


def safe_text(text: str, *, limit: int = MAX_DETAIL_CHARS) -> str:
    """``text`` with control and non-ASCII characters escaped, cut to ``limit`` characters.

    Details quote what an upload holds (header values, column names); a record must stay one
    readable line of ASCII whatever the upload says.
    """
    out = "".join(c if " " <= c <= "~" else c.encode("unicode_escape").decode("ascii")
                  for c in str(text))
    return out if len(out) <= limit else out[:limit - 3] + "..."


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
        "detail": safe_text(error.detail),
        "quarantinedAt": (now or datetime.now(UTC)).isoformat(),
    }
    return quarantine_key(visit, detector, key), body


def write_quarantine(store, bucket: str, key: str, error: ContractError, *,
                     now: datetime | None = None) -> str:
    """Write the quarantine record of ``key`` into ``store`` (the upload bucket); return its key."""
    qkey, body = quarantine_record(bucket, key, error, now=now)
    store.put(qkey, json.dumps(body, indent=1, sort_keys=True).encode(), content_type="application/json")
    return qkey

"""JSON views of stored records for the API (secrets never shown again), and time helpers."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from alertprod.distribution.records import COUNTER_NAMES, FilterRecord, utc_day

__all__ = ["iso", "filter_view", "counters_view", "public_transport"]


def iso(unix_s: float | None) -> str | None:
    """ISO 8601 UTC of a Unix time (None passes)."""
    if unix_s is None:
        return None
    return datetime.fromtimestamp(unix_s, UTC).isoformat().replace("+00:00", "Z")


def public_transport(config: dict[str, Any]) -> dict[str, Any]:
    """A transport as the owner sees it: a webhook's secret is never shown after creation."""
    return {k: v for k, v in config.items() if k != "secret"}


def filter_view(f: FilterRecord) -> dict[str, Any]:
    """The JSON document of a filter."""
    return {"filter_id": f.filter_id, "name": f.name, "expression": f.expression,
            "normalized": f.normalized, "version": f.version, "version_hash": f.version_hash,
            "state": f.state, "payload": f.payload,
            "transports": [public_transport(t) for t in f.transports],
            "quota_per_day": f.quota_per_day, "held_pending": f.held_pending,
            "created_at": iso(f.created_unix), "updated_at": iso(f.updated_unix),
            "expires_at": iso(f.expires_unix), "precovery": f.precovery,
            "notices": [{"kind": n["kind"], "message": n["message"], "created_at": iso(n["created_unix"])}
                        for n in f.notices]}


def counters_view(f: FilterRecord, rows: dict[str, dict[str, float]], days: list[str], now: float) -> dict[str, Any]:
    """Counters of a filter: per day and in total, last delivery, delivery lag."""
    totals = {name: 0 for name in COUNTER_NAMES if name not in ("lag_sum_s", "lag_count", "lag_max_s")}
    lag_sum, lag_n, lag_max, last = 0.0, 0, None, None
    per_day = []
    for day in days:
        row = rows.get(day)
        if not row:
            continue
        entry = {"day": day, **{k: int(row.get(k, 0)) for k in totals}}
        per_day.append(entry)
        for k in totals:
            totals[k] += int(row.get(k, 0))
        lag_sum += float(row.get("lag_sum_s", 0))
        lag_n += int(row.get("lag_count", 0))
        if "lag_max_s" in row:
            lag_max = max(lag_max or 0.0, float(row["lag_max_s"]))
        if "last_delivery_unix" in row:
            last = max(last or 0.0, float(row["last_delivery_unix"]))
    return {"filter_id": f.filter_id, "today": utc_day(now), "days": per_day, "totals": totals,
            "held_pending": f.held_pending, "last_delivery_at": iso(last),
            "delivery_lag_s": {"mean": (lag_sum / lag_n) if lag_n else None, "max": lag_max,
                               "count": lag_n}}

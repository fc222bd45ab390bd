"""Precovery ordered by filters: forced photometry at each match's position, within a daily cap.

A filter whose ``precovery`` setting is enabled orders one precovery job (interfaces.md §6, a
``position`` target) for each alert it matches: the job belongs to the filter's owner and is
counted against their precovery quota by the job service; at most ``daily_cap`` alerts per
filter and UTC day are ordered (:meth:`ServiceStore.admit_precovery` counts them atomically),
further matches are recorded as ``capped``. Every step is idempotent per (filter, alert): the
order record is read first, the admission is a set, and the job service is called with an
idempotency key derived from (filter, alert), so a redelivered alert batch orders nothing twice.

Solar-system alerts (an ``ssObjectId``) are not ordered: a fixed position misses a moving object.
"""

from __future__ import annotations

import hashlib
import logging
import math
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

from alertprod.distribution.records import FilterRecord, Notice, PrecoveryOrder, utc_day
from alertprod.distribution.store import ServiceStore
from alertprod.errors import StorageError

__all__ = ["OrderPrecovery", "PrecoveryOrders", "precovery_idempotency_key", "precovery_job_body"]

logger = logging.getLogger(__name__)


class OrderPrecovery(Protocol):
    """Submits a precovery job for an owner; returns the job id (the job service's entry point)."""

    def __call__(self, owner: str, body: dict, *, idempotency_key: str) -> str: ...


def precovery_idempotency_key(filter_id: str, alert_id: int) -> str:
    """The job service's idempotency key of the order of (filter, alert): 32 hex digits."""
    return hashlib.sha256(f"alertprod-filter-precovery/1\n{filter_id}\n{int(alert_id)}".encode()).hexdigest()[:32]


def precovery_job_body(record: Mapping[str, Any], setting: Mapping[str, Any]) -> dict | None:
    """The §6 job body for one alert: its ``diaSource`` position over the lookback window.

    Returns None when the alert has no usable position or time, or is a solar-system alert.
    """
    src = record.get("diaSource") or {}
    if src.get("ssObjectId") or (record.get("ssSource") or {}).get("ssObjectId"):
        return None
    values = [src.get(k) for k in ("ra", "dec", "midpointMjdTai")]
    if not all(isinstance(v, (int, float)) and math.isfinite(v) for v in values):
        return None
    ra, dec, mjd = (float(v) for v in values)
    options = {**dict(setting.get("options") or {}), "mjd_min": mjd - float(setting.get("lookback_days", 3650.0)),
               "mjd_max": mjd}
    return {"target": {"kind": "position", "ra": ra % 360.0, "dec": dec}, "options": options}


class PrecoveryOrders:
    """Orders precovery for the matches of filters that ask for it.

    Parameters
    ----------
    store : ServiceStore
        Keeps order records and the daily admissions.
    order_precovery : OrderPrecovery or None
        Submits a job (``order_precovery(owner, body, *, idempotency_key) -> job id``); None
        disables ordering (``disabled_reason`` says why, logged once per filter).
    disabled_reason : str, keyword-only
        Why ordering is disabled.
    """

    def __init__(self, store: ServiceStore, order_precovery: OrderPrecovery | Callable[..., str] | None, *,
                 disabled_reason: str = "no precovery job service is configured"):
        self.store, self.order_precovery = store, order_precovery
        self.disabled_reason = disabled_reason
        self._warned: set[str] = set()

    def order(self, f: FilterRecord, records: Sequence[Mapping[str, Any]], now: float) -> Counter:
        """Order precovery for ``records`` (alerts ``f`` matched); returns counts by counter name."""
        counts: Counter = Counter()
        setting = f.precovery or {}
        if not setting.get("enabled") or not records:
            return counts
        if self.order_precovery is None:
            if f.filter_id not in self._warned:
                self._warned.add(f.filter_id)
                logger.warning("filter %s asks for precovery, not ordered: %s", f.filter_id, self.disabled_reason)
            return counts
        day, cap = utc_day(now), int(setting.get("daily_cap", 20))
        errors = []
        for record in records:
            aid = int(record["diaSourceId"])
            known = self.store.get_precovery_order(f.filter_id, aid)
            if known is not None and known.state in ("ordered", "capped"):
                continue
            body = precovery_job_body(record, setting)
            if body is None:
                continue
            base = PrecoveryOrder(f.filter_id, f.user_id, aid, day, "ordered", known.created_unix if known else now)
            if not self.store.admit_precovery(f.filter_id, day, aid, cap):
                if self.store.claim_precovery_order(base.replace(state="capped"))[1]:
                    counts["precovery_capped"] += 1
                continue
            try:
                job_id = self.order_precovery(f.user_id, body,
                                              idempotency_key=precovery_idempotency_key(f.filter_id, aid))
            except StorageError:
                raise  # ours: the batch is retried, and the same key orders the same job
            except Exception as exc:  # the job service refused (quota, bad target): recorded, retried on redelivery
                self.store.update_precovery_order(base.replace(state="failed", error=str(exc)[:300]))
                counts["precovery_failed"] += 1
                errors.append(str(exc)[:200])
                continue
            self.store.update_precovery_order(base.replace(job_id=str(job_id)))
            counts["precovery_ordered"] += 1
        if errors:
            self.store.add_notice(f.filter_id, Notice(
                "precovery_failed", f"filter {f.filter_id}: {len(errors)} precovery order(s) failed: {errors[0]}", now))
        return counts

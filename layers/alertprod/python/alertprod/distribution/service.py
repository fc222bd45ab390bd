"""The filtering service: every active filter on every alert batch, matches to their owners.

For one batch of alert messages (from the queue subscribed to the alert topic):

1. decode each message as a consumer does (base64 framed packet, or a claim-check resolved
   from the archive), drop repeats of one alert, build one :class:`AlertBatch`;
2. take the active filters (expired ones are stopped, owners warned
   ``expiry_warning_days`` before), evaluate each compiled filter on the whole batch;
3. for each match claim a delivery record — id = hash(filter id, version hash, alert id) —
   put-if-absent, so a redelivered batch records and counts nothing twice; over the day's
   quota the match is ``held`` (up to ``held_cap``, then ``overflow``), with a notice;
4. send what is due through the owners' transports (:class:`Dispatcher`), update counters,
   then release held matches of filters that have quota left (a new UTC day, a raised quota).

:meth:`FilterService.redeliver` re-sends a filter's records since a time, same ids.
"""

from __future__ import annotations

import base64
import time
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from alertprod.alerts.client import decode_message
from alertprod.alerts.publish import archive_key
from alertprod.alerts.serialize import serialize_alert
from alertprod.alerts.voevent import voevent_bytes
from alertprod.delivery.envelope import Outbound
from alertprod.distribution.archive import AlertArchive
from alertprod.distribution.config import ServiceSettings
from alertprod.distribution.dispatch import Dispatcher, DispatchResult
from alertprod.distribution.messages import AlertMessage, unwrap_sns
from alertprod.distribution.precovery_orders import PrecoveryOrders
from alertprod.distribution.records import (
    DeliveryRecord,
    FilterRecord,
    Notice,
    delivery_id,
    utc_day,
)
from alertprod.distribution.store import ServiceStore
from alertprod.distribution.watchlists import referenced_watchlists
from alertprod.errors import AlertprodError, AlertSchemaError, ConflictError, StorageError
from alertprod.filtering.batch import AlertBatch
from alertprod.filtering.compiler import CompiledFilter, compile_filter

__all__ = ["AlertMessage", "BatchReport", "ClaimCheckPendingError", "FilterService", "RedeliveryReport"]


class ClaimCheckPendingError(StorageError):
    """An alert message's claim-check cannot be read yet: the queue should deliver it again."""


@dataclass
class BatchReport:
    """What one batch did (``retry``: positions of messages to retry: claim-checks not readable yet)."""

    alerts: int = 0
    undecodable: list[str] = field(default_factory=list)
    retry: list[int] = field(default_factory=list)
    filters: int = 0
    matched: int = 0
    delivered: int = 0
    held: int = 0
    failed: int = 0
    released: int = 0
    skipped_known: int = 0


@dataclass
class RedeliveryReport:
    """What a redelivery request did; when ``truncated``, ask again from ``next_since_unix``."""

    redelivered: int = 0
    failed: int = 0
    delivery_ids: list[str] = field(default_factory=list)
    truncated: bool = False
    next_since_unix: float | None = None


class _Decoded(NamedTuple):
    record: dict[str, Any]
    packet: bytes
    sent_unix: float | None


def _summary(record: Mapping[str, Any]) -> dict[str, Any]:
    src = record.get("diaSource") or {}
    return {k: src.get(k) for k in ("band", "ra", "dec", "snr", "midpointMjdTai")}


class FilterService:
    """Runs every active filter on alert batches and forwards the matches.

    Parameters
    ----------
    store : ServiceStore
        Filters, counters, delivery records.
    archive : AlertArchive
        The alert archive (claim-checks, held matches, redelivery).
    dispatcher : Dispatcher
        Sends matches through transports.
    settings : ServiceSettings
        Quotas, caps, expiry.
    clock : callable
        Unix time.
    s3_client : botocore client, optional
        Resolves claim-checks (``s3://`` pointers) of messages.
    watchlists : mapping, optional
        Named watchlists/watchmaps every filter may reference.
    watchlist_resolver : callable, optional
        ``resolve(user_id, names) -> {name: Watchlist}``: the owner's own watchlists
        (:meth:`~alertprod.distribution.watchlists.WatchlistLibrary.resolver`).
    precovery : PrecoveryOrders, optional
        Orders precovery for matches of filters that ask for it.
    """

    def __init__(self, store: ServiceStore, archive: AlertArchive, dispatcher: Dispatcher, *,
                 settings: ServiceSettings | None = None, clock: Callable[[], float] = time.time,
                 s3_client: Any = None, watchlists: Mapping[str, Any] | None = None,
                 watchlist_resolver: Callable[[str, set[str]], Mapping[str, Any]] | None = None,
                 precovery: PrecoveryOrders | None = None):
        self.store, self.archive, self.dispatcher = store, archive, dispatcher
        self.settings = settings or ServiceSettings()
        self.clock, self.s3_client, self.watchlists = clock, s3_client, dict(watchlists or {})
        self.watchlist_resolver, self.precovery = watchlist_resolver, precovery
        self._compiled: dict[Any, CompiledFilter] = {}
        self._names: dict[str, set[str]] = {}
        self._cache: tuple[float, list[FilterRecord]] | None = None

    # -- filters --------------------------------------------------------------------------
    def compiled(self, record: FilterRecord) -> CompiledFilter:
        """The compiled filter of a record (cached by expression and the watchlists it names)."""
        watch = dict(self.watchlists)
        names = set()
        if self.watchlist_resolver is not None:
            names = self._names.get(record.expression)
            if names is None:
                names = self._names.setdefault(record.expression, referenced_watchlists(record.expression))
        if names:
            watch.update(self.watchlist_resolver(record.user_id, names))
        # a cached filter holds its watchlists, so their ids cannot be reused while it is cached
        key = (record.version_hash, record.expression, tuple(sorted((n, id(watch[n])) for n in names if n in watch)))
        if key not in self._compiled:
            if len(self._compiled) > 10_000:
                self._compiled.clear()
            self._compiled[key] = compile_filter(record.expression, watchlists=watch or None)
        return self._compiled[key]

    def invalidate(self) -> None:
        """Forget the cached filter list (after an API change in the same process)."""
        self._cache = None

    def active_filters(self, now: float) -> list[FilterRecord]:
        """Filters to run now; expires those past their date and warns those close to it."""
        if self._cache is None or now - self._cache[0] > self.settings.filter_cache_s:
            self._cache = (now, self.store.list_filters())
        out = []
        warn_s = self.settings.expiry_warning_days * 86400.0
        for f in self._cache[1]:
            if f.state != "active":
                continue
            if now >= f.expires_unix:
                self._expire(f, now)
                continue
            if now >= f.expires_unix - warn_s and not f.expiry_warned:
                self.store.add_notice(f.filter_id, Notice(
                    "expiry_warning", f"filter {f.filter_id} expires at {utc_day(f.expires_unix)} "
                    "(UTC); renew it with PATCH /api/filters/{id} and a new expires_days", now),
                    expiry_warned=True)
                self._cache = (self._cache[0], [x.replace(expiry_warned=True) if x.filter_id == f.filter_id
                                                else x for x in self._cache[1]])
            out.append(f)
        return out

    def _expire(self, f: FilterRecord, now: float) -> None:
        try:
            self.store.update_filter(f.replace(state="expired", updated_unix=now),
                                     expected_updated_unix=f.updated_unix)
            self.store.add_notice(f.filter_id, Notice("expired", f"filter {f.filter_id} expired; "
                                                      "it no longer runs", now))
        except (ConflictError, StorageError):
            pass  # changed or deleted meanwhile: the next listing sees it
        self.invalidate()

    # -- batches --------------------------------------------------------------------------
    def _decode(self, messages: Sequence[AlertMessage], report: BatchReport) -> list[_Decoded]:
        seen, out = set(), []
        for k, m in enumerate(messages):
            body = unwrap_sns(m.body)
            try:
                record, claimed = decode_message(body, self.s3_client)
            except AlertSchemaError as exc:  # poison: never decodable, dropped (the archive keeps every alert)
                report.undecodable.append(f"message {k}: {exc}")
                continue
            except StorageError:  # a claim-check not readable now: the queue retries the message
                report.retry.append(k)
                continue
            alert_id = int(record["diaSourceId"])
            if alert_id in seen:
                continue
            seen.add(alert_id)
            packet = serialize_alert(record) if claimed else base64.b64decode(body.strip())
            out.append(_Decoded(record, packet, m.sent_unix))
        return out

    def _outbound(self, f: FilterRecord, rec: DeliveryRecord, record: Mapping[str, Any],
                  packet: bytes | None) -> Outbound:
        needs_voevent = f.payload == "voevent" or any(t.get("kind") == "vtp" for t in f.transports)
        voevent = voevent_bytes(record, config=self.settings.voevent) if needs_voevent else b""
        if f.payload == "voevent":
            payload = voevent
        else:
            payload = packet if packet is not None else serialize_alert(record)
        return Outbound(rec.delivery_id, rec.filter_id, rec.version_hash, rec.user_id, rec.alert_id,
                        f.payload, payload, self.archive.uri(rec.archive_key), _summary(record), voevent)

    def process_batch(self, messages: Sequence[AlertMessage]) -> BatchReport:
        """Evaluate every active filter on one batch of alert messages and deliver the matches.

        Raises
        ------
        StorageError
            When the store fails (the batch is then retried by the queue; nothing is counted twice).
        """
        report = BatchReport()
        now = self.clock()
        alerts = self._decode(messages, report)
        report.alerts = len(alerts)
        filters = self.active_filters(now)
        report.filters = len(filters)
        if alerts and filters:
            self._run_filters(filters, alerts, now, report)
        report.released = self.release_held(now, filters=filters)
        return report

    def _run_filters(self, filters: list[FilterRecord], alerts: list[_Decoded], now: float,
                     report: BatchReport) -> None:
        batch = AlertBatch.from_records([a.record for a in alerts])
        day = utc_day(now)
        jobs, counts = [], defaultdict(lambda: defaultdict(float))
        sent_at: dict[str, float | None] = {}
        for f in filters:
            try:
                mask = self.compiled(f).evaluate(batch)
            except AlertprodError:
                continue  # a stored filter the current engine refuses: skip, never crash the batch
            counts[f.filter_id]["evaluated"] += len(alerts)
            matched = [alerts[i] for i in mask.nonzero()[0]]
            if not matched:
                continue
            if self.precovery is not None and f.precovery:
                for name, n in self.precovery.order(f, [a.record for a in matched], now).items():
                    counts[f.filter_id][name] += n
            today = self.store.get_counts(f.filter_id, [day]).get(day, {})
            capacity = max(0, f.quota_per_day - int(today.get("delivered", 0)))
            held_room = max(0, self.settings.held_cap - f.held_pending)
            pairs, n_held, n_overflow = [], 0, 0
            for a in matched:
                aid = int(a.record["diaSourceId"])
                rec = DeliveryRecord(delivery_id(f.filter_id, f.version_hash, aid), f.filter_id, f.user_id,
                                     f.version_hash, aid, archive_key(a.record), now)
                if capacity > 0:
                    state = "pending"
                elif held_room > 0:
                    state = "held"
                else:
                    state = "overflow"
                stored, created = self.store.claim_delivery(rec.replace(state=state))
                if not created and stored.state != "pending":
                    report.skipped_known += 1  # a repeat of a batch already handled
                    continue
                if created:
                    counts[f.filter_id]["matched"] += 1
                    report.matched += 1
                if stored.state == "pending":
                    capacity -= 1
                    pairs.append((stored, self._outbound(f, stored, a.record, a.packet)))
                    sent_at[stored.delivery_id] = a.sent_unix
                elif stored.state == "held":
                    held_room -= 1
                    n_held += 1
                else:
                    n_overflow += 1
            if n_held or n_overflow:
                counts[f.filter_id]["held"] += n_held + n_overflow
                report.held += n_held + n_overflow
                self.store.add_held(f.filter_id, n_held)
                self._hold_notice(f, n_held, n_overflow, now)
            jobs.append((f, pairs))
        result = self.dispatcher.dispatch(jobs)
        self._count(result, counts, sent_at, day, report)

    def _hold_notice(self, f: FilterRecord, n_held: int, n_overflow: int, now: float) -> None:
        if f.held_pending and not n_overflow:
            return  # one notice when holding starts, not one per batch
        text = (f"filter {f.filter_id} reached its quota of {f.quota_per_day} alerts/day: {n_held} "
                "match(es) held, released next UTC day or when the quota is raised")
        if n_overflow:
            text += (f"; {n_overflow} over the hold cap of {self.settings.held_cap} recorded as "
                     "overflow (use redeliver with since to fetch them)")
        self.store.add_notice(f.filter_id, Notice("quota_hold", text, now))

    def _count(self, result: DispatchResult, counts: dict, sent_at: Mapping[str, float | None],
               day: str, report: BatchReport) -> None:
        for fid, recs in result.delivered.items():
            counts[fid]["delivered"] += len(recs)
            report.delivered += len(recs)
            lags = [result.delivered_unix - sent_at[r.delivery_id] for r in recs
                    if sent_at.get(r.delivery_id) is not None]
            if lags:
                counts[fid]["lag_sum_s"] += sum(lags)
                counts[fid]["lag_count"] += len(lags)
                counts[fid]["_lag_max"] = max(lags)
        for fid, recs in result.failed.items():
            counts[fid]["failed"] += len(recs)
            report.failed += len(recs)
        for fid, c in counts.items():
            lag_max = c.pop("_lag_max", None)
            last = result.delivered_unix if result.delivered.get(fid) else None
            self.store.add_counts(fid, day, dict(c), last_delivery_unix=last,
                                  lag_max_s=max(0.0, lag_max) if lag_max is not None else None)

    # -- held matches and redelivery ------------------------------------------------------
    def _from_archive(self, f: FilterRecord, recs: Sequence[DeliveryRecord]
                      ) -> list[tuple[DeliveryRecord, Outbound]]:
        def read(rec: DeliveryRecord) -> dict[str, Any] | None:
            try:
                return self.archive.get(rec.archive_key)
            except (StorageError, AlertSchemaError):
                return None  # the archive lost it (should not happen): the record is left as it is

        with ThreadPoolExecutor(max_workers=8) as pool:  # S3 GETs are latency-bound
            records = list(pool.map(read, recs))
        return [(rec, self._outbound(f, rec, record, None))
                for rec, record in zip(recs, records, strict=True) if record is not None]

    def release_held(self, now: float, *, filters: Sequence[FilterRecord] | None = None) -> int:
        """Deliver held matches of filters with quota left today; returns how many were released."""
        filters = self.active_filters(now) if filters is None else filters
        day, released = utc_day(now), 0
        for f in filters:
            if f.held_pending <= 0:
                continue  # the listing's count is a hint; the filter is re-read below
            current = self.store.get_filter(f.filter_id)
            if current is None or current.held_pending <= 0 or current.state != "active":
                continue
            today = self.store.get_counts(f.filter_id, [day]).get(day, {})
            capacity = min(current.quota_per_day - int(today.get("delivered", 0)),
                           self.settings.max_release_per_batch)
            if capacity <= 0:
                continue
            held = self.store.deliveries_since(f.filter_id, 0.0, state="held", limit=capacity)
            if not held:
                self.store.add_held(f.filter_id, -current.held_pending)  # recount: nothing is held
                continue
            result = self.dispatcher.dispatch([(current, self._from_archive(current, held))])
            ok, bad = result.delivered.get(f.filter_id, []), result.failed.get(f.filter_id, [])
            self.store.add_held(f.filter_id, -(len(ok) + len(bad)))
            self.store.add_counts(f.filter_id, day, {"delivered": len(ok), "released": len(ok),
                                                     "failed": len(bad)},
                                  last_delivery_unix=result.delivered_unix if ok else None)
            released += len(ok)
        return released

    def redeliver(self, f: FilterRecord, since_unix: float) -> RedeliveryReport:
        """Re-send the filter's matches recorded since ``since_unix`` (same delivery ids).

        Held matches are left to the quota; everything else (delivered, failed, overflow) is
        sent again, at most ``max_redeliver`` records per call (``truncated`` says when more remain).
        """
        report = RedeliveryReport()
        recs = [r for r in self.store.deliveries_since(f.filter_id, since_unix) if r.state != "held"]
        if len(recs) > self.settings.max_redeliver:
            report.next_since_unix = recs[self.settings.max_redeliver].created_unix
            recs, report.truncated = recs[:self.settings.max_redeliver], True
        if not recs:
            return report
        result = self.dispatcher.dispatch([(f, self._from_archive(f, recs))])
        ok, bad = result.delivered.get(f.filter_id, []), result.failed.get(f.filter_id, [])
        report.redelivered, report.failed = len(ok), len(bad)
        report.delivery_ids = [r.delivery_id for r in ok]
        self.store.add_counts(f.filter_id, utc_day(self.clock()), {"delivered": len(ok), "failed": len(bad)},
                              last_delivery_unix=result.delivered_unix if ok else None)
        return report

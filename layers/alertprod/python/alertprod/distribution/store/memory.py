"""The service store in process memory: tests, tools and the embedded demo. Thread-safe."""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence

from alertprod.distribution.records import (
    DeliveryRecord,
    FilterRecord,
    FilterVersion,
    Notice,
    PrecoveryOrder,
    TokenRecord,
    WatchlistRecord,
)
from alertprod.distribution.store.interface import MAX_NOTICES, ServiceStore
from alertprod.errors import ConflictError, NotFoundError

__all__ = ["MemoryServiceStore"]


class MemoryServiceStore(ServiceStore):
    """:class:`ServiceStore` in dictionaries, under one lock."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._tokens: dict[str, TokenRecord] = {}
        self._filters: dict[str, FilterRecord] = {}
        self._versions: dict[str, list[FilterVersion]] = {}
        self._counts: dict[tuple[str, str], dict[str, float]] = {}
        self._deliveries: dict[str, dict[str, DeliveryRecord]] = {}
        self._watchlists: dict[tuple[str, str], WatchlistRecord] = {}
        self._admitted: dict[tuple[str, str], set[int]] = {}
        self._orders: dict[tuple[str, int], PrecoveryOrder] = {}
        self._relayed: dict[str, set[int]] = {}

    def put_token(self, token: TokenRecord) -> None:
        with self._lock:
            if token.token_hash in self._tokens:
                raise ConflictError(f"token {token.token_id} exists")
            self._tokens[token.token_hash] = token

    def get_token(self, token_hash: str) -> TokenRecord | None:
        with self._lock:
            return self._tokens.get(token_hash)

    def list_tokens(self, user_id: str | None = None) -> list[TokenRecord]:
        with self._lock:
            out = [t for t in self._tokens.values() if user_id is None or t.user_id == user_id]
        return sorted(out, key=lambda t: (t.created_unix, t.token_hash))

    def revoke_token(self, token_hash: str) -> TokenRecord:
        with self._lock:
            token = self._tokens.get(token_hash)
            if token is None:
                raise NotFoundError(f"no token {token_hash[:12]}")
            token = token.replace(revoked=True)
            self._tokens[token_hash] = token
            return token

    def create_filter(self, record: FilterRecord) -> None:
        with self._lock:
            if record.filter_id in self._filters:
                raise ConflictError(f"filter {record.filter_id} exists")
            self._filters[record.filter_id] = record
            self._versions[record.filter_id] = [_version_of(record)]

    def get_filter(self, filter_id: str) -> FilterRecord | None:
        with self._lock:
            return self._filters.get(filter_id)

    def list_filters(self, user_id: str | None = None) -> list[FilterRecord]:
        with self._lock:
            out = [f for f in self._filters.values() if user_id is None or f.user_id == user_id]
        return sorted(out, key=lambda f: (f.created_unix, f.filter_id))

    def update_filter(self, record: FilterRecord, *, expected_updated_unix: float) -> None:
        with self._lock:
            current = self._filters.get(record.filter_id)
            if current is None:
                raise NotFoundError(f"no filter {record.filter_id}")
            if current.updated_unix != expected_updated_unix:
                raise ConflictError(f"filter {record.filter_id} changed meanwhile")
            # the service owns the hold count and the notices: an API update keeps them
            record = record.replace(held_pending=current.held_pending, notices=current.notices)
            self._filters[record.filter_id] = record
            versions = self._versions.setdefault(record.filter_id, [])
            if not versions or versions[-1].version < record.version:
                versions.append(_version_of(record))

    def delete_filter(self, filter_id: str) -> None:
        with self._lock:
            self._filters.pop(filter_id, None)
            self._versions.pop(filter_id, None)

    def filter_versions(self, filter_id: str) -> list[FilterVersion]:
        with self._lock:
            return list(self._versions.get(filter_id, []))

    def add_held(self, filter_id: str, delta: int) -> None:
        with self._lock:
            current = self._filters.get(filter_id)
            if current is not None:
                self._filters[filter_id] = current.replace(held_pending=current.held_pending + int(delta))

    def add_notice(self, filter_id: str, notice: Notice, *, expiry_warned: bool | None = None) -> None:
        with self._lock:
            current = self._filters.get(filter_id)
            if current is None:
                return
            notices = [*current.notices, notice.to_dict()][-MAX_NOTICES:]
            changes: dict = {"notices": notices}
            if expiry_warned is not None:
                changes["expiry_warned"] = expiry_warned
            self._filters[filter_id] = current.replace(**changes)

    def add_counts(self, filter_id: str, day: str, counts: Mapping[str, float], *,
                   last_delivery_unix: float | None = None, lag_max_s: float | None = None) -> None:
        with self._lock:
            row = self._counts.setdefault((filter_id, day), {})
            for name, value in counts.items():
                row[name] = row.get(name, 0) + value
            if last_delivery_unix is not None:
                row["last_delivery_unix"] = max(row.get("last_delivery_unix", 0), last_delivery_unix)
            if lag_max_s is not None:
                row["lag_max_s"] = max(row.get("lag_max_s", 0), lag_max_s)

    def get_counts(self, filter_id: str, days: list[str]) -> dict[str, dict[str, float]]:
        with self._lock:
            return {d: dict(self._counts[(filter_id, d)]) for d in days if (filter_id, d) in self._counts}

    def claim_delivery(self, record: DeliveryRecord) -> tuple[DeliveryRecord, bool]:
        with self._lock:
            mine = self._deliveries.setdefault(record.filter_id, {})
            if record.delivery_id in mine:
                return mine[record.delivery_id], False
            mine[record.delivery_id] = record
            return record, True

    def update_delivery(self, record: DeliveryRecord) -> None:
        with self._lock:
            self._deliveries.setdefault(record.filter_id, {})[record.delivery_id] = record

    def get_delivery(self, filter_id: str, delivery_id: str) -> DeliveryRecord | None:
        with self._lock:
            return self._deliveries.get(filter_id, {}).get(delivery_id)

    def deliveries_since(self, filter_id: str, since_unix: float, *, state: str | None = None,
                         limit: int | None = None) -> list[DeliveryRecord]:
        with self._lock:
            out = [r for r in self._deliveries.get(filter_id, {}).values()
                   if r.created_unix >= since_unix and (state is None or r.state == state)]
        out.sort(key=lambda r: (r.created_unix, r.delivery_id))
        return out if limit is None else out[:limit]

    def put_watchlist(self, record: WatchlistRecord) -> None:
        with self._lock:
            self._watchlists[(record.user_id, record.name)] = record

    def get_watchlist(self, user_id: str, name: str) -> WatchlistRecord | None:
        with self._lock:
            return self._watchlists.get((user_id, name))

    def list_watchlists(self, user_id: str) -> list[WatchlistRecord]:
        with self._lock:
            return sorted((w for (u, _), w in self._watchlists.items() if u == user_id), key=lambda w: w.name)

    def delete_watchlist(self, user_id: str, name: str) -> None:
        with self._lock:
            self._watchlists.pop((user_id, name), None)

    def admit_precovery(self, filter_id: str, day: str, alert_id: int, cap: int) -> bool:
        with self._lock:
            ids = self._admitted.setdefault((filter_id, day), set())
            if int(alert_id) in ids:
                return True
            if len(ids) >= cap:
                return False
            ids.add(int(alert_id))
            return True

    def claim_precovery_order(self, order: PrecoveryOrder) -> tuple[PrecoveryOrder, bool]:
        with self._lock:
            key = (order.filter_id, int(order.alert_id))
            if key in self._orders:
                return self._orders[key], False
            self._orders[key] = order
            return order, True

    def update_precovery_order(self, order: PrecoveryOrder) -> None:
        with self._lock:
            self._orders[(order.filter_id, int(order.alert_id))] = order

    def get_precovery_order(self, filter_id: str, alert_id: int) -> PrecoveryOrder | None:
        with self._lock:
            return self._orders.get((filter_id, int(alert_id)))

    def relayed(self, broker: str, alert_ids: Sequence[int]) -> set[int]:
        with self._lock:
            known = self._relayed.get(broker, set())
            return {int(a) for a in alert_ids if int(a) in known}

    def mark_relayed(self, broker: str, alert_ids: Sequence[int], now_unix: float) -> None:
        with self._lock:
            self._relayed.setdefault(broker, set()).update(int(a) for a in alert_ids)


def _version_of(record: FilterRecord) -> FilterVersion:
    return FilterVersion(record.filter_id, record.version, record.expression, record.normalized,
                         record.version_hash, record.updated_unix)

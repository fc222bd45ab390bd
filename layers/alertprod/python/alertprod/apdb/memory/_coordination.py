"""The CCD ledger and the sky-cell leases in memory.

:class:`MemoryCcdLedger` and :class:`MemoryLeaseManager` share a store with
:class:`~alertprod.apdb.memory.MemoryApdb`, whose writes are fenced by the cells kept here.
Same behaviour and request counts as the DynamoDB ledger and leases: one conditional update
per ledger move, one transaction per 100 cells to acquire, renew or release a lease, one
consistent batch read per backoff round while waiting.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from alertprod.apdb.coordination import CcdLedger, CcdState, Lease, LeaseManager
from alertprod.apdb.interface import StorageMetrics
from alertprod.apdb.memory._state import REQUEST_LIMITS, CcdRecord, Cell, MemoryBackend, MemoryStore
from alertprod.errors import ConflictError

__all__ = ["MemoryCcdLedger", "MemoryLeaseManager"]



class MemoryCcdLedger(MemoryBackend, CcdLedger):
    """Per-CCD records (forward only) and alert publish marks, in memory.

    Parameters
    ----------
    store : MemoryStore, optional
        The storage (a new one by default).
    metrics : StorageMetrics, keyword-only, optional
        The metrics hook.
    clock : callable, keyword-only
        Current Unix time in seconds (``updatedAt``).
    """

    def __init__(self, store: MemoryStore | None = None, *,
                 metrics: StorageMetrics | None = None, clock: Callable[[], float] = time.time):
        super().__init__(store, metrics=metrics)
        self._clock = clock

    def get_ccd_record(self, visit: int, detector: int) -> dict[str, Any] | None:
        self._request("get_item")
        with self.store.lock:
            record = self.store.ccds.get((int(visit), int(detector)))
        if record is None:
            return None
        return {"state": record.state, "updatedAt": record.updated_at,
                **{name: json.loads(text) for name, text in record.fields}}

    def put_ccd_record(self, visit: int, detector: int, state: CcdState | str,
                       **fields: Any) -> None:
        state = CcdState.of(state)
        encoded = {name: json.dumps(value) for name, value in sorted(fields.items())}
        now = self._clock()
        self._request("update_item")
        key = (int(visit), int(detector))
        with self.store.lock:
            current = self.store.ccds.get(key)
            if current is not None and not self._may_move(current.state, state):
                raise ConflictError(f"state: CCD {visit}/{detector} is already past "
                                    f"{state.value!r}")
            merged = dict(current.fields) if current is not None else {}
            merged.update(encoded)
            self.store.ccds[key] = CcdRecord(state, now, tuple(sorted(merged.items())))

    def reopen_ccd_record(self, visit: int, detector: int, *, catalog_sha256: str,
                          **fields: Any) -> None:
        if not isinstance(catalog_sha256, str) or not catalog_sha256:
            raise ValueError(f"catalog_sha256: expected a non-empty string, got {catalog_sha256!r}")
        sha = json.dumps(catalog_sha256)
        encoded = {name: json.dumps(value) for name, value in sorted(fields.items())}
        self._request("update_item")  # one conditional update, as on DynamoDB
        key = (int(visit), int(detector))
        with self.store.lock:
            current = self.store.ccds.get(key)
            merged = dict(current.fields) if current is not None else {}
            if current is not None and current.state is CcdState.STARTED \
                    and merged.get("reopenedFrom") == sha:
                return  # already reopened from this catalog
            if current is None or current.state is not CcdState.DONE \
                    or merged.get("catalogSha256") != sha:
                state = "absent" if current is None else current.state.value
                raise ConflictError(f"reopen: CCD {visit}/{detector} is not done from catalog "
                                    f"{catalog_sha256[:12]}… (state {state})")
            merged.pop("catalogSha256", None)
            merged.update(encoded, reopenedFrom=sha)
            self.store.ccds[key] = CcdRecord(CcdState.STARTED, self._clock(),
                                             tuple(sorted(merged.items())))

    @staticmethod
    def _may_move(current: CcdState, state: CcdState) -> bool:
        """Whether a record may move from ``current`` to ``state`` (forward or stay)."""
        return current in state.and_earlier()

    def mark_alerts(self, dia_source_ids: Iterable[int], state: str) -> None:
        if not state:
            raise ValueError("state: must be a non-empty string")
        ids = list(dict.fromkeys(int(i) for i in dia_source_ids))
        self._requests("batch_write_item", len(ids))
        with self.store.lock:
            self.store.alerts.update(dict.fromkeys(ids, str(state)))

    def get_alert_marks(self, dia_source_ids: Iterable[int]) -> dict[int, str]:
        ids = list(dict.fromkeys(int(i) for i in dia_source_ids))
        self._requests("batch_get_item", len(ids))
        with self.store.lock:
            return {i: self.store.alerts[i] for i in ids if i in self.store.alerts}


class MemoryLeaseManager(MemoryBackend, LeaseManager):
    """Leases on sky cells with fencing tokens, in memory.

    Parameters
    ----------
    store : MemoryStore, optional
        The storage (a new one by default).
    metrics : StorageMetrics, keyword-only, optional
        The metrics hook.
    clock, sleep : callable, keyword-only
        Unix time (s) and sleep, injectable: with a fake clock whose ``sleep`` advances it, a
        waiting acquirer sees leases expire without waiting.

    Notes
    -----
    All cells of one transaction (up to 100) are taken at once or none are; a cell's token is
    its stored token plus one (the acquirer's clock in microseconds for a new cell), so tokens
    strictly increase. A waiting acquirer holds nothing and polls the busy cells with
    full-jitter exponential backoff. (A DynamoDB acquirer whose clock is behind a cell's
    stored token spends one more request to learn it; this one never needs to.)
    """

    def __init__(self, store: MemoryStore | None = None, *,
                 metrics: StorageMetrics | None = None, clock: Callable[[], float] = time.time,
                 sleep: Callable[[float], None] = time.sleep):
        super().__init__(store, metrics=metrics)
        self._clock = clock
        self._sleep = sleep

    def _chunks(self, cells: Sequence[int]) -> list[list[int]]:
        """Cells split into transactions of at most 100."""
        size = REQUEST_LIMITS["transact_write_items"]
        return [list(cells[i:i + size]) for i in range(0, len(cells), size)]

    def _busy_now(self, cells: list[int], owner: str, now: float) -> dict[int, str]:
        """Cells held by another owner and unexpired (under the lock)."""
        found = {c: self.store.cells.get(c) for c in cells}
        return {c: h.owner for c, h in found.items()
                if h is not None and h.owner != owner and h.expires_at >= now}

    def _try_take(self, cells: list[int], owner: str, ttl_s: float) -> tuple[dict[int, int] | None,
                                                                           dict[int, str]]:
        """One transaction over ``cells``: (tokens, {}) or (None, busy cell -> holder)."""
        now = self._clock()
        self._request("transact_write_items", len(cells))
        with self.store.lock:
            busy = self._busy_now(cells, owner, now)
            if busy:
                return None, busy
            tokens = {}
            for c in cells:
                held = self.store.cells.get(c)
                tokens[c] = held.token + 1 if held is not None else max(int(now * 1e6), 1)
                self.store.cells[c] = Cell(owner, tokens[c], now + ttl_s)
        return tokens, {}

    def _busy(self, cells: list[int], owner: str) -> dict[int, str]:
        """Cells held by another owner and unexpired (one modelled BatchGetItem)."""
        self._requests("batch_get_item", len(cells))
        with self.store.lock:
            return self._busy_now(cells, owner, self._clock())

    def _fenced_update(self, lease: Lease, cells: list[int], expires_at: float) -> list[int]:
        """One transaction setting the cells' expiry if each is still (owner, token); lost cells."""
        self._request("transact_write_items", len(cells))
        with self.store.lock:
            lost = [c for c in cells if not self._holds(lease, c)]
            if not lost:
                for c in cells:
                    self.store.cells[c] = Cell(lease.owner, int(lease.tokens[c]), expires_at)
        return lost

    def _holds(self, lease: Lease, cell: int) -> bool:
        """Whether the cell still carries the lease's owner and token (under the lock)."""
        held = self.store.cells.get(cell)
        return held is not None and held.owner == lease.owner and held.token == lease.tokens[cell]

    def renew(self, lease: Lease, *, ttl_s: float = 60.0) -> Lease:
        if not ttl_s > 0:
            raise ValueError(f"ttl_s: must be > 0, got {ttl_s}")
        now = self._clock()
        for chunk in self._chunks(lease.cells):
            lost = self._fenced_update(lease, chunk, now + ttl_s)
            if lost:
                raise ConflictError(f"lease: cells {lost} were taken over")
        return Lease(lease.owner, dict(lease.tokens), now + ttl_s)

    def release(self, lease: Lease) -> None:
        for chunk in self._chunks(lease.cells):
            while chunk:  # re-sent without the cells taken over meanwhile
                lost = self._fenced_update(lease, chunk, 0.0)
                chunk = [c for c in chunk if c not in lost] if lost else []

    def holders(self, cells: Sequence[int]) -> dict[int, tuple[str, int, float]]:
        wanted = list(dict.fromkeys(int(c) for c in cells))
        self._requests("batch_get_item", len(wanted))
        with self.store.lock:
            found = {c: self.store.cells.get(c) for c in wanted}
        return {c: (h.owner, h.token, h.expires_at) for c, h in found.items() if h is not None}

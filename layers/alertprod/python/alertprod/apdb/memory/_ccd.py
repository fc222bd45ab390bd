"""Storing one CCD in memory with the DynamoDB backend's transactions, conditions and limits.

Each new DiaObject version is one *group* of the items DynamoDB would change together: its
Last record, the new version, the closing of the version it replaces, its history rows, and
(for a new or moved object) its pixel-index and new-object entries. Groups are packed into
transactions of at most 100 items, the lease's fence checks included, by the DynamoDB
planner's own packing, so the memory backend sends, and is charged for, the same requests.
Each transaction checks every condition under the store's lock and applies all of it or
nothing:

- fencing: every leased cell still has the lease's owner and token;
- the Last record still points at the expected previous version, written by another CCD
  (absent for a new object); a failure only because this CCD already committed the very
  version (a concurrent retry) drops that object and re-sends the rest;
- the version to close exists.

A retried CCD pre-reads the Last records and skips what it already committed, as on DynamoDB.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
from astropy.table import Table

from alertprod.apdb._codec import pack_rows
from alertprod.apdb._layout import NEW_OBJECT_SHARDS, history_entries, ids_or_zero, pack_groups
from alertprod.apdb.coordination import Lease
from alertprod.apdb.interface import PREV_VALIDITY_COLUMN, CcdWrites, StoreStats
from alertprod.apdb.memory._state import REQUEST_LIMITS, Last, MemoryBackend, Version
from alertprod.errors import CatalogError, ConflictError
from alertprod.pixelization import pixel_of

__all__ = ["CcdWriter", "Group", "NewVersion"]

Owner = tuple[str, int]  # ("obj", diaObjectId) or ("ss", ssObjectId)
RowKey = tuple[int, str, int]  # (30-day bucket, "s" or "f", row id)


@dataclass(frozen=True)
class NewVersion:
    """One new DiaObject version (``prev`` NaN for a new object)."""

    oid: int
    start: float
    prev: float
    pix: int
    row: bytes
    ra: float
    dec: float

    @property
    def is_new(self) -> bool:
        """Whether the object is created (no previous version)."""
        return math.isnan(self.prev)

    @property
    def closes(self) -> bool:
        """Whether a previous version is closed (not when it started at the same time)."""
        return not self.is_new and self.prev != self.start


@dataclass
class Group:
    """What one object (or one batch of history rows: ``oid`` None) changes together."""

    oid: int | None
    version: NewVersion | None = None
    rows: dict[Owner, dict[RowKey, bytes]] = field(default_factory=dict)
    add_pixel: int | None = None

    def item_keys(self) -> set[tuple[Any, ...]]:
        """The DynamoDB items the group touches (their count is what a transaction carries)."""
        keys: set[tuple[Any, ...]] = {("HIST", owner, k[0]) for owner, rows in self.rows.items()
                                      for k in rows}
        v = self.version
        if v is not None:
            keys |= {("OBJ", v.oid, "LAST"), ("OBJ", v.oid, v.start)}
            if v.closes:
                keys.add(("OBJ", v.oid, v.prev))
            if v.is_new:
                keys.add(("NEWOBJ", math.floor(v.start), v.oid % NEW_OBJECT_SHARDS))
        if self.add_pixel is not None:
            keys.add(("PIX", self.add_pixel))
        return keys


def _plan_objects(writes: CcdWrites) -> dict[int, Group]:
    objs = writes.dia_objects
    if len(objs) == 0:
        return {}
    for col in ("diaObjectId", "ra", "dec", PREV_VALIDITY_COLUMN):
        if col not in objs.colnames:
            raise CatalogError(f"writes.dia_objects: column {col!r} is required")
    objs = objs.copy(copy_data=True)
    t = float(writes.visit_time_mjd_tai)
    starts = np.full(len(objs), t)
    if "validityStartMjdTai" in objs.colnames:  # a version may start after the one it replaces
        given = np.ma.filled(np.ma.asarray(objs["validityStartMjdTai"], dtype=float), np.nan)
        starts = np.where(np.isfinite(given), given, t)
    objs["validityStartMjdTai"] = starts
    if "validityEndMjdTai" in objs.colnames:
        objs.remove_column("validityEndMjdTai")
    rows = pack_rows(objs, "DiaObject")
    oids = ids_or_zero(objs["diaObjectId"]).tolist()
    if len(set(oids)) != len(oids):
        raise CatalogError("writes.dia_objects: diaObjectId values are not unique")
    prev = np.ma.filled(np.ma.asarray(objs[PREV_VALIDITY_COLUMN], dtype=float), np.nan).tolist()
    ra, dec = np.asarray(objs["ra"], float).tolist(), np.asarray(objs["dec"], float).tolist()
    pix = np.atleast_1d(pixel_of(np.asarray(ra), np.asarray(dec))).tolist()
    groups = {}
    for k, oid in enumerate(oids):
        v = NewVersion(oid, float(starts[k]), prev[k], int(pix[k]), rows[k], ra[k], dec[k])
        groups[oid] = Group(oid, v, add_pixel=v.pix if v.is_new else None)
    return groups


def _plan_rows(groups: dict[int, Group], extra: dict[Owner, Group], table: Table, name: str,
               prefix: str) -> int:
    entries = history_entries(table, name)
    for kind, oid, bucket, rid, row in entries:
        owner: Owner = (kind, oid)
        group = groups.get(oid) if kind == "obj" else None
        group = group or extra.setdefault(owner, Group(None))
        group.rows.setdefault(owner, {})[(bucket, prefix, rid)] = row
    return len(entries)


class CcdWriter(MemoryBackend):
    """The ``store_ccd`` machinery of :class:`~alertprod.apdb.memory.MemoryApdb`."""

    def _write_ccd(self, writes: CcdWrites, lease: Lease | None, stats: StoreStats) -> None:
        t = float(writes.visit_time_mjd_tai)
        if not np.isfinite(t):
            raise CatalogError(f"writes.visit_time_mjd_tai: must be finite, got {t}")
        tag = f"{int(writes.visit)}/{int(writes.detector)}"
        groups = _plan_objects(writes)
        extra: dict[Owner, Group] = {}
        stats.sources_written += _plan_rows(groups, extra, writes.dia_sources, "DiaSource", "s")
        stats.forced_sources_written += _plan_rows(groups, extra, writes.dia_forced_sources,
                                                   "DiaForcedSource", "f")
        done = self._classify(groups, tag) if groups else set()
        stats.objects_already_done += len(done)
        pending = [g for oid, g in groups.items() if oid not in done] + list(extra.values())
        n_fence = len(lease.tokens) if lease is not None else 0
        for batch in self._transactions(pending, REQUEST_LIMITS["transact_write_items"] - n_fence):
            self._commit(batch, lease, tag, stats)

    def _transactions(self, groups: list[Group], budget: int) -> list[list[Group]]:
        """Groups packed greedily into transactions of at most ``budget`` items."""
        return pack_groups(groups, budget)

    def _classify(self, groups: dict[int, Group], tag: str) -> set[int]:
        """Pre-read the Last records: objects already done; moved objects get a pixel entry."""
        self._requests("batch_get_item", len(groups))
        with self.store.lock:
            lasts = {oid: self.store.last.get(oid) for oid in groups}
        done: set[int] = set()
        suspicious = []
        for oid, g in groups.items():
            v, last = g.version, lasts[oid]
            if last is None:
                if not v.is_new:
                    raise ConflictError(f"writes: DiaObject {oid} has no stored version to replace")
            elif last.start == v.start and last.ccd == tag:
                done.add(oid)
            elif not v.is_new and last.start == v.prev and last.ccd != tag:
                if last.pix != v.pix:  # moved: add it to its new pixel (the old entry stays)
                    g.add_pixel = v.pix
            else:
                suspicious.append(oid)
        if suspicious:  # superseded after we committed (a retry), or a real conflict
            self._requests("batch_get_item", len(suspicious))
            with self.store.lock:
                found = {oid: self.store.versions.get(oid, {}).get(groups[oid].version.start)
                         for oid in suspicious}
            ours = {oid for oid, ver in found.items() if ver is not None and ver.ccd == tag}
            lost = sorted(set(suspicious) - ours)
            if lost:
                raise ConflictError(f"writes: DiaObjects {lost[:10]} changed since they were "
                                    f"read (expected previous versions differ)")
            done |= ours
        return done

    def _fence_holds(self, lease: Lease | None) -> bool:
        """Every cell of the lease still carries its owner and token (under the lock)."""
        if lease is None:
            return True
        cells = self.store.cells
        return all((c := cells.get(cell)) is not None and c.owner == lease.owner
                   and c.token == int(token) for cell, token in lease.tokens.items())

    def _last_condition(self, v: NewVersion, last: Last | None, tag: str) -> bool:
        """The Last record still points at the version ``v`` replaces, written by another CCD."""
        if v.is_new:
            return last is None
        return last is not None and last.start == v.prev and last.ccd != tag

    def _commit(self, batch: list[Group], lease: Lease | None, tag: str,
                stats: StoreStats) -> None:
        n_fence = len(lease.tokens) if lease is not None else 0
        while batch:
            n_items = n_fence + len(set().union(*(g.item_keys() for g in batch)))
            self._request("transact_write_items", n_items)
            with self.store.lock:
                failed = [] if self._fence_holds(lease) else ["a leased cell was taken over"]
                finished = set()
                for g in batch:
                    v = g.version
                    if v is None:
                        continue
                    last = self.store.last.get(v.oid)
                    if not self._last_condition(v, last, tag):
                        if last is not None and last.start == v.start and last.ccd == tag:
                            finished.add(v.oid)  # committed by a concurrent retry of this CCD
                        else:
                            failed.append(f"DiaObject {v.oid} changed")
                    if v.closes and v.prev not in self.store.versions.get(v.oid, {}):
                        failed.append(f"DiaObject {v.oid} has no version {v.prev} to close")
                if not failed and not finished:
                    self._apply(batch, tag)
            if failed:
                raise ConflictError(f"store_ccd: transaction cancelled: {'; '.join(failed[:5])}")
            if not finished:
                stats.transactions += 1
                stats.objects_written += sum(1 for g in batch if g.oid is not None)
                return
            stats.objects_already_done += len(finished)
            batch = [g for g in batch if g.oid not in finished]

    def _apply(self, batch: list[Group], tag: str) -> None:
        """Write a transaction's groups (under the lock, all conditions checked)."""
        store = self.store
        for g in batch:
            v = g.version
            if v is not None:
                store.last[v.oid] = Last(v.start, tag, v.pix, v.row)
                versions = store.versions.setdefault(v.oid, {})
                if v.closes:
                    versions[v.prev] = replace(versions[v.prev], end=v.start)
                versions[v.start] = Version(v.row, tag)
                if v.is_new:
                    day = store.new_objects.setdefault(math.floor(v.start), {})
                    day[v.oid] = (v.ra, v.dec, v.start)
            if g.add_pixel is not None:
                store.pixels.setdefault(g.add_pixel, set()).add(g.oid)
            for owner, rows in g.rows.items():
                store.history.setdefault(owner, {}).update(rows)

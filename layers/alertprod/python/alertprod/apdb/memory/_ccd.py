"""Storing one CCD in memory with the DynamoDB backend's transactions, conditions and limits.

Each new DiaObject version is one *group* of the items DynamoDB would change together: its
Last record, the new version, the closing of the version it replaces, its history rows, and
(for a new or moved object) its pixel-index entry. Groups are packed into
transactions of at most 100 items, the lease's fence checks included, by the DynamoDB
planner's own packing, so the memory backend sends, and is charged for, the same requests.
Each transaction checks every condition under the store's lock and applies all of it or
nothing:

- fencing: every leased cell still has the lease's owner and token;
- the Last record still points at the expected previous version, written by another CCD
  (absent for a new object); a failure only because this CCD already committed the very
  version (a concurrent retry) drops that object and re-sends the rest;
- the version to close exists;
- each history item not yet full has room for the rows' bytes (``HISTORY_HEAD_BYTES``); when
  it has not, the item becomes full, its rows go to hour parts, and the groups are re-packed
  and re-sent, as on DynamoDB. Every item written is checked against the 400 KB limit.

A retried CCD pre-reads the Last records and skips what it already committed, as on DynamoDB.
The CCD's new objects are indexed after its transactions, in per-CCD items of their own
(one BatchWriteItem per 25 items), as on DynamoDB.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
from astropy.table import Table

from alertprod.apdb._codec import pack_rows
from alertprod.apdb._layout import (
    HISTORY_HEAD_BYTES,
    HISTORY_ROWS_PER_WRITE,
    cap_rows_per_item,
    history_entries,
    ids_or_zero,
    new_object_chunks,
    pack_groups,
)
from alertprod.apdb.coordination import Lease
from alertprod.apdb.interface import PREV_VALIDITY_COLUMN, CcdWrites, StoreStats
from alertprod.apdb.memory._state import REQUEST_LIMITS, Last, MemoryBackend, Version
from alertprod.errors import CatalogError, ConflictError, LeaseLostError, StalePlanError
from alertprod.pixelization import pixel_of

__all__ = ["CcdWriter", "Group", "NewVersion"]

Owner = tuple[str, int]  # ("obj", diaObjectId) or ("ss", ssObjectId)
RowKey = tuple[int, str, int]  # (30-day bucket, "s" or "f", row id)
Head = tuple[Owner, int]  # one history item: (owner, 30-day bucket)


def _row_bytes(k: RowKey, row: bytes) -> int:
    """Bytes of one row in its item, as DynamoDB counts them (attribute name and value)."""
    return len(f"{k[1]}{k[2]}") + len(row)


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
    """What one object (or one batch of history rows: ``oid`` None) changes together.

    ``full`` is shared by all groups of one CCD: the history items found full, whose rows go
    to their hour parts (``parts``: (owner, row) -> hour part).
    """

    oid: int | None
    version: NewVersion | None = None
    rows: dict[Owner, dict[RowKey, bytes]] = field(default_factory=dict)
    add_pixel: int | None = None
    parts: dict[tuple[Owner, RowKey], int] = field(default_factory=dict)
    full: set[Head] = field(default_factory=set)

    def heads(self) -> dict[Head, dict[RowKey, bytes]]:
        """The group's rows by history item."""
        out: dict[Head, dict[RowKey, bytes]] = {}
        for owner, rows in self.rows.items():
            for k, row in rows.items():
                out.setdefault((owner, k[0]), {})[k] = row
        return out

    def item_keys(self) -> set[tuple[Any, ...]]:
        """The DynamoDB items the group touches (their count is what a transaction carries)."""
        keys: set[tuple[Any, ...]] = set()
        for (owner, bucket), rows in self.heads().items():
            keys.add(("HIST", owner, bucket))
            if (owner, bucket) in self.full:
                keys |= {("HIST", owner, bucket, self.parts[(owner, k)]) for k in rows}
        v = self.version
        if v is not None:
            keys |= {("OBJ", v.oid, "LAST"), ("OBJ", v.oid, v.start)}
            if v.closes:
                keys.add(("OBJ", v.oid, v.prev))
        if self.add_pixel is not None:
            keys.add(("PIX", self.add_pixel))
        return keys


def _split_full(groups: list[Group]) -> list[Group]:
    """History-only groups of full items split into one group per hour part."""
    out = []
    for g in groups:
        heads = g.heads()
        if g.oid is not None or not g.full.intersection(heads):
            out.append(g)
            continue
        split: dict[tuple[Head, int], Group] = {}
        for head, rows in heads.items():
            for k, row in rows.items():
                p = g.parts[(head[0], k)] if head in g.full else 0
                part = split.setdefault((head, p), Group(None, full=g.full))
                part.rows.setdefault(head[0], {})[k] = row
                part.parts[(head[0], k)] = g.parts[(head[0], k)]
        out.extend(split[k] for k in sorted(split, key=repr))
    return out


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


def _plan_rows(groups: dict[int, Group], extra: dict[tuple[Owner, int, int], Group], table: Table, name: str,
               prefix: str) -> int:
    entries = history_entries(table, name)
    counts: dict[Head, int] = {}
    for kind, oid, bucket, rid, row, part in entries:
        owner: Owner = (kind, oid)
        group = groups.get(oid) if kind == "obj" else None
        if group is None:  # history-only: at most HISTORY_ROWS_PER_WRITE rows per group
            n = counts[(owner, bucket)] = counts.get((owner, bucket), -1) + 1
            group = extra.setdefault((owner, bucket, n // HISTORY_ROWS_PER_WRITE), Group(None))
        group.rows.setdefault(owner, {})[(bucket, prefix, rid)] = row
        group.parts[(owner, (bucket, prefix, rid))] = part
    return len(entries)


class CcdWriter(MemoryBackend):
    """The ``store_ccd`` machinery of :class:`~alertprod.apdb.memory.MemoryApdb`."""

    def _write_ccd(self, writes: CcdWrites, lease: Lease | None, stats: StoreStats) -> None:
        t = float(writes.visit_time_mjd_tai)
        if not np.isfinite(t):
            raise CatalogError(f"writes.visit_time_mjd_tai: must be finite, got {t}")
        tag = writes.writer_tag
        groups = _plan_objects(writes)
        extra: dict[tuple[Owner, int, int], Group] = {}
        stats.sources_written += _plan_rows(groups, extra, writes.dia_sources, "DiaSource", "s")
        stats.forced_sources_written += _plan_rows(groups, extra, writes.dia_forced_sources,
                                                   "DiaForcedSource", "f")
        done = self._classify(groups, tag) if groups else set()
        stats.objects_already_done += len(done)
        pending = [g for oid, g in groups.items() if oid not in done] + list(extra.values())
        full: set[Head] = set()
        for g in pending:  # rows of one item beyond what any item takes go to hour parts at once
            g.full = full
            full |= {h for h, rows in g.heads().items()
                     if sum(_row_bytes(k, r) for k, r in rows.items()) > HISTORY_HEAD_BYTES}
        n_fence = len(lease.tokens) if lease is not None else 0
        budget = REQUEST_LIMITS["transact_write_items"] - n_fence
        for batch in self._transactions(_split_full(pending), budget):
            self._commit(batch, lease, tag, stats)
        self._index_new_objects(groups)

    def _index_new_objects(self, groups: dict[int, Group]) -> None:
        """The CCD's new objects into the day's index: after the transactions, idempotently."""
        news = [g.version for g in groups.values() if g.version is not None and g.version.is_new]
        chunks = new_object_chunks([(v.oid, v.ra, v.dec, v.start) for v in news])
        n_items = sum(len(blobs) for blobs in chunks.values())
        if not n_items:
            return
        self._requests("batch_write_item", n_items)
        with self.store.lock:
            for v in news:
                day = self.store.new_objects.setdefault(math.floor(v.start), {})
                day[v.oid] = (v.ra, v.dec, v.start)

    def _transactions(self, groups: list[Group], budget: int) -> list[list[Group]]:
        """Groups packed greedily into transactions of at most ``budget`` items, and at most
        HISTORY_ROWS_PER_WRITE rows per history item (as the DynamoDB planner packs them)."""
        return cap_rows_per_item(pack_groups(groups, budget),
                                 lambda g: {h: len(rows) for h, rows in g.heads().items()})

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
                error = StalePlanError if not done and not ours else ConflictError
                raise error(f"writes: DiaObjects {lost[:10]} changed since they were "
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
                full = {h for h, n_bytes in self._head_bytes(batch).items()
                        if not self._head_has_room(h, n_bytes)}
                if not failed and not finished and not full:
                    self._apply(batch, tag)
            if failed:
                error = LeaseLostError if not self._fence_holds(lease) else ConflictError
                raise error(f"store_ccd: transaction cancelled: {'; '.join(failed[:5])}")
            if full:  # re-send with those items' rows in their hour parts
                batch = [g for g in batch if g.oid not in finished]
                stats.objects_already_done += len(finished)
                if batch:
                    batch[0].full |= full  # the set every group of the CCD shares
                budget = REQUEST_LIMITS["transact_write_items"] - n_fence
                for sub in self._transactions(_split_full(batch), budget):
                    self._commit(sub, lease, tag, stats)
                return
            if not finished:
                stats.transactions += 1
                stats.objects_written += sum(1 for g in batch if g.oid is not None)
                return
            stats.objects_already_done += len(finished)
            batch = [g for g in batch if g.oid not in finished]

    @staticmethod
    def _head_bytes(batch: list[Group]) -> dict[Head, int]:
        """Row bytes the batch adds to each history item that is not full."""
        out: dict[Head, int] = {}
        for g in batch:
            for head, rows in g.heads().items():
                if head not in g.full:
                    out[head] = out.get(head, 0) + sum(_row_bytes(k, r) for k, r in rows.items())
        return out

    def _head_has_room(self, head: Head, n_bytes: int) -> bool:
        """The history item's condition: its counted bytes stay within HISTORY_HEAD_BYTES."""
        counted = self.store.history_bytes.get(head)
        return counted is None or counted <= HISTORY_HEAD_BYTES - n_bytes

    def _apply_rows(self, g: Group) -> None:
        """Write a group's history rows: counted into their item, or into its hour parts."""
        store = self.store
        for head, rows in g.heads().items():
            owner = head[0]
            if head in g.full:
                for k, row in rows.items():
                    p = g.parts[(owner, k)]
                    size = store.history_part_bytes.get((head, p), 0) + _row_bytes(k, row)
                    self._check_item_size("history part", size)
                    store.history_part_bytes[(head, p)] = size
                    store.history_parts.setdefault(head, set()).add(p)
            else:
                size = store.history_bytes.get(head, 0) + sum(_row_bytes(k, r)
                                                              for k, r in rows.items())
                self._check_item_size("history item", size)
                store.history_bytes[head] = size
            store.history.setdefault(owner, {}).update(rows)

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
            if g.add_pixel is not None:
                store.pixels.setdefault(g.add_pixel, set()).add(g.oid)
            self._apply_rows(g)

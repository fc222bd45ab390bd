"""Planning and committing one CCD's writes as fenced, idempotent DynamoDB transactions.

Each DiaObject contributes one *group* of items that must change together: its new version
(``OBJ#id / V#t``), the closing of the previous version (``SET ve``), its Last record
(conditioned on still pointing at the expected previous version), its DiaSource and
DiaForcedSource rows (``SET s<id>`` / ``f<id>`` on ``HIST#id / T#bucket``), and, shared between
objects and merged per transaction, the pixel index (``ADD`` to a number set). Groups are packed greedily into TransactWriteItems calls of
≤ 100 items, each with the lease's fencing ConditionChecks. Forced measurements of objects that
get no new version, and DiaSources of solar-system objects, form groups of their own (one per
history item).

History items stay below 400 KB whatever the cadence: each ``SET`` of rows on ``T#<bucket>``
also adds their bytes to the item's counter ``b``, on condition that it stays within
:data:`~alertprod.apdb._layout.HISTORY_HEAD_BYTES`. When that condition cancels a transaction,
the item is *full*: its rows go to hour parts ``T#<bucket>#P<hour>`` (at most an hour of
visits each, < 100 KB), whose numbers the item lists in its number set ``parts``; the groups
are re-packed and re-sent. Readers fetch the parts an item lists with a second BatchGetItem.

The index of the day's new DiaObjects (daily precovery reads it) is written *after* the
transactions, one item per CCD and 10,000 objects (``NEWOBJ#day / C#visit#detector#k``):
an item shared by every CCD of a night inside each transaction would make concurrent CCDs
cancel each other's transactions (``TransactionConflict``). The items hold only objects the
plan created, are rewritten with the same bytes by a retry, and are written by every call that
gets past the transactions, so a crash between the last transaction and the index is repaired
by the retry, which finds every object done and writes the index.
"""

from __future__ import annotations

import struct
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from astropy.table import Table

from alertprod.apdb._codec import pack_rows
from alertprod.apdb._layout import (
    HISTORY_HEAD_BYTES,
    HISTORY_ROWS_PER_WRITE,
    MAX_TRANSACT_ITEMS,
    cap_rows_per_item,
    history_entries,
    ids_or_zero,
    new_object_chunks,
    pack_groups,
)
from alertprod.apdb.dynamodb import _keys as keys
from alertprod.apdb.dynamodb._calls import (
    TransactionCancelledError,
    batch_get,
    batch_write,
    num,
    transact_write,
)
from alertprod.apdb.dynamodb._history import (
    HeadKey,
    history_ops,
    is_history,
    part_key,
    row_bytes,
    set_op,
)
from alertprod.apdb.interface import PREV_VALIDITY_COLUMN, CcdWrites, StoreStats
from alertprod.errors import (
    CatalogError,
    ConflictError,
    LeaseLostError,
    StalePlanError,
    StorageError,
)
from alertprod.pixelization import pixel_of

__all__ = ["store_ccd", "ccd_tag", "pack_new_object", "unpack_new_object"]

_NEW = struct.Struct("<ddd")  # ra, dec (deg), validityStartMjdTai


def ccd_tag(visit: int, detector: int) -> str:
    """The writer tag stored on object items: ``"<visit>/<detector>"``."""
    return f"{int(visit)}/{int(detector)}"


def pack_new_object(ra_deg: float, dec_deg: float, mjd_tai: float) -> bytes:
    """24-byte entry of a new DiaObject in a per-night shard item (the former layout)."""
    return _NEW.pack(ra_deg, dec_deg, mjd_tai)


def unpack_new_object(blob: bytes) -> tuple[float, float, float]:
    """Inverse of :func:`pack_new_object`."""
    return _NEW.unpack(bytes(blob))


@dataclass
class _Group:
    """Items one object (or one batch of history rows) changes; ``oid`` None for history-only.

    ``full`` is shared by all groups of one CCD: the history items found full, whose rows go
    to their hour parts (``parts``: item -> attribute -> hour part).
    """

    oid: int | None
    ops: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    sets: dict[tuple[str, str], dict[str, bytes]] = field(default_factory=dict)
    add_ids: dict[int, set[int]] = field(default_factory=dict)
    parts: dict[HeadKey, dict[str, int]] = field(default_factory=dict)
    full: set[HeadKey] = field(default_factory=set)

    def set_attr(self, k: keys.Key, attr: str, value: bytes, part: int | None = None) -> None:
        hk = keys.split_key(k)
        self.sets.setdefault(hk, {})[attr] = value
        if part is not None:
            self.parts.setdefault(hk, {})[attr] = part

    def item_keys(self) -> set[tuple[str, str]]:
        pix = {keys.split_key(keys.pixel_index(p)) for p in self.add_ids}
        out = set(self.ops) | set(self.sets) | pix
        for k in self.full.intersection(self.sets):
            out |= {part_key(k, p) for p in set(self.parts[k].values())}
        return out


def _pix_op(table: str, pixel: int, add: set[int]) -> dict[str, Any]:
    return {"Update": {"TableName": table, "Key": keys.pixel_index(pixel),
                       "UpdateExpression": "ADD #ids :add",
                       "ExpressionAttributeNames": {"#ids": "ids"},
                       "ExpressionAttributeValues": {":add": {"NS": [str(i) for i in sorted(add)]}}}}


def _build_transaction(table: str, groups: list[_Group], fence: list[dict]) -> list[dict]:
    ops: list[dict] = list(fence)
    sets: dict[tuple[str, str], dict[str, bytes]] = defaultdict(dict)
    add: dict[int, set[int]] = defaultdict(set)
    for g in groups:
        ops.extend(g.ops.values())
        for k, attrs in g.sets.items():
            sets[k].update(attrs)
        for p, ids in g.add_ids.items():
            add[p] |= ids
    full = groups[0].full if groups else set()
    parts: dict[HeadKey, dict[str, int]] = defaultdict(dict)
    for g in groups:
        for k, by_attr in g.parts.items():
            parts[k].update(by_attr)
    for k, attrs in sets.items():
        if is_history(k):
            ops.extend(history_ops(table, k, attrs, parts[k], full))
        else:
            ops.append(set_op(table, k, attrs))
    ops.extend(_pix_op(table, p, add[p]) for p in sorted(add))
    return ops


def _plan_objects(table: str, writes: CcdWrites, tag: str) -> tuple[dict[int, _Group], dict]:
    objs = writes.dia_objects
    if len(objs) == 0:
        return {}, {}
    for col in ("diaObjectId", "ra", "dec", PREV_VALIDITY_COLUMN):
        if col not in objs.colnames:
            raise CatalogError(f"writes.dia_objects: column {col!r} is required")
    t = float(writes.visit_time_mjd_tai)
    objs = objs.copy(copy_data=True)
    # Each version starts at its own validityStartMjdTai when given (the pipeline moves it past
    # the version it replaces when CCDs commit out of time order), else at the visit time.
    if "validityStartMjdTai" in objs.colnames:
        starts = np.ma.filled(np.ma.asarray(objs["validityStartMjdTai"], dtype=float), np.nan)
        starts = np.where(np.isfinite(starts), starts, t)
    else:
        starts = np.full(len(objs), t)
    objs["validityStartMjdTai"] = starts
    if "validityEndMjdTai" in objs.colnames:
        objs.remove_column("validityEndMjdTai")
    rows = pack_rows(objs, "DiaObject")
    oids = ids_or_zero(objs["diaObjectId"])
    if len(set(oids.tolist())) != len(oids):
        raise CatalogError("writes.dia_objects: diaObjectId values are not unique")
    prev = np.ma.filled(np.ma.asarray(objs[PREV_VALIDITY_COLUMN], dtype=float), np.nan)
    pix = pixel_of(np.asarray(objs["ra"], float), np.asarray(objs["dec"], float))
    groups: dict[int, _Group] = {}
    meta: dict[int, dict] = {}
    for oid, row, p, pv, ra, dec, t in zip(oids.tolist(), rows, np.asarray(pix).tolist(), prev,
                                           np.asarray(objs["ra"], float),
                                           np.asarray(objs["dec"], float), starts.tolist(), strict=True):
        g = _Group(oid)
        item = {**keys.obj_last(oid), "v": num(t), "ccd": {"S": tag}, "pix": num(int(p)),
                "id": num(oid), "row": {"B": row}}
        if np.isnan(pv):
            cond = {"ConditionExpression": "attribute_not_exists(pk)"}
        else:
            cond = {"ConditionExpression": "#v = :prev AND #ccd <> :me",
                    "ExpressionAttributeNames": {"#v": "v", "#ccd": "ccd"},
                    "ExpressionAttributeValues": {":prev": num(float(pv)), ":me": {"S": tag}}}
        g.ops[keys.split_key(item)] = {"Put": {"TableName": table, "Item": item, **cond,
                                            "ReturnValuesOnConditionCheckFailure": "ALL_OLD"}}
        version = {**keys.obj_version(oid, t), "v": num(t), "ccd": {"S": tag}, "id": num(oid),
                   "row": {"B": row}}
        g.ops[keys.split_key(version)] = {"Put": {"TableName": table, "Item": version}}
        if not np.isnan(pv) and float(pv) != t:
            closing = keys.obj_version(oid, float(pv))
            g.ops[keys.split_key(closing)] = {"Update": {
                "TableName": table, "Key": closing, "UpdateExpression": "SET ve = :t",
                "ConditionExpression": "attribute_exists(pk)",
                "ExpressionAttributeValues": {":t": num(t)}}}
        if np.isnan(pv):
            g.add_ids[int(p)] = {oid}
        groups[oid] = g
        meta[oid] = {"prev": float(pv), "pix": int(p), "t": float(t), "ra": float(ra),
                     "dec": float(dec)}
    return groups, meta


def _add_history(groups: dict[int, _Group], extra: dict[tuple[str, int, int, int], _Group],
                 table: Table, name: str, attr_of: Any) -> int:
    entries = history_entries(table, name)
    counts: dict[tuple[str, int, int], int] = {}
    for kind, oid, bucket, rid, row, part in entries:
        group = groups.get(oid) if kind == "obj" else None
        if group is None:  # history-only: at most HISTORY_ROWS_PER_WRITE rows per group
            n = counts[(kind, oid, bucket)] = counts.get((kind, oid, bucket), -1) + 1
            group = extra.setdefault((kind, oid, bucket, n // HISTORY_ROWS_PER_WRITE),
                                     _Group(None))
        group.set_attr(keys.history(oid, bucket, ss=kind == "ss"), attr_of(rid), row, part)
    return len(entries)


def _split_full(groups: list[_Group]) -> list[_Group]:
    """History-only groups of full items split into one group per hour part."""
    out = []
    for g in groups:
        heads = g.full.intersection(g.sets)
        if g.oid is not None or not heads:
            out.append(g)
            continue
        rest = _Group(None, sets={k: v for k, v in g.sets.items() if k not in heads},
                      parts={k: v for k, v in g.parts.items() if k not in heads}, full=g.full)
        if rest.sets:
            out.append(rest)
        for k in sorted(heads):
            by_part: dict[int, _Group] = {}
            for a, v in g.sets[k].items():
                p = g.parts[k][a]
                by_part.setdefault(p, _Group(None, full=g.full)).set_attr(keys.key(*k), a, v, p)
            out.extend(by_part[p] for p in sorted(by_part))
    return out


def _classify(client: Any, table: str, groups: dict[int, _Group], meta: dict, tag: str,
              t: float) -> tuple[set[int], dict[int, int]]:
    """Pre-read Last records: which objects are already done, and each object's old pixel."""
    items = batch_get(client, table, [keys.obj_last(o) for o in groups],
                      projection="pk, #v, #ccd, pix", names={"#v": "v", "#ccd": "ccd"})
    last = {int(i["pk"]["S"][4:]): i for i in items}
    done: set[int] = set()
    old_pix: dict[int, int] = {}
    suspicious = []
    for oid, m in meta.items():
        item = last.get(oid)
        if item is None:
            if not np.isnan(m["prev"]):
                raise ConflictError(f"writes: DiaObject {oid} has no stored version to replace")
            continue
        v, ccd = float(item["v"]["N"]), item["ccd"]["S"]
        if v == m["t"] and ccd == tag:
            done.add(oid)
        elif not np.isnan(m["prev"]) and v == m["prev"] and ccd != tag:
            old_pix[oid] = int(item["pix"]["N"])
        else:
            suspicious.append(oid)
    if suspicious:  # superseded after we committed (a retry), or a real conflict
        found = batch_get(client, table, [keys.obj_version(o, meta[o]["t"]) for o in suspicious],
                          projection="pk, #ccd", names={"#ccd": "ccd"})
        ours = {int(i["pk"]["S"][4:]) for i in found if i["ccd"]["S"] == tag}
        lost = sorted(set(suspicious) - ours)
        if lost:
            error = StalePlanError if not done and not ours else ConflictError
            raise error(f"writes: DiaObjects {lost[:10]} changed since they were read "
                        f"(expected previous versions differ)")
        done |= ours
    return done, old_pix


def store_ccd(client: Any, table: str, writes: CcdWrites, fence: list[dict],
              stats: StoreStats) -> None:
    """Commit one CCD's writes (see module docstring); updates ``stats`` in place."""
    t = float(writes.visit_time_mjd_tai)
    if not np.isfinite(t):
        raise CatalogError(f"writes.visit_time_mjd_tai: must be finite, got {t}")
    tag = writes.writer or ccd_tag(writes.visit, writes.detector)
    groups, meta = _plan_objects(table, writes, tag)
    extra: dict[tuple[str, int, int, int], _Group] = {}
    stats.sources_written += _add_history(groups, extra, writes.dia_sources, "DiaSource",
                                          keys.source_attr)
    stats.forced_sources_written += _add_history(groups, extra, writes.dia_forced_sources,
                                                 "DiaForcedSource", keys.forced_attr)
    done, old_pix = _classify(client, table, groups, meta, tag, t) if groups else (set(), {})
    for oid, p_old in old_pix.items():
        p_new = meta[oid]["pix"]
        if p_old != p_new:
            # The object moved to another pixel: add it there. The stale entry in the old
            # pixel stays (ADD and DELETE cannot share a transaction item when two objects
            # cross one border in opposite directions); readers drop it by the Last record's
            # own pixel, so it costs one read, never a wrong answer.
            groups[oid].add_ids[p_new] = {oid}
    stats.objects_already_done += len(done)
    pending = [g for oid, g in groups.items() if oid not in done] + list(extra.values())
    full: set[HeadKey] = set()
    for g in pending:  # rows of one item beyond what any item takes go to hour parts at once
        g.full = full
        full |= {k for k, attrs in g.sets.items()
                 if is_history(k) and row_bytes(attrs) > HISTORY_HEAD_BYTES}
    budget = MAX_TRANSACT_ITEMS - len(fence)
    for batch in _pack(_split_full(pending), budget):
        _commit(client, table, batch, fence, tag, t, stats, budget)
    _index_new_objects(client, table, writes, meta)


def _index_new_objects(client: Any, table: str, writes: CcdWrites, meta: dict) -> None:
    """Write the CCD's new-object index items (see the module notes): after its transactions,
    outside them, idempotently."""
    rows = [(oid, m["ra"], m["dec"], m["t"]) for oid, m in meta.items() if np.isnan(m["prev"])]
    puts = [{**keys.new_objects_of_ccd(day, writes.visit, writes.detector, k), "objs": {"B": blob}}
            for day, blobs in new_object_chunks(rows).items() for k, blob in enumerate(blobs)]
    if puts:
        batch_write(client, table, puts=puts)


def _pack(groups: list[_Group], budget: int) -> list[list[_Group]]:
    """Transactions of ≤ ``budget`` items and ≤ HISTORY_ROWS_PER_WRITE rows per item."""
    return cap_rows_per_item(pack_groups(groups, budget), lambda g: {
        k: len(attrs) for k, attrs in g.sets.items() if is_history(k)})


def _commit(client: Any, table: str, batch: list[_Group], fence: list[dict], tag: str, t: float,
            stats: StoreStats, budget: int) -> None:
    while batch:
        ops = _build_transaction(table, batch, fence)
        try:
            transact_write(client, ops)
        except TransactionCancelledError as exc:
            outcome = _cancellation(exc.reasons, ops, len(fence), tag)
            if outcome is None:
                fenced = any(r.get("Code") == "ConditionalCheckFailed"
                             for r in exc.reasons[:len(fence)])
                raise (LeaseLostError if fenced else ConflictError)(f"store_ccd: {exc}") from exc
            finished, full = outcome
            stats.objects_already_done += len(finished)
            batch = [g for g in batch if g.oid not in finished]
            if full:
                _resend_with_full(client, table, batch, fence, tag, t, stats, budget, full)
                return
            continue
        except StorageError as exc:
            # An item written before the history counter existed, already near 400 KB: its
            # rows go to hour parts too (AWS names no item, so all of the batch's).
            heads = {k for g in batch for k in g.sets if is_history(k)} - (
                batch[0].full if batch else set())
            if "Item size" not in str(exc) or not heads:
                raise
            _resend_with_full(client, table, batch, fence, tag, t, stats, budget, heads)
            return
        stats.transactions += 1
        stats.objects_written += sum(1 for g in batch if g.oid is not None)
        return


def _resend_with_full(client: Any, table: str, batch: list[_Group], fence: list[dict], tag: str,
                      t: float, stats: StoreStats, budget: int, full: set[HeadKey]) -> None:
    """Mark history items full and re-send the batch, re-packed with their hour parts."""
    if batch:
        batch[0].full |= full  # the set every group of the CCD shares
    for sub in _pack(_split_full(batch), budget):
        _commit(client, table, sub, fence, tag, t, stats, budget)


def _cancellation(reasons: list[dict], ops: list[dict], n_fence: int,
                  tag: str) -> tuple[set[int], set[HeadKey]] | None:
    """What a cancelled transaction means: ``(objects, items)`` — objects whose Last condition
    failed only because this very version is committed, and history items found full.

    Returns None when any other condition failed (lost lease, real conflict).
    """
    done: set[int] = set()
    full: set[HeadKey] = set()
    for i, reason in enumerate(reasons):
        code = reason.get("Code", "None")
        if code in ("None", ""):
            continue
        if code != "ConditionalCheckFailed" or i < n_fence:
            return None
        update = ops[i].get("Update")
        if update is not None and is_history(keys.split_key(update["Key"])):
            full.add(keys.split_key(update["Key"]))
            continue
        op = ops[i].get("Put")
        old = reason.get("Item") or {}
        if (op is None or op["Item"]["sk"]["S"] != "LAST" or "v" not in old
                or float(old["v"]["N"]) != float(op["Item"]["v"]["N"])
                or old.get("ccd", {}).get("S") != tag):
            return None
        done.add(int(op["Item"]["id"]["N"]))
    return done, full

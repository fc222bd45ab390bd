"""Fast schemaless Avro encoding of alert records, byte-identical to fastavro's.

fastavro spends most of an alert's encoding time in the ~4,000 nested ``["null", X]`` union
fields of the 60 history rows: for each value it picks the union branch by validating the
value, field after field. This module encodes a whole list of records of one type (the
``prvDiaSources`` of an alert, its ``diaSource``, ...) column-wise with numpy instead, from a
*plan* computed once per record type:

1. the rows' values are gathered into an object table (rows × fields) and their Python types
   checked per column group (double, float, int/long, boolean, string);
2. each group is converted to a fixed-width byte matrix, one slot per field holding the union
   tag byte and the widest possible payload (8 bytes for a double, 10 for a zig-zag varint
   long, ...), together with a mask of the bytes the Avro encoding really has;
3. the slots are permuted into schema order and ``matrix[mask]`` taken in row-major order:
   the concatenation of every row's encoding, i.e. the Avro encoding of the array items.

No library does this: fastavro has only its per-value writer. Whatever the plan does not cover
(values of an unexpected Python type, out-of-range integers, an ``mpc_orbits`` record with its
timestamps, a mapping without every field, already tagged unions) makes :func:`encode_alert`
return ``None``, and the caller falls back to fastavro, so that output is identical for every
alert and errors are fastavro's.
"""

from __future__ import annotations

import functools
import math
import operator
import struct
from collections.abc import Callable, Mapping, Sequence
from itertools import chain
from typing import Any

import numpy as np

from alertprod.alerts.schema import FieldSpec, parsed_schema, record_spec

__all__ = ["encode_alert", "encode_records", "avro_long"]

#: Kinds of record fields the column-wise plan encodes; anything else falls back to fastavro.
_GROUPS = ("double", "float", "varint", "boolean", "string")
_GROUP_OF = {"double": "double", "float": "float", "long": "varint", "int": "varint",
             "boolean": "boolean", "string": "string"}
#: Slot width (union tag byte + widest payload) per group; strings are sized per call.
_SLOT = {"double": 9, "float": 5, "varint": 11, "boolean": 2}
_INT32 = (-(2**31), 2**31 - 1)
#: Union tag of the non-null branch: zig-zag varint of branch index 1 (all unions are ["null", X]).
_TAG = 2
_SHIFTS = np.arange(0, 70, 7, dtype=np.uint64)  # 10 groups of 7 bits cover a 64-bit varint
_NONE = type(None)
#: Below this many values (rows × fields), records are encoded field by field: numpy's fixed
#: cost per call (~0.2 ms) outweighs its per-value saving (measured crossover ~400 values).
_ROW_PATH_MAX_VALUES = 400
_REAL_TYPES = frozenset((float, _NONE))
_INT_TYPES = frozenset((int, _NONE))
_BOOL_TYPES = frozenset((bool, _NONE))
_STR_TYPES = frozenset((str, _NONE))
#: Boolean values as codes: 0 null, 1 false, 2 true (exact types are checked before the lookup).
_BOOL_CODE = {None: 0, False: 1, True: 2}


class _UnsupportedError(ValueError):
    """A value or record the plan does not encode: the caller uses fastavro instead."""


def avro_long(n: int) -> bytes:
    """Avro's zig-zag varint encoding of a long (``n`` within the signed 64-bit range)."""
    z = (n << 1) ^ (n >> 63)
    out = bytearray()
    while z & ~0x7F:
        out.append((z & 0x7F) | 0x80)
        z >>= 7
    out.append(z)
    return bytes(out)


def _getter(names: Sequence[str]) -> Callable[[Mapping[str, Any]], tuple]:
    """``row -> tuple of row[name] for name in names`` (a tuple also for a single name)."""
    if len(names) == 1:
        (name,) = names
        return lambda row: (row[name],)
    return operator.itemgetter(*names)


class _Plan:
    """Field order, column groups and slot layout of one record type, computed once."""

    def __init__(self, specs: Sequence[FieldSpec]):
        for s in specs:
            if s.kind not in _GROUP_OF:
                raise _UnsupportedError(f"field {s.name} of kind {s.kind}")
        self.n_fields = len(specs)
        self.getter = _getter([s.name for s in specs])
        self.kinds = [(s.kind, s.nullable) for s in specs]
        group_of_field = [_GROUP_OF[s.kind] for s in specs]
        cols = {g: [i for i, s in enumerate(specs) if _GROUP_OF[s.kind] == g] for g in _GROUPS}
        self.n = {g: len(c) for g, c in cols.items()}
        self.nullable = {g: np.array([specs[i].nullable for i in cols[g]], bool) for g in _GROUPS}
        self.is_int32 = np.array([specs[i].kind == "int" for i in cols["varint"]], bool)
        # doubles and floats are read together (same Python type), doubles first
        real = cols["double"] + cols["float"]
        self.getters = {"real": _getter([specs[i].name for i in real]) if real else None}
        for g in ("varint", "boolean", "string"):
            self.getters[g] = _getter([specs[i].name for i in cols[g]]) if cols[g] else None
        # start column of each field's slot in the group-ordered byte matrix, for a string width
        self._layout = (cols, group_of_field)
        self._perm: dict[int, np.ndarray] = {}

    def perm(self, string_slot: int) -> np.ndarray:
        """Columns of the group-ordered byte matrix in schema field order, for a string slot width."""
        if string_slot not in self._perm:
            cols, group_of_field = self._layout
            slot = dict(_SLOT, string=string_slot)
            start, group_start = {}, 0
            for g in _GROUPS:
                for k, i in enumerate(cols[g]):
                    start[i] = group_start + k * slot[g]
                group_start += len(cols[g]) * slot[g]
            perm = np.concatenate([np.arange(start[i], start[i] + slot[group_of_field[i]])
                                   for i in range(self.n_fields)]).astype(np.intp)
            if string_slot > 64:  # keep the cache small: long strings are rare
                return perm
            self._perm[string_slot] = perm
        return self._perm[string_slot]


_PACK_DOUBLE = struct.Struct("<d").pack
_PACK_FLOAT = struct.Struct("<f").pack


def _row_value(kind: str, v: Any) -> bytes:
    """Encoding of one non-null value of a record field (without the union tag)."""
    t = type(v)
    if kind == "double" and t is float:
        return _PACK_DOUBLE(v)
    if kind == "float" and t is float:
        try:
            return _PACK_FLOAT(v)
        except OverflowError:  # beyond the float32 range: ±inf, as fastavro's C cast writes
            return _PACK_FLOAT(math.copysign(math.inf, v))
    if kind == "boolean" and t is bool:
        return b"\x01" if v else b"\x00"
    if kind == "long" and t is int and -(2**63) <= v < 2**63:
        return avro_long(v)
    if kind == "int" and t is int and _INT32[0] <= v <= _INT32[1]:
        return avro_long(v)
    if kind == "string" and t is str:
        b = v.encode()
        return avro_long(len(b)) + b
    raise _UnsupportedError(f"{t.__name__} value for a {kind} field")


def _encode_row(row: Mapping[str, Any], plan: _Plan) -> bytes:
    """One record encoded field by field: cheaper than the column-wise path for a single row."""
    out = []
    for v, (kind, nullable) in zip(plan.getter(row), plan.kinds, strict=True):
        if v is None:
            if not nullable:
                raise _UnsupportedError("null in a non-nullable field")
            out.append(b"\x00")
        elif nullable:
            out.append(b"\x02" + _row_value(kind, v))
        else:
            out.append(_row_value(kind, v))
    return b"".join(out)


@functools.cache
def _plan(record: str) -> _Plan:
    if not _unions_are_null_first():
        raise _UnsupportedError("a union of the schema does not start with null")
    return _Plan(record_spec(record))


@functools.cache
def _unions_are_null_first() -> bool:
    """Whether every union of the schema is ``["null", X]``, as the tag bytes 0 and 2 assume."""
    def walk(t: Any) -> bool:
        if isinstance(t, list):
            return len(t) == 2 and t[0] == "null" and all(map(walk, t))
        if isinstance(t, dict):
            if t.get("type") == "record":
                return all(walk(f["type"]) for f in t["fields"])
            if t.get("type") == "array":
                return walk(t["items"])
        return True

    return walk(parsed_schema())


def _flat(rows: Sequence[Mapping[str, Any]], getter: Callable, allowed: frozenset) -> list:
    """Row-major list of one column group's values, after checking their exact Python types."""
    flat = list(chain.from_iterable(map(getter, rows)))
    if not set(map(type, flat)) <= allowed:
        raise _UnsupportedError("unexpected value type")
    return flat


def _check_nulls(null: np.ndarray, nullable: np.ndarray) -> None:
    if null[:, ~nullable].any():
        raise _UnsupportedError("null in a non-nullable field")


def _tagged_slots(payload: np.ndarray, payload_keep: np.ndarray | bool, null: np.ndarray,
                  nullable: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Prefix per-field payload bytes (rows × fields × width) with the union tag byte slot."""
    n, f, w = payload.shape
    data = np.empty((n, f, w + 1), np.uint8)
    data[:, :, 0] = (~null).view(np.uint8) * np.uint8(_TAG)
    data[:, :, 1:] = payload
    keep = np.empty((n, f, w + 1), bool)
    keep[:, :, 0] = nullable
    keep[:, :, 1:] = payload_keep
    keep[:, :, 1:] &= ~null[:, :, None]
    return data.reshape(n, -1), keep.reshape(n, -1)


def _reals(rows: Sequence[Mapping[str, Any]], plan: _Plan) -> list[tuple[np.ndarray, np.ndarray]]:
    """Slots of the double then the float fields."""
    flat = _flat(rows, plan.getters["real"], _REAL_TYPES)
    n_double = plan.n["double"]
    v = np.array(flat, np.float64).reshape(len(rows), -1)  # None becomes NaN
    null = np.isnan(v)
    nan_at = np.flatnonzero(null)
    if nan_at.size:  # tell the nulls from real NaNs
        null.flat[nan_at] = [x is None for x in map(flat.__getitem__, nan_at.tolist())]
    out = []
    for g, part, dtype in (("double", np.s_[:, :n_double], "<f8"), ("float", np.s_[:, n_double:], "<f4")):
        if not plan.n[g]:
            continue
        _check_nulls(null[part], plan.nullable[g])
        # a float field is rounded once from the Python float (a double), as fastavro's C cast does
        # (beyond the float32 range that gives ±inf, as fastavro writes)
        with np.errstate(over="ignore"):
            x = np.ascontiguousarray(v[part], dtype=dtype)
        payload = x.view(np.uint8).reshape(x.shape[0], x.shape[1], -1)
        out.append(_tagged_slots(payload, True, null[part], plan.nullable[g]))
    return out


def _varints(rows: Sequence[Mapping[str, Any]], plan: _Plan) -> tuple[np.ndarray, np.ndarray]:
    flat = _flat(rows, plan.getters["varint"], _INT_TYPES)  # exact int: bool, numpy ints fall back
    null = np.array([x is None for x in flat]).reshape(len(rows), -1)
    _check_nulls(null, plan.nullable["varint"])
    v = np.array([0 if x is None else x for x in flat], np.int64).reshape(null.shape)  # OverflowError
    small = v[:, plan.is_int32]
    if small.size and (small.min() < _INT32[0] or small.max() > _INT32[1]):
        raise _UnsupportedError("int field out of the 32-bit range")
    z = (v.view(np.uint64) << np.uint64(1)) ^ (v >> 63).view(np.uint64)
    groups = z[:, :, None] >> _SHIFTS  # rows × fields × 10
    length = np.maximum((groups != 0).sum(axis=2), 1)[:, :, None]
    k = np.arange(10)
    payload = (groups & np.uint64(0x7F)).astype(np.uint8)
    payload |= (k < length - 1).view(np.uint8) << np.uint8(7)
    return _tagged_slots(payload, k < length, null, plan.nullable["varint"])


def _booleans(rows: Sequence[Mapping[str, Any]], plan: _Plan) -> tuple[np.ndarray, np.ndarray]:
    flat = _flat(rows, plan.getters["boolean"], _BOOL_TYPES)
    code = np.fromiter(map(_BOOL_CODE.__getitem__, flat), np.uint8, len(flat)).reshape(len(rows), -1)
    null = code == 0
    _check_nulls(null, plan.nullable["boolean"])
    payload = (code == 2).view(np.uint8)[:, :, None]
    return _tagged_slots(payload, True, null, plan.nullable["boolean"])


def _null_in_non_nullable() -> bytes:
    raise _UnsupportedError("null in a non-nullable field")


def _strings(rows: Sequence[Mapping[str, Any]], plan: _Plan) -> tuple[np.ndarray, np.ndarray, int]:
    flat = _flat(rows, plan.getters["string"], _STR_TYPES)
    n, f = len(rows), plan.n["string"]
    tags = [b"\x02" if nl else b"" for nl in plan.nullable["string"].tolist()] * n
    encoded = {s: avro_long(len(b)) + b for s in set(flat) if s is not None for b in (s.encode(),)}
    encoded[None] = None
    cells = [tag + e if e is not None else b"\x00" if tag else _null_in_non_nullable()
             for e, tag in zip(map(encoded.__getitem__, flat), tags, strict=True)]
    width = max(map(len, cells))
    data = np.frombuffer(b"".join(c.ljust(width, b"\x00") for c in cells), np.uint8).reshape(n, f * width)
    lengths = np.fromiter(map(len, cells), np.intp, len(cells)).reshape(n, f, 1)
    keep = (np.arange(width) < lengths).reshape(n, f * width)
    return data, keep, width


def encode_records(rows: Sequence[Mapping[str, Any]], record: str) -> bytes:
    """Concatenated Avro encodings of records of one type (the items of an Avro array).

    Parameters
    ----------
    rows : sequence of Mapping
        Records, each with every field of ``record`` (extra keys are ignored, as fastavro does).
    record : str
        Record type: ``"diaSource"``, ``"diaForcedSource"``, ``"diaObject"`` or ``"ssSource"``.

    Returns
    -------
    bytes
        ``b"".join(encoding of each row)``, identical to fastavro's ``schemaless_writer`` output
        for each row with that record schema.

    Raises
    ------
    ValueError
        When a value is not of the exact Python type the plan encodes (``float`` or ``None``
        for float fields, ``int`` for integers, ``bool``, ``str``), an integer is out of its
        Avro range, or ``record`` has fields of other kinds: encode with fastavro instead.
    KeyError
        When a row lacks a field.
    """
    plan = _plan(record)
    if len(rows) * plan.n_fields < _ROW_PATH_MAX_VALUES:
        return b"".join(_encode_row(row, plan) for row in rows)
    slots = []
    if plan.getters["real"] is not None:
        slots += _reals(rows, plan)
    if plan.getters["varint"] is not None:
        slots.append(_varints(rows, plan))
    if plan.getters["boolean"] is not None:
        slots.append(_booleans(rows, plan))
    string_slot = 0
    if plan.getters["string"] is not None:
        data, keep, string_slot = _strings(rows, plan)
        slots.append((data, keep))
    perm = plan.perm(string_slot)
    data = np.concatenate([d for d, _ in slots], axis=1)[:, perm]
    keep = np.concatenate([k for _, k in slots], axis=1)[:, perm]
    return data[keep].tobytes()


def _encode_value(spec: FieldSpec, value: Any) -> bytes:
    """Encoding of one top-level alert field (tag byte included for nullable fields)."""
    if value is None:
        if not spec.nullable:
            raise _UnsupportedError(f"{spec.name} is None")
        return b"\x00"
    tag = b"\x02" if spec.nullable else b""
    kind = spec.kind
    if kind == "long" and type(value) is int and -(2**63) <= value < 2**63:
        return tag + avro_long(value)
    if kind == "string" and type(value) is str:
        b = value.encode()
        return tag + avro_long(len(b)) + b
    if kind == "bytes" and type(value) is bytes:
        return tag + avro_long(len(value)) + value
    if kind == "record" and isinstance(value, Mapping):
        return tag + encode_records([value], spec.record)
    if kind == "array" and type(value) is list:
        if not value:
            return tag + b"\x00"
        return tag + avro_long(len(value)) + encode_records(value, spec.record) + b"\x00"
    raise _UnsupportedError(f"{spec.name}: {type(value).__name__} for {kind}")


def encode_alert(alert: Mapping[str, Any]) -> bytes | None:
    """Schemaless Avro encoding of an alert record with the latest schema, or ``None``.

    Parameters
    ----------
    alert : Mapping
        A record as :func:`~alertprod.alerts.packet.build_alert` returns it.

    Returns
    -------
    bytes or None
        The payload, byte-identical to ``fastavro.schemaless_writer`` with
        :func:`~alertprod.alerts.schema.parsed_schema`; ``None`` when the alert holds anything
        the column-wise plan does not cover (then encode it with fastavro, which also reports
        the errors of invalid alerts).
    """
    try:
        return b"".join(_encode_value(s, alert[s.name]) for s in record_spec("alert"))
    # Any failure of the fast path means "not covered": fastavro re-encodes the alert and
    # raises its own error if the alert is invalid, so nothing is lost by catching broadly.
    except Exception:  # noqa: BLE001
        return None

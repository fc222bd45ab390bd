"""Level 1 rows and tables to alert-schema records, compiled once per (record, column set).

The fast path of :mod:`alertprod.alerts.packet`. For each record type and set of input column
names a *plan* is resolved once and cached: for every schema field, in schema order, the input
column it comes from (Rubin name or an alias of :data:`FIELD_ALIASES`) and its converter. A single
row (mapping, astropy ``Row``, numpy structured scalar) then costs one cheap converter call per
field; a whole astropy ``Table`` is converted column by column at numpy speed (``tolist`` of each
column, masked and NaN cells found with numpy), which is where alert building spends its time
(the history of an alert is ~60 rows of ~100 columns).

Every fast step checks its own preconditions and hands anything unusual (numpy scalars in a dict,
strings in a float column, values out of range, required cells missing) to :func:`cell_value`,
the exact per-cell rules of the original walker, or redoes the whole table row by row with them,
so records and error messages (:class:`AlertFieldError` and its field path) are the same as
converting one cell at a time.

Notes
-----
Hand-written because fastavro neither coerces types nor names the failing nested field, and
astropy's own ``Table.as_array`` (a masked structured array) costs ~100x the column-wise path.
"""

from __future__ import annotations

import functools
import math
import operator
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

import numpy as np
from astropy.table import Column, MaskedColumn, Row

from alertprod.alerts.schema import SCHEMA_VERSION, FieldSpec, record_spec
from alertprod.errors import AlertSchemaError

__all__ = ["AlertFieldError", "FIELD_ALIASES", "cell_value", "record_from_mapping", "row_record",
           "table_records"]

#: Older or alternative Level 1 column names and the alert-schema field each maps to, per record.
#: A row's canonical name wins when both are present.
FIELD_ALIASES: dict[str, dict[str, str]] = {
    "diaSource": {
        "midPointTai": "midpointMjdTai", "midpointTai": "midpointMjdTai", "mjd": "midpointMjdTai",
        "timeProcessed": "timeProcessedMjdTai", "timeWithdrawn": "timeWithdrawnMjdTai",
        "filterName": "band", "psFlux": "psfFlux", "psFluxErr": "psfFluxErr",
        "totFlux": "scienceFlux", "totFluxErr": "scienceFluxErr",
    },
    "diaForcedSource": {
        "midPointTai": "midpointMjdTai", "midpointTai": "midpointMjdTai", "mjd": "midpointMjdTai",
        "timeProcessed": "timeProcessedMjdTai", "timeWithdrawn": "timeWithdrawnMjdTai",
        "filterName": "band", "psFlux": "psfFlux", "psFluxErr": "psfFluxErr",
        "totFlux": "scienceFlux", "totFluxErr": "scienceFluxErr",
    },
    "diaObject": {
        "validityStart": "validityStartMjdTai", "nDiaSource": "nDiaSources",
        "firstDiaSourceMJD": "firstDiaSourceMjdTai", "lastDiaSourceMJD": "lastDiaSourceMjdTai",
    },
    "ssSource": {},
    "mpc_orbits": {},
}

_FLOAT32_MAX = float(np.finfo(np.float32).max)
_INT_RANGE = {"int": (-(2**31), 2**31 - 1), "long": (-(2**63), 2**63 - 1)}
_MASKED = np.ma.masked
_NOMASK = np.ma.nomask


class AlertFieldError(AlertSchemaError):
    """A field of an alert packet is missing or holds a value its schema type cannot take.

    Attributes
    ----------
    path : str
        Where in the packet, e.g. ``"diaSource.ra"`` or ``"prvDiaSources[3].psfFlux"``.
    """

    def __init__(self, path: str, problem: str):
        super().__init__(f"alert schema {SCHEMA_VERSION}: field {path}: {problem}")
        self.path = path


class _FallbackError(Exception):
    """A column the vectorised path does not convert exactly: redo the table cell by cell."""


def _zero_when_missing(spec: FieldSpec) -> bool:
    """Non-null counters of the schema that a row may omit: they default to 0 data points."""
    return spec.kind == "int" and not spec.nullable and (
        spec.name.endswith("Ndata") or spec.name in ("nDiaSources", "bboxSize", "nObs")
    )


def _coerce(value: Any, spec: FieldSpec, path: str, nan_as_null: bool) -> Any:
    """One scalar value converted to the Python type fastavro writes for ``spec``."""
    kind = spec.kind
    try:
        if kind in ("float", "double"):
            if isinstance(value, (str, bytes)):
                raise TypeError("a string is not a number")
            x = float(value)
            if math.isnan(x):
                return None if (spec.nullable and nan_as_null) else x
            if kind == "float" and math.isfinite(x) and abs(x) > _FLOAT32_MAX:
                raise AlertFieldError(path, f"{x!r} overflows a 32-bit float")
            return x
        if kind in ("long", "int"):
            if isinstance(value, (float, np.floating)):
                if math.isnan(value):
                    if spec.nullable:
                        return None
                    raise AlertFieldError(path, "NaN in a non-null integer field")
                if not float(value).is_integer():
                    raise AlertFieldError(path, f"{value!r} is not an integer")
            if isinstance(value, (str, bytes)):
                raise TypeError("a string is not an integer")
            i = int(value)
            lo, hi = _INT_RANGE[kind]
            if not lo <= i <= hi:
                raise AlertFieldError(path, f"{i} is out of range for Avro {kind}")
            return i
        if kind == "boolean":
            if isinstance(value, (bool, np.bool_)):
                return bool(value)
            if isinstance(value, (int, np.integer)) and int(value) in (0, 1):
                return bool(value)
            raise TypeError(f"{value!r} is not a boolean")
        if kind == "string":
            if isinstance(value, (bytes, np.bytes_)):
                return bytes(value).decode()
            if isinstance(value, str):
                return str(value)
            raise TypeError(f"{type(value).__name__} is not a string")
        if kind == "bytes":
            if isinstance(value, (bytes, bytearray, memoryview)):
                return bytes(value)
            raise TypeError(f"{type(value).__name__} is not bytes")
        if kind == "timestamp-micros":
            if isinstance(value, datetime):
                return value
            if isinstance(value, np.datetime64):
                return int(value.astype("datetime64[us]").astype(np.int64))
            return int(value)
    except AlertFieldError:
        raise
    except (TypeError, ValueError, OverflowError, UnicodeDecodeError) as exc:
        raise AlertFieldError(path, f"cannot convert {value!r} to Avro {kind}: {exc}") from exc
    raise AlertFieldError(path, f"unsupported kind {kind}")


def cell_value(value: Any, spec: FieldSpec, path: str, nan_as_null: bool) -> Any:
    """One cell by the full rules: missing (None, masked) → null, default, 0 or error; else coerced."""
    if value is None or value is _MASKED:
        if spec.nullable:
            return None
        if spec.has_default:
            return spec.default
        if _zero_when_missing(spec):
            return 0
        raise AlertFieldError(path, "required and missing")
    out = _coerce(value, spec, path, nan_as_null)
    if out is None and not spec.nullable:
        raise AlertFieldError(path, "null in a non-null field")
    return out


def record_from_mapping(data: Mapping[str, Any], record: str, where: str, nan_as_null: bool,
                        extra: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The reference conversion of one row, field by field (used with ``extra`` and as fallback)."""
    aliases = FIELD_ALIASES.get(record, {})
    if aliases:
        renamed = {aliases[k]: v for k, v in data.items() if k in aliases and aliases[k] not in data}
        if renamed:
            data = {**data, **renamed}
    out: dict[str, Any] = {}
    for spec in record_spec(record):
        value = data.get(spec.name)
        if (value is None or value is _MASKED) and extra is not None:
            value = extra.get(spec.name)
        out[spec.name] = cell_value(value, spec, f"{where}.{spec.name}", nan_as_null)
    return out


# --- per-cell converters: exact-type fast paths, everything else through cell_value ----------

def _conv_float(v: Any, spec: FieldSpec, where: str, nan_as_null: bool) -> Any:
    if type(v) is float and -_FLOAT32_MAX <= v <= _FLOAT32_MAX:
        return v
    return cell_value(v, spec, f"{where}.{spec.name}", nan_as_null)


def _conv_double(v: Any, spec: FieldSpec, where: str, nan_as_null: bool) -> Any:
    if type(v) is float and v == v:
        return v
    return cell_value(v, spec, f"{where}.{spec.name}", nan_as_null)


def _conv_int(v: Any, spec: FieldSpec, where: str, nan_as_null: bool) -> Any:
    if type(v) is int and -2147483648 <= v <= 2147483647:
        return v
    return cell_value(v, spec, f"{where}.{spec.name}", nan_as_null)


def _conv_long(v: Any, spec: FieldSpec, where: str, nan_as_null: bool) -> Any:
    if type(v) is int and -9223372036854775808 <= v <= 9223372036854775807:
        return v
    return cell_value(v, spec, f"{where}.{spec.name}", nan_as_null)


def _conv_bool(v: Any, spec: FieldSpec, where: str, nan_as_null: bool) -> Any:
    if type(v) is bool:
        return v
    return cell_value(v, spec, f"{where}.{spec.name}", nan_as_null)


def _conv_str(v: Any, spec: FieldSpec, where: str, nan_as_null: bool) -> Any:
    if type(v) is str:
        return v
    return cell_value(v, spec, f"{where}.{spec.name}", nan_as_null)


def _conv_any(v: Any, spec: FieldSpec, where: str, nan_as_null: bool) -> Any:
    return cell_value(v, spec, f"{where}.{spec.name}", nan_as_null)


_CELL_CONVERTERS: dict[str, Callable[[Any, FieldSpec, str, bool], Any]] = {
    "float": _conv_float, "double": _conv_double, "int": _conv_int, "long": _conv_long,
    "boolean": _conv_bool, "string": _conv_str,
}


class _Plan:
    """How to make one record type from rows with one column set (resolved once, cached)."""

    __slots__ = ("names", "specs", "sources", "convs", "take", "template")

    def __init__(self, record: str, columns: tuple[str, ...]):
        specs = record_spec(record)
        aliases = FIELD_ALIASES.get(record, {})
        index = {c: k for k, c in enumerate(columns)}
        # an alias feeds a field only when the canonical column is absent; the last alias wins,
        # as in a dict built from the row in column order
        for k, c in enumerate(columns):
            target = aliases.get(c)
            if target is not None and target not in columns:
                index[target] = k
        self.names = tuple(s.name for s in specs)
        #: every field, in schema order, set to None: records start as copies of it
        self.template = dict.fromkeys(self.names)
        self.specs = specs
        #: input column index of each field, or None when no column feeds it
        self.sources = tuple(index.get(s.name) for s in specs)
        self.convs = tuple(_CELL_CONVERTERS.get(s.kind, _conv_any) for s in specs)
        # row values get one None appended: fields without a column read it
        missing = len(columns)
        getter = operator.itemgetter(*(missing if i is None else i for i in self.sources))
        self.take = getter if len(specs) > 1 else (lambda values: (getter(values),))


@functools.lru_cache(maxsize=512)
def _plan(record: str, columns: tuple[str, ...]) -> _Plan:
    record_spec(record)  # unknown record types raise here, before anything is cached
    return _Plan(record, columns)


def _convert_values(plan: _Plan, values: list[Any], where: str, nan_as_null: bool) -> dict[str, Any]:
    """One record from the values of a row (in the column order the plan was made for)."""
    values.append(None)
    taken = plan.take(values)
    record = plan.template.copy()
    record.update(zip(plan.names, [conv(v, spec, where, nan_as_null) for conv, v, spec
                                   in zip(plan.convs, taken, plan.specs, strict=True)], strict=True))
    return record


_PLAIN_COLUMNS = (Column, MaskedColumn)


def _plain_columns(table: Any) -> list[Column] | None:
    """The table's columns when all are 1-d astropy Columns (no mixins), else None."""
    cols = list(table.columns.values())
    for c in cols:
        # ndim is a plain ndarray attribute; MaskedArray.shape is a (slow) Python property
        if (type(c) not in _PLAIN_COLUMNS and not isinstance(c, Column)) or c.ndim != 1:
            return None
    return cols


def _row_values(row: Row) -> list[Any] | None:
    """Python values (masked → None) of an astropy Row, in column order; None if unusual."""
    cols = _plain_columns(row.table)
    if cols is None:
        return None
    i = row.index
    values = [c.item(i) for c in cols]
    for k, c in enumerate(cols):
        if type(c) is MaskedColumn:
            m = c._mask  # the numpy mask array (or nomask); MaskedColumn.mask wraps it slowly
            if m is not _NOMASK and m[i]:
                values[k] = None
    return values


def _row_mapping(row: Any, where: str) -> Mapping[str, Any]:
    """A dict of one row, the reference way (astropy Row through a one-row structured array)."""
    if isinstance(row, Mapping):
        return row
    names = getattr(row, "colnames", None) or getattr(getattr(row, "dtype", None), "names", None)
    if names is None:
        raise AlertFieldError(where, f"expected a mapping or a table row, got {type(row).__name__}")
    if hasattr(row, "table") and hasattr(row, "index"):
        # a one-row slice converts to Python scalars at once, masked -> None
        # (Row.as_void() drops the masks of MaskedColumns)
        values = row.table[row.index:row.index + 1].as_array().tolist()[0]
    else:
        values = row.tolist()
    return dict(zip(names, values, strict=True))


def row_record(row: Any, record: str, where: str, nan_as_null: bool,
               extra: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """One record from a mapping, an astropy Row or a numpy structured scalar (see ``to_record``)."""
    if extra is None:
        if type(row) is dict:
            return _convert_values(_plan(record, tuple(row)), list(row.values()), where, nan_as_null)
        if isinstance(row, Row):
            values = _row_values(row)
            if values is not None:
                return _convert_values(_plan(record, tuple(row.table.columns)), values, where,
                                       nan_as_null)
        elif isinstance(row, Mapping):
            return _convert_values(_plan(record, tuple(row)), list(row.values()), where, nan_as_null)
    return record_from_mapping(_row_mapping(row, where), record, where, nan_as_null, extra)


# --- whole tables, column by column ------------------------------------------------------------

def _missing_fill(spec: FieldSpec) -> Any:
    """What a missing cell of ``spec`` becomes; _FallbackError when it is an error."""
    if spec.nullable:
        return None
    if spec.has_default:
        return spec.default
    if _zero_when_missing(spec):
        return 0
    raise _FallbackError


def _column_values(col: Column, spec: FieldSpec, nan_as_null: bool) -> list[Any]:
    """One table column as the list of record values of field ``spec``, or _FallbackError."""
    values = np.ndarray.tolist(col)  # Python scalars of the raw data; masks applied below
    dtype = col.dtype
    kind, dkind = spec.kind, dtype.kind
    if kind in ("float", "double") and dkind == "f" and dtype.itemsize <= 8:
        total = sum(values)  # finite iff no NaN or inf in the column: one C loop, no numpy call
        if total - total != 0.0:
            if kind == "float" and dtype.itemsize > 4:
                data = np.asarray(col)
                if np.any(np.isfinite(data) & (np.abs(data) > _FLOAT32_MAX)):
                    raise _FallbackError
            if spec.nullable and nan_as_null:
                if len(values) <= 64:  # an alert's history: a comprehension beats numpy calls
                    values = [v if v == v else None for v in values]
                else:
                    for k in np.flatnonzero(np.isnan(np.asarray(col))).tolist():
                        values[k] = None
        elif kind == "float" and dtype.itemsize > 4 and (
                max(values) > _FLOAT32_MAX or min(values) < -_FLOAT32_MAX):
            raise _FallbackError
    elif kind in ("int", "long") and dkind in "iu":
        lo, hi = _INT_RANGE[kind]
        if not _dtype_fits(dtype, kind) and (min(values) < lo or max(values) > hi):
            raise _FallbackError
    elif (kind == "boolean" and dkind == "b") or (kind == "string" and dkind == "U"):
        pass
    elif kind == "string" and dkind == "S":
        try:
            values = [b.decode() for b in values]
        except UnicodeDecodeError as exc:
            raise _FallbackError from exc
    else:
        for k in _masked_cells(col):
            values[k] = None
        try:
            return [cell_value(v, spec, "", nan_as_null) for v in values]
        except AlertFieldError as exc:
            raise _FallbackError from exc
    masked_cells = _masked_cells(col)
    if masked_cells:
        fill = _missing_fill(spec)
        for k in masked_cells:
            values[k] = fill
    return values


@functools.cache
def _dtype_fits(dtype: np.dtype, kind: str) -> bool:
    """Whether every value of integer ``dtype`` is in range for Avro ``kind``."""
    info = np.iinfo(dtype)
    lo, hi = _INT_RANGE[kind]
    return lo <= info.min and info.max <= hi


def _masked_cells(col: Column) -> list[int]:
    """Indices of the masked cells of a column (none for a plain Column)."""
    if type(col) is not MaskedColumn and not isinstance(col, MaskedColumn):
        return []
    m = col._mask
    # a bytes scan is ~4x cheaper than m.any() on the short columns of an alert's history
    if m is _NOMASK or 1 not in m.tobytes():
        return []
    return np.flatnonzero(m).tolist()


def table_records(table: Any, record: str, where: Callable[[int], str],
                  nan_as_null: bool) -> list[dict[str, Any]]:
    """Records of every row of an astropy Table.

    Parameters
    ----------
    table : astropy.table.Table
        Rows; columns as for ``to_record``.
    record : str
        Record type.
    where : callable
        Row index → path of the record in the packet, for error messages.
    nan_as_null : bool
        As for ``to_record``.
    """
    n = len(table)
    if n == 0:
        return []
    cols = _plain_columns(table)
    if cols is not None:
        plan = _plan(record, tuple(table.columns))
        try:
            columns = [[_missing_fill(spec)] * n if src is None
                       else _column_values(cols[src], spec, nan_as_null)
                       for spec, src in zip(plan.specs, plan.sources, strict=True)]
        except _FallbackError:
            pass
        else:
            names, template = plan.names, plan.template
            records = []
            for cells in zip(*columns, strict=True):
                record = template.copy()  # pre-sized: ~15% faster than dict(zip(...))
                record.update(zip(names, cells, strict=True))
                records.append(record)
            return records
    # anything unusual: the reference path, row by row, which also raises the exact error
    names = table.colnames
    rows = table.as_array().tolist()
    return [record_from_mapping(dict(zip(names, values, strict=True)), record, where(k), nan_as_null)
            for k, values in enumerate(rows)]

"""New alert-packet building is the original one: same records, same bytes, same errors.

``_ref_build_alert`` below is the row-by-row implementation of ``alertprod.alerts.packet`` as it
was before the column-wise converters (kept verbatim, docstrings dropped), the reference both for
these tests and for ``tests/benchmarks/test_bench_alert_build.py``. Inputs are randomised: dict
rows with numpy scalars, NaN, None, aliases, unknown keys and missing fields; astropy Tables with
masked, NaN, narrow, wide, bytes, unicode and object columns; and corrupted values that must fail
with the same field path and message.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

import numpy as np
import pytest
from astropy.table import Column, MaskedColumn, Table

from alertprod.alerts import build_alert, serialize_alert, to_record
from alertprod.alerts.packet import FIELD_ALIASES, AlertFieldError
from alertprod.alerts.schema import FieldSpec, record_spec
from alertprod.errors import AlertSchemaError

pytestmark = pytest.mark.unit

_FLOAT32_MAX = float(np.finfo(np.float32).max)
_INT_RANGE = {"int": (-(2**31), 2**31 - 1), "long": (-(2**63), 2**63 - 1)}

# ---- the reference implementation (original packet.py) ----------------------------------------


def _ref_zero_when_missing(spec: FieldSpec) -> bool:
    return (
        spec.kind == "int"
        and (not spec.nullable)
        and (spec.name.endswith("Ndata") or spec.name in ("nDiaSources", "bboxSize", "nObs"))
    )


def _ref_is_missing(value: Any) -> bool:
    return value is None or value is np.ma.masked


def _ref_coerce(value: Any, spec: FieldSpec, path: str, nan_as_null: bool) -> Any:
    kind = spec.kind
    try:
        if kind in ("float", "double"):
            if isinstance(value, (str, bytes)):
                raise TypeError("a string is not a number")
            x = float(value)
            if math.isnan(x):
                return None if spec.nullable and nan_as_null else x
            if kind == "float" and math.isfinite(x) and (abs(x) > _FLOAT32_MAX):
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


def _ref_as_mapping(row: Any, path: str) -> Mapping[str, Any]:
    if isinstance(row, Mapping):
        return row
    names = getattr(row, "colnames", None) or getattr(getattr(row, "dtype", None), "names", None)
    if names is None:
        raise AlertFieldError(path, f"expected a mapping or a table row, got {type(row).__name__}")
    if hasattr(row, "table") and hasattr(row, "index"):
        values = row.table[row.index : row.index + 1].as_array().tolist()[0]
    else:
        values = row.tolist()
    return dict(zip(names, values, strict=True))


def _ref_to_record(
    row: Any,
    record: str,
    *,
    path: str | None = None,
    nan_as_null: bool = True,
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    where = path or record
    data = _ref_as_mapping(row, where)
    aliases = FIELD_ALIASES.get(record, {})
    if aliases:
        renamed = {
            aliases[k]: v for k, v in data.items() if k in aliases and aliases[k] not in data
        }
        if renamed:
            data = {**data, **renamed}
    out: dict[str, Any] = {}
    for spec in record_spec(record):
        value = data.get(spec.name)
        if _ref_is_missing(value) and extra is not None:
            value = extra.get(spec.name)
        fpath = f"{where}.{spec.name}"
        if _ref_is_missing(value):
            if spec.nullable:
                out[spec.name] = None
            elif spec.has_default:
                out[spec.name] = spec.default
            elif _ref_zero_when_missing(spec):
                out[spec.name] = 0
            else:
                raise AlertFieldError(fpath, "required and missing")
            continue
        out[spec.name] = _ref_coerce(value, spec, fpath, nan_as_null)
        if out[spec.name] is None and (not spec.nullable):
            raise AlertFieldError(fpath, "null in a non-null field")
    return out


def _ref_records(
    rows: Iterable[Any] | None, record: str, name: str, nan_as_null: bool
) -> list[dict] | None:
    if rows is None:
        return None
    if hasattr(rows, "as_array") and hasattr(rows, "colnames"):
        names = rows.colnames
        rows = [dict(zip(names, values, strict=True)) for values in rows.as_array().tolist()]
    return [
        _ref_to_record(r, record, path=f"{name}[{i}]", nan_as_null=nan_as_null)
        for i, r in enumerate(rows)
    ]


def _ref_build_alert(
    dia_source: Mapping[str, Any],
    *,
    dia_object: Mapping[str, Any] | None,
    prv_dia_sources: Sequence[Mapping[str, Any]] | None,
    prv_dia_forced_sources: Sequence[Mapping[str, Any]] | None,
    ss_source: Mapping[str, Any] | None = None,
    mpc_orbit: Mapping[str, Any] | None = None,
    cutout_difference: bytes | None,
    cutout_template: bytes | None,
    cutout_science: bytes | None = None,
    observation_reason: str | None = None,
    target_name: str | None = None,
    nan_as_null: bool = True,
) -> dict[str, Any]:
    if dia_source is None:
        raise AlertFieldError("diaSource", "dia_source is required")
    src = _ref_to_record(dia_source, "diaSource", nan_as_null=nan_as_null)
    ss = None
    if ss_source is not None:
        ss = _ref_to_record(
            ss_source,
            "ssSource",
            nan_as_null=nan_as_null,
            extra={"diaSourceId": src["diaSourceId"], "ssObjectId": src["ssObjectId"]},
        )
    cutouts = {}
    for name, blob in (
        ("cutoutDifference", cutout_difference),
        ("cutoutScience", cutout_science),
        ("cutoutTemplate", cutout_template),
    ):
        if blob is not None and (not isinstance(blob, (bytes, bytearray, memoryview))):
            raise AlertFieldError(name, f"expected FITS bytes, got {type(blob).__name__}")
        cutouts[name] = None if blob is None else bytes(blob)
    return {
        "diaSourceId": src["diaSourceId"],
        "observation_reason": observation_reason,
        "target_name": target_name,
        "diaSource": src,
        "prvDiaSources": _ref_records(prv_dia_sources, "diaSource", "prvDiaSources", nan_as_null),
        "prvDiaForcedSources": _ref_records(
            prv_dia_forced_sources, "diaForcedSource", "prvDiaForcedSources", nan_as_null
        ),
        "diaObject": None
        if dia_object is None
        else _ref_to_record(dia_object, "diaObject", nan_as_null=nan_as_null),
        "ssSource": ss,
        "mpc_orbits": None
        if mpc_orbit is None
        else _ref_to_record(mpc_orbit, "mpc_orbits", nan_as_null=nan_as_null),
        **cutouts,
    }


# ---- random inputs ------------------------------------------------------------------------------

_BAD = {"float": ["bright", 1.5e39, b"x"], "double": ["x", [1.0]], "int": [2**40, 1.5, "7"],
        "long": [2**70, 2.5], "boolean": [2, "yes", 0.5], "string": [5, 1.0]}


def _random_cell(spec: FieldSpec, rng: np.random.Generator, p_bad: float) -> Any:
    kind = spec.kind
    if rng.random() < p_bad and kind in _BAD:
        return _BAD[kind][int(rng.integers(len(_BAD[kind])))]
    r = rng.random() if spec.nullable or spec.name.endswith("Ndata") else 1.0
    if r < 0.08:
        return None
    if r < 0.12:
        return np.ma.masked
    if kind in ("float", "double"):
        x = float(np.float32(rng.normal(0, 100)))
        choice = int(rng.integers(8))
        return [x, np.float32(x), np.float64(x), float("nan"), np.float32("nan"), float("inf"),
                int(x), np.int32(int(x))][choice]
    if kind in ("int", "long"):
        i = int(rng.integers(-1000, 1000))
        nan = float("nan") if spec.nullable else 3.0
        return [i, np.int64(i), np.int16(i), float(i), nan, bool(i % 2), np.uint8(abs(i) % 200),
                i][int(rng.integers(8))]
    if kind == "boolean":
        b = bool(rng.integers(2))
        return [b, np.bool_(b), int(b), np.int8(b)][int(rng.integers(4))]
    if kind == "string":
        return ["r", b"g", np.str_("i"), np.bytes_("z"), "v1.2"][int(rng.integers(5))]
    return None


def _random_row(record: str, rng: np.random.Generator, p_bad: float = 0.0) -> dict[str, Any]:
    row = {}
    for spec in record_spec(record):
        if rng.random() < (0.05 if spec.nullable else p_bad):
            continue  # absent: null, 0 or "required and missing"
        row[spec.name] = _random_cell(spec, rng, p_bad)
    aliases = list(FIELD_ALIASES.get(record, {}).items())
    for _ in range(int(rng.integers(0, 3))):
        if aliases:
            alias, target = aliases[int(rng.integers(len(aliases)))]
            row[alias] = row.pop(target, 60000.5) if rng.random() < 0.7 else 1.25
    row["pixelId"] = int(rng.integers(1000))  # unknown: dropped
    keys = list(row)
    rng.shuffle(keys)
    return {k: row[k] for k in keys}


def _random_column(spec: FieldSpec, n: int, rng: np.random.Generator, p_bad: float) -> Column:
    kind, choice = spec.kind, int(rng.integers(6))
    nullable = spec.nullable or spec.name.endswith("Ndata")
    mask = rng.random(n) < (0.3 if choice < 2 and nullable else p_bad)
    if kind in ("float", "double"):
        data = rng.normal(0, 100, n)
        data[rng.random(n) < 0.3] = np.nan
        if choice == 5:
            data[:] = np.nan
        dtype = [np.float32, np.float64, np.float32, np.float64, np.int32, np.float32][choice]
        data = data.astype(dtype) if dtype != np.int32 else np.arange(n, dtype=dtype)
        if rng.random() < p_bad and n:
            data = data.astype(np.float64)
            data[int(rng.integers(n))] = 1e39
    elif kind in ("int", "long"):
        dtype = [np.int64, np.int16, np.int32, np.uint8, np.float64, np.uint32][choice]
        data = rng.integers(0, 200, n).astype(dtype)
        if dtype == np.float64 and spec.nullable:
            data[rng.random(n) < 0.3] = np.nan
        if rng.random() < p_bad and n:
            data = np.nan_to_num(data).astype(np.int64)
            data[int(rng.integers(n))] = 2**40 if kind == "int" else -1
    elif kind == "boolean":
        data = rng.integers(0, 2, n).astype([bool, bool, bool, np.int8, bool, object][choice])
    elif kind == "string":
        data = np.array(["r", "g", "i", "z"])[rng.integers(0, 4, n)]
        data = data.astype(["S4", "U4", "S1", object, "S4", "U2"][choice])
    else:
        data = np.zeros(n)
    if rng.random() < p_bad and n:
        data = data.astype(object)
        data[int(rng.integers(n))] = "bad" if kind != "string" else 3.5
    return MaskedColumn(data, name=spec.name, mask=mask) if mask.any() or choice == 0 else \
        Column(data, name=spec.name)


def _random_table(record: str, n: int, rng: np.random.Generator, p_bad: float = 0.0) -> Table:
    cols = [_random_column(s, n, rng, p_bad) for s in record_spec(record)
            if rng.random() > (0.03 if s.nullable else p_bad)]
    if record in FIELD_ALIASES and FIELD_ALIASES[record] and rng.random() < 0.3:
        alias, target = next(iter(FIELD_ALIASES[record].items()))
        for c in cols:
            if c.name == target:
                c.name = alias
    return Table(cols + [Column(np.arange(n), name="pixelId")])


def _typed(value: Any) -> Any:
    """A structure equal only when the types, NaNs and key orders are equal too."""
    if isinstance(value, dict):
        return [(k, _typed(v)) for k, v in value.items()]
    if isinstance(value, list):
        return [_typed(v) for v in value]
    return (type(value).__name__, repr(value))


def _outcome(func, *args, **kwargs) -> tuple:
    try:
        alert = func(*args, **kwargs)
    except AlertSchemaError as exc:
        return ("error", type(exc).__name__, str(exc), getattr(exc, "path", None))
    try:
        packet = serialize_alert(alert)
    except AlertSchemaError as exc:
        packet = ("unserialisable", str(exc))
    return ("ok", _typed(alert), packet)


def _alert_kwargs(rng, *, tables: bool, p_bad: float) -> dict[str, Any]:
    n_prv, n_forced = int(rng.integers(0, 6)), int(rng.integers(0, 6))
    if tables:
        sources = _random_table("diaSource", 3, rng, p_bad)
        objects = _random_table("diaObject", 2, rng, p_bad)
        prv = _random_table("diaSource", n_prv, rng, p_bad)
        forced = _random_table("diaForcedSource", n_forced, rng, p_bad)
        source, obj = sources[int(rng.integers(3))], objects[1]
    else:
        source, obj = _random_row("diaSource", rng, p_bad), _random_row("diaObject", rng, p_bad)
        prv = [_random_row("diaSource", rng, p_bad) for _ in range(n_prv)]
        forced = [_random_row("diaForcedSource", rng, p_bad) for _ in range(n_forced)]
    return dict(dia_source=source, dia_object=obj if rng.random() < 0.8 else None,
                prv_dia_sources=prv, prv_dia_forced_sources=forced,
                cutout_difference=b"FITS-d", cutout_template=None,
                nan_as_null=bool(rng.random() < 0.8))


def _assert_same(kwargs: dict[str, Any]) -> tuple:
    source = kwargs.pop("dia_source")
    ours = _outcome(build_alert, source, **kwargs)
    ref = _outcome(_ref_build_alert, source, **kwargs)
    assert ours == ref
    return ours


# ---- tests ------------------------------------------------------------------------------------


def test_dict_rows_give_the_reference_records_bytes_and_errors():
    rng = np.random.default_rng(20260)
    kinds = set()
    for case in range(200):
        kinds.add(_assert_same(_alert_kwargs(rng, tables=False, p_bad=0.004 if case % 3 else 0.0))[0])
    assert kinds == {"ok", "error"}  # both outcomes were exercised


def test_table_rows_and_history_tables_give_the_reference_records_bytes_and_errors():
    rng = np.random.default_rng(20261)
    kinds = set()
    for case in range(60):
        kinds.add(_assert_same(_alert_kwargs(rng, tables=True, p_bad=0.01 if case % 3 else 0.0))[0])
    assert kinds == {"ok", "error"}


def test_apdb_tables_with_nulls_give_the_reference_packets():
    from alertprod.alerts.examples import example_alert
    from alertprod.apdb.schema import conform

    alert = example_alert(7, n_prv_sources=12, n_prv_forced=9, cutout_size_pix=8)
    rng = np.random.default_rng(5)
    nullable = {s.name for r in ("diaSource", "diaObject", "diaForcedSource") for s in record_spec(r)
                if s.nullable}

    def table(rows, name):
        cols = {}
        for key in rows[0]:
            values = [r[key] for r in rows]
            mask = np.array([v is None for v in values])
            fill = next((v for v in values if v is not None), 0)
            cols[key] = MaskedColumn([fill if v is None else v for v in values], mask=mask)
            if cols[key].dtype.kind == "f" and key in nullable:
                cols[key][rng.random(len(rows)) < 0.2] = np.nan
        return conform(Table(cols), name)

    sources = table([alert["diaSource"]] + alert["prvDiaSources"], "DiaSource")
    objects = table([alert["diaObject"]], "DiaObject")
    forced = table(alert["prvDiaForcedSources"], "DiaForcedSource")
    for nan_as_null in (True, False):
        kwargs = dict(dia_object=objects[0], prv_dia_sources=sources[1:],
                      prv_dia_forced_sources=forced, cutout_difference=alert["cutoutDifference"],
                      cutout_template=alert["cutoutTemplate"], nan_as_null=nan_as_null)
        ours = build_alert(sources[0], **kwargs)
        assert _typed(ours) == _typed(_ref_build_alert(sources[0], **kwargs))
        assert serialize_alert(ours) == serialize_alert(_ref_build_alert(sources[0], **kwargs))


def test_to_record_with_extra_and_odd_rows_matches_reference():
    rng = np.random.default_rng(3)
    for _ in range(100):
        row = _random_row("ssSource", rng, 0.01)
        extra = {"diaSourceId": 5, "ssObjectId": 6}
        got = _outcome(to_record, row, "ssSource", extra=extra)
        assert got == _outcome(_ref_to_record, row, "ssSource", extra=extra)
    structured = np.array([(1, 2.5)], dtype=[("diaSourceId", "i8"), ("ra", "f8")])[0]
    assert _outcome(to_record, structured, "diaSource") == _outcome(_ref_to_record, structured, "diaSource")
    with pytest.raises(AlertFieldError, match="expected a mapping") as err:
        to_record(42, "diaSource", path="prvDiaSources[0]")
    assert err.value.path == "prvDiaSources[0]"

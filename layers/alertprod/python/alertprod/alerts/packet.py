"""Alert packets: Level 1 rows (Rubin APDB column names) to Rubin alert-schema records, and back-checks.

:func:`build_alert` maps one DiaSource with its DiaObject (or SSSource), history and cutouts to a
plain ``dict`` that fastavro serialises with the Rubin schema; :func:`validate_alert` checks such a
dict strictly and names the offending field path (``prvDiaSources[3].psfFlux``). Both walk the
field tables of :mod:`alertprod.alerts.schema`.

Notes
-----
fastavro's own ``validate`` reports a failing record but not which nested field failed, and does
no type coercion; the small walker here does both, which is why it is written by hand.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

import numpy as np

from alertprod.alerts.schema import SCHEMA_VERSION, FieldSpec, record_spec
from alertprod.errors import AlertSchemaError

__all__ = ["AlertFieldError", "FIELD_ALIASES", "build_alert", "validate_alert", "to_record"]

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


def _zero_when_missing(spec: FieldSpec) -> bool:
    """Non-null counters of the schema that a row may omit: they default to 0 data points."""
    return spec.kind == "int" and not spec.nullable and (
        spec.name.endswith("Ndata") or spec.name in ("nDiaSources", "bboxSize", "nObs")
    )


def _is_missing(value: Any) -> bool:
    return value is None or value is np.ma.masked


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


def _as_mapping(row: Any, path: str) -> Mapping[str, Any]:
    """A dict of one row: a Mapping, an astropy Table Row or a numpy structured scalar."""
    if isinstance(row, Mapping):
        return row
    names = getattr(row, "colnames", None) or getattr(getattr(row, "dtype", None), "names", None)
    if names is None:
        raise AlertFieldError(path, f"expected a mapping or a table row, got {type(row).__name__}")
    if hasattr(row, "table") and hasattr(row, "index"):
        # an astropy Row: a one-row slice converts to Python scalars at once, masked -> None
        # (Row.as_void() drops the masks of MaskedColumns)
        values = row.table[row.index:row.index + 1].as_array().tolist()[0]
    else:
        values = row.tolist()
    return dict(zip(names, values, strict=True))


def to_record(row: Any, record: str, *, path: str | None = None, nan_as_null: bool = True,
              extra: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Map one Level 1 row to a record of the alert schema.

    Parameters
    ----------
    row : Mapping or astropy.table.Row
        Column name to value; Rubin APDB names (aliases in :data:`FIELD_ALIASES` accepted).
        Unknown keys are dropped.
    record : str
        Record type: ``"diaSource"``, ``"diaForcedSource"``, ``"diaObject"``, ``"ssSource"``
        or ``"mpc_orbits"``.
    path : str, optional
        Where the record sits in the packet, for error messages (defaults to ``record``).
    nan_as_null : bool
        Write NaN of nullable float fields as null (Avro allows NaN; null is what Rubin emits
        for "not measured", and is 4 bytes shorter). NaN stays NaN in non-null float fields.
    extra : Mapping, optional
        Values used where the row lacks a field (the row wins).

    Returns
    -------
    dict
        Every field of the record, in schema order.

    Raises
    ------
    AlertFieldError
        A required field is missing or a value cannot take its schema type.
    """
    where = path or record
    data = _as_mapping(row, where)
    aliases = FIELD_ALIASES.get(record, {})
    if aliases:
        renamed = {aliases[k]: v for k, v in data.items() if k in aliases and aliases[k] not in data}
        if renamed:
            data = {**data, **renamed}
    out: dict[str, Any] = {}
    for spec in record_spec(record):
        value = data.get(spec.name)
        if _is_missing(value) and extra is not None:
            value = extra.get(spec.name)
        fpath = f"{where}.{spec.name}"
        if _is_missing(value):
            if spec.nullable:
                out[spec.name] = None
            elif spec.has_default:
                out[spec.name] = spec.default
            elif _zero_when_missing(spec):
                out[spec.name] = 0
            else:
                raise AlertFieldError(fpath, "required and missing")
            continue
        out[spec.name] = _coerce(value, spec, fpath, nan_as_null)
        if out[spec.name] is None and not spec.nullable:
            raise AlertFieldError(fpath, "null in a non-null field")
    return out


def _records(rows: Iterable[Any] | None, record: str, name: str, nan_as_null: bool) -> list[dict] | None:
    if rows is None:
        return None
    if hasattr(rows, "as_array") and hasattr(rows, "colnames"):
        # a whole astropy Table: one conversion to Python scalars (masked -> None) instead of per row
        names = rows.colnames
        rows = [dict(zip(names, values, strict=True)) for values in rows.as_array().tolist()]
    return [to_record(r, record, path=f"{name}[{i}]", nan_as_null=nan_as_null) for i, r in enumerate(rows)]


def build_alert(dia_source: Mapping[str, Any], *, dia_object: Mapping[str, Any] | None,
                prv_dia_sources: Sequence[Mapping[str, Any]] | None,
                prv_dia_forced_sources: Sequence[Mapping[str, Any]] | None,
                ss_source: Mapping[str, Any] | None = None,
                mpc_orbit: Mapping[str, Any] | None = None,
                cutout_difference: bytes | None, cutout_template: bytes | None,
                cutout_science: bytes | None = None,
                observation_reason: str | None = None, target_name: str | None = None,
                nan_as_null: bool = True) -> dict[str, Any]:
    """Build one Rubin alert packet from Level 1 rows.

    Parameters
    ----------
    dia_source : Mapping or astropy.table.Row
        The triggering DiaSource (APDB column names: ``diaSourceId``, ``visit``, ``detector``,
        ``midpointMjdTai`` [TAI MJD], ``ra``/``dec`` [deg], ``psfFlux`` [nJy], ...). Required:
        the non-null fields of the schema — ``diaSourceId``, ``visit``, ``detector``,
        ``midpointMjdTai``, ``ra``, ``dec``, ``x``, ``y``, ``timeProcessedMjdTai``; counters
        (``psfNdata``, ``trailNdata``, ``dipoleNdata``, ``bboxSize``) default to 0.
    dia_object : Mapping or None
        The associated DiaObject's current version, or None for a solar-system source.
    prv_dia_sources, prv_dia_forced_sources : sequence of Mapping, or None
        Up to 12 months of earlier DiaSources and DiaForcedSources of the object (rows or an
        astropy Table). None means "not provided"; an empty sequence means "none exist".
    ss_source : Mapping, optional
        SSSource row when the source is a known solar-system object. ``diaSourceId`` and
        ``ssObjectId`` are taken from ``dia_source`` when absent.
    mpc_orbit : Mapping, optional
        The object's row of the MPC orbit table (schema ``mpc_orbits``).
    cutout_difference, cutout_template, cutout_science : bytes or None
        FITS cutouts.
    observation_reason, target_name : str, optional
        Scheduler metadata of the visit (RTN-097).
    nan_as_null : bool
        Write NaN of nullable float fields as null (see :func:`to_record`).

    Returns
    -------
    dict
        The alert record, ready for :func:`alertprod.alerts.serialize.serialize_alert`.
        Its id (``diaSourceId``) is the triggering DiaSource's id.

    Raises
    ------
    AlertFieldError
        (an :class:`~alertprod.errors.AlertSchemaError`) naming the offending field path.
    """
    if dia_source is None:
        raise AlertFieldError("diaSource", "dia_source is required")
    src = to_record(dia_source, "diaSource", nan_as_null=nan_as_null)
    ss = None
    if ss_source is not None:
        ss = to_record(ss_source, "ssSource", nan_as_null=nan_as_null,
                       extra={"diaSourceId": src["diaSourceId"], "ssObjectId": src["ssObjectId"]})
    cutouts = {}
    for name, blob in (("cutoutDifference", cutout_difference), ("cutoutScience", cutout_science),
                       ("cutoutTemplate", cutout_template)):
        if blob is not None and not isinstance(blob, (bytes, bytearray, memoryview)):
            raise AlertFieldError(name, f"expected FITS bytes, got {type(blob).__name__}")
        cutouts[name] = None if blob is None else bytes(blob)
    return {
        "diaSourceId": src["diaSourceId"],
        "observation_reason": observation_reason,
        "target_name": target_name,
        "diaSource": src,
        "prvDiaSources": _records(prv_dia_sources, "diaSource", "prvDiaSources", nan_as_null),
        "prvDiaForcedSources": _records(prv_dia_forced_sources, "diaForcedSource",
                                        "prvDiaForcedSources", nan_as_null),
        "diaObject": None if dia_object is None else to_record(dia_object, "diaObject",
                                                               nan_as_null=nan_as_null),
        "ssSource": ss,
        "mpc_orbits": None if mpc_orbit is None else to_record(mpc_orbit, "mpc_orbits",
                                                              nan_as_null=nan_as_null),
        **cutouts,
    }


_PY_TYPES: dict[str, tuple[type, ...]] = {
    "long": (int,), "int": (int,), "float": (float, int), "double": (float, int),
    "boolean": (bool,), "string": (str,), "bytes": (bytes,), "timestamp-micros": (int, datetime),
}


def _check(record: Mapping[str, Any], name: str, where: str) -> None:
    if not isinstance(record, Mapping):
        raise AlertFieldError(where, f"expected a record, got {type(record).__name__}")
    specs = record_spec(name)
    known = {s.name for s in specs}
    unknown = [k for k in record if k not in known]
    if unknown:
        raise AlertFieldError(f"{where}.{unknown[0]}" if where else unknown[0],
                              f"not a field of {name}")
    for spec in specs:
        fpath = f"{where}.{spec.name}" if where else spec.name
        if spec.name not in record:
            if spec.has_default:
                continue
            raise AlertFieldError(fpath, "required and missing")
        value = record[spec.name]
        if value is None:
            if not spec.nullable:
                raise AlertFieldError(fpath, "null in a non-null field")
            continue
        if spec.kind == "record":
            _check(value, spec.record, fpath)
        elif spec.kind == "array":
            if not isinstance(value, (list, tuple)):
                raise AlertFieldError(fpath, f"expected a list, got {type(value).__name__}")
            for i, item in enumerate(value):
                _check(item, spec.record, f"{fpath}[{i}]")
        else:
            ok = isinstance(value, _PY_TYPES[spec.kind]) and not (
                spec.kind != "boolean" and isinstance(value, bool))
            if not ok:
                raise AlertFieldError(fpath, f"{value!r} ({type(value).__name__}) is not Avro {spec.kind}")
            if spec.kind in _INT_RANGE and not _INT_RANGE[spec.kind][0] <= value <= _INT_RANGE[spec.kind][1]:
                raise AlertFieldError(fpath, f"{value} is out of range for Avro {spec.kind}")
            if spec.kind == "float" and math.isfinite(value) and abs(value) > _FLOAT32_MAX:
                raise AlertFieldError(fpath, f"{value!r} overflows a 32-bit float")


def validate_alert(alert: Mapping[str, Any]) -> None:
    """Check an alert record strictly against the Rubin alert schema.

    Parameters
    ----------
    alert : Mapping
        An alert record as :func:`build_alert` returns it or a decoder yields it.

    Raises
    ------
    AlertFieldError
        (an :class:`~alertprod.errors.AlertSchemaError`) with ``.path`` naming the first
        offending field, e.g. ``"prvDiaSources[3].psfFlux"``; also for unknown keys.
    """
    _check(alert, "alert", "")
    if alert["diaSourceId"] != alert["diaSource"]["diaSourceId"]:
        raise AlertFieldError("diaSourceId", "differs from diaSource.diaSourceId")

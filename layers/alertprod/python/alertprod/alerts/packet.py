"""Alert packets: Level 1 rows (Rubin APDB column names) to Rubin alert-schema records, and back-checks.

:func:`build_alert` maps one DiaSource with its DiaObject (or SSSource), history and cutouts to a
plain ``dict`` that fastavro serialises with the Rubin schema; :func:`validate_alert` checks such a
dict strictly and names the offending field path (``prvDiaSources[3].psfFlux``). Both walk the
field tables of :mod:`alertprod.alerts.schema`.

:func:`build_alerts` does the same for all DiaSources of a CCD at once, converting each input
table column by column once instead of row by row (see :mod:`alertprod.alerts._convert`).

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
from astropy.table import Table

from alertprod.alerts._convert import (
    _FLOAT32_MAX,
    _INT_RANGE,
    FIELD_ALIASES,
    AlertFieldError,
    row_record,
    table_records,
)
from alertprod.alerts.schema import record_spec
from alertprod.errors import AlertSchemaError

__all__ = ["AlertFieldError", "FIELD_ALIASES", "build_alert", "build_alerts", "validate_alert",
           "to_record"]


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
    return row_record(row, record, path or record, nan_as_null, extra)


def _records(rows: Iterable[Any] | None, record: str, name: str, nan_as_null: bool) -> list[dict] | None:
    if rows is None:
        return None
    if isinstance(rows, Table):
        # a whole astropy Table: converted column by column
        return table_records(rows, record, lambda k: f"{name}[{k}]", nan_as_null)
    if hasattr(rows, "as_array") and hasattr(rows, "colnames"):
        names = rows.colnames
        rows = [dict(zip(names, values, strict=True)) for values in rows.as_array().tolist()]
    return [row_record(r, record, f"{name}[{i}]", nan_as_null) for i, r in enumerate(rows)]


def _cutouts(difference: Any, science: Any, template: Any) -> dict[str, bytes | None]:
    cutouts = {}
    for name, blob in (("cutoutDifference", difference), ("cutoutScience", science),
                       ("cutoutTemplate", template)):
        if blob is not None and not isinstance(blob, (bytes, bytearray, memoryview)):
            raise AlertFieldError(name, f"expected FITS bytes, got {type(blob).__name__}")
        cutouts[name] = None if blob is None else bytes(blob)
    return cutouts


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
    cutouts = _cutouts(cutout_difference, cutout_science, cutout_template)
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


def _grouped_history(table: Table, record: str, name: str, arg: str,
                     nan_as_null: bool, *, by: str = "diaObjectId") -> dict[int, list[dict]]:
    """Records of a history table by ``by`` (an object id), each group in ``midpointMjdTai`` order."""
    if len(table) == 0:
        return {}
    for col in (by, "midpointMjdTai"):
        if col not in table.colnames:
            raise AlertSchemaError(f"{arg}: a history table needs a {col!r} column")
    ids = np.asarray(np.ma.filled(np.ma.asarray(table[by]), 0), np.int64)
    order = np.lexsort((np.asarray(table["midpointMjdTai"], float), ids))
    ids = ids[order]
    starts = np.flatnonzero(np.r_[True, ids[1:] != ids[:-1]])
    ends = np.r_[starts[1:], len(ids)]
    position = np.arange(len(ids)) - np.repeat(starts, ends - starts)  # index within the group
    records = table_records(table[order], record, lambda k: f"{name}[{position[k]}]", nan_as_null)
    return {int(ids[s]): records[s:e] for s, e in zip(starts.tolist(), ends.tolist(), strict=True)}


def _aligned(values: Sequence[Any] | None, n: int, arg: str) -> Sequence[Any]:
    if values is None:
        return [None] * n
    if len(values) != n:
        raise AlertSchemaError(f"{arg}: {len(values)} values for {n} DiaSources")
    return values


def build_alerts(dia_sources: Table, *, dia_objects: Table | Mapping[int, Any] | None,
                 prv_dia_sources: Table | Mapping[int, Any] | None,
                 prv_dia_forced_sources: Table | Mapping[int, Any] | None,
                 ss_sources: Mapping[int, Any] | None = None,
                 mpc_orbits: Mapping[int, Any] | None = None,
                 prv_ss_sources: Table | None = None,
                 cutouts_difference: Sequence[bytes | None] | None,
                 cutouts_template: Sequence[bytes | None] | None,
                 cutouts_science: Sequence[bytes | None] | None = None,
                 observation_reason: str | None = None, target_name: str | None = None,
                 nan_as_null: bool = True) -> list[dict[str, Any]]:
    """Alert packets of many DiaSources (a CCD) at once, each table converted once, column-wise.

    The same records as :func:`build_alert` called per row, with each source's DiaObject and
    history looked up by its ``diaObjectId`` (none when it is null or 0).

    Parameters
    ----------
    dia_sources : astropy.table.Table
        The triggering DiaSources, one alert per row, in row order.
    dia_objects : Table or Mapping or None
        DiaObject versions: a table (indexed by its ``diaObjectId`` column) or a mapping
        ``diaObjectId`` → row. A source whose object is absent gets ``diaObject`` null.
    prv_dia_sources, prv_dia_forced_sources : Table or Mapping or None
        History: one table of all the objects' earlier rows (grouped here by ``diaObjectId`` and
        sorted by ``midpointMjdTai`` [TAI MJD]), or a mapping ``diaObjectId`` → rows (a Table
        or sequence, used in its order). An object without history gets an empty list; None
        means "not provided" for every alert.
    ss_sources : Mapping, optional
        SSSource rows by ``diaSourceId``.
    mpc_orbits : Mapping, optional
        MPC orbit rows by ``ssObjectId``.
    prv_ss_sources : Table, optional
        Earlier DiaSources of known asteroids (grouped by ``ssObjectId``): the
        ``prvDiaSources`` of a source associated with an SSObject (seed step 2).
    cutouts_difference, cutouts_template, cutouts_science : sequence of bytes or None
        FITS cutouts aligned with the rows of ``dia_sources`` (None: no such cutouts).
    observation_reason, target_name : str, optional
        Scheduler metadata of the visit (RTN-097).
    nan_as_null : bool
        As for :func:`build_alert`.

    Returns
    -------
    list of dict
        One alert record per row of ``dia_sources``. Records shared by several alerts (the
        history of an object with two sources) are copies, not the same dicts.

    Raises
    ------
    AlertFieldError
        Naming the offending field path, as :func:`build_alert`.
    AlertSchemaError
        When an argument has the wrong type or length.
    """
    if not isinstance(dia_sources, Table):
        raise AlertSchemaError(f"dia_sources: expected an astropy Table, got {type(dia_sources).__name__}")
    n = len(dia_sources)
    difference = _aligned(cutouts_difference, n, "cutouts_difference")
    template = _aligned(cutouts_template, n, "cutouts_template")
    science = _aligned(cutouts_science, n, "cutouts_science")
    sources = table_records(dia_sources, "diaSource", lambda k: "diaSource", nan_as_null)
    if isinstance(dia_objects, Table):
        objects = {r["diaObjectId"]: r for r in
                   table_records(dia_objects, "diaObject", lambda k: "diaObject", nan_as_null)}
    else:
        objects = {}
    histories = []
    for arg, rows, record, name in (
            ("prv_dia_sources", prv_dia_sources, "diaSource", "prvDiaSources"),
            ("prv_dia_forced_sources", prv_dia_forced_sources, "diaForcedSource",
             "prvDiaForcedSources")):
        if isinstance(rows, Table):
            histories.append(_grouped_history(rows, record, name, arg, nan_as_null))
        else:
            histories.append({} if rows is None else
                             {k: _records(v, record, name, nan_as_null) for k, v in rows.items()})
    ss_history = {} if prv_ss_sources is None else _grouped_history(
        prv_ss_sources, "diaSource", "prvDiaSources", "prv_ss_sources", nan_as_null, by="ssObjectId")
    seen: set[int] = set()
    out = []
    for k, src in enumerate(sources):
        oid = src["diaObjectId"]
        obj = prv = forced = None
        if isinstance(dia_objects, Table):
            obj = objects.get(oid) if oid else None
        elif dia_objects is not None and oid and oid in dia_objects:
            obj = to_record(dia_objects[oid], "diaObject", nan_as_null=nan_as_null)
        if prv_dia_sources is not None:
            prv = histories[0].get(oid, []) if oid else []
        if not oid and src["ssObjectId"] and src["ssObjectId"] in ss_history:
            prv = [dict(r) for r in ss_history[src["ssObjectId"]]]
        if prv_dia_forced_sources is not None:
            forced = histories[1].get(oid, []) if oid else []
        if oid in seen:  # a second source of the same object: its own copies
            obj = None if obj is None else dict(obj)
            prv = None if prv is None else [dict(r) for r in prv]
            forced = None if forced is None else [dict(r) for r in forced]
        elif oid:
            seen.add(oid)
        ss = None if ss_sources is None else ss_sources.get(src["diaSourceId"])
        if ss is not None:
            ss = to_record(ss, "ssSource", nan_as_null=nan_as_null,
                           extra={"diaSourceId": src["diaSourceId"], "ssObjectId": src["ssObjectId"]})
        sid = src["ssObjectId"]
        mpc = mpc_orbits.get(sid) if mpc_orbits is not None and sid else None
        out.append({
            "diaSourceId": src["diaSourceId"],
            "observation_reason": observation_reason,
            "target_name": target_name,
            "diaSource": src,
            "prvDiaSources": prv if prv is None else list(prv),
            "prvDiaForcedSources": forced if forced is None else list(forced),
            "diaObject": obj,
            "ssSource": ss,
            "mpc_orbits": None if mpc is None else to_record(mpc, "mpc_orbits", nan_as_null=nan_as_null),
            **_cutouts(difference[k], science[k], template[k]),
        })
    return out


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

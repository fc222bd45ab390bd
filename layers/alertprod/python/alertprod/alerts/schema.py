"""The Rubin alert schema, as shipped by ``lsst-alert-packet``, loaded once and described field by field.

The schema files come from the installed ``lsst-alert-packet`` (its ``latest.txt`` names the
version); we parse them with fastavro once and cache the result. :data:`SCHEMA_ID` is the id the
Confluent wire header carries: Rubin's schema registry numbers a version ``M.m`` as
``int(f"{M}{m:02d}")`` (``lsst.alert.packet.Schema.get_schema_id``), so v11.1 is 1101.

:func:`record_spec` turns each Avro record into a table of :class:`FieldSpec` so that packet
building and validation can walk the schema without re-interpreting Avro JSON on every call.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any, NamedTuple

import fastavro
from lsst.alert import packet as lsst_packet

from alertprod.errors import AlertSchemaError

__all__ = [
    "SCHEMA_VERSION",
    "SCHEMA_ID",
    "FieldSpec",
    "parsed_schema",
    "schema_for_id",
    "schema_id_for_version",
    "record_spec",
    "RECORD_NAMES",
]


def schema_id_for_version(major: int, minor: int) -> int:
    """Schema-registry id of alert schema version ``major.minor`` (Rubin's convention: 11.1 → 1101)."""
    if major < 0 or not 0 <= minor < 100:
        raise AlertSchemaError(f"schema version {major}.{minor}: minor must be in [0, 100)")
    return int(f"{major}{minor:02d}")


_MAJOR, _MINOR = lsst_packet.get_latest_schema_version()

#: Version of the Rubin alert schema our packets follow, e.g. ``"11.1"``.
SCHEMA_VERSION: str = f"{_MAJOR}.{_MINOR}"

#: Schema-registry id carried by the Confluent wire header of every packet (1101 for v11.1).
SCHEMA_ID: int = schema_id_for_version(_MAJOR, _MINOR)

#: Short names of the nested record types of the alert schema, as the schema names them.
RECORD_NAMES = ("alert", "diaSource", "diaForcedSource", "diaObject", "ssSource", "mpc_orbits")


def _schema_file(major: int, minor: int) -> Path:
    return Path(lsst_packet.get_schema_path(major, minor)) / f"lsst.v{major}_{minor}.alert.avsc"


@functools.cache
def _load(major: int, minor: int) -> dict[str, Any]:
    path = _schema_file(major, minor)
    if not path.is_file():
        raise AlertSchemaError(f"lsst-alert-packet has no alert schema version {major}.{minor}")
    # load_schema resolves the named types of the sibling .avsc files and returns a parsed schema
    return fastavro.schema.load_schema(str(path))


def parsed_schema() -> dict[str, Any]:
    """The latest Rubin alert schema, parsed by fastavro (cached; do not mutate)."""
    return _load(_MAJOR, _MINOR)


@functools.cache
def schema_for_id(schema_id: int) -> dict[str, Any]:
    """Parsed alert schema for a schema-registry id, for packets of older versions.

    Raises
    ------
    AlertSchemaError
        When ``lsst-alert-packet`` does not ship that version.
    """
    if schema_id == SCHEMA_ID:
        return parsed_schema()
    major, minor = divmod(int(schema_id), 100)
    try:
        return _load(major, minor)
    except AlertSchemaError:
        raise
    except Exception as exc:
        raise AlertSchemaError(f"cannot load alert schema id {schema_id}: {exc}") from exc


class FieldSpec(NamedTuple):
    """One field of an Avro record of the alert schema.

    Attributes
    ----------
    name : str
        Field name as the schema spells it.
    kind : str
        ``"long"``, ``"int"``, ``"float"``, ``"double"``, ``"boolean"``, ``"string"``,
        ``"bytes"``, ``"timestamp-micros"``, ``"record"`` or ``"array"``.
    nullable : bool
        Whether the Avro type is a union with ``"null"``.
    has_default : bool
        Whether the schema declares a default.
    default : Any
        The declared default (``None`` for the usual nullable fields).
    record : str or None
        For ``kind`` ``"record"`` or ``"array"``, the short name of the (item) record type.
    """

    name: str
    kind: str
    nullable: bool
    has_default: bool
    default: Any
    record: str | None


def _short(name: str) -> str:
    return name.rsplit(".", 1)[-1]


def _kind_of(avro_type: Any, named: dict[str, Any]) -> tuple[str, str | None]:
    if isinstance(avro_type, str):
        if avro_type in named:
            return "record", _short(avro_type)
        return avro_type, None
    if isinstance(avro_type, dict):
        if avro_type.get("logicalType") == "timestamp-micros":
            return "timestamp-micros", None
        t = avro_type["type"]
        if t == "record":
            return "record", _short(avro_type["name"])
        if t == "array":
            item_kind, item_record = _kind_of(avro_type["items"], named)
            if item_kind != "record":
                raise AlertSchemaError(f"unsupported array of {item_kind} in the alert schema")
            return "array", item_record
        return _kind_of(t, named)
    raise AlertSchemaError(f"unsupported Avro type {avro_type!r} in the alert schema")


def _records(schema: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Every named record of the parsed schema, by short name."""
    named = schema.get("__named_schemas", {})
    out = {_short(k): v for k, v in named.items() if isinstance(v, dict) and v.get("type") == "record"}
    out.setdefault(_short(schema["name"]), schema)
    return out


@functools.cache
def record_spec(record: str) -> tuple[FieldSpec, ...]:
    """Field specifications of one record type of the latest schema, in schema order.

    Parameters
    ----------
    record : str
        One of :data:`RECORD_NAMES` (also ``"ssObject"`` when the schema defines it).
    """
    schema = parsed_schema()
    records = _records(schema)
    if record not in records:
        raise AlertSchemaError(f"record={record!r} is not a record of alert schema {SCHEMA_VERSION}")
    named = schema.get("__named_schemas", {})
    specs = []
    for f in records[record]["fields"]:
        t = f["type"]
        nullable = isinstance(t, list) and "null" in t
        if isinstance(t, list):
            others = [x for x in t if x != "null"]
            if len(others) != 1:
                raise AlertSchemaError(f"{record}.{f['name']}: unions of several types are unsupported")
            t = others[0]
        kind, sub = _kind_of(t, named)
        specs.append(FieldSpec(f["name"], kind, nullable, "default" in f, f.get("default"), sub))
    return tuple(specs)

"""The fields a filter may name, derived from the Rubin alert schema the project builds packets with.

Every scalar field of the packet's top level (``diaSourceId``, ``observation_reason``,
``target_name``) and of its ``diaSource``, ``diaObject`` and ``ssSource`` records, read from
:func:`alertprod.alerts.schema.record_spec` — never a hand-written list, so a new schema version
brings its fields with it. Avro ``int``/``long`` are integers, ``float``/``double`` are reals
(both "numbers" to the type checker), ``boolean`` and ``string`` are their own types. Arrays
(``prvDiaSources``), nested records (``mpc_orbits``) and bytes (cutouts) are not filterable.
"""

from __future__ import annotations

import difflib
import functools
from collections.abc import Mapping
from types import MappingProxyType
from typing import NamedTuple

from alertprod.alerts.schema import record_spec

__all__ = ["FieldInfo", "filter_fields", "FILTER_RECORDS", "suggest_field"]

#: Records of the packet whose scalar fields a filter may name, besides the top level.
FILTER_RECORDS = ("diaSource", "diaObject", "ssSource")

_TYPES = {"int": "int", "long": "int", "float": "float", "double": "float", "boolean": "bool",
          "string": "str"}


class FieldInfo(NamedTuple):
    """One filterable field.

    Attributes
    ----------
    path : str
        As a filter writes it: ``"diaSource.snr"``, ``"diaSourceId"``.
    record : str or None
        ``"diaSource"``, ``"diaObject"``, ``"ssSource"``, or None for the top level.
    name : str
        The field's name in its record.
    type : str
        ``"int"``, ``"float"``, ``"bool"`` or ``"str"``.
    avro_kind : str
        The Avro type (``"long"``, ``"float"``, ...).
    nullable : bool
        Whether the value can be null (every field of a nullable record can be).
    """

    path: str
    record: str | None
    name: str
    type: str
    avro_kind: str
    nullable: bool


@functools.cache
def filter_fields() -> Mapping[str, FieldInfo]:
    """Every filterable field of the current alert schema, by path (cached, read-only)."""
    out: dict[str, FieldInfo] = {}
    top = {s.name: s for s in record_spec("alert")}
    for spec in top.values():
        if spec.kind in _TYPES:
            out[spec.name] = FieldInfo(spec.name, None, spec.name, _TYPES[spec.kind], spec.kind,
                                       spec.nullable)
    for record in FILTER_RECORDS:
        record_nullable = top[record].nullable
        for spec in record_spec(record):
            if spec.kind in _TYPES:
                path = f"{record}.{spec.name}"
                out[path] = FieldInfo(path, record, spec.name, _TYPES[spec.kind], spec.kind,
                                      spec.nullable or record_nullable)
    return MappingProxyType(out)


def suggest_field(path: str) -> str | None:
    """The known field closest to ``path`` (same spelling ignoring case first), or None."""
    fields = filter_fields()
    by_lower = {p.lower(): p for p in fields}
    if path.lower() in by_lower:
        return by_lower[path.lower()]
    close = difflib.get_close_matches(path, list(fields), n=1, cutoff=0.8)
    return close[0] if close else None

"""Alert packets as bytes: schemaless Avro in the Confluent wire frame, and Avro object-container files.

A packet that travels alone (an SNS message, a Kafka record) is the schemaless Avro encoding of
the record with the Rubin schema, prefixed by the Confluent wire header: magic byte ``0`` and the
4-byte big-endian schema-registry id (:data:`~alertprod.alerts.schema.SCHEMA_ID`, 1101 for v11.1).
A broker holding only ``lsst-alert-packet`` decodes it with
``Schema.from_file().deserialize(data[5:])``. Archives and replay exports are Avro object-container
files with the schema embedded, readable by ``fastavro.reader``.
"""

from __future__ import annotations

import functools
import io
import struct
from collections.abc import Iterable, Iterator, Mapping
from typing import IO, Any, NamedTuple

import fastavro

from alertprod.alerts._fastencode import avro_long, encode_alert
from alertprod.alerts.schema import SCHEMA_ID, parsed_schema, schema_for_id
from alertprod.errors import AlertSchemaError

__all__ = [
    "MAGIC_BYTE",
    "HEADER_BYTES",
    "Unframed",
    "frame",
    "unframe",
    "unframe_header",
    "serialize_alert",
    "deserialize_alert",
    "write_alert_container",
    "read_alert_container",
    "alert_container_bytes",
    "container_from_packets",
]

#: First byte of every Confluent-framed message.
MAGIC_BYTE = 0
_HEADER = struct.Struct(">bI")
#: Length of the Confluent wire header (magic byte + 4-byte schema id).
HEADER_BYTES = _HEADER.size

#: Sync marker of our container files: fixed, so that a retried archive write is byte-identical.
_SYNC_MARKER = b"alertprod\x00v11\x00\x00\x00\x00"[:16]


@functools.cache
def _union_branches() -> dict[str, str]:
    """Top-level ``["null", X]`` fields of the alert schema and the name of their X branch."""
    out = {}
    for f in parsed_schema()["fields"]:
        if isinstance(f["type"], list):
            (branch,) = [t for t in f["type"] if t != "null"]
            if isinstance(branch, dict):
                branch = branch["name"] if branch["type"] == "record" else branch["type"]
            out[f["name"]] = branch
    return out


def _tagged(alert: Mapping[str, Any]) -> dict[str, Any]:
    """The alert with its top-level union values in fastavro's ``(branch, value)`` tuple notation.

    Without it fastavro picks a union branch by deep-validating the value against each branch,
    i.e. validates the whole history and cutouts before writing them: naming the branch makes
    encoding ~1.5x faster, with byte-identical output.
    """
    branches = _union_branches()
    return {k: ((branches[k], v) if v is not None and k in branches and not isinstance(v, tuple)
                else v) for k, v in alert.items()}


class Unframed(NamedTuple):
    """A Confluent-framed message split into its schema id and Avro payload."""

    schema_id: int
    payload: bytes


def frame(payload: bytes, *, schema_id: int = SCHEMA_ID) -> bytes:
    """Prefix an Avro payload with the Confluent wire header (magic byte 0, big-endian schema id)."""
    if not 0 <= schema_id < 2**32:
        raise AlertSchemaError(f"schema_id={schema_id} does not fit the 4-byte header")
    return _HEADER.pack(MAGIC_BYTE, schema_id) + bytes(payload)


def unframe(data: bytes) -> Unframed:
    """Split a Confluent-framed message into schema id and payload.

    Raises
    ------
    AlertSchemaError
        When ``data`` is shorter than the header or its first byte is not the magic byte 0.
    """
    return Unframed(unframe_header(data), bytes(data[HEADER_BYTES:]))


def unframe_header(data: bytes) -> int:
    """The schema id of a Confluent-framed message, after checking its header (see :func:`unframe`)."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise AlertSchemaError(f"data must be bytes, got {type(data).__name__}")
    if len(data) < HEADER_BYTES:
        raise AlertSchemaError(f"data is {len(data)} bytes, shorter than the {HEADER_BYTES}-byte "
                               "Confluent wire header")
    magic, schema_id = _HEADER.unpack_from(data)
    if magic != MAGIC_BYTE:
        raise AlertSchemaError(f"data starts with byte {data[0]:#04x}, not the Confluent magic byte "
                               "0x00: not a framed alert packet")
    return schema_id


def serialize_alert(alert: Mapping[str, Any]) -> bytes:
    """Encode an alert record as a Confluent-framed schemaless Avro packet.

    Parameters
    ----------
    alert : Mapping
        A record as :func:`~alertprod.alerts.packet.build_alert` returns it.

    Returns
    -------
    bytes
        ``b"\\x00" + schema_id (4 bytes, big-endian) + Avro``.

    Raises
    ------
    AlertSchemaError
        When fastavro cannot encode the record (run
        :func:`~alertprod.alerts.packet.validate_alert` for the offending field).
    """
    # Column-wise encoder, byte-identical and ~3x faster; None for anything it does not cover,
    # which fastavro then encodes (or rejects) as before.
    payload = encode_alert(alert)
    if payload is not None:
        return _HEADER.pack(MAGIC_BYTE, SCHEMA_ID) + payload
    buf = io.BytesIO()
    buf.write(_HEADER.pack(MAGIC_BYTE, SCHEMA_ID))
    try:
        fastavro.schemaless_writer(buf, parsed_schema(), _tagged(alert))
    except (TypeError, ValueError, KeyError, AttributeError, struct.error) as exc:
        raise AlertSchemaError(f"alert {alert.get('diaSourceId')!r} does not fit the alert schema: "
                               f"{exc}") from exc
    return buf.getvalue()


def deserialize_alert(data: bytes) -> dict[str, Any]:
    """Decode a Confluent-framed packet with the schema version its header names.

    Raises
    ------
    AlertSchemaError
        Bad magic byte, a schema id ``lsst-alert-packet`` does not know, or a corrupt payload.
    """
    schema_id = unframe_header(data)
    schema = schema_for_id(schema_id)
    buf = io.BytesIO(data)
    buf.seek(HEADER_BYTES)  # decode in place: no copy of the payload
    try:
        return fastavro.schemaless_reader(buf, schema)
    except (EOFError, ValueError, TypeError, UnicodeDecodeError, IndexError) as exc:
        raise AlertSchemaError(f"payload does not decode with alert schema id {schema_id}: {exc}") from exc


def write_alert_container(alerts: Iterable[Mapping[str, Any]], fileobj: IO[bytes], *,
                          codec: str = "deflate") -> None:
    """Write alerts to an Avro object-container file with the Rubin schema embedded.

    Parameters
    ----------
    alerts : iterable of Mapping
        Alert records.
    fileobj : binary file object
        Destination, opened for writing.
    codec : str
        Block codec; ``"deflate"`` (zlib, every Avro reader has it) or ``"null"``.
    """
    try:
        fastavro.writer(fileobj, parsed_schema(), (_tagged(a) for a in alerts), codec=codec,
                        sync_marker=_SYNC_MARKER)
    except (TypeError, ValueError, KeyError, AttributeError, struct.error) as exc:
        raise AlertSchemaError(f"alert does not fit the alert schema: {exc}") from exc


def alert_container_bytes(alerts: Iterable[Mapping[str, Any]], *, codec: str = "deflate") -> bytes:
    """:func:`write_alert_container` into bytes (one archive object)."""
    buf = io.BytesIO()
    write_alert_container(alerts, buf, codec=codec)
    return buf.getvalue()


def read_alert_container(fileobj: IO[bytes] | bytes) -> Iterator[dict[str, Any]]:
    """Iterate over the alert records of an Avro object-container file (its embedded schema is used).

    Raises
    ------
    AlertSchemaError
        When the data is not an Avro object-container file.
    """
    if isinstance(fileobj, (bytes, bytearray, memoryview)):
        fileobj = io.BytesIO(bytes(fileobj))
    try:
        reader = fastavro.reader(fileobj)
    except (ValueError, EOFError, TypeError) as exc:
        raise AlertSchemaError(f"not an Avro object-container file: {exc}") from exc
    yield from reader


@functools.cache
def _container_header() -> bytes:
    """Header of our object-container files (magic, schema, codec null, the fixed sync marker)."""
    buf = io.BytesIO()
    fastavro.writer(buf, parsed_schema(), [], codec="null", sync_marker=_SYNC_MARKER)
    return buf.getvalue()


def container_from_packets(packets: Iterable[bytes]) -> bytes:
    """An object-container file (codec null) of already serialised, framed packets.

    Written by hand around fastavro's own header: fastavro has no call that appends datums
    already encoded, and re-encoding an alert costs milliseconds. A block is the record count
    and byte size (Avro longs), the concatenated datums, then the sync marker; the result reads
    back with ``fastavro.reader`` and :func:`read_alert_container` like any other container.
    """
    datums = [unframe(p).payload for p in packets]
    body = b"".join(datums)
    if not datums:
        return _container_header()
    return _container_header() + avro_long(len(datums)) + avro_long(len(body)) + body + _SYNC_MARKER

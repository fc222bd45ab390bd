"""Packing of APDB rows into compact bytes for DynamoDB binary attributes, and back.

A row is stored as one ``B`` attribute: a format byte, a null bitmap (one bit per schema
column, little-endian bit order) and the row as a packed little-endian numpy record in schema
order (strings fixed-width). A DiaSource row takes ~360 bytes, a DiaObject row ~370, a
DiaForcedSource row ~70 — against ~3× that as DynamoDB maps of numbers. Packing and unpacking
are vectorised over a whole table (one ``numpy`` view, no per-value Python).

Written by hand because no library packs numpy records with nulls into per-row blobs:
Avro/Parquet encode whole files, with per-file schema headers far larger than one row.
"""

from __future__ import annotations

from functools import cache

import numpy as np
from astropy.table import Table

from alertprod.apdb.schema import _make_column, columns, conform, numpy_dtype
from alertprod.errors import CatalogError

__all__ = ["FORMAT_VERSION", "row_dtype", "row_size", "pack_rows", "unpack_rows"]

#: First byte of every packed row; bump when the layout (or columns.json) changes.
FORMAT_VERSION = 1


@cache
def row_dtype(name: str) -> np.dtype:
    """Packed (unaligned, little-endian) numpy record dtype of one APDB table's row."""
    return np.dtype([(c["name"], numpy_dtype(c)) for c in columns(name)], align=False)


@cache
def _bitmap_bytes(name: str) -> int:
    return (len(columns(name)) + 7) // 8


def row_size(name: str) -> int:
    """Size in bytes of one packed row of table ``name``."""
    return 1 + _bitmap_bytes(name) + row_dtype(name).itemsize


def pack_rows(table: Table, name: str) -> list[bytes]:
    """Pack each row of a table into bytes.

    Parameters
    ----------
    table : astropy.table.Table
        Rows with (a superset or subset of) the schema columns of ``name``; conformed first
        (:func:`alertprod.apdb.schema.conform`), so missing nullable columns become nulls.
    name : str
        APDB table name.

    Returns
    -------
    list of bytes
        One blob of :func:`row_size` bytes per row, in table order.
    """
    t = conform(table, name)
    n = len(t)
    if n == 0:
        return []
    dtype = row_dtype(name)
    rec = np.zeros(n, dtype=dtype)
    nulls = np.zeros((n, len(dtype.names)), dtype=bool)
    for j, cname in enumerate(dtype.names):
        col = t[cname]
        data = np.ma.getdata(col)
        rec[cname] = data
        if data.dtype.kind == "f":
            nulls[:, j] = np.isnan(data)
        elif hasattr(col, "mask"):
            nulls[:, j] = np.ma.getmaskarray(col)
    bits = np.packbits(nulls, axis=1, bitorder="little")
    head = np.full((n, 1), FORMAT_VERSION, dtype=np.uint8)
    body = rec.view(np.uint8).reshape(n, dtype.itemsize)
    rows = np.concatenate([head, bits, body], axis=1)
    return [r.tobytes() for r in rows]


def unpack_rows(blobs: list[bytes], name: str) -> Table:
    """Unpack blobs written by :func:`pack_rows` into a schema-conformant table.

    Raises
    ------
    CatalogError
        When a blob has the wrong size or format byte (written for another schema version).
    """
    dtype = row_dtype(name)
    cols = columns(name)
    n = len(blobs)
    size = row_size(name)
    if n == 0:
        from alertprod.apdb.schema import empty_table

        return empty_table(name)
    buf = b"".join(bytes(b) for b in blobs)
    if len(buf) != n * size:
        bad = next(i for i, b in enumerate(blobs) if len(b) != size)
        raise CatalogError(f"blobs: row {bad} is {len(blobs[bad])} bytes, {name} rows are {size}")
    raw = np.frombuffer(buf, dtype=np.uint8).reshape(n, size)
    if np.any(raw[:, 0] != FORMAT_VERSION):
        raise CatalogError(f"blobs: format byte is not {FORMAT_VERSION}")
    nb = _bitmap_bytes(name)
    nulls = np.unpackbits(raw[:, 1:1 + nb], axis=1, bitorder="little")[:, :len(cols)].astype(bool)
    rec = np.ascontiguousarray(raw[:, 1 + nb:]).view(dtype).reshape(n)
    out = []
    for j, col in enumerate(cols):
        data = rec[col["name"]].copy()
        mask = None if data.dtype.kind == "f" or not col["nullable"] else nulls[:, j]
        out.append(_make_column(col, data, mask))
    return Table(out)

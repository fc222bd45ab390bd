"""Packing of APDB rows into compact bytes for DynamoDB binary attributes, and back.

A row is stored as one ``B`` attribute: a format byte, a null bitmap (one bit per column of
the format's layout, little-endian bit order) and the row as a packed little-endian numpy
record in layout order (strings fixed-width). A DiaSource row takes ~370 bytes, a DiaObject
row ~370, a DiaForcedSource row ~95 — against ~3× that as DynamoDB maps of numbers. Packing
and unpacking are vectorised over a whole table (one ``numpy`` view, no per-value Python).

Versioned layouts
-----------------
Rows are never rewritten in place, so every layout a release ever wrote stays readable. The
format byte names the layout: format ``k`` has the columns of the current schema
(``columns.json`` plus the extension columns of :mod:`alertprod.apdb.schema`) without those
that later formats added (:data:`ADDED_COLUMNS`). New rows are written in
:data:`FORMAT_VERSION`; :func:`unpack_rows` decodes any mix of formats into one table of the
current schema, with nulls in the columns a row's format did not have.

- format 1: ``apdb.yaml`` (``lsst-sdm-schemas`` 30) plus ``DiaForcedSource.isPrecovery``;
- format 2: plus ``snapDiffFlux``/``snapDiffFluxErr`` on DiaSource and DiaForcedSource.

To add columns: append them (nullable) to the schema, list them under a new format in
:data:`ADDED_COLUMNS` and bump :data:`FORMAT_VERSION`; the frozen layout digests of
``tests/unit/apdb/test_apdb_codec.py`` then say which layouts changed. A change of
``columns.json`` that renames, retypes or reorders columns cannot be expressed this way: it
needs the old layout frozen explicitly.

Written by hand because no library packs numpy records with nulls into per-row blobs:
Avro/Parquet encode whole files, with per-file schema headers far larger than one row.
"""

from __future__ import annotations

from functools import cache
from typing import Any

import numpy as np
from astropy.table import Table

from alertprod.apdb.schema import _make_column, columns, conform, empty_table, numpy_dtype
from alertprod.errors import CatalogError

__all__ = ["FORMAT_VERSION", "ADDED_COLUMNS", "layout", "row_dtype", "row_size", "pack_rows",
           "unpack_rows"]

#: Format byte of the rows this release writes (every earlier format still reads).
FORMAT_VERSION = 2

#: Format -> table -> the columns that format appended to the previous format's layout.
ADDED_COLUMNS: dict[int, dict[str, tuple[str, ...]]] = {
    2: {"DiaSource": ("snapDiffFlux", "snapDiffFluxErr"),
        "DiaForcedSource": ("snapDiffFlux", "snapDiffFluxErr")},
}


def _check_version(version: int) -> int:
    if not 1 <= int(version) <= FORMAT_VERSION:
        raise CatalogError(f"version: format {version} is not one of 1..{FORMAT_VERSION}")
    return int(version)


@cache
def layout(name: str, version: int = FORMAT_VERSION) -> tuple[dict[str, Any], ...]:
    """Column descriptions of one table's packed row in one format, in packing order.

    Parameters
    ----------
    name : str
        APDB table name.
    version : int
        Format, 1 to :data:`FORMAT_VERSION`.
    """
    version = _check_version(version)
    later = {c for v, added in ADDED_COLUMNS.items() if v > version for c in added.get(name, ())}
    required = [c["name"] for c in columns(name) if c["name"] in later and not c["nullable"]]
    if required:
        raise CatalogError(f"{name}: columns {required} added by a later format must be nullable "
                           "(rows of earlier formats have no value for them)")
    return tuple(c for c in columns(name) if c["name"] not in later)


@cache
def row_dtype(name: str, version: int = FORMAT_VERSION) -> np.dtype:
    """Packed (unaligned, little-endian) numpy record dtype of one table's row in one format."""
    return np.dtype([(c["name"], numpy_dtype(c)) for c in layout(name, version)], align=False)


def _bitmap_bytes(name: str, version: int) -> int:
    return (len(layout(name, version)) + 7) // 8


def row_size(name: str, version: int = FORMAT_VERSION) -> int:
    """Size in bytes of one packed row of table ``name`` in format ``version``."""
    return 1 + _bitmap_bytes(name, version) + row_dtype(name, version).itemsize


def pack_rows(table: Table, name: str) -> list[bytes]:
    """Pack each row of a table into bytes, in format :data:`FORMAT_VERSION`.

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


def _decode(blobs: list[bytes], rows: np.ndarray, name: str, version: int
            ) -> tuple[np.ndarray, np.ndarray]:
    """Records and null flags (n, columns of the layout) of same-format blobs."""
    size = row_size(name, version)
    buf = b"".join(blobs)
    if len(buf) != len(blobs) * size:
        k = next(i for i, b in enumerate(blobs) if len(b) != size)
        raise CatalogError(f"blobs: row {int(rows[k])} is {len(blobs[k])} bytes, {name} rows of "
                           f"format {version} are {size}")
    raw = np.frombuffer(buf, dtype=np.uint8).reshape(len(blobs), size)
    nb = _bitmap_bytes(name, version)
    ncol = len(layout(name, version))
    nulls = np.unpackbits(raw[:, 1:1 + nb], axis=1, bitorder="little")[:, :ncol].astype(bool)
    rec = np.ascontiguousarray(raw[:, 1 + nb:]).view(row_dtype(name, version)).reshape(len(blobs))
    return rec, nulls


def _null_values(dtype: str, n: int) -> np.ndarray:
    return np.full(n, np.nan, dtype) if np.dtype(dtype).kind == "f" else np.zeros(n, dtype)


def unpack_rows(blobs: list[bytes], name: str) -> Table:
    """Unpack blobs written by :func:`pack_rows` (of this or any earlier release) into one table.

    Parameters
    ----------
    blobs : list of bytes
        Packed rows of table ``name``, in any mix of formats 1 to :data:`FORMAT_VERSION`.
    name : str
        APDB table name.

    Returns
    -------
    astropy.table.Table
        The current schema's columns, rows in input order. Columns a row's format lacks are
        null: NaN (floating) or masked.

    Raises
    ------
    CatalogError
        When a blob has an unknown format byte, or the wrong size for its format (a row of
        another table).
    """
    n = len(blobs)
    if n == 0:
        return empty_table(name)
    blobs = [bytes(b) for b in blobs]
    if any(len(b) == 0 for b in blobs):
        raise CatalogError(f"blobs: row {next(i for i, b in enumerate(blobs) if not b)} is empty")
    fmt = np.fromiter((b[0] for b in blobs), dtype=np.uint8, count=n)
    versions = np.unique(fmt)
    bad = (versions < 1) | (versions > FORMAT_VERSION)
    if bad.any():
        i = int(np.flatnonzero(np.isin(fmt, versions[bad]))[0])
        raise CatalogError(f"blobs: row {i} has format byte {int(fmt[i])}; this release reads "
                           f"formats 1..{FORMAT_VERSION}")
    cols = columns(name)
    # columns a format lacks stay null: NaN (floating) or zero and masked
    data = {c["name"]: _null_values(numpy_dtype(c), n) for c in cols}
    nulls = np.ones((n, len(cols)), dtype=bool)
    one = len(versions) == 1
    for v in versions.tolist():
        rows = np.arange(n) if one else np.flatnonzero(fmt == v)
        rec, got = _decode(blobs if one else [blobs[i] for i in rows], rows, name, v)
        sel = slice(None) if one else rows
        where = {c["name"]: k for k, c in enumerate(layout(name, v))}
        for j, col in enumerate(cols):
            k = where.get(col["name"])
            if k is not None:
                data[col["name"]][sel] = rec[col["name"]]
                nulls[sel, j] = got[:, k]
    out = []
    for j, col in enumerate(cols):
        values = data[col["name"]]
        mask = None if values.dtype.kind == "f" or not col["nullable"] else nulls[:, j]
        out.append(_make_column(col, values, mask))
    return Table(out)

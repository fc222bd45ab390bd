"""The APDB table schemas (Rubin ``apdb.yaml``) as empty astropy tables and a conformer.

The column list, datatypes, units and nullability of ``DiaObject``, ``DiaObjectLast``,
``DiaSource``, ``DiaForcedSource`` and ``SSObject`` come from ``apdb.yaml`` of the
``lsst-sdm-schemas`` package. That package is a development dependency only (it is not in the
Lambda layer), so the columns are generated once into ``columns.json`` beside this module::

    python -m alertprod.apdb.schema --regenerate

and a unit test checks that the JSON still equals what ``apdb.yaml`` says.
"""

from __future__ import annotations

import argparse
import json
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
from astropy.table import Column, MaskedColumn, Table

from alertprod.errors import CatalogError

__all__ = ["TABLE_NAMES", "COLUMNS_JSON", "EXTENSION_COLUMNS", "columns", "numpy_dtype", "empty_table",
           "conform", "columns_from_apdb_yaml", "rubin_columns", "main"]

#: The APDB tables this package stores.
TABLE_NAMES: tuple[str, ...] = ("DiaObject", "DiaObjectLast", "DiaSource", "DiaForcedSource",
                                "SSObject")

#: The generated column description, shipped with the package.
COLUMNS_JSON = Path(__file__).with_name("columns.json")

# Felis datatypes -> little-endian numpy dtypes ("char"/"string" become fixed-width bytes).
_NUMPY = {"double": "<f8", "float": "<f4", "long": "<i8", "int": "<i4", "short": "<i2",
          "byte": "i1", "boolean": "?"}


def columns_from_apdb_yaml(path: str | Path | None = None) -> dict[str, list[dict[str, Any]]]:
    """Read the columns of the stored tables from Rubin's ``apdb.yaml``.

    Parameters
    ----------
    path : str or Path, optional
        The YAML file; by default the one installed with ``lsst-sdm-schemas``.

    Returns
    -------
    dict
        Table name -> list of ``{"name", "datatype", "unit", "nullable", "length"}`` in schema
        order. ``unit`` is ``fits:tunit`` or ``ivoa:unit`` (``""`` when dimensionless);
        ``nullable`` defaults to true as in Felis; ``length`` is set for strings only.
    """
    import yaml  # development-time only

    if path is None:
        from importlib.resources import files

        path = Path(str(files("lsst.sdm.schemas").joinpath("apdb.yaml")))
    doc = yaml.safe_load(Path(path).read_text())
    out: dict[str, list[dict[str, Any]]] = {}
    for table in doc["tables"]:
        if table["name"] not in TABLE_NAMES:
            continue
        cols = []
        for c in table["columns"]:
            entry = {"name": c["name"], "datatype": c["datatype"],
                     "unit": c.get("fits:tunit", c.get("ivoa:unit", "")) or "",
                     "nullable": bool(c.get("nullable", True))}
            if c["datatype"] in ("char", "string", "text"):
                entry["length"] = int(c.get("length", 64))
            cols.append(entry)
        out[table["name"]] = cols
    missing = set(TABLE_NAMES) - set(out)
    if missing:
        raise CatalogError(f"apdb.yaml at {path} lacks tables {sorted(missing)}")
    return {name: out[name] for name in TABLE_NAMES}


def _snap_diff_columns(measured: str) -> list[dict[str, Any]]:
    return [
        {"name": "snapDiffFlux", "datatype": "float", "unit": "nJy", "nullable": True,
         "description": f"PSF flux {measured} on the difference of the visit's two snaps; null "
                        "when no snap difference was uploaded (Rubin's DiaSource field in alert "
                        "schemas 5.0-7.4; in neither apdb.yaml nor alert schema v11)"},
        {"name": "snapDiffFluxErr", "datatype": "float", "unit": "nJy", "nullable": True,
         "description": "uncertainty of snapDiffFlux"},
    ]


#: alertprod's own columns, appended to Rubin's (docs/apdb.md, "Extension columns"). Exports
#: keep them; :func:`rubin_columns` strips them for tools that expect apdb.yaml exactly. Only
#: append here: the packed rows of the DynamoDB backend follow this order, and a new column
#: needs a new format there (``alertprod.apdb.dynamodb._codec.ADDED_COLUMNS``).
EXTENSION_COLUMNS: dict[str, list[dict[str, Any]]] = {
    "DiaSource": _snap_diff_columns("at the source, from the upstream catalog"),
    "DiaForcedSource": [
        {"name": "isPrecovery", "datatype": "boolean", "unit": "", "nullable": True,
         "description": "measured by daytime precovery on the image cache (not the nightly pipeline)"},
        *_snap_diff_columns("forced at the object's position"),
    ],
}


@cache
def _all_columns() -> dict[str, list[dict[str, Any]]]:
    cols = json.loads(COLUMNS_JSON.read_text())
    for name, extra in EXTENSION_COLUMNS.items():
        cols[name] = cols[name] + [{k: v for k, v in c.items() if k != "description"} for c in extra]
    return cols


def rubin_columns(table: Table, name: str) -> Table:
    """``table`` without alertprod's extension columns (exactly Rubin's ``apdb.yaml`` columns)."""
    drop = [c["name"] for c in EXTENSION_COLUMNS.get(name, []) if c["name"] in table.colnames]
    return table.copy() if not drop else table[[c for c in table.colnames if c not in drop]]


def columns(name: str) -> list[dict[str, Any]]:
    """Column descriptions of one table, in schema order (see :func:`columns_from_apdb_yaml`)."""
    cols = _all_columns()
    if name not in cols:
        raise CatalogError(f"name: unknown APDB table {name!r}; expected one of {TABLE_NAMES}")
    return cols[name]


def numpy_dtype(col: dict[str, Any]) -> str:
    """numpy dtype string of one column description (strings are fixed-width bytes)."""
    if col["datatype"] in ("char", "string", "text"):
        return f"S{col['length']}"
    return _NUMPY[col["datatype"]]


def _is_float(dtype: str) -> bool:
    return np.dtype(dtype).kind == "f"


def _make_column(col: dict[str, Any], data: np.ndarray, mask: np.ndarray | None) -> Column:
    kw = {"name": col["name"], "unit": col["unit"] or None}
    if mask is not None and col["datatype"] not in ("float", "double"):
        return MaskedColumn(data, mask=mask, **kw)
    return Column(data, **kw)


def empty_table(name: str, length: int = 0) -> Table:
    """A table with every column of an APDB table, ``length`` rows all null.

    Floating columns hold NaN; the others are masked (nulls), strings are bytes.
    """
    cols = []
    for col in columns(name):
        dtype = numpy_dtype(col)
        data = np.full(length, np.nan, dtype=dtype) if _is_float(dtype) else np.zeros(length, dtype)
        cols.append(_make_column(col, data, np.ones(length, bool)))
    return Table(cols)


def conform(table: Table, name: str, *, keep_extra: bool = False) -> Table:
    """Cast and fill a table to the columns of an APDB table.

    Parameters
    ----------
    table : astropy.table.Table
        Rows to conform; column names as Rubin spells them.
    name : str
        APDB table name, one of :data:`TABLE_NAMES`.
    keep_extra : bool, keyword-only
        Keep columns that are not in the schema (after the schema columns); dropped by default.

    Returns
    -------
    astropy.table.Table
        Schema columns in schema order with the schema dtypes and units. Missing nullable
        columns are NaN (floating) or masked; masked floating values become NaN.

    Raises
    ------
    CatalogError
        When a non-nullable column is missing or holds nulls, or a value cannot be cast.
    """
    if not isinstance(table, Table):
        raise CatalogError(f"table: expected an astropy Table, got {type(table).__name__}")
    n = len(table)
    out = []
    for col in columns(name):
        dtype = numpy_dtype(col)
        cname = col["name"]
        if cname not in table.colnames:
            if not col["nullable"]:
                raise CatalogError(f"table: {name} column {cname!r} is required")
            data = np.full(n, np.nan, dtype) if _is_float(dtype) else np.zeros(n, dtype)
            out.append(_make_column(col, data, np.ones(n, bool)))
            continue
        src = table[cname]
        mask = np.array(np.ma.getmaskarray(src), dtype=bool) if hasattr(src, "mask") else None
        try:
            if dtype.startswith("S"):
                raw = np.ma.getdata(src)
                if raw.dtype.kind == "U":
                    raw = np.char.encode(raw, "utf-8")
                data = raw.astype(dtype)
            elif _is_float(dtype):
                data = np.ma.filled(np.ma.asarray(src, dtype=float), np.nan).astype(dtype)
                mask = None
            else:
                data = np.ma.filled(np.ma.asarray(src), 0).astype(dtype, casting="unsafe")
        except (TypeError, ValueError) as exc:
            raise CatalogError(f"table: {name} column {cname!r} cannot be cast to {dtype}") from exc
        if not col["nullable"]:
            nulls = mask if mask is not None else (np.isnan(data) if _is_float(dtype) else None)
            if nulls is not None and np.any(nulls):
                raise CatalogError(f"table: {name} column {cname!r} is not nullable but has nulls")
            mask = None
        out.append(_make_column(col, data, mask if (mask is not None and mask.any()) else
                                (np.zeros(n, bool) if col["nullable"] and not _is_float(dtype) else None)))
    result = Table(out)
    if keep_extra:
        known = {c["name"] for c in columns(name)}
        for cname in table.colnames:
            if cname not in known:
                result[cname] = table[cname]
    return result


def main(argv: list[str] | None = None) -> int:
    """``python -m alertprod.apdb.schema --regenerate [--yaml PATH]``: rewrite ``columns.json``."""
    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--regenerate", action="store_true", help="rewrite columns.json")
    parser.add_argument("--yaml", default=None, help="apdb.yaml to read (default: installed)")
    args = parser.parse_args(argv)
    if not args.regenerate:
        parser.print_help()
        return 1
    cols = columns_from_apdb_yaml(args.yaml)
    COLUMNS_JSON.write_text(json.dumps(cols, indent=1) + "\n")
    _all_columns.cache_clear()
    print(f"wrote {COLUMNS_JSON.name}: " + ", ".join(f"{k} ({len(v)})" for k, v in cols.items()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

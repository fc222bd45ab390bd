"""Whole-database export as FITS files with Rubin names (the ``replay --export`` output).

Each backend builds the tables (:meth:`alertprod.apdb.Apdb.export`); this module writes them.
"""

from __future__ import annotations

from pathlib import Path

from astropy.table import Table

__all__ = ["EXPORT_TABLES", "EXPORT_ORDER", "sort_export", "write_export"]

#: Export table name -> APDB schema table its columns follow.
EXPORT_TABLES: dict[str, str] = {"DiaObject": "DiaObject", "DiaObjectHistory": "DiaObject",
                                 "DiaSource": "DiaSource", "DiaForcedSource": "DiaForcedSource",
                                 "SSObject": "SSObject"}


#: Sort columns of each export table.
EXPORT_ORDER: dict[str, list[str]] = {
    "DiaObject": ["diaObjectId"], "DiaObjectHistory": ["diaObjectId", "validityStartMjdTai"],
    "DiaSource": ["diaSourceId"], "DiaForcedSource": ["diaForcedSourceId"], "SSObject": ["ssObjectId"]}


def sort_export(tables: dict[str, Table]) -> dict[str, Table]:
    """Sort each export table by its ids in place (every backend exports in this order)."""
    for name, cols in EXPORT_ORDER.items():
        if len(tables[name]):
            tables[name].sort(cols)
    return tables


def write_export(tables: dict[str, Table], out_dir: str | Path) -> dict[str, str]:
    """Write each table as ``<out_dir>/<name>.fits`` (FITS binary table); returns name -> path."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {}
    for name in EXPORT_TABLES:
        path = out / f"{name}.fits"
        tables[name].write(path, format="fits", overwrite=True)
        paths[name] = str(path)
    return paths

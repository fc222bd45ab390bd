"""Whole-database export to Rubin-named tables and FITS files (the ``replay --export`` output).

Not a hot path: reads every item with a Scan.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
from astropy.table import Table

from alertprod.apdb.codec import unpack_rows
from alertprod.apdb.ssobs import apply_observations

__all__ = ["EXPORT_TABLES", "export_tables", "write_export"]

#: Export table name -> APDB schema table its columns follow.
EXPORT_TABLES: dict[str, str] = {"DiaObject": "DiaObject", "DiaObjectHistory": "DiaObject",
                                 "DiaSource": "DiaSource", "DiaForcedSource": "DiaForcedSource",
                                 "SSObject": "SSObject"}


def export_tables(items: Iterable[dict[str, Any]]) -> dict[str, Table]:
    """Sort scanned items into the export tables.

    Returns
    -------
    dict
        ``DiaObject`` (latest version of each object, ``validityEndMjdTai`` null),
        ``DiaObjectHistory`` (every version, closed ones with ``validityEndMjdTai``),
        ``DiaSource``, ``DiaForcedSource``, ``SSObject``; sorted by their ids.
    """
    last, versions, ends, sources, forced, ss = [], [], [], [], [], []
    ss_obs: dict[int, list[str]] = {}
    for item in items:
        pk, sk = item["pk"]["S"], item["sk"]["S"]
        if pk.startswith("OBJ#"):
            if sk == "LAST":
                last.append(item["row"]["B"])
            elif sk.startswith("V#"):
                versions.append(item["row"]["B"])
                ends.append(float(item["ve"]["N"]) if "ve" in item else np.nan)
        elif pk.startswith(("HIST#", "SSHIST#")):
            for attr, value in item.items():
                if attr[1:].isdigit():
                    (sources if attr[0] == "s" else forced if attr[0] == "f" else []).append(
                        value["B"])
        elif pk.startswith("SSOBJ#") and sk == "ROW":
            ss.append(item["row"]["B"])
        elif pk.startswith("SSOBJ#") and sk == "OBS":
            ss_obs[int(pk[6:])] = list(item["obs"]["SS"])
    history = unpack_rows(versions, "DiaObject")
    history["validityEndMjdTai"] = np.asarray(ends, dtype=history["validityEndMjdTai"].dtype)
    out = {"DiaObject": unpack_rows(last, "DiaObject"), "DiaObjectHistory": history,
           "DiaSource": unpack_rows(sources, "DiaSource"),
           "DiaForcedSource": unpack_rows(forced, "DiaForcedSource"),
           "SSObject": apply_observations(unpack_rows(ss, "SSObject"), ss_obs)}
    order = {"DiaObject": ["diaObjectId"], "DiaObjectHistory": ["diaObjectId", "validityStartMjdTai"],
             "DiaSource": ["diaSourceId"], "DiaForcedSource": ["diaForcedSourceId"],
             "SSObject": ["ssObjectId"]}
    for name, cols in order.items():
        if len(out[name]):
            out[name].sort(cols)
    return out


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

"""Whole-table export of the DynamoDB APDB: every item of a Scan sorted into Rubin tables.

Not a hot path (the replay's export and tests).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np
from astropy.table import Table

from alertprod.apdb._codec import unpack_rows
from alertprod.apdb._ssobs import apply_observations
from alertprod.apdb.export import sort_export

__all__ = ["export_tables"]


def export_tables(items: Iterable[dict[str, Any]]) -> dict[str, Table]:
    """Sort scanned items into the export tables.

    Returns
    -------
    dict
        ``DiaObject`` (latest version of each object, ``validityEndMjdTai`` null),
        ``DiaObjectHistory`` (every version, closed ones with ``validityEndMjdTai``),
        ``DiaSource``, ``DiaForcedSource``, ``SSObject``; sorted by their ids.
    """
    last, versions, ends, ss = [], [], [], []
    rows: dict[tuple[str, str], bytes] = {}  # a row in an item and in its part is kept once
    ss_obs: dict[int, list[str]] = {}
    for item in items:
        pk, sk = item["pk"]["S"], item["sk"]["S"]
        if pk.startswith("OBJ#"):
            if sk == "LAST":
                last.append(item["row"]["B"])
            elif sk.startswith("V#"):
                versions.append(item["row"]["B"])
                ends.append(float(item["ve"]["N"]) if "ve" in item else np.nan)
        elif pk.startswith(("HIST#", "SSHIST#")):  # an item, or one of its hour parts
            for attr, value in item.items():
                if attr[1:].isdigit() and attr[0] in "sf":
                    rows[(pk, attr)] = value["B"]
        elif pk.startswith("SSOBJ#") and sk == "ROW":
            ss.append(item["row"]["B"])
        elif pk.startswith("SSOBJ#") and sk.startswith("OBS") and "obs" in item:
            ss_obs.setdefault(int(pk[6:]), []).extend(item["obs"]["SS"])  # with its parts
    sources = [r for (_, attr), r in rows.items() if attr[0] == "s"]
    forced = [r for (_, attr), r in rows.items() if attr[0] == "f"]
    ss_obs = {i: sorted(set(obs)) for i, obs in ss_obs.items()}
    history = unpack_rows(versions, "DiaObject")
    history["validityEndMjdTai"] = np.asarray(ends, dtype=history["validityEndMjdTai"].dtype)
    out = {"DiaObject": unpack_rows(last, "DiaObject"), "DiaObjectHistory": history,
           "DiaSource": unpack_rows(sources, "DiaSource"),
           "DiaForcedSource": unpack_rows(forced, "DiaForcedSource"),
           "SSObject": apply_observations(unpack_rows(ss, "SSObject"), ss_obs)}
    return sort_export(out)

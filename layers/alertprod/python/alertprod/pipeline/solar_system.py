"""Solar-system bookkeeping of the nightly pipeline: the orbit catalog cache and SSObject rows.

Observation counters of SSObjects are kept by :mod:`alertprod.apdb.ssobs` (atomic set additions).

The orbit catalog lives in the Level 1 database (loaded from an MPCORB.DAT upload); a function
container parses it once and re-reads it only when its version changes.
"""

from __future__ import annotations

import numpy as np
from astropy.table import Table

from alertprod.orbits import OrbitCatalog, read_mpcorb

__all__ = ["OrbitCache", "ss_object_rows"]

_BANDS = "ugrizy"


class OrbitCache:
    """The parsed orbit catalog of an APDB, re-read when its version changes."""

    def __init__(self, apdb):
        self.apdb = apdb
        self._version: str | None = None
        self._catalog: OrbitCatalog | None = None
        self._by_id: dict[int, int] = {}

    def invalidate(self) -> None:
        """Forget the cached catalog (after loading a new one)."""
        self._version = None
        self._catalog = None
        self._by_id = {}

    def get(self) -> OrbitCatalog | None:
        """The current catalog, or None when no orbit catalog was ever loaded."""
        version = self.apdb.get_orbit_catalog_version()
        if version is None:
            return None
        if version != self._version:
            text = self.apdb.get_orbit_catalog().decode("ascii", errors="replace")
            self._catalog = read_mpcorb(text, strict=False)
            self._version = version
            self._by_id = {int(i): k for k, i in enumerate(self._catalog.ss_object_ids)}
        return self._catalog

    def mpc_orbit_rows(self, ss_object_ids: np.ndarray) -> dict[int, dict]:
        """``mpc_orbits`` alert records (schema v11) of the given asteroids, keyed by ssObjectId."""
        cat = self._catalog
        out: dict[int, dict] = {}
        if cat is None:
            return out
        for sid in np.unique(ss_object_ids[ss_object_ids > 0]):
            k = self._by_id.get(int(sid))
            if k is None:
                continue
            packed = str(cat.packed_designation[k])
            readable = str(cat.designation[k]) if cat.designation is not None else packed
            a, e = float(cat.a[k]), float(cat.e[k])
            out[int(sid)] = {
                "id": int(k), "designation": readable,
                "packed_primary_provisional_designation": packed,
                "unpacked_primary_provisional_designation": readable,
                "a": a, "q": a * (1 - e), "e": e, "i": float(cat.i[k]), "node": float(cat.node[k]),
                "argperi": float(cat.argperi[k]), "mean_anomaly": float(cat.mean_anomaly[k]),
                "mean_motion": float(cat.mean_motion[k]), "period": 360.0 / float(cat.mean_motion[k]),
                "epoch_mjd": float(cat.epoch_mjd[k]), "h": float(cat.h[k]), "g": float(cat.g[k]),
            }
        return out


def ss_object_rows(catalog: OrbitCatalog) -> Table:
    """SSObject rows (apdb.yaml names) of a freshly loaded orbit catalog, not yet observed."""
    n = len(catalog)
    t = Table({
        "ssObjectId": np.asarray(catalog.ss_object_ids, np.int64),
        "designation": np.asarray(catalog.designation if catalog.designation is not None
                                  else catalog.packed_designation, dtype="U16"),
        "nObs": np.zeros(n, np.int32),
        "arc": np.zeros(n, np.float32),
        "firstObservationMjdTai": np.full(n, np.nan),
    })
    for b in _BANDS:
        t[f"{b}_nObs"] = np.zeros(n, np.int32)
        t[f"{b}_nObsUsed"] = np.zeros(n, np.int32)
    return t

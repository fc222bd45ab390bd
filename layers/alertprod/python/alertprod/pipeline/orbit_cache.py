"""The orbit catalog of the Level 1 database, parsed once per function container.

The catalog lives in the APDB (loaded from an MPCORB.DAT upload); a container parses it once
and re-reads it only when its version changes. Row builders for SSObject, SSSource and
``mpc_orbits`` are in :mod:`alertprod.orbits.rows`.
"""

from __future__ import annotations

import numpy as np

from alertprod.apdb import Apdb
from alertprod.orbits import OrbitCatalog, mpc_orbit_records, read_mpcorb

__all__ = ["OrbitCache"]


class OrbitCache:
    """The parsed orbit catalog of an APDB, re-read when its version changes."""

    def __init__(self, apdb: Apdb):
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
        if self._catalog is None:
            return {}
        ids = np.unique(ss_object_ids[ss_object_ids > 0])
        rows = {int(s): self._by_id[int(s)] for s in ids if int(s) in self._by_id}
        return mpc_orbit_records(self._catalog, rows)

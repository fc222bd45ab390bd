"""Find an ``orbit`` target's designation in the loaded orbit catalog (the APDB's base catalog).

The catalog is the MPCORB.DAT text the operator loaded (``Apdb.store_orbit_catalog``); a
container parses it once per catalog version and then answers by readable or packed
designation (``parse_target`` tries both).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from alertprod.apdb import Apdb
from alertprod.errors import NotFoundError
from alertprod.orbits import OrbitCatalog
from alertprod.orbits.mpcorb import read_mpcorb

__all__ = ["catalog_lookup"]


def catalog_lookup(apdb: Apdb) -> Callable[[str], OrbitCatalog | None]:
    """``lookup(designation) -> one-orbit catalog or None`` over the APDB's loaded catalog."""
    cache: dict[str, OrbitCatalog] = {}

    def lookup(designation: str) -> OrbitCatalog | None:
        version = apdb.get_orbit_catalog_version()
        if version is None:
            return None
        if version not in cache:
            try:
                text = apdb.get_orbit_catalog().decode("ascii", errors="replace")
            except NotFoundError:
                return None
            cache.clear()
            cache[version] = read_mpcorb(text, strict=False)
        catalog = cache[version]
        name = designation.strip()
        hits = np.flatnonzero((catalog.packed_designation == name) | (catalog.designation == name))
        return catalog[hits[:1]] if hits.size else None

    return lookup

"""The orbit catalog of the Level 1 database, parsed once per function container.

The base catalog lives in the APDB (loaded from an MPCORB.DAT upload); every day the orbit
refresh (:mod:`alertprod.orbitrefresh`) stores the coming night's elements beside it. For an
exposure, :meth:`OrbitCache.get` gives the base catalog's rows with the elements of the
exposure's night (two-body predictions from them hold to ≪ 0.05″ over the night) and its
close approachers integrated to the exposure time; without a refreshed night it falls back
to the base elements and records a warning. A container parses each catalog once and reads
it again only when its version changes. ``mpc_orbits`` alert rows come from the base catalog
(the MPC's own orbits). Row builders: :mod:`alertprod.orbits.rows`.
"""

from __future__ import annotations

import numpy as np

from alertprod.apdb import Apdb
from alertprod.errors import OrbitError
from alertprod.orbitrefresh import (
    decode_night_elements,
    elements_at_exposure,
    night_catalog,
    night_of,
)
from alertprod.orbits import OrbitCatalog, mpc_orbit_records, read_mpcorb

__all__ = ["OrbitCache"]


class OrbitCache:
    """The parsed orbit catalogs of an APDB (base and per night), re-read when they change."""

    def __init__(self, apdb: Apdb):
        self.apdb = apdb
        self._version: str | None = None
        self._catalog: OrbitCatalog | None = None
        self._by_id: dict[int, int] = {}
        # the night's catalog, close-approach mask and warning (None, None, warning when it is
        # not usable), for (night version, base version); the close approachers' elements at
        # the last exposure time asked for
        self._night_key: tuple[str, str | None] | None = None
        self._night: tuple[OrbitCatalog | None, np.ndarray | None, str | None] | None = None
        self._at: tuple[tuple[str, float], OrbitCatalog] | None = None

    def invalidate(self) -> None:
        """Forget the cached catalogs (after loading a new one)."""
        self._version = None
        self._catalog = None
        self._by_id = {}
        self._night_key = self._night = self._at = None

    def _base(self) -> OrbitCatalog | None:
        version = self.apdb.get_orbit_catalog_version()
        if version is None:
            return None
        if version != self._version:
            text = self.apdb.get_orbit_catalog().decode("ascii", errors="replace")
            self._catalog = read_mpcorb(text, strict=False)
            self._version = version
            self._by_id = {int(i): k for k, i in enumerate(self._catalog.ss_object_ids)}
        return self._catalog

    def get(self, visit_mjd_tai: float | None = None, *,
            warnings: list[str] | None = None) -> OrbitCatalog | None:
        """The orbits to predict positions at ``visit_mjd_tai`` with, None when none is loaded.

        Parameters
        ----------
        visit_mjd_tai : float, optional
            Exposure midpoint (TAI MJD). With it, the rows carry the elements of the
            exposure's night (close approachers integrated to this time); without it, the
            base catalog as loaded.
        warnings : list of str, keyword-only, optional
            Receives ``orbit_refresh_missing:<night>`` (no refreshed catalog for the night:
            the base elements are used), ``orbit_refresh_stale:<night>`` (refreshed from an
            earlier base catalog: not used), ``orbit_refresh_unreadable:<night>:<why>`` (not
            used) or ``orbit_refresh_partial:<night>:<n>`` (n rows missing from the night:
            their base elements are used).
        """
        base = self._base()
        if base is None or visit_mjd_tai is None:
            return base
        night = night_of(visit_mjd_tai)
        version = self.apdb.get_orbit_catalog_version(night_mjd=night)
        if version is None:
            if warnings is not None:
                warnings.append(f"orbit_refresh_missing:{night}")
            return base
        if self._night_key != (version, self._version):
            self._night = self._load_night(base, night)
            self._night_key, self._at = (version, self._version), None
        catalog, close, problem = self._night
        if problem is not None and warnings is not None:
            warnings.append(problem)
        if catalog is None:
            return base
        if not np.any(close):
            return catalog
        key = (version, float(visit_mjd_tai))
        if self._at is None or self._at[0] != key:
            self._at = (key, elements_at_exposure(catalog, close, visit_mjd_tai))
        return self._at[1]

    def _load_night(self, base: OrbitCatalog,
                    night: int) -> tuple[OrbitCatalog | None, np.ndarray | None, str | None]:
        """(catalog, close mask, warning) of the night's stored catalog on this base."""
        try:
            elements = decode_night_elements(self.apdb.get_orbit_catalog(night_mjd=night))
        except OrbitError as exc:
            return None, None, f"orbit_refresh_unreadable:{night}:{exc}"
        if elements.base_version != self._version:
            return None, None, f"orbit_refresh_stale:{night}"
        merged = night_catalog(base, elements)
        problem = (f"orbit_refresh_partial:{night}:{merged.missing}" if merged.missing else None)
        return merged.catalog, merged.close_approach, problem

    def mpc_orbit_rows(self, ss_object_ids: np.ndarray) -> dict[int, dict]:
        """``mpc_orbits`` alert records (schema v11) of the given asteroids, keyed by ssObjectId."""
        if self._catalog is None:
            return {}
        ids = np.unique(ss_object_ids[ss_object_ids > 0])
        rows = {int(s): self._by_id[int(s)] for s in ids if int(s) in self._by_id}
        return mpc_orbit_records(self._catalog, rows)

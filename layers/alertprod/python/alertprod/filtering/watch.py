"""Watchlists and watchmaps: the sky lists a filter references by name (extensions of the language).

- :class:`Watchlist` — up to 10⁶ positions, each with its own match radius, loaded from CSV or
  VOTable; ``in_watchlist('name')`` is TRUE when the alert's ``diaSource`` position lies within
  the radius of any entry. Indexed by a KD-tree on unit vectors (``scipy.spatial.cKDTree``): a
  batch queries the tree once with the largest radius, then checks each candidate pair against
  its entry's own radius (chord distances, exact on the sphere).
- :class:`Watchmap` — a sky region as a MOC (``mocpy``); ``in_watchmap('name')`` is TRUE when
  the position lies inside it.

Both are immutable and shareable by every filter of a user; a batch caches their result, so
1,000 filters naming one watchlist query it once per batch.
"""

from __future__ import annotations

import io
import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from alertprod.filtering.batch import AlertBatch, radec_to_xyz

__all__ = ["Watchlist", "Watchmap", "MAX_WATCHLIST_ENTRIES"]

#: Largest watchlist accepted.
MAX_WATCHLIST_ENTRIES = 1_000_000


def _chord(radius_arcsec: np.ndarray) -> np.ndarray:
    r_rad = np.radians(np.minimum(radius_arcsec, 648_000.0) / 3600.0)
    return 2.0 * np.sin(r_rad / 2.0)


class Watchlist:
    """Sky positions with per-entry radii, for ``in_watchlist('name')``.

    Parameters
    ----------
    ra_deg, dec_deg : array-like, shape (m,)
        Entry positions, degrees (ICRS).
    radius_arcsec : float or array-like, shape (m,)
        Match radius of each entry, arcsec (> 0).
    names : sequence of str, optional
        Entry names (for display).
    """

    kind = "watchlist"

    def __init__(self, ra_deg: Any, dec_deg: Any, radius_arcsec: Any, *,
                 names: Sequence[str] | None = None):
        from scipy.spatial import cKDTree

        ra = np.asarray(ra_deg, np.float64).reshape(-1)
        dec = np.asarray(dec_deg, np.float64).reshape(-1)
        radius = np.broadcast_to(np.asarray(radius_arcsec, np.float64), ra.shape).copy()
        if ra.shape != dec.shape:
            raise ValueError(f"ra_deg and dec_deg: shapes {ra.shape} and {dec.shape} differ")
        if len(ra) > MAX_WATCHLIST_ENTRIES:
            raise ValueError(f"ra_deg: {len(ra):,} entries; a watchlist holds at most "
                             f"{MAX_WATCHLIST_ENTRIES:,}")
        if not (np.isfinite(ra).all() and np.isfinite(dec).all() and (np.abs(dec) <= 90).all()):
            raise ValueError("ra_deg/dec_deg: positions must be finite with |dec| <= 90")
        if not (np.isfinite(radius).all() and (radius > 0).all()):
            raise ValueError("radius_arcsec: radii must be finite and > 0")
        self.ra_deg, self.dec_deg, self.radius_arcsec = ra, dec, radius
        self.names = list(names) if names is not None else None
        self._xyz = radec_to_xyz(ra, dec)
        self._chord2 = _chord(radius) ** 2
        self._max_chord = float(_chord(radius).max()) if len(ra) else 0.0
        self._tree = cKDTree(self._xyz) if len(ra) else None

    def __len__(self) -> int:
        return len(self.ra_deg)

    def __repr__(self) -> str:
        return f"Watchlist({len(self)} entries)"

    def contains_xyz(self, xyz: np.ndarray) -> np.ndarray:
        """Whether each unit vector (shape ``(n, 3)``) lies within an entry's radius."""
        hit = np.zeros(len(xyz), bool)
        if self._tree is None or len(xyz) == 0:
            return hit
        from scipy.spatial import cKDTree

        pairs = cKDTree(xyz).query_ball_tree(self._tree, self._max_chord * (1 + 1e-12))
        src = np.fromiter((i for i, js in enumerate(pairs) for _ in js), np.int64)
        ent = np.fromiter((j for js in pairs for j in js), np.int64)
        if len(src):
            d = xyz[src] - self._xyz[ent]
            ok = np.einsum("ij,ij->i", d, d) <= self._chord2[ent]
            hit[src[ok]] = True
        return hit

    def match(self, batch: AlertBatch) -> tuple[np.ndarray, np.ndarray]:
        """Membership of every alert of ``batch`` and the null mask of its position."""
        xyz, null = batch.unit_vectors()
        return self.contains_xyz(np.where(null[:, None], 0.0, xyz)), null

    def contains(self, ra_deg: Any, dec_deg: Any) -> np.ndarray:
        """Whether each position (degrees) lies within an entry's radius."""
        return self.contains_xyz(radec_to_xyz(np.atleast_1d(ra_deg), np.atleast_1d(dec_deg)))

    @classmethod
    def from_table(cls, table: Any, *, default_radius_arcsec: float = 1.0) -> Watchlist:
        """From an astropy Table with ``ra``, ``dec`` [deg], optional ``radius`` [arcsec], ``name``.

        Column names are matched case-insensitively; ``ra_deg``/``dec_deg``/``radius_arcsec``
        are accepted too.
        """
        cols = {c.lower(): c for c in table.colnames}

        def pick(*names):
            return next((table[cols[n]] for n in names if n in cols), None)

        ra, dec = pick("ra", "ra_deg", "raj2000"), pick("dec", "dec_deg", "dej2000", "decj2000")
        if ra is None or dec is None:
            raise ValueError(f"watchlist table: needs ra and dec columns, has {table.colnames}")
        radius = pick("radius", "radius_arcsec")
        names = pick("name", "id")
        return cls(np.asarray(ra, float), np.asarray(dec, float),
                   default_radius_arcsec if radius is None else np.asarray(radius, float),
                   names=None if names is None else [str(x) for x in names])

    @classmethod
    def read(cls, path: str | Path, *, default_radius_arcsec: float = 1.0) -> Watchlist:
        """Load a CSV (header ``ra,dec[,radius][,name]``) or a VOTable (``.xml``/``.vot``) file."""
        from astropy.table import Table

        path = Path(path)
        data = path.read_bytes()
        is_votable = path.suffix.lower() in (".xml", ".vot", ".votable") or data.lstrip()[:5] == b"<?xml"
        try:
            table = Table.read(io.BytesIO(data), format="votable" if is_votable else "ascii.csv")
        except Exception as exc:
            raise ValueError(f"{path.name}: not a readable watchlist ({exc})") from exc
        return cls.from_table(table, default_radius_arcsec=default_radius_arcsec)


class Watchmap:
    """A sky region (a MOC), for ``in_watchmap('name')``.

    Parameters
    ----------
    moc : mocpy.MOC
        The region.
    """

    kind = "watchmap"

    def __init__(self, moc: Any):
        self.moc = moc

    def __repr__(self) -> str:
        return f"Watchmap(max_order={self.moc.max_order})"

    def contains(self, ra_deg: Any, dec_deg: Any) -> np.ndarray:
        """Whether each position (degrees) lies inside the region."""
        import astropy.units as u

        ra = np.atleast_1d(np.asarray(ra_deg, float))
        dec = np.atleast_1d(np.asarray(dec_deg, float))
        if len(ra) == 0:
            return np.zeros(0, bool)
        return np.asarray(self.moc.contains_lonlat(ra * u.deg, dec * u.deg), bool)

    def match(self, batch: AlertBatch) -> tuple[np.ndarray, np.ndarray]:
        """Membership of every alert of ``batch`` and the null mask of its position."""
        ra, dec = batch.column("diaSource.ra"), batch.column("diaSource.dec")
        null = ra.null | dec.null | (np.abs(dec.values) > 90)
        return self.contains(np.where(null, 0.0, ra.values % 360.0), np.where(null, 0.0, dec.values)), null

    @classmethod
    def read(cls, path: str | Path) -> Watchmap:
        """Load a MOC from a FITS, JSON or ASCII (``3/1-4 4/...``) file."""
        from mocpy import MOC

        path = Path(path)
        suffix = path.suffix.lower()
        try:
            if suffix == ".fits":
                return cls(MOC.from_fits(str(path)))
            text = path.read_text()
            return cls(MOC.from_json(json.loads(text)) if suffix == ".json"
                       else MOC.from_str(text))
        except Exception as exc:
            raise ValueError(f"{path.name}: not a readable MOC ({exc})") from exc

    @classmethod
    def from_cone(cls, ra_deg: float, dec_deg: float, radius_deg: float, *, max_depth: int = 12) -> Watchmap:
        """A circular region (for tests and examples)."""
        import astropy.units as u
        from astropy.coordinates import Angle, Latitude, Longitude
        from mocpy import MOC

        if not (math.isfinite(radius_deg) and radius_deg > 0):
            raise ValueError(f"radius_deg={radius_deg}: must be finite and > 0")
        return cls(MOC.from_cone(lon=Longitude(ra_deg * u.deg), lat=Latitude(dec_deg * u.deg),
                                 radius=Angle(radius_deg * u.deg), max_depth=max_depth))


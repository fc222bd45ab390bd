"""Targets of the precovery service: where to measure, at every epoch asked for.

A request names one of five kinds (docs/precovery-service.md; the JSON of
interfaces.md §6): one ``position``; several ``positions`` in a small region (one job, images
chosen for the region); a ``batch`` of independent positions anywhere; a star with the
five-parameter astrometric model (``proper_motion``: Gaia conventions); a solar-system object
(``orbit``: by designation from the loaded catalog, or one MPCORB.DAT line). :func:`parse_target`
checks the request and returns a :class:`Target`; :meth:`Target.positions_at` gives where each
of its positions is at given exposure times, seen from the observatory.

- Stars: astropy's space motion (:meth:`~astropy.coordinates.SkyCoord.apply_space_motion`)
  from the catalogue epoch (Julian year, TCB as Gaia's), then the direction from the
  observatory's barycentric position (:func:`alertprod.orbits.observer_states`: astropy's
  Earth ephemeris and the site's GCRS position) — parallax for the site, no aberration or
  light deflection, as the ICRS astrometry of the images.
- Asteroids: the perturbed integrator (:func:`alertprod.orbits.nbody.predict_positions_nbody`),
  topocentric and light-time corrected, across any span of the archive.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import astropy.units as u
import erfa
import numpy as np
from astropy.coordinates import ICRS, CartesianRepresentation, Distance, SkyCoord
from astropy.time import Time

from alertprod.errors import OrbitError, PrecoveryError
from alertprod.orbits import OrbitCatalog, read_mpcorb
from alertprod.orbits.designations import pack_designation
from alertprod.orbits.ephemeris import observer_states
from alertprod.orbits.nbody import predict_positions_nbody

__all__ = ["MAX_BATCH_POSITIONS", "MAX_REGION_POSITIONS", "REGION_EXTRA_IMAGES_FRACTION",
           "TARGET_KINDS", "Target", "TargetError", "check_region_images", "parse_target"]

TARGET_KINDS = ("position", "positions", "batch", "proper_motion", "orbit")
#: Most positions in one ``batch`` request (ZTF's service takes 1,500).
MAX_BATCH_POSITIONS = 10_000
#: Most positions in one ``positions`` (small-region) request.
MAX_REGION_POSITIONS = 500
#: A region is accepted when its positions need at most this fraction more images than its
#: centroid alone (the seed's option B).
REGION_EXTRA_IMAGES_FRACTION = 0.20
#: Largest |proper motion| (mas/yr) and parallax (mas) accepted: beyond any known star.
MAX_PM_MAS_YR = 20_000.0
MAX_PARALLAX_MAS = 1_000.0
_SITE_KEYS = ("obs_lon_deg", "obs_lat_deg", "obs_height_m")


class TargetError(PrecoveryError):
    """A target the service cannot take, with a message for the user (an HTTP 400)."""


@dataclass(frozen=True)
class Target:
    """A validated precovery target.

    Attributes
    ----------
    kind : str
        One of :data:`TARGET_KINDS`.
    ra_deg, dec_deg : ndarray of float, shape (n,)
        The positions (``position``: n = 1); for ``proper_motion`` the catalogue position at
        ``epoch_jyear``; for ``orbit`` empty (positions come from the orbit).
    pmra_mas_yr, pmdec_mas_yr, parallax_mas, epoch_jyear : float
        The astrometric model (``proper_motion`` only; μα includes cos δ).
    orbit : OrbitCatalog or None
        One orbit (``orbit`` only).
    """

    kind: str
    ra_deg: np.ndarray
    dec_deg: np.ndarray
    pmra_mas_yr: float = 0.0
    pmdec_mas_yr: float = 0.0
    parallax_mas: float = 0.0
    epoch_jyear: float = 2016.0
    orbit: OrbitCatalog | None = None

    @property
    def n_positions(self) -> int:
        """Independent positions measured (``orbit``, ``proper_motion``: 1)."""
        return 1 if self.kind in ("orbit", "proper_motion") else int(self.ra_deg.size)

    @property
    def moves(self) -> bool:
        """Whether the position changes with time (a different place at every epoch)."""
        return self.kind in ("orbit", "proper_motion")

    def positions_at(self, mjd_tai, *, obs_lon_deg: float, obs_lat_deg: float,
                     obs_height_m: float) -> tuple[np.ndarray, np.ndarray]:
        """Where each position is at each epoch, as the observatory sees it.

        Parameters
        ----------
        mjd_tai : float or ndarray, shape (m,)
            Exposure midpoints (TAI MJD).
        obs_lon_deg, obs_lat_deg, obs_height_m : float, keyword-only
            The observatory (geodetic east longitude, latitude, height).

        Returns
        -------
        ra_deg, dec_deg : ndarray, shape (n_positions, m)
        """
        mjd = np.atleast_1d(np.asarray(mjd_tai, dtype=float))
        if mjd.ndim != 1 or not np.all(np.isfinite(mjd)):
            raise TargetError("mjd_tai: must be finite, scalar or shape (m,)")
        site = {"obs_lon_deg": obs_lon_deg, "obs_lat_deg": obs_lat_deg,
                "obs_height_m": obs_height_m}
        if self.kind == "orbit":
            eph = predict_positions_nbody(self.orbit, mjd, **site)
            return np.asarray(eph.ra_deg).T, np.asarray(eph.dec_deg).T
        if self.kind == "proper_motion":
            ra, dec = _star_positions(self, mjd, site)
            return ra[None, :], dec[None, :]
        n = self.ra_deg.size
        return (np.broadcast_to(self.ra_deg[:, None], (n, mjd.size)).copy(),
                np.broadcast_to(self.dec_deg[:, None], (n, mjd.size)).copy())


def _star_positions(target: Target, mjd: np.ndarray, site: Mapping[str, float]
                    ) -> tuple[np.ndarray, np.ndarray]:
    """Topocentric astrometric positions of a star with space motion (see module notes)."""
    ref = Time(target.epoch_jyear, format="jyear", scale="tcb")
    star = SkyCoord(ra=target.ra_deg[0] * u.deg, dec=target.dec_deg[0] * u.deg,
                    pm_ra_cosdec=target.pmra_mas_yr * u.mas / u.yr,
                    pm_dec=target.pmdec_mas_yr * u.mas / u.yr,
                    distance=Distance(parallax=target.parallax_mas * u.mas),
                    radial_velocity=0.0 * u.km / u.s, obstime=ref, frame="icrs")
    with warnings.catch_warnings():
        # ERFA notes when a parallax below its floor (a star too far to matter) is raised to it
        warnings.simplefilter("ignore", erfa.ErfaWarning)
        moved = star.apply_space_motion(new_obstime=Time(mjd, format="mjd", scale="tai"))
    star_au = moved.icrs.cartesian.xyz.to_value(u.au)  # (3, m), barycentric
    observer = observer_states(mjd, **site).observer_pos_au.T  # (3, m)
    seen = SkyCoord(CartesianRepresentation(star_au - observer, unit=u.au), frame=ICRS())
    return np.asarray(seen.ra.deg) % 360.0, np.asarray(seen.dec.deg)


def _number(doc: Mapping[str, Any], key: str, *, lo: float, hi: float, what: str,
            default: float | None = None) -> float:
    value = doc.get(key, default)
    if value is None:
        raise TargetError(f"{what}: '{key}' is required")
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TargetError(f"{what}: '{key}' must be a number, got {type(value).__name__}")
    value = float(value)
    if not (np.isfinite(value) and lo <= value <= hi):
        raise TargetError(f"{what}: '{key}' = {value!r} is outside [{lo}, {hi}]")
    return value


def _radec(doc: Any, what: str) -> tuple[float, float]:
    if not isinstance(doc, Mapping):
        raise TargetError(f"{what}: expected an object with 'ra' and 'dec'")
    extra = set(doc) - {"ra", "dec"}
    if extra:
        raise TargetError(f"{what}: unknown field(s) {sorted(extra)}")
    ra = _number(doc, "ra", lo=-360.0, hi=720.0, what=what) % 360.0
    return ra, _number(doc, "dec", lo=-90.0, hi=90.0, what=what)


def _position_list(doc: Mapping[str, Any], kind: str, limit: int) -> tuple[np.ndarray, np.ndarray]:
    items = doc.get("positions")
    if not isinstance(items, list) or not items:
        raise TargetError(f"{kind}: 'positions' must be a non-empty list of {{ra, dec}}")
    if len(items) > limit:
        raise TargetError(f"{kind}: {len(items)} positions; at most {limit} per request")
    pairs = [_radec(p, f"{kind}: positions[{i}]") for i, p in enumerate(items)]
    return np.array([p[0] for p in pairs]), np.array([p[1] for p in pairs])


def _orbit(doc: Mapping[str, Any], lookup: Callable[[str], OrbitCatalog | None] | None
           ) -> OrbitCatalog:
    has_line, has_name = "mpcorb" in doc, "designation" in doc
    if has_line == has_name:
        raise TargetError("orbit: give exactly one of 'designation' and 'mpcorb'")
    if has_line:
        line = doc["mpcorb"]
        if not isinstance(line, str) or not line.strip() or "\n" in line.strip() or len(line) > 400:
            raise TargetError("orbit: 'mpcorb' must be one MPCORB.DAT line")
        try:
            catalog = read_mpcorb(line.rstrip("\n") + "\n")
        except OrbitError as exc:
            raise TargetError(f"orbit: 'mpcorb' is not a valid MPCORB.DAT line: {exc}") from exc
    else:
        name = doc["designation"]
        if not isinstance(name, str) or not name.strip() or len(name) > 40:
            raise TargetError("orbit: 'designation' must be a short string")
        if lookup is None:
            raise TargetError("orbit: no orbit catalog is loaded")
        catalog = lookup(name.strip())
        if catalog is None:
            try:
                packed = pack_designation(name)
            except OrbitError:
                packed = name.strip()
            catalog = lookup(packed)
        if catalog is None:
            raise TargetError(f"orbit: {name!r} is not in the loaded orbit catalog")
    if len(catalog) != 1:
        raise TargetError(f"orbit: expected one orbit, got {len(catalog)}")
    if not (np.all(catalog.e < 1.0) and np.all(catalog.a > 0.0)):
        raise TargetError("orbit: only bound orbits (e < 1) can be propagated")
    return catalog


def parse_target(doc: Any, *, orbit_lookup: Callable[[str], OrbitCatalog | None] | None = None
                 ) -> Target:
    """Check a request's ``target`` object and build the :class:`Target`.

    Parameters
    ----------
    doc : Mapping
        The JSON object (``{"kind": ..., ...}``: interfaces.md §6).
    orbit_lookup : callable, keyword-only, optional
        ``lookup(designation) -> OrbitCatalog | None`` over the loaded catalog (called with the
        text as given, then packed); needed for ``orbit`` targets by designation.

    Raises
    ------
    TargetError
        Naming the field and the rule it breaks.
    """
    if not isinstance(doc, Mapping):
        raise TargetError("target: expected a JSON object")
    kind = doc.get("kind")
    if kind not in TARGET_KINDS:
        raise TargetError(f"target: 'kind' must be one of {list(TARGET_KINDS)}, got {kind!r}")
    allowed = {"position": {"ra", "dec"}, "positions": {"positions"}, "batch": {"positions"},
               "proper_motion": {"ra", "dec", "pmra", "pmdec", "parallax", "epoch"},
               "orbit": {"designation", "mpcorb"}}[kind] | {"kind"}
    extra = set(doc) - allowed
    if extra:
        raise TargetError(f"{kind}: unknown field(s) {sorted(extra)}")
    if kind == "position":
        ra, dec = _radec({k: doc.get(k) for k in ("ra", "dec")}, kind)
        return Target(kind, np.array([ra]), np.array([dec]))
    if kind in ("positions", "batch"):
        limit = MAX_REGION_POSITIONS if kind == "positions" else MAX_BATCH_POSITIONS
        ra, dec = _position_list(doc, kind, limit)
        return Target(kind, ra, dec)
    if kind == "proper_motion":
        ra, dec = _radec({k: doc.get(k) for k in ("ra", "dec")}, kind)
        return Target(kind, np.array([ra]), np.array([dec]),
                      pmra_mas_yr=_number(doc, "pmra", lo=-MAX_PM_MAS_YR, hi=MAX_PM_MAS_YR, what=kind),
                      pmdec_mas_yr=_number(doc, "pmdec", lo=-MAX_PM_MAS_YR, hi=MAX_PM_MAS_YR,
                                           what=kind),
                      parallax_mas=_number(doc, "parallax", lo=1e-6, hi=MAX_PARALLAX_MAS, what=kind,
                                           default=1e-3),
                      epoch_jyear=_number(doc, "epoch", lo=1900.0, hi=2100.0, what=kind,
                                          default=2016.0))
    return Target(kind, np.zeros(0), np.zeros(0), orbit=_orbit(doc, orbit_lookup))


def check_region_images(per_position: list[set], centroid: set, *,
                        max_extra_fraction: float = REGION_EXTRA_IMAGES_FRACTION) -> int:
    """Accept a ``positions`` region only if it needs few more images than its centroid.

    Parameters
    ----------
    per_position : list of set
        The images (e.g. ``(visit, detector)``) covering each position.
    centroid : set
        The images covering the region's centroid.

    Returns
    -------
    int
        The number of images the region needs.

    Raises
    ------
    TargetError
        With both numbers, when the region needs more than ``1 + max_extra_fraction`` times
        the centroid's images.
    """
    union = set().union(*per_position) if per_position else set()
    allowed = int(np.floor((1.0 + max_extra_fraction) * len(centroid)))
    if len(union) > max(allowed, len(centroid)):
        raise TargetError(
            f"positions: the region needs {len(union)} images, more than "
            f"{100 * max_extra_fraction:.0f} % over the {len(centroid)} of its centroid "
            f"(limit {allowed}); submit it as a 'batch' of independent positions instead")
    return len(union)

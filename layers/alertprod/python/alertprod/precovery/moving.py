"""Which images a moving target crossed: the sweep of its predicted path over the archive's index.

A ``proper_motion`` star or an ``orbit`` asteroid is somewhere else at every epoch, so the
fixed-position search of :mod:`alertprod.precovery.job_plan` (one index cell, every day) does
not apply. The archive index (:meth:`Apdb.find_archived_exposures`) lists every archived image
under every HEALPix cell its footprint touches, one item per (cell, MJD day). An image whose
footprint holds the target at its midpoint t is therefore listed under the cell of the target's
position at t, on the day of t. The plan:

1. **Nodes.** The target's topocentric position at every whole MJD of the range
   (:meth:`~alertprod.precovery.targets.Target.positions_at`: astropy's space motion with the
   site's parallax for a star; the perturbed n-body integrator for an asteroid, every eighth
   day, the days between interpolated, their possible error added to the margin).
2. **Sweep.** The range is halved until each run of days has its path in a cone of 0.05°
   (or is one day long): the cone holds the run's nodes, grown by three quarters of its longest
   daily chord plus a margin (``SWEEP_MARGIN_DEG`` for an asteroid — the diurnal parallax of a
   near-Earth object at 0.05 au is 0.05° —, ``STAR_MARGIN_DEG`` for a star), so it holds the
   path between the nodes too. Each run reads the index cells its cone touches over its days;
   adjacent runs with the same cells are one query. A star (arcseconds a year) is one or a few
   runs over the whole range; an asteroid is one run a day.
3. **Selection.** Every candidate is kept only when the target's position *at the candidate's
   own midpoint* — predicted again, exactly — falls inside its footprint as stored in the index
   (the corners of its pixel grid), so the image really holds the target.
4. **Source.** Within the image cache's lifetime the cache index is asked, at that predicted
   position and midpoint, whether the difference image is still cached; otherwise the image
   is re-created from its archived science and template (both must be archived).

Each :class:`~alertprod.precovery.job_plan.JobUnit` carries the predicted position at its own
epoch: what the worker measures at. The range is bounded to :data:`MAX_MOVING_SPAN_DAYS` before
``mjd_max`` (docs/precovery-service.md, "Moving targets"). An image not yet archived (the
minutes between upload and archiving) is not found for a moving target.
"""

from __future__ import annotations

from typing import NamedTuple

import astropy.units as u
import numpy as np
from astropy_healpix import HEALPix
from scipy.interpolate import CubicSpline

from alertprod.apdb import Apdb
from alertprod.archive import ARCHIVE_INDEX_ORDER
from alertprod.errors import PrecoveryError
from alertprod.formats.exposure import RUBIN_SITE
from alertprod.pixelization import pixels_in_cone, polygon_contains
from alertprod.precovery.targets import Target

__all__ = ["MAX_MOVING_SPAN_DAYS", "STAR_MARGIN_DEG", "SWEEP_MARGIN_DEG", "Candidate",
           "plan_moving_target", "sweep_candidates"]

#: Longest range a moving target is planned over (days before ``mjd_max``): 20 years, twice
#: the LSST survey.
MAX_MOVING_SPAN_DAYS = 7305.0
#: Fixed part of the sweep cone's margin around an asteroid's daily chord (degrees): its
#: diurnal parallax and the bend of its path within a day.
SWEEP_MARGIN_DEG = 0.02
#: The same for a star (degrees): within a day its path is straight to far below 1″.
STAR_MARGIN_DEG = 1.0 / 3600.0
#: An asteroid's integrated nodes are this many days apart (daily ones interpolated).
ORBIT_NODE_STEP_DAYS = 8
#: Runs of days are halved until their path fits a cone of this radius (degrees).
_RUN_RADIUS_DEG = 0.05
#: Runs of at least this many days get the exact (slower) cell cover.
_EXACT_COVER_DAYS = 8
#: Padding of the fast cone search: about one archive-index cell (degrees).
_CELL_PAD_DEG = 0.12
#: Keys one BatchGetItem reads: adjacent daily queries are merged up to it.
_BATCH_KEYS = 100
#: The archive index's cells (nested, as :mod:`alertprod.pixelization` numbers them).
_ARCHIVE_CELLS = HEALPix(nside=2**ARCHIVE_INDEX_ORDER, order="nested")
#: Half-width of the time window the cache index is asked about one exposure (days, ~9 s).
_CACHE_MATCH_DAYS = 1e-4


class Candidate(NamedTuple):
    """An archived CCD-visit the sweep found: its index entry."""

    visit: int
    detector: int
    band: str
    mjd_tai: float
    corners: np.ndarray
    kinds: frozenset


def _unit_vectors(ra_deg: np.ndarray, dec_deg: np.ndarray) -> np.ndarray:
    ra, dec = np.deg2rad(ra_deg), np.deg2rad(dec_deg)
    return np.stack([np.cos(dec) * np.cos(ra), np.cos(dec) * np.sin(ra), np.sin(dec)], axis=-1)


def _node_vectors(target: Target, nodes: np.ndarray, site) -> tuple[np.ndarray, np.ndarray]:
    """Unit vectors of the target at whole-day nodes, and how far off each may be (degrees).

    A star's positions are vectorised astropy: every node is computed. An asteroid's come from
    the integrator at every :data:`ORBIT_NODE_STEP_DAYS`-th day, interpolated between by a cubic
    spline of the unit vector (at whole MJDs the site is at nearly the same place of the Earth's
    rotation, so the sequence is smooth); the gap between the cubic and the linear interpolant,
    which bounds the cubic's own error many times over, is returned as the slack. Hand-written
    because each integrator epoch costs milliseconds and a ten-year sweep has 3,653 days.
    """
    kw = {"obs_lon_deg": site[0], "obs_lat_deg": site[1], "obs_height_m": site[2]}
    step = ORBIT_NODE_STEP_DAYS if target.kind == "orbit" else 1
    if step == 1 or nodes.size <= 2 * step:
        ra, dec = target.positions_at(nodes, **kw)
        return _unit_vectors(ra[0], dec[0]), np.zeros(nodes.size)
    coarse = nodes[::step] if (nodes.size - 1) % step == 0 else np.r_[nodes[::step], nodes[-1]]
    ra, dec = target.positions_at(coarse, **kw)
    vc = _unit_vectors(ra[0], dec[0])
    cubic = CubicSpline(coarse, vc, axis=0)(nodes)
    linear = np.stack([np.interp(nodes, coarse, vc[:, k]) for k in range(3)], axis=1)
    slack = np.rad2deg(np.linalg.norm(cubic - linear, axis=1))
    return cubic / np.linalg.norm(cubic, axis=1, keepdims=True), slack


def _chunks(v: np.ndarray, chord: np.ndarray, base_deg: float, lo: int, hi: int,
            out: list) -> None:
    """Split the nodes ``lo..hi`` (days ``lo..hi-1``) into runs whose path fits a small cone.

    Appends ``(lo, hi, ra_deg, dec_deg, radius_deg)``: the cone holds every node of the run,
    grown by three quarters of the run's longest daily chord plus ``base_deg`` so that it
    holds the path between the nodes too. Runs are halved until their cone is at most
    :data:`_RUN_RADIUS_DEG` or they are one day long.
    """
    centre = v[lo:hi + 1].sum(axis=0)
    centre /= np.linalg.norm(centre)
    spread = np.rad2deg(np.arccos(np.clip(v[lo:hi + 1] @ centre, -1.0, 1.0))).max()
    radius = float(spread + 0.75 * chord[lo:hi].max() + base_deg)
    if radius <= _RUN_RADIUS_DEG or hi - lo == 1:
        ra = float(np.rad2deg(np.arctan2(centre[1], centre[0])) % 360.0)
        out.append((lo, hi, ra, float(np.rad2deg(np.arcsin(np.clip(centre[2], -1, 1)))), radius))
        return
    mid = (lo + hi) // 2
    _chunks(v, chord, base_deg, lo, mid, out)
    _chunks(v, chord, base_deg, mid, hi, out)


def _cells(ra: float, dec: float, radius: float, n_days: int) -> tuple[int, ...]:
    """Archive-index cells touching a cone: exact for long runs (they are read on many days),
    a fast padded search for one-day runs (one request whatever the handful of extra cells)."""
    radius = min(radius, 45.0)
    if n_days >= _EXACT_COVER_DAYS:
        return tuple(pixels_in_cone(ra, dec, radius, order=ARCHIVE_INDEX_ORDER).tolist())
    # astropy-healpix's cone search may leave out a cell the cone only grazes: padded by a
    # cell's size it misses none (checked against random points in the cone)
    cells = _ARCHIVE_CELLS.cone_search_lonlat(
        ra * u.deg, dec * u.deg, radius=(radius + _CELL_PAD_DEG) * u.deg)
    return tuple(sorted(int(c) for c in cells))


def sweep_candidates(apdb: Apdb, target: Target, mjd_min: float, mjd_max: float, *,
                     site: tuple[float, float, float] = RUBIN_SITE) -> list[Candidate]:
    """Archived CCD-visits the target's path may cross in [mjd_min, mjd_max) (steps 1–2).

    Returns
    -------
    list of Candidate
        One per (visit, detector), in time order; not yet tested against the footprints.
    """
    d0, d1 = int(np.floor(mjd_min)), int(np.ceil(mjd_max))
    nodes = np.arange(d0, d1 + 1, dtype=float)
    v, slack = _node_vectors(target, nodes, site)
    chord = np.rad2deg(np.arccos(np.clip(np.sum(v[:-1] * v[1:], axis=1), -1.0, 1.0)))
    chord += np.maximum(slack[:-1], slack[1:])  # interpolated nodes: their possible error
    base = SWEEP_MARGIN_DEG if target.kind == "orbit" else STAR_MARGIN_DEG
    runs: list = []
    _chunks(v, chord, base, 0, len(nodes) - 1, runs)
    # [cells, first node, last node]: adjacent runs merge while the merged query still fits one
    # BatchGetItem (its cells × its days ≤ 100 keys), or when their cells are the same
    queries: list[list] = []
    for lo, hi, cra, cdec, radius in runs:
        cells = _cells(cra, cdec, radius, hi - lo)
        if queries:
            union = tuple(sorted(set(queries[-1][0]) | set(cells)))
            if union == queries[-1][0] == cells or len(union) * (hi - queries[-1][1]) <= _BATCH_KEYS:
                queries[-1][0], queries[-1][2] = union, hi
                continue
        queries.append([cells, lo, hi])
    found: dict[tuple[int, int], dict] = {}
    for cells, lo_node, hi_node in queries:
        lo, hi = max(float(mjd_min), nodes[lo_node]), min(float(mjd_max), nodes[hi_node])
        if not hi > lo:
            continue
        # just below a whole-day end: the index's day bucket of the end itself is not read
        for row in apdb.find_archived_exposures(list(cells), lo, float(np.nextafter(hi, lo))):
            key = (int(row["visit"]), int(row["detector"]))
            entry = found.setdefault(key, {"band": str(row["band"]),
                                           "mjd": float(row["midpointMjdTai"]),
                                           "corners": np.asarray(row["corners"], float),
                                           "kinds": set()})
            entry["kinds"].add(str(row["kind"]))
            if str(row["kind"]) == "science":  # the exposure's own midpoint and footprint
                entry["mjd"], entry["corners"] = (float(row["midpointMjdTai"]),
                                                  np.asarray(row["corners"], float))
    out = [Candidate(v_, d, e["band"], e["mjd"], e["corners"], frozenset(e["kinds"]))
           for (v_, d), e in found.items()]
    return sorted(out, key=lambda c: (c.mjd_tai, c.visit, c.detector))


def _cached(apdb: Apdb, cand: Candidate, ra: float, dec: float) -> bool:
    rows = apdb.find_exposures(ra, dec, cand.mjd_tai - _CACHE_MATCH_DAYS,
                               cand.mjd_tai + _CACHE_MATCH_DAYS)
    return any(int(r["visit"]) == cand.visit and int(r["detector"]) == cand.detector
               and "difference" in str(r["kinds"]).split(",") for r in rows)


def plan_moving_target(apdb: Apdb, target: Target, *, mjd_min: float, mjd_max: float,
                       now_mjd_tai: float, cache_days: float = 30.0,
                       site: tuple[float, float, float] = RUBIN_SITE) -> list:
    """The images a ``proper_motion`` or ``orbit`` target crossed, one unit per image.

    Parameters
    ----------
    apdb : Apdb
        The Level 1 database (its archive and image-cache indexes).
    target : Target
        A moving target (:attr:`Target.moves`).
    mjd_min, mjd_max : float, keyword-only
        The job's time range (TAI MJD, end exclusive); at most :data:`MAX_MOVING_SPAN_DAYS`
        before ``mjd_max`` are planned.
    now_mjd_tai, cache_days : float, keyword-only
        Now, and the deployment's ``ImageCacheDays`` (older cached differences have expired).
    site : tuple of float, keyword-only
        The observatory (east longitude deg, latitude deg, height m): the parallax of a star
        and the topocentric position of an asteroid are seen from there.

    Returns
    -------
    list of JobUnit
        In time order; each with ``targets == (0,)`` and the predicted position at its midpoint.

    Raises
    ------
    PrecoveryError
        For a fixed target or an empty time range.
    """
    from alertprod.precovery.job_plan import JobUnit  # job_plan dispatches here

    if not target.moves:
        raise PrecoveryError(f"plan_moving_target: a {target.kind} target does not move")
    if not mjd_max > mjd_min:
        raise PrecoveryError(f"mjd_min {mjd_min} must be before mjd_max {mjd_max}")
    mjd_min = max(float(mjd_min), float(mjd_max) - MAX_MOVING_SPAN_DAYS)
    candidates = sweep_candidates(apdb, target, mjd_min, float(mjd_max), site=site)
    if not candidates:
        return []
    mjd = np.array([c.mjd_tai for c in candidates])
    ra, dec = target.positions_at(mjd, obs_lon_deg=site[0], obs_lat_deg=site[1],
                                  obs_height_m=site[2])
    since = float(now_mjd_tai) - float(cache_days)
    units = []
    for cand, r, d in zip(candidates, ra[0].tolist(), dec[0].tolist(), strict=True):
        if not polygon_contains(cand.corners, r, d):
            continue  # the path passes near, but the image does not hold the target
        if cand.mjd_tai >= since and _cached(apdb, cand, r, d):
            source = "cache"
        elif {"science", "template"} <= cand.kinds:
            source = "archive"
        else:
            continue  # re-creation needs both
        units.append(JobUnit(cand.visit, cand.detector, cand.band, cand.mjd_tai, source, (0,),
                             (r,), (d,)))
    return units

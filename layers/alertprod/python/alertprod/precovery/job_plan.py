"""Which images a precovery-service job measures, and how: the cached difference or a re-creation.

For each position of a fixed-position target (``position``, ``positions``, ``batch``), every
exposure whose footprint contains it within the job's time range is found in two indexes: the
image cache's (``Apdb.find_exposures``: difference images for ``ImageCacheDays``) and the
long-term archive's (:func:`alertprod.archive.find_archived_at`: science and template images,
kept for good). An exposure whose difference image is still cached is measured on it; one whose
difference has expired is re-created from its archived science and template
(:func:`alertprod.photometry.measure_recreated`), its rows flagged ``recreated``. The plan is
one :class:`JobUnit` per image (CCD-visit), holding the indices of the positions it covers, so a
``batch`` of 1,500 positions over one field reads each image once.

A ``positions`` target (a small region) is accepted only when its positions together need at
most 20 % more images than their centroid alone
(:func:`alertprod.precovery.targets.check_region_images`). Moving targets (``proper_motion``,
``orbit``) are planned from their predicted path (:mod:`alertprod.precovery.moving`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import numpy as np

from alertprod.apdb import Apdb
from alertprod.archive import find_archived_at
from alertprod.errors import PrecoveryError
from alertprod.formats.exposure import RUBIN_SITE
from alertprod.precovery.targets import Target, check_region_images

__all__ = ["JobUnit", "plan_fixed_target", "plan_job"]


class JobUnit(NamedTuple):
    """One image of a job: where to measure and how.

    Attributes
    ----------
    visit, detector : int
    band : str
    mjd_tai : float
        Exposure midpoint.
    source : str
        ``"cache"`` (the cached difference image) or ``"archive"`` (re-created from the
        archived science and template).
    targets : tuple of int
        Indices of the request's positions this image covers.
    ra_deg, dec_deg : tuple of float
        Where each of those positions is at this epoch (ICRS, degrees; aligned with
        ``targets``): the request's positions for a fixed target, the propagated ones for a
        moving target. A unit is therefore self-contained: a worker needs nothing else.
    """

    visit: int
    detector: int
    band: str
    mjd_tai: float
    source: str
    targets: tuple[int, ...]
    ra_deg: tuple[float, ...]
    dec_deg: tuple[float, ...]


def _images_at(apdb: Apdb, ra: float, dec: float, mjd_min: float, mjd_max: float,
               cache_since_mjd: float) -> dict[tuple[int, int], tuple[str, float, str]]:
    """``(visit, detector) -> (band, mjd, source)`` of the images covering one position."""
    out: dict[tuple[int, int], tuple[str, float, str]] = {}
    archived = find_archived_at(apdb, ra, dec, mjd_min, mjd_max)
    kinds: dict[tuple[int, int], set[str]] = {}
    for row in archived:
        key = (int(row["visit"]), int(row["detector"]))
        kinds.setdefault(key, set()).add(str(row["kind"]))
        out[key] = (str(row["band"]), float(row["midpointMjdTai"]), "archive")
    for key in [k for k, v in kinds.items() if not {"science", "template"} <= v]:
        del out[key]  # re-creation needs both
    cached = apdb.find_exposures(ra, dec, max(mjd_min, cache_since_mjd), mjd_max)
    for row in cached:
        if "difference" in str(row["kinds"]).split(","):
            out[(int(row["visit"]), int(row["detector"]))] = (
                str(row["band"]), float(row["midpointMjdTai"]), "cache")
    return out


def plan_fixed_target(apdb: Apdb, target: Target, *, mjd_min: float, mjd_max: float,
                      now_mjd_tai: float, cache_days: float = 30.0) -> list[JobUnit]:
    """The images a fixed-position target is measured on, one unit per image, in time order.

    Parameters
    ----------
    apdb : Apdb
        The Level 1 database (its image-cache and archive indexes).
    target : Target
        A ``position``, ``positions`` or ``batch`` target.
    mjd_min, mjd_max : float, keyword-only
        The job's time range (TAI MJD, end exclusive).
    now_mjd_tai : float, keyword-only
        Now: cached difference images older than ``cache_days`` have expired (the cache's
        lifecycle); their epochs are re-created from the archive.
    cache_days : float, keyword-only
        The deployment's ``ImageCacheDays``.

    Raises
    ------
    PrecoveryError
        For a moving target or an empty time range; a ``positions`` region that needs more
        than 20 % more images than its centroid (a ``TargetError`` with both numbers).
    """
    if target.moves:
        raise PrecoveryError(f"plan_fixed_target: a {target.kind} target moves; plan it by epoch")
    if not mjd_max > mjd_min:
        raise PrecoveryError(f"mjd_min {mjd_min} must be before mjd_max {mjd_max}")
    since = float(now_mjd_tai) - float(cache_days)
    per_position = [_images_at(apdb, float(r), float(d), mjd_min, mjd_max, since)
                    for r, d in zip(target.ra_deg, target.dec_deg, strict=True)]
    if target.kind == "positions" and len(per_position) > 1:
        ra0, dec0 = _centroid(target.ra_deg, target.dec_deg)
        centroid = _images_at(apdb, ra0, dec0, mjd_min, mjd_max, since)
        check_region_images([set(p) for p in per_position], set(centroid))
    units: dict[tuple[int, int], list] = {}
    for index, images in enumerate(per_position):
        for key, (band, mjd, source) in images.items():
            units.setdefault(key, [band, mjd, source, []])[3].append(index)
    ra, dec = np.asarray(target.ra_deg, float), np.asarray(target.dec_deg, float)
    return sorted((JobUnit(v, d, band, mjd, source, tuple(idx), tuple(ra[idx].tolist()),
                           tuple(dec[idx].tolist()))
                   for (v, d), (band, mjd, source, idx) in units.items()),
                  key=lambda u: (u.mjd_tai, u.visit, u.detector))


def _centroid(ra_deg: Sequence[float], dec_deg: Sequence[float]) -> tuple[float, float]:
    """Mean direction of the positions (unit vectors), in degrees."""
    ra, dec = np.deg2rad(np.asarray(ra_deg, float)), np.deg2rad(np.asarray(dec_deg, float))
    v = np.array([np.cos(dec) * np.cos(ra), np.cos(dec) * np.sin(ra), np.sin(dec)]).mean(axis=1)
    return float(np.rad2deg(np.arctan2(v[1], v[0])) % 360.0), float(np.rad2deg(np.arcsin(v[2] / np.linalg.norm(v))))


def plan_job(apdb: Apdb, target: Target, *, mjd_min: float, mjd_max: float, now_mjd_tai: float,
             cache_days: float = 30.0, site: tuple[float, float, float] = RUBIN_SITE
             ) -> list[JobUnit]:
    """The units of any target: the one planning entry point the service calls.

    Fixed-position targets go to :func:`plan_fixed_target`; moving ones (``proper_motion``,
    ``orbit``) to :func:`alertprod.precovery.moving.plan_moving_target`, which sweeps the
    predicted path over the archive's index and gives each unit the position at its epoch.
    ``site`` is the observatory the moving target is seen from (default Rubin's).
    """
    if not target.moves:
        return plan_fixed_target(apdb, target, mjd_min=mjd_min, mjd_max=mjd_max,
                                 now_mjd_tai=now_mjd_tai, cache_days=cache_days)
    from alertprod.precovery.moving import plan_moving_target

    return plan_moving_target(apdb, target, mjd_min=mjd_min, mjd_max=mjd_max,
                              now_mjd_tai=now_mjd_tai, cache_days=cache_days, site=site)

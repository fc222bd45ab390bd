"""Run a precovery-service job in one process: options, plan, measure, results, phases.

:func:`run_job_inline` is the whole path of a job for any target — check its
options, plan its images (:mod:`alertprod.precovery.job_plan`), measure every unit
(:mod:`alertprod.precovery.job_unit`), write the light curve as CSV, JSON and VOTable
(:mod:`alertprod.precovery.results`) and move the job through its UWS phases
(:mod:`alertprod.precovery.uws`); stamps, when asked, go beside it (:func:`stamp_key`). The
service fans the units out through a queue to workers with the daily precovery's fan-in; this
inline runner is what tests, tools and the worker's per-unit code share.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any, NamedTuple

import numpy as np
from astropy.table import Table, vstack

from alertprod.apdb import Apdb
from alertprod.archive.data_release import DataReleaseIndex, read_data_release_index
from alertprod.aws.blobs import BlobStore
from alertprod.errors import PrecoveryError
from alertprod.formats.exposure import RUBIN_SITE
from alertprod.orbits import OrbitCatalog
from alertprod.precovery.job_plan import plan_job
from alertprod.precovery.job_unit import IMAGE_KINDS, measure_job_unit
from alertprod.precovery.moving import MAX_MOVING_SPAN_DAYS
from alertprod.precovery.results import rows_from_records, to_csv, to_json, to_votable
from alertprod.precovery.sed import colour_corrections, parse_sed
from alertprod.precovery.targets import Target, TargetError, parse_target
from alertprod.precovery.uws import Job, transition

__all__ = ["JobOptions", "check_data_release_coverage", "check_data_release_units",
           "parse_options", "result_key", "run_job_inline", "stamp_key", "write_results"]

#: Earliest epoch a job may ask for (TAI MJD 50000 = 1995-10-10: before any survey image).
MJD_FLOOR = 50000.0
RESULT_FORMATS = {"csv": "text/csv", "json": "application/json",
                  "votable": "application/x-votable+xml"}


class JobOptions(NamedTuple):
    """A job's checked options (interfaces.md §6)."""

    mjd_min: float
    mjd_max: float
    sed: Mapping[str, Any] | None
    stamps: bool = False
    images: str = "nightly"


def parse_options(doc: Any, *, now_mjd_tai: float, target: Target | None = None,
                  dr_index: DataReleaseIndex | None = None) -> JobOptions:
    """Check a request's ``options``; unknown options are refused by name.

    Parameters
    ----------
    doc : Mapping or None
        The JSON ``options`` object (interfaces.md §6).
    now_mjd_tai : float, keyword-only
        Now: the default ``mjd_max``.
    target : Target, keyword-only, optional
        The job's target: with ``"images": "data_release"`` it must be covered by the loaded
        data-release coadds (``dr_index``), checked here so a job is refused before any work.
    dr_index : DataReleaseIndex, keyword-only, optional
        The loaded data-release index (None: none loaded).

    Raises
    ------
    TargetError
        Naming the option and the rule it breaks (an HTTP 400).
    """
    doc = {} if doc is None else doc
    if not isinstance(doc, Mapping):
        raise TargetError("options: expected a JSON object")
    known = {"mjd_min", "mjd_max", "stamps", "images", "sed"}
    if set(doc) - known:
        raise TargetError(f"options: unknown option(s) {sorted(set(doc) - known)}")
    stamps = doc.get("stamps", False)
    if not isinstance(stamps, bool):
        raise TargetError(f"options: 'stamps' must be true or false, got {stamps!r}")
    images = doc.get("images", "nightly")
    if images not in IMAGE_KINDS:
        raise TargetError(f"options: 'images' must be one of {list(IMAGE_KINDS)}, got {images!r}")
    bounds = []
    for key, default in (("mjd_min", MJD_FLOOR), ("mjd_max", float(now_mjd_tai))):
        value = doc.get(key, default)
        if isinstance(value, bool) or not isinstance(value, int | float) or not np.isfinite(value):
            raise TargetError(f"options: '{key}' must be a number (TAI MJD)")
        bounds.append(float(value))
    mjd_min, mjd_max = bounds
    if not MJD_FLOOR <= mjd_min < mjd_max:
        raise TargetError(f"options: need {MJD_FLOOR:.0f} <= mjd_min < mjd_max, got {mjd_min}, {mjd_max}")
    sed = doc.get("sed")
    if sed is not None:
        parse_sed(sed)  # refused here, not after the work
    if images == "data_release" and target is not None:
        check_data_release_coverage(target, dr_index, mjd_min=mjd_min, mjd_max=mjd_max)
    return JobOptions(mjd_min, mjd_max, sed, stamps, images)


def check_data_release_coverage(target: Target, dr_index: DataReleaseIndex | None, *,
                                mjd_min: float, mjd_max: float) -> None:
    """Refuse ``"images": "data_release"`` for a target no data-release coadd covers.

    A fixed target needs every position covered (in some band: a band without a coadd is
    measured against the nightly template, its rows saying so); a star with proper motion
    needs a covered position somewhere along its path (sampled every 30 days of the range, and
    at its ends); epochs off the coadds are measured against the nightly template. An
    asteroid's path costs an n-body integration, too slow for a submission: it is checked on
    the planned images instead (:func:`check_data_release_units`).

    Raises
    ------
    TargetError
        When no data release is loaded, or with the positions (or path) not covered.
    """
    if dr_index is None or not len(dr_index):
        raise TargetError("options: 'images': 'data_release' needs data-release templates, and "
                          "none are loaded; use 'images': 'nightly'")
    if target.kind == "orbit":
        return  # checked once planned: check_data_release_units
    if target.moves:
        start = max(mjd_min, mjd_max - MAX_MOVING_SPAN_DAYS)
        mjd = np.unique(np.r_[np.arange(start, mjd_max, 30.0), mjd_max])
        ra, dec = target.positions_at(mjd, obs_lon_deg=RUBIN_SITE[0], obs_lat_deg=RUBIN_SITE[1],
                                      obs_height_m=RUBIN_SITE[2])
        if not any(dr_index.covering(r, d) for r, d in zip(ra[0], dec[0], strict=True)):
            raise TargetError(f"options: no data-release template ({dr_index.release}) covers "
                              f"the path of this {target.kind} target; use 'images': 'nightly'")
        return
    missing = [k for k, (r, d) in enumerate(zip(target.ra_deg, target.dec_deg, strict=True))
               if dr_index.covering(float(r), float(d)) is None]
    if missing:
        shown = ", ".join(str(k) for k in missing[:10]) + (" ..." if len(missing) > 10 else "")
        raise TargetError(f"options: no data-release template ({dr_index.release}) covers "
                          f"{len(missing)} of the {target.n_positions} position(s) (index {shown}); "
                          "use 'images': 'nightly'")


def check_data_release_units(units, dr_index: DataReleaseIndex | None) -> None:
    """Refuse ``"images": "data_release"`` for a planned job none of whose images a coadd of
    its band covers at the position measured (the check of a moving target's path).

    Raises
    ------
    TargetError
        When no planned (image, position) is covered.
    """
    if dr_index is None or not len(dr_index):
        raise TargetError("options: 'images': 'data_release' needs data-release templates, and "
                          "none are loaded; use 'images': 'nightly'")
    for unit in units:
        for r, d in zip(unit.ra_deg, unit.dec_deg, strict=True):
            if dr_index.covering(r, d, unit.band) is not None:
                return
    raise TargetError(f"options: no data-release template ({dr_index.release}) covers any of "
                      f"the {len(units)} image(s) planned for this target; use 'images': 'nightly'")


def result_key(job_id: str, fmt: str) -> str:
    """Object key of a job's light curve in one format."""
    if fmt not in RESULT_FORMATS:
        raise PrecoveryError(f"format must be one of {sorted(RESULT_FORMATS)}, got {fmt!r}")
    return f"precovery-results/{job_id}/lightcurve.{'xml' if fmt == 'votable' else fmt}"


def run_job_inline(job: Job, *, apdb: Apdb, images: BlobStore, archive: BlobStore,
                   results: BlobStore, now: Callable[[], datetime], now_mjd_tai: float,
                   cache_days: float = 30.0,
                   orbit_lookup: Callable[[str], OrbitCatalog | None] | None = None) -> Job:
    """Run a ``PENDING`` job to ``COMPLETED`` (or ``ERROR`` with its reason); returns it.

    The light curve is written to ``results`` under :func:`result_key` in every format; with an
    SED, each row carries the colour correction of its band (``colourCorrection``).
    """
    try:
        target = parse_target(job.parameters.get("target"), orbit_lookup=orbit_lookup)
        dr_index = read_data_release_index(archive)
        options = parse_options(job.parameters.get("options"), now_mjd_tai=now_mjd_tai,
                                target=target, dr_index=dr_index)
        units = plan_job(apdb, target, mjd_min=options.mjd_min, mjd_max=options.mjd_max,
                         now_mjd_tai=now_mjd_tai, cache_days=cache_days)
        if options.images == "data_release" and target.moves and units:
            check_data_release_units(units, dr_index)
    except (TargetError, PrecoveryError) as exc:
        return transition(job, "ERROR", now=now(), error=str(exc))
    job = transition(job, "EXECUTING", now=now())
    measured = [measure_job_unit(u, images=images, archive=archive,
                                 processed_mjd_tai=now_mjd_tai, stamps=options.stamps,
                                 image_kind=options.images, dr_index=dr_index) for u in units]
    tables = [m.rows for m in measured]
    rows = vstack(tables) if tables else rows_from_records([])
    if options.sed is not None:
        k = colour_corrections(parse_sed(options.sed))
        rows["colourCorrection"] = np.array([k.get(str(b), np.nan) for b in rows["band"]], float)
    write_results(results, job.job_id, rows)
    links = tuple((f"lightcurve.{fmt}", f"/api/precovery/jobs/{job.job_id}/results/lightcurve?format={fmt}")
                  for fmt in RESULT_FORMATS)
    stamps = [s for m in measured for s in m.stamps]
    for stamp in stamps:
        results.put(stamp_key(job.job_id, stamp.name), stamp.data, content_type=stamp.content_type)
    if options.stamps:
        links += (("stamps", f"/api/precovery/jobs/{job.job_id}/results/stamps"),)
    return transition(job, "COMPLETED", now=now(), results=links)


def stamp_key(job_id: str, name: str) -> str:
    """Object key of one of a job's stamps (``name`` as :func:`alertprod.precovery.stamps.stamp_name`)."""
    if not name.startswith("stamps/") or ".." in name:
        raise PrecoveryError(f"not a stamp name: {name!r}")
    return f"precovery-results/{job_id}/{name}"


def write_results(results: BlobStore, job_id: str, rows: Table) -> None:
    """Write a job's light curve under :func:`result_key` in every format."""
    base = rows[[c for c in rows.colnames if c != "colourCorrection"]] if len(rows.colnames) else rows
    payloads = {"csv": to_csv(base).encode(), "json": to_json(base).encode(),
                "votable": to_votable(base)}
    if "colourCorrection" in rows.colnames:
        import json

        doc = json.loads(payloads["json"])
        for record, k in zip(doc["rows"], rows["colourCorrection"], strict=True):
            record["colourCorrection"] = None if not np.isfinite(k) else float(k)
        payloads["json"] = json.dumps(doc, allow_nan=False).encode()
    for fmt, data in payloads.items():
        results.put(result_key(job_id, fmt), data, content_type=RESULT_FORMATS[fmt])

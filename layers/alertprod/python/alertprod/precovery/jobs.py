"""Run a precovery-service job in one process: options, plan, measure, results, phases.

:func:`run_job_inline` is the whole path of a job for a fixed-position target — check its
options, plan its images (:mod:`alertprod.precovery.job_plan`), measure every unit
(:mod:`alertprod.precovery.job_unit`), write the light curve as CSV, JSON and VOTable
(:mod:`alertprod.precovery.results`) and move the job through its UWS phases
(:mod:`alertprod.precovery.uws`). The service will fan the units out through a queue to
workers with the daily precovery's fan-in; this inline runner is what tests, tools and the
worker's per-unit code share.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any, NamedTuple

import numpy as np
from astropy.table import Table, vstack

from alertprod.apdb import Apdb
from alertprod.aws.blobs import BlobStore
from alertprod.errors import PrecoveryError
from alertprod.orbits import OrbitCatalog
from alertprod.precovery.job_plan import plan_fixed_target
from alertprod.precovery.job_unit import measure_job_unit
from alertprod.precovery.results import rows_from_records, to_csv, to_json, to_votable
from alertprod.precovery.sed import colour_corrections, parse_sed
from alertprod.precovery.targets import TargetError, parse_target
from alertprod.precovery.uws import Job, transition

__all__ = ["JobOptions", "parse_options", "result_key", "run_job_inline", "write_results"]

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


def parse_options(doc: Any, *, now_mjd_tai: float) -> JobOptions:
    """Check a request's ``options``; unknown or not-yet-offered options are refused by name."""
    doc = {} if doc is None else doc
    if not isinstance(doc, Mapping):
        raise TargetError("options: expected a JSON object")
    known = {"mjd_min", "mjd_max", "stamps", "images", "sed"}
    if set(doc) - known:
        raise TargetError(f"options: unknown option(s) {sorted(set(doc) - known)}")
    if doc.get("stamps"):
        raise TargetError("options: 'stamps' are not offered yet")
    if doc.get("images", "nightly") != "nightly":
        raise TargetError("options: only 'images': 'nightly' is offered yet")
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
    return JobOptions(mjd_min, mjd_max, sed)


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
        options = parse_options(job.parameters.get("options"), now_mjd_tai=now_mjd_tai)
        if target.moves:
            raise TargetError(f"{target.kind} targets are not offered yet")
        units = plan_fixed_target(apdb, target, mjd_min=options.mjd_min, mjd_max=options.mjd_max,
                                  now_mjd_tai=now_mjd_tai, cache_days=cache_days)
    except (TargetError, PrecoveryError) as exc:
        return transition(job, "ERROR", now=now(), error=str(exc))
    job = transition(job, "EXECUTING", now=now())
    tables = [measure_job_unit(u, images=images, archive=archive,
                               processed_mjd_tai=now_mjd_tai).rows for u in units]
    rows = vstack(tables) if tables else rows_from_records([])
    if options.sed is not None:
        k = colour_corrections(parse_sed(options.sed))
        rows["colourCorrection"] = np.array([k.get(str(b), np.nan) for b in rows["band"]], float)
    write_results(results, job.job_id, rows)
    links = tuple((f"lightcurve.{fmt}", f"/api/precovery/jobs/{job.job_id}/results/lightcurve?format={fmt}")
                  for fmt in RESULT_FORMATS)
    return transition(job, "COMPLETED", now=now(), results=links)


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

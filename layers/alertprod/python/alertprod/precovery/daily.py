"""Daytime precovery (seed step 14): forced photometry of each night's new DiaObjects on the
cached difference images of the previous 30 days.

Flow (docs/precovery.md):

1. :func:`plan_precovery` (daily schedule) finds and claims the new DiaObjects no run has planned
   yet (the night's, and those of CCDs stored after an earlier run), asks the image-cache
   index which cached exposures covered each of them before it was discovered, groups the
   objects by exposure and returns one :class:`PrecoveryUnit` per exposure (sent through the
   precovery queue so that many function instances share the work);
2. :func:`run_unit` measures all objects of a unit at once on the cached difference (and science)
   image, read by ranged reads of the windows around the objects only, and stores DiaForcedSource rows flagged as precovery (deterministic ids: a rerun
   rewrites the same rows); it counts itself done in the run record;
3. the unit that completes the run triggers :func:`finalize_objects` (fan-in), which gives each
   object one new DiaObject version whose forced-flux summaries include the precovery points.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from dataclasses import dataclass, field

import numpy as np
from astropy.table import Table

from alertprod.apdb import LEASE_ORDER, Apdb, CcdWrites, LeaseManager, leased
from alertprod.aws import BlobStore
from alertprod.errors import PrecoveryError
from alertprod.formats import Exposure, image_key
from alertprod.photometry.dia_forced import VisitImages, dia_forced_rows
from alertprod.photometry.stamps import read_forced_windows
from alertprod.pipeline.reprocess import active_rows
from alertprod.pixelization import pixel_of
from alertprod.precovery.units import PrecoveryUnit
from alertprod.summary.versions import next_object_versions

__all__ = ["PrecoveryPlan", "UnitResult", "plan_precovery", "run_id_of", "run_unit", "finalize_objects",
           "CACHE_DAYS", "MAX_OBJECTS_PER_UNIT"]

#: Days of difference images the cache holds (template parameter ``ImageCacheDays``).
CACHE_DAYS = 30.0
#: Objects per unit message at most (keeps a message far below SQS's 256 KB).
MAX_OBJECTS_PER_UNIT = 1000


@dataclass
class PrecoveryPlan:
    """Work of one day's precovery run."""

    run_id: str
    night_start_mjd_tai: float
    night_end_mjd_tai: float
    new_objects: int
    units: list[PrecoveryUnit] = field(default_factory=list)

    @property
    def measurements(self) -> int:
        """Forced measurements the units will make."""
        return sum(len(u.dia_object_ids) for u in self.units)


@dataclass
class UnitResult:
    """What one unit did."""

    visit: int
    detector: int
    measured: int
    skipped_expired: bool = False
    run_complete: bool = False


def run_id_of(now_mjd_tai: float, night_days: float = 1.0) -> str:
    """The id of the run scheduled at ``now_mjd_tai``: its night's start, 5 decimals."""
    return f"{now_mjd_tai - night_days:.5f}"


def plan_precovery(apdb: Apdb, *, now_mjd_tai: float, night_days: float = 1.0,
                   cache_days: float = CACHE_DAYS, claim: bool = False) -> PrecoveryPlan:
    """Plan the precovery of the DiaObjects created in the ``night_days`` before ``now_mjd_tai``.

    Each object is measured on every cached exposure that covers it, taken within
    ``cache_days`` before ``now_mjd_tai`` and before the object's first detection (later
    exposures already got nightly forced photometry).

    With ``claim`` (the daily service), the run plans instead every new DiaObject of the
    ``cache_days`` before ``now_mjd_tai`` that no other run claimed, and claims it
    (:meth:`~alertprod.apdb.interface.Apdb.claim_new_dia_objects`): the day's objects and those
    of CCDs stored after an earlier day's run had planned, each precovered by exactly one run.
    """
    start, end = now_mjd_tai - night_days, now_mjd_tai
    run_id = run_id_of(now_mjd_tai, night_days)
    new = (apdb.claim_new_dia_objects(run_id, now_mjd_tai - cache_days, end) if claim
           else apdb.new_dia_objects(start, end))
    groups: dict[tuple[int, int], dict] = defaultdict(lambda: {"ids": [], "ra": [], "dec": []})
    meta: dict[tuple[int, int], tuple[str, float, tuple[str, ...]]] = {}
    for row in new:
        oid, ra, dec = int(row["diaObjectId"]), float(row["ra"]), float(row["dec"])
        first = float(row["validityStartMjdTai"])
        found = apdb.find_exposures(ra, dec, now_mjd_tai - cache_days, first)
        for e in found:
            if float(e["midpointMjdTai"]) >= first - 1e-9 or "difference" not in str(e["kinds"]):
                continue
            key = (int(e["visit"]), int(e["detector"]))
            g = groups[key]
            g["ids"].append(oid)
            g["ra"].append(ra)
            g["dec"].append(dec)
            meta[key] = (str(e["band"]), float(e["midpointMjdTai"]),
                         tuple(str(e["kinds"]).split(",")))
    units = []
    for key in sorted(groups):
        g = groups[key]
        band, mjd, kinds = meta[key]
        for s in range(0, len(g["ids"]), MAX_OBJECTS_PER_UNIT):
            part = slice(s, s + MAX_OBJECTS_PER_UNIT)
            units.append(PrecoveryUnit(key[0], key[1], band, mjd, tuple(g["ids"][part]),
                                       tuple(g["ra"][part]), tuple(g["dec"][part]), start, kinds))
    return PrecoveryPlan(run_id=run_id, night_start_mjd_tai=start, night_end_mjd_tai=end,
                         new_objects=len(new), units=units)


def run_unit(unit: PrecoveryUnit, *, apdb: Apdb, images: BlobStore,
             processed_mjd_tai: float) -> UnitResult:
    """Measure one unit and store its DiaForcedSource rows (flagged ``isPrecovery``).

    Parameters
    ----------
    unit : PrecoveryUnit
    apdb : Apdb
        The Level 1 database.
    images : BlobStore
        The image cache.
    processed_mjd_tai : float
        ``timeProcessedMjdTai`` of the rows.

    Notes
    -----
    An exposure that expired from the cache between planning and measuring is skipped
    (``skipped_expired``); the precovery service re-creates expired difference images.
    """
    diff = _cached(images, unit, "difference")
    if diff is None:
        return UnitResult(unit.visit, unit.detector, 0, skipped_expired=True)
    rows = precovery_rows(unit, diff, _cached(images, unit, "science"),
                          processed_mjd_tai=processed_mjd_tai,
                          snapdiff=(_cached(images, unit, "snapdiff")
                                    if unit.kinds is None or "snapdiff" in unit.kinds else None))
    apdb.store_ccd(CcdWrites(visit=unit.visit, detector=unit.detector, visit_time_mjd_tai=unit.mjd_tai,
                             dia_sources=Table(), dia_forced_sources=rows, dia_objects=Table()),
                   lease=None)
    return UnitResult(unit.visit, unit.detector, len(rows))


def _cached(images: BlobStore, unit: PrecoveryUnit, kind: str) -> Exposure | None:
    """A cached image of the unit's exposure, None when it is not (or no longer) cached, read by
    the windows around the unit's objects (:func:`alertprod.photometry.stamps.read_forced_windows`)."""
    return read_forced_windows(images, image_key(unit.visit, unit.detector, kind), kind,
                               unit.ra_deg, unit.dec_deg)


def precovery_rows(unit: PrecoveryUnit, difference: Exposure, science: Exposure | None, *,
                   processed_mjd_tai: float, snapdiff: Exposure | None = None) -> Table:
    """DiaForcedSource rows of one unit (vectorised forced photometry over all its objects)."""
    ids = np.asarray(unit.dia_object_ids, np.int64)
    if ids.size == 0:
        raise PrecoveryError("unit has no objects")
    images = VisitImages(unit.visit, unit.detector, unit.band, unit.mjd_tai, difference, science,
                         snapdiff)
    return dia_forced_rows(ids, np.asarray(unit.ra_deg, float), np.asarray(unit.dec_deg, float),
                           images, processed_mjd_tai=processed_mjd_tai, is_precovery=True)


def finalize_objects(apdb: Apdb, leases: LeaseManager, object_ids, *,
                     validity_start_mjd_tai: float, history_months: int = 12,
                     lease_ttl_s: float = 120.0, cells_per_batch: int = 16) -> int:
    """New DiaObject versions whose forced-flux summaries include the precovery measurements.

    ``validity_start_mjd_tai`` is the run's time, so a repeated finalisation finds the version
    already there and adds nothing. Objects are refreshed in batches of at most
    ``cells_per_batch`` lease cells (the cell holding each object: any CCD that could touch it
    leases that cell too), so every transaction stays far below DynamoDB's 100 items.
    Returns the number of objects refreshed.
    """
    ids = np.unique(np.asarray(list(object_ids), np.int64))
    if ids.size == 0:
        return 0
    current = apdb.get_dia_objects_by_id(ids)
    if len(current) == 0:
        return 0
    cells = np.asarray(pixel_of(np.asarray(current["ra"], float), np.asarray(current["dec"], float),
                                order=LEASE_ORDER), np.int64)
    unique_cells = np.unique(cells)
    done = 0
    for s in range(0, len(unique_cells), cells_per_batch):
        batch_cells = unique_cells[s:s + cells_per_batch]
        batch_ids = np.asarray(current["diaObjectId"], np.int64)[np.isin(cells, batch_cells)]
        done += _finalize_batch(apdb, leases, batch_ids, [int(c) for c in batch_cells],
                                validity_start_mjd_tai, history_months, lease_ttl_s)
    return done


def _finalize_batch(apdb: Apdb, leases: LeaseManager, ids: np.ndarray, cells: list[int],
                    validity_start_mjd_tai: float, history_months: int, lease_ttl_s: float) -> int:
    owner = f"precovery:{validity_start_mjd_tai:.5f}:{cells[0]}:{uuid.uuid4().hex[:12]}"
    with leased(leases, cells, owner, ttl_s=lease_ttl_s, wait_s=lease_ttl_s) as lease:
        current = apdb.get_dia_objects_by_id(ids)  # re-read under the lease
        fresh = current[np.asarray(current["validityStartMjdTai"], float) < validity_start_mjd_tai]
        if len(fresh) == 0:
            return 0
        fid = np.asarray(fresh["diaObjectId"], np.int64)
        hist, forced = apdb.get_dia_history(fid, validity_start_mjd_tai, months=history_months)
        hist, forced = active_rows(hist), active_rows(forced)  # withdrawn rows count in no summary
        versions = next_object_versions(Table(), fresh, hist, forced, Table(),
                                        validity_start_mjd_tai=validity_start_mjd_tai)
        if len(versions) == 0:
            return 0
        apdb.store_ccd(CcdWrites(visit=0, detector=0, visit_time_mjd_tai=validity_start_mjd_tai,
                                 dia_sources=Table(), dia_forced_sources=Table(), dia_objects=versions),
                       lease=lease)
        return len(versions)

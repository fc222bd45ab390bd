"""Reprocessing one CCD: withdraw what it wrote, so that a new upload of it is accepted.

A processed CCD uploaded again with other content is refused (``already_processed``): its
rows are in the Level 1 database and its alerts are out. Reprocessing is an operator's
action (``alertprod reprocess --visit V --detector D``, docs/pipeline.md "Reprocessing a
CCD"), in Rubin's way — rows are withdrawn, never deleted or changed otherwise:

1. the CCD's ledger record must be ``DONE``; its staged plan (the write-ahead record of
   :mod:`alertprod.pipeline.write_ahead`, kept 7 days) names every row it wrote;
2. the withdrawal is computed: the CCD's DiaSources and DiaForcedSources with
   ``timeWithdrawnMjdTai`` set, and a new version of every DiaObject they touched, summarised
   without them (``nDiaSources`` lowered by the withdrawn sources; an object left with none
   keeps its summaries and counts 0); it is staged before anything is written, so a rerun
   after a crash replays the same versions;
3. it is stored under the lease of the CCD's sky cells, fenced like the pipeline's writes,
   as writer ``withdraw:<visit>/<detector>:<n>`` (n counts the CCD's withdrawals);
4. the ledger record is reopened (:meth:`~alertprod.apdb.CcdLedger.reopen_ccd_record`): the
   next upload of the CCD is processed as a new one, its DiaObject versions following the
   withdrawal's, its alerts issued for its new DiaSources.

Every step is idempotent: the command may be repeated after any failure.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import numpy as np
from astropy.table import Table, vstack

from alertprod.apdb import CcdState, CcdWrites, Level1, cells_for_footprint, leased
from alertprod.apdb.interface import PREV_VALIDITY_COLUMN
from alertprod.errors import ConflictError, NotFoundError
from alertprod.pipeline.config import PipelineConfig
from alertprod.pipeline.write_ahead import plan_key, writes_from_fits, writes_to_fits
from alertprod.summary.versions import VERSION_EPSILON_DAYS, next_object_versions
from alertprod.times import now_mjd_tai

__all__ = ["WITHDRAWN_COLUMN", "ReprocessResult", "active_rows", "reprocess_ccd",
           "withdrawal_key", "withdrawal_writes"]

#: The Rubin column that marks a withdrawn DiaSource / DiaForcedSource (TAI MJD).
WITHDRAWN_COLUMN = "timeWithdrawnMjdTai"


@dataclass(frozen=True)
class ReprocessResult:
    """What a reprocessing withdrew.

    Attributes
    ----------
    visit, detector : int
        The CCD.
    dia_sources_withdrawn, dia_forced_sources_withdrawn : int
        Rows marked withdrawn.
    dia_objects_versioned : int
        DiaObjects given a new version without the withdrawn rows.
    time_withdrawn_mjd_tai : float
        ``timeWithdrawnMjdTai`` of the rows (TAI MJD).
    writer : str
        The writer recorded on the new versions.
    """

    visit: int
    detector: int
    dia_sources_withdrawn: int
    dia_forced_sources_withdrawn: int
    dia_objects_versioned: int
    time_withdrawn_mjd_tai: float
    writer: str

    def summary(self) -> dict:
        """JSON-ready summary (the command's output)."""
        return {"visit": self.visit, "detector": self.detector,
                "diaSourcesWithdrawn": self.dia_sources_withdrawn,
                "diaForcedSourcesWithdrawn": self.dia_forced_sources_withdrawn,
                "diaObjectsVersioned": self.dia_objects_versioned,
                "timeWithdrawnMjdTai": self.time_withdrawn_mjd_tai, "writer": self.writer}


def withdrawal_key(visit: int, detector: int, catalog_sha256: str) -> str:
    """Key of a staged withdrawal in the alert bucket (one per processed catalog)."""
    return f"staging/{int(visit):08d}/{int(detector):03d}.withdraw-{catalog_sha256[:16]}.fits"


def active_rows(table: Table) -> Table:
    """The rows of a DiaSource / DiaForcedSource table that are not withdrawn."""
    if len(table) == 0 or WITHDRAWN_COLUMN not in table.colnames:
        return table
    t = np.ma.filled(np.ma.asarray(table[WITHDRAWN_COLUMN], dtype=float), np.nan)
    return table[~np.isfinite(t)]


def _withdrawn(table: Table, t_mjd_tai: float) -> Table:
    out = Table(table, copy=True)
    if len(out.colnames):
        out[WITHDRAWN_COLUMN] = np.full(len(out), float(t_mjd_tai))
    return out


def _ids(table: Table, column: str) -> np.ndarray:
    if len(table) == 0 or column not in table.colnames:
        return np.zeros(0, np.int64)
    return np.asarray(np.ma.filled(np.ma.asarray(table[column]), 0), np.int64)


def withdrawal_writes(level1: Level1, writes: CcdWrites, *, time_withdrawn_mjd_tai: float,
                      writer: str, history_months: int = 12) -> CcdWrites:
    """The writes that withdraw a CCD's rows and re-summarise the DiaObjects they touched.

    Parameters
    ----------
    level1 : Level1
        The Level 1 database (read only here).
    writes : CcdWrites
        What the CCD wrote (its staged plan).
    time_withdrawn_mjd_tai : float, keyword-only
        ``timeWithdrawnMjdTai`` of the rows, and the earliest start of the new versions.
    writer : str, keyword-only
        The writer tag of the new versions.
    history_months : int, keyword-only
        History read back for the summaries (as the nightly pipeline).
    """
    t = float(time_withdrawn_mjd_tai)
    sources, forced = writes.dia_sources, writes.dia_forced_sources
    src_ids, forced_ids = _ids(sources, "diaSourceId"), _ids(forced, "diaForcedSourceId")
    src_obj = _ids(sources, "diaObjectId")
    oids = np.union1d(src_obj[src_obj > 0], _ids(forced, "diaObjectId"))
    oids = oids[oids > 0]
    versions = Table()
    if oids.size:
        apdb = level1.apdb
        previous = apdb.get_dia_objects_by_id(oids)
        t_read = max(t, float(writes.visit_time_mjd_tai))
        if len(previous):
            t_read = max(t_read, float(np.nanmax(np.asarray(previous["validityStartMjdTai"], float))))
        history, forced_history = apdb.get_dia_history(oids, t_read + 1e-6, months=history_months)
        history = active_rows(history)
        history = history[~np.isin(_ids(history, "diaSourceId"), src_ids)] if len(history) else history
        forced_history = active_rows(forced_history)
        if len(forced_history):
            forced_history = forced_history[~np.isin(_ids(forced_history, "diaForcedSourceId"),
                                                     forced_ids)]
        versions = _versions(previous, history, forced_history, src_obj, t)
    return CcdWrites(visit=writes.visit, detector=writes.detector, visit_time_mjd_tai=t,
                     dia_sources=_withdrawn(sources, t), dia_forced_sources=_withdrawn(forced, t),
                     dia_objects=versions, writer=writer)


def _versions(previous: Table, history: Table, forced_history: Table, withdrawn_obj: np.ndarray,
              t: float) -> Table:
    """New versions of the ``previous`` objects without the withdrawn rows."""
    if len(previous) == 0:
        return Table()
    versions = next_object_versions(Table(), previous, history, forced_history, Table(),
                                    validity_start_mjd_tai=t)
    pid = np.asarray(previous["diaObjectId"], np.int64)
    orphan = ~np.isin(pid, _ids(versions, "diaObjectId"))
    if np.any(orphan):  # no DiaSource left in the window: the summaries stay, the count falls
        rest = Table(previous[orphan], copy=True)
        start = np.asarray(rest["validityStartMjdTai"], float)
        rest[PREV_VALIDITY_COLUMN] = start
        rest["validityStartMjdTai"] = np.where(start >= t, start + VERSION_EPSILON_DAYS, t)
        rest["validityEndMjdTai"] = np.full(len(rest), np.nan)
        if len(versions):
            rest = rest[[c for c in versions.colnames if c in rest.colnames]]
            versions = vstack([versions, rest], join_type="outer", metadata_conflicts="silent")
        else:
            versions = rest
    vid = np.asarray(versions["diaObjectId"], np.int64)
    removed = np.searchsorted(np.sort(withdrawn_obj), vid, side="right") - \
        np.searchsorted(np.sort(withdrawn_obj), vid, side="left")
    versions["nDiaSources"] = np.maximum(np.asarray(versions["nDiaSources"], np.int64) - removed, 0)
    versions.sort("diaObjectId")
    return versions


def _lease_cells(writes: CcdWrites, margin_arcsec: float) -> list[int]:
    """The sky cells of the rows' positions: a cone around their centre that holds them all."""
    ra = np.concatenate([np.asarray(t["ra"], float) for t in (writes.dia_sources, writes.dia_objects)
                         if len(t) and "ra" in t.colnames] or [np.zeros(0)])
    dec = np.concatenate([np.asarray(t["dec"], float) for t in (writes.dia_sources, writes.dia_objects)
                          if len(t) and "dec" in t.colnames] or [np.zeros(0)])
    ok = np.isfinite(ra) & np.isfinite(dec)
    if not np.any(ok):
        return []
    ra, dec = np.radians(ra[ok]), np.radians(dec[ok])
    xyz = np.stack([np.cos(dec) * np.cos(ra), np.cos(dec) * np.sin(ra), np.sin(dec)], axis=1)
    centre = xyz.mean(axis=0)
    centre /= np.linalg.norm(centre)
    radius_arcsec = float(np.degrees(np.arccos(np.clip(xyz @ centre, -1, 1)).max())) * 3600
    c_ra = float(np.degrees(np.arctan2(centre[1], centre[0])) % 360)
    c_dec = float(np.degrees(np.arcsin(centre[2])))
    return cells_for_footprint(np.array([[c_ra, c_dec]] * 3),
                               margin_arcsec=radius_arcsec + margin_arcsec)


def reprocess_ccd(level1: Level1, alert_archive, visit: int, detector: int, *,
                  config: PipelineConfig | None = None,
                  time_withdrawn_mjd_tai: float | None = None) -> ReprocessResult:
    """Withdraw a processed CCD's rows and reopen it for a new upload (module notes).

    Parameters
    ----------
    level1 : Level1
        The Level 1 database with its ledger and leases.
    alert_archive : BlobStore
        The alert bucket (the CCD's staged plan; the withdrawal is staged there too).
    visit, detector : int
        The CCD.
    config : PipelineConfig, keyword-only, optional
        Lease and history settings (the pipeline's).
    time_withdrawn_mjd_tai : float, keyword-only, optional
        ``timeWithdrawnMjdTai`` (TAI MJD); now by default.

    Raises
    ------
    NotFoundError
        When the CCD was never processed, or its staged plan has expired (7 days).
    ConflictError
        When the CCD is still being processed (not ``DONE``), or its sky cells stay leased.
    """
    visit, detector = _check_ccd(visit, detector)
    cfg = config or PipelineConfig()
    record = level1.ledger.get_ccd_record(visit, detector)
    if record is None:
        raise NotFoundError(f"CCD {visit}/{detector}: never processed (no ledger record)")
    sha = record.get("catalogSha256")
    if record["state"] is not CcdState.DONE or not sha:
        reopened = record.get("reopenedFrom")
        if record["state"] is CcdState.STARTED and reopened:
            raise ConflictError(f"CCD {visit}/{detector}: already withdrawn (catalog "
                                f"{reopened[:12]}…); upload the new catalog")
        raise ConflictError(f"CCD {visit}/{detector}: still being processed (state "
                            f"{record['state'].value}); reprocess once it is done")
    key = withdrawal_key(visit, detector, sha)
    if alert_archive.exists(key):  # a rerun: replay the staged withdrawal
        writes = writes_from_fits(alert_archive.get(key))
    else:
        try:
            written = writes_from_fits(alert_archive.get(plan_key(visit, detector)))
        except NotFoundError as exc:
            raise NotFoundError(f"CCD {visit}/{detector}: its staged plan has expired (kept 7 "
                                f"days); it can no longer be reprocessed") from exc
        n = int(record.get("withdrawals", 0)) + 1
        t = now_mjd_tai() if time_withdrawn_mjd_tai is None else float(time_withdrawn_mjd_tai)
        writes = withdrawal_writes(level1, written, time_withdrawn_mjd_tai=t,
                                   writer=f"withdraw:{visit}/{detector}:{n}",
                                   history_months=cfg.history_months)
        alert_archive.put(key, writes_to_fits(writes), content_type="application/fits")
    cells = _lease_cells(writes, cfg.footprint_margin_arcsec)
    owner = f"withdraw:{visit}:{detector}:{uuid.uuid4().hex[:12]}"
    if cells:
        with leased(level1.leases, cells, owner, ttl_s=cfg.lease_ttl_s, wait_s=cfg.lease_wait_s) as lease:
            level1.apdb.store_ccd(writes, lease=lease)
    n_done = int(str(writes.writer).rsplit(":", 1)[-1])
    level1.ledger.reopen_ccd_record(visit, detector, catalog_sha256=sha, withdrawals=n_done,
                                    withdrawnMjdTai=writes.visit_time_mjd_tai)
    return ReprocessResult(visit, detector, len(writes.dia_sources), len(writes.dia_forced_sources),
                           len(writes.dia_objects), float(writes.visit_time_mjd_tai),
                           str(writes.writer))


def _check_ccd(visit: object, detector: object) -> tuple[int, int]:
    """``(visit, detector)`` as ints in the contract's ranges (ValueError naming the argument)."""
    out = []
    for name, value, top in (("visit", visit, 10**8), ("detector", detector, 10**3)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or not 0 <= value < top:
            raise ValueError(f"{name}: expected an integer in [0, {top}), got {value!r}")
        out.append(int(value))
    return out[0], out[1]

"""The nightly pipeline: one validated CCD upload → Level 1 database → alerts, exactly once.

Order of work for one CCD (docs/pipeline.md has the reasoning):

1. ledger: a CCD already ``done`` is acknowledged and nothing is redone;
2. lease the sky cells of the footprint padded by 20″ (neighbouring CCDs of this and other
   visits wait for each other only where they overlap);
3. under the lease: re-read the ledger; read the DiaObjects of the padded footprint, associate
   (asteroids first), force-photometer undetected objects, read 12 months of history,
   recompute summaries, build the alerts; **stage** the computed writes and alerts in the
   alert bucket (a write-ahead record) and move the ledger to ``planned``; then store the plan
   (fenced, idempotent transactions) and move to ``stored``; release the lease;
4. publish the staged alerts (per-alert publish marks: a retry sends none twice); index the
   cached images for precovery; ledger → ``done``.

A crash before ``planned`` leaves the database untouched and the retry starts afresh; a crash
after it replays the staged plan — never a recomputation against a half-written database — so
the retry writes the same rows and versions; a crash after ``stored`` resumes at publishing.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from astropy.table import Table

from alertprod.alerts import AlertMarksLedger, AlertPublisher, prepare_alerts
from alertprod.apdb.dynamodb import DynamoApdb
from alertprod.apdb.interface import CcdWrites
from alertprod.apdb.leases import cells_for_footprint
from alertprod.formats import Exposure, read_exposure
from alertprod.ingest import ValidatedUpload
from alertprod.orbits import OrbitCatalog, read_mpcorb
from alertprod.pipeline import stages
from alertprod.pipeline.alerting import build_ccd_alerts
from alertprod.pipeline.config import PipelineConfig
from alertprod.pipeline.solar_system import OrbitCache, ss_object_rows
from alertprod.pipeline.staging import StagedPlan, load_alerts, load_plan, stage_plan
from alertprod.pipeline.timing import StageTimer
from alertprod.pixelization import pixels_covering

__all__ = ["CcdResult", "NightlyPipeline"]


@dataclass
class CcdResult:
    """What processing one CCD did (also stored in its ledger entry)."""

    status: str
    visit: int
    detector: int
    counts: dict[str, int] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)
    total_seconds: float = 0.0
    dynamodb_requests: int = 0
    warnings: list[str] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        """JSON-ready summary (ledger entry, logs, the replay's per-CCD table)."""
        return {"status": self.status, "visit": self.visit, "detector": self.detector,
                "counts": dict(self.counts), "stages": {k: round(v, 6) for k, v in self.seconds.items()},
                "seconds": round(self.total_seconds, 6), "dynamodbRequests": self.dynamodb_requests,
                "warnings": list(self.warnings)}


class NightlyPipeline:
    """Per-CCD alert production bound to one deployment's storage.

    Parameters
    ----------
    apdb : DynamoApdb
        The Level 1 database (with its ledger and leases).
    alert_archive : BlobStore
        Alert archive bucket (staging, archive, claim-check target).
    publisher : AlertPublisher or None
        Publishes to the alert topic; None archives only.
    config : PipelineConfig
    """

    def __init__(self, apdb: DynamoApdb, alert_archive, publisher: AlertPublisher | None,
                 config: PipelineConfig | None = None):
        self.apdb = apdb
        self.archive = alert_archive
        self.publisher = publisher
        self.config = config or PipelineConfig()
        self.orbits = OrbitCache(apdb)

    @classmethod
    def from_services(cls, services, config: PipelineConfig | None = None) -> NightlyPipeline:
        """Build from :class:`alertprod.aws.Services`."""
        apdb = DynamoApdb(services.dynamodb, services.resources.level1_table)
        publisher = None
        if services.alert_topic is not None:
            publisher = AlertPublisher(services.alert_archive, services.alert_topic,
                                       ledger=AlertMarksLedger(apdb.ledger))
        return cls(apdb, services.alert_archive, publisher, config)

    # -- orbit catalog -------------------------------------------------------------------------
    def load_orbits(self, data: bytes) -> int:
        """Validate an MPCORB.DAT upload, store it and its SSObject rows; return the object count."""
        text = data.decode("ascii", errors="replace")
        catalog = read_mpcorb(text)
        self.apdb.store_orbit_catalog(text)
        self.apdb.store_ss_objects(ss_object_rows(catalog))
        self.orbits.invalidate()
        return len(catalog)

    # -- one CCD -------------------------------------------------------------------------------
    def process_ccd(self, upload: ValidatedUpload) -> CcdResult:
        """Process one validated CCD upload (idempotent; see the module notes)."""
        timer = StageTimer()
        req0 = self.apdb.client.total()
        v, d = upload.visit, upload.detector
        info = upload.catalog.info
        ledger = self.apdb.ledger
        result = CcdResult("processed", v, d, warnings=list(upload.warnings))
        record = ledger.get_ccd_record(v, d) or {}
        if record.get("state") == "done":
            result.status = "duplicate"
            result.counts = dict(record.get("counts", {}))
            return self._finish(result, timer, req0)
        plan: StagedPlan | None = None
        if record.get("state") not in ("stored", "alerted"):
            corners = upload.catalog.footprint_radec()
            cells = cells_for_footprint(corners, margin_arcsec=self.config.footprint_margin_arcsec)
            with timer("lease"):
                lease = self.apdb.leases.acquire(cells, f"ccd:{v}:{d}:{uuid.uuid4().hex[:12]}",
                                                 ttl_s=self.config.lease_ttl_s,
                                                 wait_s=self.config.lease_wait_s)
            try:
                record = ledger.get_ccd_record(v, d) or {}  # re-read under the lease
                state = record.get("state")
                if state in (None, "started"):
                    ledger.put_ccd_record(v, d, "started")
                    writes, alerts, counts = self._compute(upload, corners, timer)
                    plan = StagedPlan(writes, alerts)
                    with timer("stage"):
                        stage_plan(self.archive, plan)
                    ledger.put_ccd_record(v, d, "planned", counts=counts, warnings=upload.warnings)
                    record = {"state": "planned", "counts": counts}
                if record.get("state") == "planned":
                    if plan is None:  # a retry: replay what was computed before the crash
                        with timer("read_staged"):
                            plan = load_plan(self.archive, v, d)
                    with timer("store"):
                        self.apdb.store_ccd(plan.writes, lease=lease)
                        # asteroid counters: atomic set additions, safe against concurrent CCDs
                        self.apdb.record_ss_observations(plan.writes.dia_sources)
                    ledger.put_ccd_record(v, d, "stored")
            finally:
                self.apdb.leases.release(lease)
        record = ledger.get_ccd_record(v, d) or record
        result.counts = dict(record.get("counts", {}))
        if plan is None:
            with timer("read_staged"):
                alerts = load_alerts(self.archive, v, d)
        else:
            alerts = plan.alerts
        if self.publisher is not None:
            with timer("publish"):
                stats = self.publisher.publish_prepared(alerts)
            result.counts["alertsPublished"] = stats.published + stats.skipped
            result.counts["alertsClaimChecked"] = stats.claim_checked
            result.counts["alertPacketBytes"] = stats.packet_bytes
        with timer("index_images"):
            self.apdb.index_exposure(v, d, info.band, info.mjd_mid_tai, upload.catalog.footprint_radec(),
                                     sorted(upload.image_info))
        result = self._finish(result, timer, req0)
        ledger.put_ccd_record(v, d, "done", counts=result.counts, warnings=upload.warnings,
                              stages=result.seconds, seconds=result.total_seconds,
                              dynamodbRequests=result.dynamodb_requests,
                              band=info.band, mjdTai=info.mjd_mid_tai)
        return result

    def _finish(self, result: CcdResult, timer: StageTimer, req0: int) -> CcdResult:
        result.seconds = dict(timer.seconds)
        result.total_seconds = timer.total_s
        result.dynamodb_requests = self.apdb.client.total() - req0
        return result

    def _exposure(self, upload: ValidatedUpload, kind: str) -> Exposure | None:
        raw = upload.image_bytes.get(kind)
        if raw is None:
            return None
        try:
            return read_exposure(raw, what=kind)
        except Exception as exc:  # an unusable image degrades only what needs it
            upload.warnings.append(f"unreadable_image:{kind}:{exc}")
            return None

    def _compute(self, upload: ValidatedUpload, corners: np.ndarray, timer: StageTimer):
        cfg = self.config
        info = upload.catalog.info
        processed = stages.now_mjd_tai()
        with timer("read_images"):
            exposures = {k: self._exposure(upload, k) for k in ("difference", "science", "template")}
        with timer("load_objects"):
            pixels = pixels_covering(corners, margin_arcsec=cfg.footprint_margin_arcsec)
            objects = self.apdb.get_dia_objects(pixels)
            orbits: OrbitCatalog | None = self.orbits.get()
        with timer("associate"):
            sources = stages.prepare_sources(upload.catalog, processed_mjd_tai=processed)
            predicted, ephem = stages.predict_solar_system(orbits, info, corners,
                                                           margin_arcsec=cfg.sso_margin_arcsec)
            assoc = stages.associate_ccd(sources, objects, predicted, max_dist_arcsec=cfg.max_dist_arcsec)
        detected = np.unique(np.asarray(sources["diaObjectId"], np.int64))
        with timer("forced"):
            forced = stages.forced_measurements(objects, detected, corners, exposures["difference"],
                                                exposures["science"], info, processed_mjd_tai=processed)
        touched = detected[detected > 0]
        with timer("history"):
            existing = touched[np.isin(touched, np.asarray(objects["diaObjectId"], np.int64))] \
                if len(objects) else np.zeros(0, np.int64)
            previous = self.apdb.get_dia_objects_by_id(existing) if len(existing) else Table()
            # Read up to the newest committed state (later visits may have been committed first):
            # summaries use everything known; alerts carry only what precedes this visit.
            t_read = info.mjd_mid_tai
            if len(previous):
                t_read = max(t_read, float(np.nanmax(np.asarray(previous["validityStartMjdTai"], float))),
                             float(np.nanmax(np.asarray(previous["lastDiaSourceMjdTai"], float))))
            t_read += 1e-6
            history, forced_history = (self.apdb.get_dia_history(existing, t_read, months=cfg.history_months)
                                       if len(existing) else (Table(), Table()))
        with timer("summaries"):
            versions = stages.new_object_versions(sources, previous, history, forced_history, forced,
                                                  visit_time_mjd_tai=info.mjd_mid_tai)
        with timer("solar_system"):
            ss_rows = stages.ss_source_rows(sources, assoc, ephem, info)
            mpc = self.orbits.mpc_orbit_rows(np.asarray(sources["ssObjectId"], np.int64))
        with timer("alerts"):
            records = build_ccd_alerts(sources, versions, _before(history, info.mjd_mid_tai),
                                      _before(forced_history, info.mjd_mid_tai), ss_rows, mpc,
                                      exposures, config=cfg)
        with timer("serialize"):
            alerts = prepare_alerts(records)
        writes = CcdWrites(visit=info.visit, detector=info.detector, visit_time_mjd_tai=info.mjd_mid_tai,
                           dia_sources=sources, dia_forced_sources=forced, dia_objects=versions,
                           ss_objects=None)
        n_new = int(np.sum(assoc.new_object))
        counts = {
            "diaSources": len(sources),
            "newDiaObjects": n_new,
            "updatedDiaObjects": int(len(versions) - n_new) if len(versions) else 0,
            "ssoMatches": int(np.sum(assoc.solar_system.matched)),
            "forcedSources": len(forced),
            "alerts": len(alerts),
            "objectsInFootprint": len(objects),
        }
        return writes, alerts, counts


def _before(table: Table, mjd_tai: float) -> Table:
    """Rows of a history table strictly before ``mjd_tai``."""
    if len(table) == 0:
        return table
    return table[np.asarray(table["midpointMjdTai"], float) < mjd_tai]

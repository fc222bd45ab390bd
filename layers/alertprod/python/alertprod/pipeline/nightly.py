"""The nightly pipeline: one validated CCD upload → Level 1 database → alerts, exactly once.

Four steps for one CCD (docs/pipeline.md has the reasoning), one method each:

1. :meth:`~NightlyPipeline._check_done` — a CCD whose ledger says ``DONE`` is acknowledged
   and nothing is redone;
2. :meth:`~NightlyPipeline._plan_and_store` — under a lease on the sky cells of the
   footprint padded by 20″ (neighbouring CCDs of this and other visits wait for each other
   only where they overlap): re-read the ledger; compute everything
   (:func:`~alertprod.pipeline.compute.compute_ccd`), **stage** it in the alert bucket (a
   write-ahead record) and move to ``PLANNED``; store the plan (fenced, idempotent
   transactions) and move to ``STORED``;
3. :meth:`~NightlyPipeline._publish` — still under the lease, publish the staged alerts
   (per-alert publish marks: a retry, or a second delivery running at once, sends none twice);
4. :meth:`~NightlyPipeline._close` — index the cached images for precovery; ``DONE``.

A crash before ``PLANNED`` leaves the database untouched and the retry starts afresh; a crash
after it replays the staged plan — never a recomputation against a half-written database — so
the retry writes the same rows and versions; a crash after ``STORED`` resumes at publishing.
"""

from __future__ import annotations

import uuid
from contextlib import ExitStack, nullcontext
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from alertprod.alerts import AlertMarksLedger, AlertPublisher, PreparedAlert
from alertprod.apdb import CcdState, Lease, Level1, cells_for_footprint, dynamo_level1, leased
from alertprod.errors import (
    ConflictError,
    ContractError,
    LeaseLostError,
    OrbitError,
    StalePlanError,
)
from alertprod.ingest import ValidatedUpload
from alertprod.orbitrefresh import request_refresh
from alertprod.orbits import read_mpcorb, ss_object_rows
from alertprod.pipeline.compute import compute_ccd
from alertprod.pipeline.config import PipelineConfig
from alertprod.pipeline.latency import record_alert_latency
from alertprod.pipeline.orbit_cache import OrbitCache
from alertprod.pipeline.timing import StageTimer
from alertprod.pipeline.write_ahead import (
    StagedPlan,
    iter_staged_alerts,
    load_plan,
    stage_alert_parts,
    stage_writes,
)

if TYPE_CHECKING:
    from alertprod.aws import BlobStore, Services, SqsQueue

__all__ = ["CcdResult", "LEASE_ATTEMPTS", "NightlyPipeline", "refuse_other_content"]

#: Times one delivery takes the lease of its cells when it loses it to a neighbour while it
#: works (LeaseLostError); past them the message is retried through the queue.
LEASE_ATTEMPTS = 3


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


def refuse_other_content(record: dict[str, Any], upload: ValidatedUpload) -> None:
    """Refuse a catalog for a CCD that was planned from other catalog bytes.

    A redelivery carries the same bytes (same SHA-256) and is resumed or acknowledged; a CCD
    whose plan is staged (``planned`` or later) from another catalog is refused with
    ``already_processed``: reprocessing withdraws the earlier rows first, an operator's action
    (:func:`alertprod.pipeline.reprocess.reprocess_ccd`, ``alertprod reprocess``).
    A CCD only ``started`` wrote nothing, so a new catalog replaces the one it was computing.

    Raises
    ------
    ContractError
        ``already_processed``.
    """
    prior = record.get("catalogSha256")
    state = record.get("state")
    if (state not in (None, CcdState.STARTED) and prior and upload.catalog_sha256
            and prior != upload.catalog_sha256):
        raise ContractError("already_processed",
                            f"{upload.key}: visit {upload.visit} detector {upload.detector} was "
                            f"already {state} from a catalog with other content (SHA-256 "
                            f"{prior[:12]}…, this one {upload.catalog_sha256[:12]}…); reprocessing "
                            f"a CCD is an operator's action (alertprod reprocess --visit "
                            f"{upload.visit} --detector {upload.detector})")


class NightlyPipeline:
    """Per-CCD alert production bound to one deployment's storage.

    Parameters
    ----------
    level1 : Level1
        The Level 1 database with its CCD ledger and sky-cell leases.
    alert_archive : BlobStore
        Alert archive bucket (staging, archive, claim-check target).
    publisher : AlertPublisher or None
        Publishes to the alert topic; None archives only.
    config : PipelineConfig
    orbit_refresh : SqsQueue or None, keyword-only
        The orbit-refresh queue: a loaded orbit catalog asks it for a refresh of the night
        (:func:`alertprod.orbitrefresh.request_refresh`); None asks nothing.
    metrics : aws_lambda_powertools.Metrics or None, keyword-only
        Where the publish step records each alert's latency
        (:func:`alertprod.pipeline.latency.record_alert_latency`); None records nothing.
    """

    def __init__(self, level1: Level1, alert_archive: BlobStore, publisher: AlertPublisher | None,
                 config: PipelineConfig | None = None, *, orbit_refresh: SqsQueue | None = None,
                 metrics: Any = None):
        self.level1 = level1
        self.apdb = level1.apdb
        self.archive = alert_archive
        self.publisher = publisher
        self.config = config or PipelineConfig()
        self.orbits = OrbitCache(level1.apdb)
        self.orbit_refresh = orbit_refresh
        self.metrics = metrics

    @classmethod
    def from_services(cls, services: Services, config: PipelineConfig | None = None, *,
                      metrics: Any = None) -> NightlyPipeline:
        """Build from :class:`alertprod.aws.Services` (the Level 1 database on DynamoDB)."""
        level1 = dynamo_level1(services.dynamodb, services.resources.level1_table)
        publisher = None
        if services.alert_topic is not None:
            publisher = AlertPublisher(services.alert_archive, services.alert_topic,
                                       ledger=AlertMarksLedger(level1.ledger))
        return cls(level1, services.alert_archive, publisher, config,
                   orbit_refresh=services.orbit_refresh_queue, metrics=metrics)

    # -- orbit catalog -------------------------------------------------------------------------
    def load_orbits(self, data: bytes) -> int:
        """Validate an MPCORB.DAT upload, store it and its SSObject rows, ask for a refresh of
        the night (when an orbit-refresh queue is configured); return the object count.

        Raises
        ------
        ContractError
            ``bad_orbit_catalog`` when the upload is not MPCORB.DAT or holds no orbit (the
            current catalog stays).
        """
        text = data.decode("ascii", errors="replace")
        try:
            catalog = read_mpcorb(text)
        except OrbitError as exc:
            raise ContractError("bad_orbit_catalog", str(exc)) from exc
        if len(catalog) == 0:
            raise ContractError("bad_orbit_catalog", "the upload holds no orbit")
        version = self.apdb.store_orbit_catalog(text)
        self.apdb.store_ss_objects(ss_object_rows(catalog))
        self.orbits.invalidate()
        if self.orbit_refresh is not None:  # asked again on redelivery: the refresh is idempotent
            request_refresh(self.orbit_refresh, reason="mpcorb-upload", base_version=version)
        return len(catalog)

    # -- one CCD -------------------------------------------------------------------------------
    def process_ccd(self, upload: ValidatedUpload) -> CcdResult:
        """Process one validated CCD upload (idempotent; see the module notes)."""
        timer = StageTimer()
        requests_before = self.level1.metrics.total()
        result = CcdResult("processed", upload.visit, upload.detector)
        done = self._check_done(upload)
        if done is not None:
            result.status, result.counts, result.warnings = "duplicate", done, list(upload.warnings)
            return self._finish(result, timer, requests_before)
        cfg = self.config
        cells = cells_for_footprint(upload.catalog.footprint_radec(),
                                    margin_arcsec=cfg.footprint_margin_arcsec)
        owner = f"ccd:{upload.visit}:{upload.detector}:{uuid.uuid4().hex[:12]}"
        for attempt in range(1, LEASE_ATTEMPTS + 1):
            with ExitStack() as held:
                with timer("lease"):
                    lease = held.enter_context(leased(self.level1.leases, cells, owner,
                                                      ttl_s=cfg.lease_ttl_s,
                                                      wait_s=cfg.lease_wait_s))
                try:
                    plan = self._plan_and_store(upload, lease, timer)
                except LeaseLostError:
                    # The lease expired while this CCD worked and a neighbour took a cell:
                    # nothing more was written under it. Take it again; the ledger says where
                    # to resume (a plan staged from what the neighbour changed is recomputed).
                    if attempt == LEASE_ATTEMPTS:
                        raise
                    continue
                # Publishing under the lease too: a second delivery of this CCD running at
                # once waits for it, then finds every alert marked and announces none again.
                result.counts, result.warnings = self._publish(upload, plan, timer)
            break
        return self._close(upload, result, timer, requests_before)

    def _check_done(self, upload: ValidatedUpload) -> dict[str, int] | None:
        """Step 1: the counts of a CCD already ``DONE``, None otherwise."""
        record = self.level1.ledger.get_ccd_record(upload.visit, upload.detector) or {}
        refuse_other_content(record, upload)
        return dict(record.get("counts", {})) if record.get("state") == CcdState.DONE else None

    def _plan_and_store(self, upload: ValidatedUpload, lease: Lease, timer: StageTimer,
                        *, replan: bool = False) -> StagedPlan | None:
        """Step 2 (under the lease): compute and stage (``PLANNED``), then store (``STORED``).

        Returns the plan computed or replayed now; None when the CCD was already ``STORED``.
        The lease is checked before the plan becomes ``PLANNED`` (:class:`LeaseLostError` when
        it was lost while computing). A replayed plan that no longer fits the database
        (:class:`StalePlanError`: a neighbour changed its objects after this CCD's lease
        expired, and nothing of the plan is committed) is computed again (``replan``) and
        replaces the staged one.
        """
        ledger = self.level1.ledger
        v, d = upload.visit, upload.detector
        record = ledger.get_ccd_record(v, d) or {}  # read under the lease
        refuse_other_content(record, upload)
        state = record.get("state")
        plan = None
        if state in (None, CcdState.STARTED) or replan:
            if not replan:
                ledger.put_ccd_record(v, d, CcdState.STARTED, catalogSha256=upload.catalog_sha256)
            computed = compute_ccd(upload, self.apdb, self.orbits, self.config, timer)
            plan = self._stage(computed, v, d, timer)
            self._check_lease(lease)
            ledger.put_ccd_record(v, d, CcdState.PLANNED, counts=computed.counts,
                                  warnings=upload.warnings, alertParts=plan.alert_parts)
            state = CcdState.PLANNED
        if state == CcdState.PLANNED:
            if plan is None:  # a retry: replay what was computed before the crash
                with timer("read_staged"):
                    plan = load_plan(self.archive, v, d)
            with timer("store"):
                try:
                    self.apdb.store_ccd(plan.writes, lease=lease)
                except StalePlanError:
                    if replan:
                        raise
                    return self._plan_and_store(upload, lease, timer, replan=True)
                # asteroid counters: atomic set additions, safe against concurrent CCDs
                self.apdb.record_ss_observations(plan.writes.dia_sources)
            ledger.put_ccd_record(v, d, CcdState.STORED)
        return plan

    def _check_lease(self, lease: Lease) -> None:
        """Renew the lease before a plan is committed to; LeaseLostError if a cell was taken."""
        try:
            self.level1.leases.renew(lease, ttl_s=self.config.lease_ttl_s)
        except ConflictError as exc:
            raise LeaseLostError(f"lease of {lease.owner} lost while computing: {exc}") from exc

    def _stage(self, computed, visit: int, detector: int, timer: StageTimer) -> StagedPlan:
        """Stage the alerts chunk by chunk as they are built, then the writes.

        Memory holds one chunk of alerts at a time; a CCD of one chunk keeps it for publishing.
        """
        last: list[list[PreparedAlert]] = []

        def staged_as_built():
            for chunk in computed.alert_chunks():
                last[:] = [chunk]
                with timer("stage"):
                    yield chunk

        n_parts = stage_alert_parts(self.archive, visit, detector, staged_as_built())
        with timer("stage"):
            stage_writes(self.archive, computed.writes, n_parts)
        return StagedPlan(computed.writes, last[0] if n_parts == 1 and last else None, n_parts)

    def _publish(self, upload: ValidatedUpload, plan: StagedPlan | None,
                 timer: StageTimer) -> tuple[dict[str, int], list[str]]:
        """Step 3 (under the lease): publish the staged alerts.

        Returns the CCD's counts and warnings: those recorded by the attempt that computed it
        (a replay does not read the images again) followed by this attempt's own.
        """
        record = self.level1.ledger.get_ccd_record(upload.visit, upload.detector) or {}
        counts = dict(record.get("counts", {}))
        warnings = list(dict.fromkeys([*record.get("warnings", []), *upload.warnings]))
        if self.publisher is None:
            return counts, warnings
        in_memory = plan is not None and plan.alerts is not None
        if in_memory:
            parts = iter([plan.alerts])
        else:  # a retry, or a CCD of several parts: read back one part at a time
            parts = iter_staged_alerts(self.archive, upload.visit, upload.detector,
                                       plan.alert_parts if plan is not None
                                       else int(record.get("alertParts", 1)))
        totals = dict.fromkeys(("published", "claim_checked", "packet_bytes"), 0)
        while True:
            with nullcontext() if in_memory else timer("read_staged"):
                alerts = next(parts, None)
            if alerts is None:
                break
            with timer("publish"):
                stats = self.publisher.publish_prepared(alerts)
            # shutter close -> publish, one value per alert sent now (none for a redelivery)
            record_alert_latency(self.metrics, upload.catalog.info, stats.published)
            totals["published"] += stats.published + stats.skipped
            totals["claim_checked"] += stats.claim_checked
            totals["packet_bytes"] += stats.packet_bytes
        counts["alertsPublished"] = totals["published"]
        counts["alertsClaimChecked"] = totals["claim_checked"]
        counts["alertPacketBytes"] = totals["packet_bytes"]
        return counts, warnings

    def _close(self, upload: ValidatedUpload, result: CcdResult, timer: StageTimer,
               requests_before: int) -> CcdResult:
        """Step 4: index the cached images for precovery and mark the CCD ``DONE``."""
        info = upload.catalog.info
        with timer("index_images"):
            self.apdb.index_exposure(upload.visit, upload.detector, info.band, info.mjd_mid_tai,
                                     upload.catalog.footprint_radec(), sorted(upload.image_info))
        result = self._finish(result, timer, requests_before)
        self.level1.ledger.put_ccd_record(
            upload.visit, upload.detector, CcdState.DONE, counts=result.counts,
            warnings=result.warnings, stages=result.seconds, seconds=result.total_seconds,
            dynamodbRequests=result.dynamodb_requests, band=info.band, mjdTai=info.mjd_mid_tai)
        return result

    def _finish(self, result: CcdResult, timer: StageTimer, requests_before: int) -> CcdResult:
        result.seconds = dict(timer.seconds)
        result.total_seconds = timer.total_s
        result.dynamodb_requests = self.level1.metrics.total() - requests_before
        return result

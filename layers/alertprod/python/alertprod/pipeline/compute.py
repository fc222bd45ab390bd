"""Everything one CCD computes before it writes anything (seed steps 1–10).

:func:`compute_ccd` reads the DiaObjects around the CCD, associates (asteroids first),
force-photometers undetected objects, reads 12 months of history, builds the next version of
each touched DiaObject and one alert per DiaSource. It only reads the Level 1 database; the
result is staged and stored by :mod:`alertprod.pipeline.nightly`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
from astropy.table import Table

from alertprod.alerts import PreparedAlert, prepare_alerts
from alertprod.apdb import Apdb, CcdWrites
from alertprod.formats import Exposure
from alertprod.formats.layout import IMAGE_KINDS
from alertprod.ingest import ValidatedUpload
from alertprod.photometry.dia_forced import VisitImages
from alertprod.photometry.stamps import cutout_half_size_pix, dia_forced_half_size_pix, sky_windows
from alertprod.pipeline import steps
from alertprod.pipeline.alerting import build_ccd_alerts
from alertprod.pipeline.config import PipelineConfig
from alertprod.pipeline.orbit_cache import OrbitCache
from alertprod.pipeline.reprocess import active_rows
from alertprod.pipeline.timing import StageTimer
from alertprod.pixelization import pixels_covering
from alertprod.summary.versions import next_object_versions
from alertprod.times import now_mjd_tai

__all__ = ["CcdComputation", "compute_ccd", "image_windows", "read_images"]


@dataclass
class CcdComputation:
    """What one CCD will write and publish, and what it counted.

    The alerts are built on demand, one chunk of ``PipelineConfig.alert_chunk_size`` at a
    time (:meth:`alert_chunks`), so that only one chunk is ever in memory.
    """

    writes: CcdWrites
    counts: dict[str, int]
    build_alert_chunks: Callable[[], Iterator[list[PreparedAlert]]]

    def alert_chunks(self) -> Iterator[list[PreparedAlert]]:
        """The CCD's alerts in ``diaSourceId`` order, chunk by chunk (built as iterated)."""
        return self.build_alert_chunks()

    @property
    def alerts(self) -> list[PreparedAlert]:
        """All alerts at once (tests and tools; the pipeline stages them chunk by chunk)."""
        return [a for chunk in self.alert_chunks() for a in chunk]


def image_windows(upload: ValidatedUpload, objects: Table, config: PipelineConfig
                  ) -> dict[str, np.ndarray]:
    """The pixel windows each image of the CCD is read by (:mod:`alertprod.photometry.stamps`).

    Forced photometry of every DiaObject loaded for the footprint (a superset of those
    measured) on ``difference`` and ``snapdiff``, position refinement and forced photometry on
    ``science``, cutouts at the DiaSources on ``difference``, ``template`` (and ``science``
    when alerts carry it).
    """
    t = upload.catalog.table
    src = (np.asarray(t["ra"], float), np.asarray(t["dec"], float))
    obj = ((np.asarray(objects["ra"], float), np.asarray(objects["dec"], float)) if len(objects)
           else (np.zeros(0), np.zeros(0)))
    cutout_kinds = {"difference", "template"} | ({"science"} if config.include_science_cutout else set())
    out = {}
    for kind, f in upload.image_files.items():
        parts = []
        if kind in ("difference", "science", "snapdiff"):
            parts.append(sky_windows(f.wcs, f.shape, *obj, dia_forced_half_size_pix(kind, f.psf)))
        if kind in cutout_kinds:
            half = cutout_half_size_pix(f.psf, config.cutout_size_pix)
            parts.append(sky_windows(f.wcs, f.shape, *src, half))
        out[kind] = np.concatenate(parts) if parts else np.zeros((0, 4), np.int64)
    return out


def read_images(upload: ValidatedUpload, windows: dict[str, np.ndarray] | None = None
                ) -> dict[str, Exposure | None]:
    """The upload's exposures by kind, read by ``windows`` (whole when None); an unreadable one
    is None and recorded as a warning.

    Each file is read windowed or whole as its cost model says
    (:meth:`~alertprod.formats.exposure_file.ExposureFile.read_windows`); either way the
    pixels inside the windows are the file's, so the measurements do not depend on the way.
    """
    out: dict[str, Exposure | None] = {}
    for kind in IMAGE_KINDS:
        efile = upload.image_files.get(kind)
        out[kind] = None
        if efile is None:
            continue
        try:
            out[kind] = (efile.read_all() if windows is None
                         else efile.read_windows(windows.get(kind, np.zeros((0, 4), np.int64))))
        except Exception as exc:  # an unusable image degrades only what needs it
            upload.warnings.append(f"unreadable_image:{kind}:{exc}")
    return out


def compute_ccd(upload: ValidatedUpload, apdb: Apdb, orbits: OrbitCache, config: PipelineConfig,
                timer: StageTimer) -> CcdComputation:
    """Associate, measure, summarise and build the alerts of one CCD (reads only)."""
    info = upload.catalog.info
    corners = upload.catalog.footprint_radec()
    processed = now_mjd_tai()
    with timer("load_objects"):
        pixels = pixels_covering(corners, margin_arcsec=config.footprint_margin_arcsec)
        objects = apdb.get_dia_objects(pixels)
        catalog = orbits.get(info.mjd_mid_tai, warnings=upload.warnings)
    with timer("read_images"):
        exposures = read_images(upload, image_windows(upload, objects, config))
    with timer("associate"):
        sources = steps.prepare_sources(upload.catalog, processed_mjd_tai=processed)
        predicted, ephem = steps.predict_solar_system(catalog, info, corners,
                                                      margin_arcsec=config.sso_margin_arcsec)
        assoc = steps.associate_ccd(sources, objects, predicted,
                                    max_dist_arcsec=config.max_dist_arcsec)
    detected = np.unique(np.asarray(sources["diaObjectId"], np.int64))
    with timer("forced"):
        images = None if exposures["difference"] is None else VisitImages(
            info.visit, info.detector, info.band, info.mjd_mid_tai, exposures["difference"],
            exposures["science"], exposures["snapdiff"])
        forced = steps.forced_measurements(objects, detected, corners, images,
                                           processed_mjd_tai=processed)
    with timer("history"):
        history, forced_history, previous = _history(apdb, objects, detected, info.mjd_mid_tai,
                                                      config.history_months)
        ss_ids = np.unique(np.asarray(sources["ssObjectId"], np.int64))
        ss_ids = ss_ids[ss_ids > 0]
        ss_history = (active_rows(apdb.get_ss_sources(ss_ids, info.mjd_mid_tai,
                                                      months=config.history_months))
                      if ss_ids.size else Table())
    with timer("summaries"):
        versions = next_object_versions(sources, previous, history, forced_history, forced,
                                        validity_start_mjd_tai=info.mjd_mid_tai)
    with timer("solar_system"):
        ss_rows = steps.ss_source_rows(sources, assoc, ephem)
        mpc = orbits.mpc_orbit_rows(np.asarray(sources["ssObjectId"], np.int64))
    prv_sources = _before(history, info.mjd_mid_tai)
    prv_forced = _before(forced_history, info.mjd_mid_tai)
    by_id = sources[np.argsort(np.asarray(sources["diaSourceId"], np.int64), kind="stable")]
    step = config.alert_chunk_size

    def alert_chunks() -> Iterator[list[PreparedAlert]]:
        for start in range(0, len(by_id), step):
            with timer("alerts"):
                records = build_ccd_alerts(by_id[start:start + step], versions, prv_sources,
                                           prv_forced, ss_rows, mpc, exposures, config=config,
                                           ss_history=ss_history)
            with timer("serialize"):
                chunk = prepare_alerts(records)
            del records
            yield chunk

    writes = CcdWrites(visit=info.visit, detector=info.detector,
                       visit_time_mjd_tai=info.mjd_mid_tai, dia_sources=sources,
                       dia_forced_sources=forced, dia_objects=versions)
    n_new = int(np.sum(assoc.new_object))
    counts = {
        "diaSources": len(sources),
        "newDiaObjects": n_new,
        "updatedDiaObjects": int(len(versions) - n_new) if len(versions) else 0,
        "ssoMatches": int(np.sum(assoc.solar_system.matched)),
        "forcedSources": len(forced),
        "alerts": len(sources),  # one per DiaSource
        "objectsInFootprint": len(objects),
    }
    return CcdComputation(writes, counts, alert_chunks)


def _history(apdb: Apdb, objects: Table, detected: np.ndarray, visit_time_mjd_tai: float,
             months: int) -> tuple[Table, Table, Table]:
    """12-month history and current versions of the known objects detected this visit.

    Reads up to the newest committed state (later visits may have been committed first):
    summaries use everything known; alerts carry only what precedes this visit.
    """
    touched = detected[detected > 0]
    known = np.asarray(objects["diaObjectId"], np.int64) if len(objects) else np.zeros(0, np.int64)
    existing = touched[np.isin(touched, known)]
    if existing.size == 0:
        return Table(), Table(), Table()
    previous = apdb.get_dia_objects_by_id(existing)
    t_read = visit_time_mjd_tai
    if len(previous):
        t_read = max(t_read, float(np.nanmax(np.asarray(previous["validityStartMjdTai"], float))),
                     float(np.nanmax(np.asarray(previous["lastDiaSourceMjdTai"], float))))
    history, forced_history = apdb.get_dia_history(existing, t_read + 1e-6, months=months)
    # rows withdrawn by a reprocessing (pipeline.reprocess) count in no summary and no alert
    return active_rows(history), active_rows(forced_history), previous


def _before(table: Table, mjd_tai: float) -> Table:
    """Rows of a history table strictly before ``mjd_tai``."""
    if len(table) == 0:
        return table
    return table[np.asarray(table["midpointMjdTai"], float) < mjd_tai]

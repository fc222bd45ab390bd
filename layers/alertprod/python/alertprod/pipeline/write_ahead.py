"""The write-ahead record of one CCD: its computed writes and alerts, staged before storing.

Processing a CCD computes everything first (association, photometry, summaries, alerts),
stages the result in the alert bucket, and only then writes the Level 1 database. A retry after
a crash replays the staged plan instead of recomputing against a database it may have half
changed: the same rows, the same object versions, the same alerts. Staged objects expire with
the bucket's ``staging/`` lifecycle rule.

The alerts are staged in parts of at most ``PipelineConfig.alert_chunk_size`` alerts, each an
Avro container written as soon as its alerts are built, so that a CCD's memory holds one part
at a time whatever its number of DiaSources (docs/formats.md "Limits"); the number of parts
is in the writes' header (``NALERTPT``), written last, and in the CCD's ledger record. Part 0
is ``staging/V/D.avro`` (a plan of an earlier release has only that one).
"""

from __future__ import annotations

import io
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from astropy.io import fits
from astropy.table import Table

from alertprod.alerts.publish import PreparedAlert, prepare_alerts
from alertprod.alerts.serialize import container_from_packets, read_alert_container
from alertprod.apdb.interface import CcdWrites

__all__ = ["StagedPlan", "stage_plan", "load_plan", "plan_key", "alerts_key", "alerts_part_key",
           "stage_alert_parts", "stage_writes", "iter_staged_alerts", "writes_to_fits",
           "writes_from_fits"]

#: Tables of a staged plan (a plan of an earlier release may also hold an unused SS_OBJECTS).
_TABLES = ("dia_sources", "dia_forced_sources", "dia_objects")


def plan_key(visit: int, detector: int) -> str:
    """Key of the staged writes of a CCD (FITS, one table per extension)."""
    return f"staging/{int(visit):08d}/{int(detector):03d}.writes.fits"


def alerts_key(visit: int, detector: int) -> str:
    """Key of the first part of the staged alerts of a CCD (an Avro container)."""
    return f"staging/{int(visit):08d}/{int(detector):03d}.avro"


def alerts_part_key(visit: int, detector: int, part: int) -> str:
    """Key of part ``part`` (from 0) of the staged alerts of a CCD."""
    if int(part) == 0:
        return alerts_key(visit, detector)
    return f"staging/{int(visit):08d}/{int(detector):03d}.{int(part):04d}.avro"


@dataclass
class StagedPlan:
    """What one CCD will write and publish.

    ``alerts`` holds the alerts when they are in memory (a CCD of one part); None when they
    are read back from their ``alert_parts`` staged parts one at a time.
    """

    writes: CcdWrites
    alerts: list[PreparedAlert] | None
    alert_parts: int = 1


def writes_to_fits(writes: CcdWrites, *, alert_parts: int | None = None) -> bytes:
    """A CCD's writes as FITS bytes (one table per extension; read back by
    :func:`writes_from_fits`); ``alert_parts`` is recorded as ``NALERTPT``."""
    hdr = fits.Header()
    hdr["VISIT"], hdr["DETECTOR"], hdr["MJD-MID"] = writes.visit, writes.detector, writes.visit_time_mjd_tai
    if writes.writer:
        hdr["WRITER"] = writes.writer
    if alert_parts is not None:
        hdr["NALERTPT"] = int(alert_parts)
    hdus = [fits.PrimaryHDU(header=hdr)]
    for name in _TABLES:
        t = getattr(writes, name)
        if t is not None and len(t.colnames):
            hdus.append(fits.BinTableHDU(Table(t), name=name.upper()))
    buf = io.BytesIO()
    fits.HDUList(hdus).writeto(buf)
    return buf.getvalue()


def stage_plan(store, plan: StagedPlan) -> None:
    """Write a CCD's plan with its alerts in memory, as one part (alerts first, then the
    writes: a plan is complete once its writes exist)."""
    w = plan.writes
    n = stage_alert_parts(store, w.visit, w.detector, [plan.alerts or []])
    stage_writes(store, w, n)


def stage_alert_parts(store, visit: int, detector: int,
                      parts: Iterable[list[PreparedAlert]]) -> int:
    """Stage alert parts as they come (each an Avro container of the packets as they will be
    published, no re-encoding); returns the number of parts (at least 1, maybe empty)."""
    n = 0
    for alerts in parts:
        store.put(alerts_part_key(visit, detector, n),
                  container_from_packets(p.packet for p in alerts), content_type="avro/binary")
        n += 1
    if n == 0:
        store.put(alerts_key(visit, detector), container_from_packets([]),
                  content_type="avro/binary")
        n = 1
    return n


def stage_writes(store, writes: CcdWrites, alert_parts: int) -> None:
    """Stage a CCD's writes (last: the plan is complete once they exist)."""
    store.put(plan_key(writes.visit, writes.detector),
              writes_to_fits(writes, alert_parts=alert_parts), content_type="application/fits")


def iter_staged_alerts(store, visit: int, detector: int,
                       alert_parts: int = 1) -> Iterator[list[PreparedAlert]]:
    """The staged alerts of a CCD, one part at a time, ready to publish."""
    for part in range(int(alert_parts)):
        data = store.get(alerts_part_key(visit, detector, part))
        yield prepare_alerts(list(read_alert_container(io.BytesIO(data))))


def load_alerts(store, visit: int, detector: int, alert_parts: int = 1) -> list[PreparedAlert]:
    """All staged alerts of a CCD (tests and tools; the pipeline reads them part by part)."""
    return [a for part in iter_staged_alerts(store, visit, detector, alert_parts) for a in part]


def load_plan(store, visit: int, detector: int) -> StagedPlan:
    """Read a staged plan back (raises NotFoundError when none is staged): its alerts too when
    they are one part, else they stay staged (:func:`iter_staged_alerts` reads them)."""
    data = store.get(plan_key(visit, detector))
    with fits.open(io.BytesIO(data)) as hdul:
        n_parts = int(hdul[0].header.get("NALERTPT", 1))
    alerts = load_alerts(store, visit, detector) if n_parts == 1 else None
    return StagedPlan(writes_from_fits(data), alerts, n_parts)


def writes_from_fits(data: bytes) -> CcdWrites:
    """The writes of :func:`writes_to_fits` bytes."""
    with fits.open(io.BytesIO(data)) as hdul:
        hdr = hdul[0].header
        tables = {}
        for name in _TABLES:
            ext = name.upper()
            tables[name] = Table.read(hdul[ext]) if ext in hdul else Table()
        for t in tables.values():
            t.meta.clear()
        writes = CcdWrites(visit=int(hdr["VISIT"]), detector=int(hdr["DETECTOR"]),
                           visit_time_mjd_tai=float(hdr["MJD-MID"]), dia_sources=tables["dia_sources"],
                           dia_forced_sources=tables["dia_forced_sources"], dia_objects=tables["dia_objects"],
                           writer=hdr.get("WRITER") or None)
    return writes

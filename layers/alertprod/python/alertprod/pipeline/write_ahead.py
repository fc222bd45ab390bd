"""The write-ahead record of one CCD: its computed writes and alerts, staged before storing.

Processing a CCD computes everything first (association, photometry, summaries, alerts),
stages the result in the alert bucket, and only then writes the Level 1 database. A retry after
a crash replays the staged plan instead of recomputing against a database it may have half
changed: the same rows, the same object versions, the same alerts. Staged objects expire with
the bucket's ``staging/`` lifecycle rule.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

from astropy.io import fits
from astropy.table import Table

from alertprod.alerts.publish import PreparedAlert, prepare_alerts
from alertprod.alerts.serialize import container_from_packets, read_alert_container
from alertprod.apdb.interface import CcdWrites

__all__ = ["StagedPlan", "stage_plan", "load_plan", "plan_key", "alerts_key"]

#: Tables of a staged plan (a plan of an earlier release may also hold an unused SS_OBJECTS).
_TABLES = ("dia_sources", "dia_forced_sources", "dia_objects")


def plan_key(visit: int, detector: int) -> str:
    """Key of the staged writes of a CCD (FITS, one table per extension)."""
    return f"staging/{int(visit):08d}/{int(detector):03d}.writes.fits"


def alerts_key(visit: int, detector: int) -> str:
    """Key of the staged alerts of a CCD (an Avro container of all its alerts)."""
    return f"staging/{int(visit):08d}/{int(detector):03d}.avro"


@dataclass
class StagedPlan:
    """What one CCD will write and publish."""

    writes: CcdWrites
    alerts: list[PreparedAlert]


def _table_bytes(writes: CcdWrites) -> bytes:
    hdr = fits.Header()
    hdr["VISIT"], hdr["DETECTOR"], hdr["MJD-MID"] = writes.visit, writes.detector, writes.visit_time_mjd_tai
    hdus = [fits.PrimaryHDU(header=hdr)]
    for name in _TABLES:
        t = getattr(writes, name)
        if t is not None and len(t.colnames):
            hdus.append(fits.BinTableHDU(Table(t), name=name.upper()))
    buf = io.BytesIO()
    fits.HDUList(hdus).writeto(buf)
    return buf.getvalue()


def stage_plan(store, plan: StagedPlan) -> None:
    """Write a CCD's plan (alerts first, then the writes: a plan is complete once its writes exist)."""
    w = plan.writes
    # the packets as they will be published, in one container (no re-encoding)
    store.put(alerts_key(w.visit, w.detector), container_from_packets(p.packet for p in plan.alerts),
              content_type="avro/binary")
    store.put(plan_key(w.visit, w.detector), _table_bytes(w), content_type="application/fits")


def load_alerts(store, visit: int, detector: int) -> list[PreparedAlert]:
    """The staged alerts of a CCD, ready to publish."""
    return prepare_alerts(list(read_alert_container(io.BytesIO(store.get(alerts_key(visit, detector))))))


def load_plan(store, visit: int, detector: int) -> StagedPlan:
    """Read a staged plan back (raises NotFoundError when none is staged)."""
    data = store.get(plan_key(visit, detector))
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
                           dia_forced_sources=tables["dia_forced_sources"], dia_objects=tables["dia_objects"])
    return StagedPlan(writes, load_alerts(store, visit, detector))

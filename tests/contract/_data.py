"""Shared data of the contract suite: the test field, object builders, state checks."""

from __future__ import annotations

import threading

import numpy as np
from astropy.table import Table

from alertprod.apdb.testing import make_ccd_writes, make_objects, make_sources

__all__ = ["DEC", "FOOTPRINT", "RA", "RADIUS", "T0", "T1", "T2", "create_objects", "no_objects",
           "object_states", "run_threads", "same_tables", "ss_objects", "ss_sources"]

RA, DEC, RADIUS = 150.0, 2.0, 0.02
T0, T1, T2 = 60000.2, 60001.2, 60002.2
#: A square of 0.1° around the test field: the lease cells of its CCD.
FOOTPRINT = np.array([[RA - 0.05, DEC - 0.05], [RA + 0.05, DEC - 0.05], [RA + 0.05, DEC + 0.05],
                      [RA - 0.05, DEC + 0.05]])


def create_objects(apdb, n, *, visit=1, first_id=1, seed=0):
    """Store ``n`` new DiaObjects (one CCD of visit ``visit`` at T0); their stored rows."""
    objs = make_objects(n, RA, DEC, RADIUS, seed=seed, first_id=first_id)
    apdb.store_ccd(make_ccd_writes(objs, visit, 1, T0, new=True), lease=None)
    return apdb.get_dia_objects_by_id(objs["diaObjectId"])


def no_objects():
    return make_objects(0, RA, DEC, RADIUS)


def object_states(apdb, ids):
    """Each object's state after an update of T0 versions at T1: "before", "after" or torn."""
    last = apdb.get_dia_objects_by_id(ids)
    starts = dict(zip(last["diaObjectId"].tolist(), last["validityStartMjdTai"].tolist(),
                      strict=True))
    history = apdb.export()["DiaObjectHistory"]
    sources = apdb.get_dia_sources(ids, T2)
    states = {}
    for oid in np.asarray(ids).tolist():
        rows = history[history["diaObjectId"] == oid]
        versions = [(s, None if np.isnan(e) else e) for s, e in
                    zip(rows["validityStartMjdTai"].tolist(), rows["validityEndMjdTai"].tolist(),
                        strict=True)]
        seen = (starts.get(oid), versions, int(np.sum(sources["diaObjectId"] == oid)))
        states[oid] = ("before" if seen == (T0, [(T0, None)], 1) else
                       "after" if seen == (T1, [(T0, T1), (T1, None)], 2) else f"torn: {seen}")
    return states


def same_tables(a, b):
    """Whether two dicts of tables hold the same rows (NaN equal to NaN, masks compared)."""
    if sorted(a) != sorted(b):
        return False
    for name in a:
        x, y = a[name], b[name]
        if x.colnames != y.colnames or len(x) != len(y):
            return False
        for c in x.colnames:
            if not np.array_equal(np.ma.getmaskarray(x[c]), np.ma.getmaskarray(y[c])):
                return False
            dx, dy = np.ma.getdata(x[c]), np.ma.getdata(y[c])
            if not np.array_equal(dx, dy, equal_nan=dx.dtype.kind == "f"):
                return False
    return True



def ss_objects(ids, designations):
    t = Table()
    t["ssObjectId"] = np.asarray(ids, np.int64)
    t["designation"] = designations
    for col in ["nObs"] + [f"{b}_nObs{used}" for b in "ugrizy" for used in ("", "Used")]:
        t[col] = np.full(len(ids), 3, np.int32)
    t["arc"] = np.full(len(ids), 2000.0, np.float32)
    return t


def ss_sources(ss_ids, bands, times, *, first_id=1):
    n = len(ss_ids)
    src = make_sources(np.zeros(n, np.int64), np.full(n, RA), np.full(n, DEC), 7, 1, T0,
                       first_id=first_id)
    src["diaObjectId"] = np.ma.masked_all(n, dtype=np.int64)
    src["ssObjectId"] = np.asarray(ss_ids, np.int64)
    src["band"] = np.asarray(bands, "U1")
    src["midpointMjdTai"] = np.asarray(times, float)
    return src


def run_threads(work, n):
    """Run ``work(k)`` for k < n in threads; re-raise the first error."""
    errors = []

    def run(k):
        try:
            work(k)
        except BaseException as exc:  # noqa: BLE001 - re-raised in the test's thread
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(k,), daemon=True) for k in range(n)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(timeout=120)
    if errors:
        raise errors[0]

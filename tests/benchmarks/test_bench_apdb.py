"""Per-CCD Level 1 database cost: our DynamoDB APDB on moto's server vs Rubin's SQLite APDB.

One CCD with 5,000 known DiaObjects in its footprint, 200 of them detected (200 DiaSources,
200 new object versions) and 4,800 force-measured. Both backends get the same rows and do the
same work: load the objects of the region, load the 12-month history of the detected ones,
store sources, forced sources and new versions. We report wall time per phase and DynamoDB
requests per CCD; Rubin's ``lsst-dax-apdb`` SQLite backend (``ApdbSql``) is the peer.
"""

import json
import time
from pathlib import Path

import numpy as np
import pytest

from alertprod.apdb import cells_for_footprint, dynamo_level1
from alertprod.apdb.testing import make_ccd_writes, make_objects
from alertprod.local.dynamodb import create_level1_table, moto_dynamodb
from alertprod.pixelization import pixels_in_cone

pytestmark = pytest.mark.bench

RA, DEC, RADIUS = 150.0, 2.0, 0.1  # a 0.2° disc: about one LSST CCD
N_OBJECTS, N_DETECTED, T0 = 5000, 200, 60000.2
RESULTS = Path(__file__).parent / "results" / "apdb.json"


def _ours(objs, writes):
    pixels = pixels_in_cone(RA, DEC, RADIUS)
    corners = np.array([[RA - 0.1, DEC - 0.1], [RA + 0.1, DEC - 0.1], [RA + 0.1, DEC + 0.1],
                        [RA - 0.1, DEC + 0.1]])
    with moto_dynamodb() as client:
        level1 = dynamo_level1(client, create_level1_table(client))
        apdb, metrics = level1.apdb, level1.metrics
        apdb.load_dia_objects(objs)
        metrics.requests.clear()
        figures, requests = {}, {}
        t = time.perf_counter()
        lease = level1.leases.acquire(cells_for_footprint(corners), "bench")
        figures["lease_s"] = time.perf_counter() - t
        requests["lease"] = metrics.total()
        t = time.perf_counter()
        got = apdb.get_dia_objects(pixels)
        figures["read_objects_s"] = time.perf_counter() - t
        requests["read_objects"] = metrics.total() - sum(requests.values())
        assert len(got) == N_OBJECTS
        t = time.perf_counter()
        apdb.get_dia_history(writes.dia_objects["diaObjectId"], T0 + 1)
        figures["read_history_s"] = time.perf_counter() - t
        requests["read_history"] = metrics.total() - sum(requests.values())
        t = time.perf_counter()
        stats = apdb.store_ccd(writes, lease=lease)
        figures["store_s"] = time.perf_counter() - t
        requests["store"] = stats.total_requests
        before_release = metrics.total()
        level1.leases.release(lease)
        release_requests = metrics.total() - before_release
        assert stats.objects_written == N_DETECTED
        figures["total_s"] = sum(v for k, v in figures.items() if k.endswith("_s"))
        requests["total"] = sum(requests.values()) + release_requests
        return figures, requests, dict(stats.requests), stats.transactions


def _rubin(objs, writes, tmp_path):
    import astropy.time
    from lsst.dax.apdb import Apdb
    from lsst.dax.apdb.sql import ApdbSql
    from lsst.sphgeom import Angle, Circle, LonLat, UnitVector3d

    from alertprod.apdb.schema import conform, rubin_columns

    def rubin_frame(table, name):  # Rubin's apdb.yaml columns only (no extension columns)
        return rubin_columns(conform(table, name), name).to_pandas()

    rubin = Apdb.from_config(ApdbSql.init_database(db_url=f"sqlite:///{tmp_path}/apdb.db"))
    rubin.store(astropy.time.Time(T0, format="mjd", scale="tai"), rubin_frame(objs, "DiaObject"))
    region = Circle(UnitVector3d(LonLat.fromDegrees(RA, DEC)), Angle.fromDegrees(RADIUS))
    visit = astropy.time.Time(T0 + 1, format="mjd", scale="tai")
    figures = {}
    t = time.perf_counter()
    got = rubin.getDiaObjects(region)
    figures["read_objects_s"] = time.perf_counter() - t
    assert len(got) == N_OBJECTS
    ids = writes.dia_objects["diaObjectId"].tolist()
    t = time.perf_counter()
    rubin.getDiaSources(region, ids, visit)
    rubin.getDiaForcedSources(region, ids, visit)
    figures["read_history_s"] = time.perf_counter() - t
    t = time.perf_counter()
    rubin.store(visit, rubin_frame(writes.dia_objects, "DiaObject"),
                rubin_frame(writes.dia_sources, "DiaSource"),
                rubin_frame(writes.dia_forced_sources, "DiaForcedSource"))
    figures["store_s"] = time.perf_counter() - t
    figures["total_s"] = sum(figures.values())
    return figures


def test_bench_apdb_per_ccd_requests_and_time(tmp_path):
    pytest.importorskip("lsst.dax.apdb")
    objs = make_objects(N_OBJECTS, RA, DEC, RADIUS, seed=7)
    objs["validityStartMjdTai"] = T0
    detected = np.zeros(N_OBJECTS, bool)
    detected[np.random.default_rng(8).choice(N_OBJECTS, N_DETECTED, replace=False)] = True
    writes = make_ccd_writes(objs, 2, 10, T0 + 1, detected=detected)

    ours, requests, by_op, transactions = _ours(objs, writes)
    rubin = _rubin(objs, writes, tmp_path)

    print(f"\nAPDB per CCD: {N_OBJECTS} objects in the footprint, {N_DETECTED} sources, "
          f"{N_OBJECTS - N_DETECTED} forced")
    print(f"{'phase':<16}{'ours (moto) s':>15}{'requests':>10}{'Rubin SQLite s':>16}{'ratio':>8}")
    for phase in ("read_objects", "read_history", "store", "total"):
        a, b = ours[f"{phase}_s"], rubin[f"{phase}_s"]
        print(f"{phase:<16}{a:>15.3f}{requests[phase]:>10d}{b:>16.3f}{a / b:>8.2f}")
    print(f"{'lease':<16}{ours['lease_s']:>15.3f}{requests['lease']:>10d}")
    print(f"store requests by operation: {by_op}; transactions: {transactions}")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps({
        "case": {"objects": N_OBJECTS, "sources": N_DETECTED,
                 "forced_sources": N_OBJECTS - N_DETECTED},
        "ours_moto_s": ours, "ours_requests": requests, "store_requests_by_operation": by_op,
        "store_transactions": transactions, "rubin_sqlite_s": rubin,
        "ratio_total": ours["total_s"] / rubin["total_s"]}, indent=1) + "\n")
    assert requests["store"] < 100

"""The daily orbit refresh on the embedded stack: upload → refresh, schedule → refresh, exactly once.

One stack for the module, its clock starting on 2027-03-10 at 14:00 UTC (night 61474, the
evening's MJD). The MPCORB.DAT holds 20 main-belt asteroids, one near-Earth object passing
0.01 au from the observatory during night 61475, and one asteroid that a CCD of that night
sees, all with elements 150 days older than that night (as MPCORB.DAT has them for months).
Chunks of 8 orbits (template parameter ``OrbitRefreshChunkOrbits``) make several chunks.
The tests run in order: each continues from the state the previous one left.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime

import numpy as np
import pytest
from astropy.coordinates import angular_separation
from ccdsky import CcdSky, put_upload

from alertprod.apdb import CcdState, DynamoApdb
from alertprod.aws import S3BlobStore, SqsQueue
from alertprod.formats import RUBIN_SITE
from alertprod.formats.layout import MPCORB_PREFIX
from alertprod.local.stack import EmbeddedStack
from alertprod.orbitrefresh import decode_night_elements, night_of, staged_report
from alertprod.orbitrefresh import service as service_module
from alertprod.orbits import (
    OrbitCatalog,
    orbit_through,
    osculating_elements_at,
    predict_positions,
    predict_positions_many,
    predict_positions_nbody,
    read_mpcorb,
    write_mpcorb,
)
from alertprod.pipeline.orbit_cache import OrbitCache

pytestmark = pytest.mark.integration

SITE = {"obs_lon_deg": RUBIN_SITE[0], "obs_lat_deg": RUBIN_SITE[1], "obs_height_m": RUBIN_SITE[2]}
START = datetime(2027, 3, 10, 14, 0, tzinfo=UTC)
N0 = 61474  # the night of START (the upload's)
N1 = N0 + 1  # the night the 2027-03-11 12:00 UTC schedule refreshes
T_CCD = N1 + 1.125  # 2027-03-12 03:00 UTC, TAI: a visit of night N1
NIGHT_TIMES = N1 + np.array([0.96, 1.05, 1.2, 1.35, 1.42])
SKY = CcdSky(n_detectors=1)


def _tai(moment: datetime) -> float:
    from astropy.time import Time

    return float(Time(moment, scale="utc").tai.mjd)


@pytest.fixture(scope="module")
def mpcorb() -> str:
    """MPCORB.DAT: 20 main-belt asteroids, an Earth-approacher, the CCD's asteroid (150 d old)."""
    rng = np.random.default_rng(7)
    main_belt = orbit_through(rng.uniform(0, 360, 20), rng.uniform(-40, 30, 20), N1 + 1.2,
                              geocentric_distance_au=rng.uniform(1.2, 2.6, 20), kind="main-belt",
                              rng=rng, **SITE)
    neo = orbit_through(200.0, -20.0, N1 + 1.1, geocentric_distance_au=0.01, kind="neo",
                        rng=rng, first_index=20, **SITE)
    seen = orbit_through(*SKY.radec(0, 100.0, 100.0), T_CCD, geocentric_distance_au=1.5,
                         rng=rng, first_index=21, **SITE)
    now = OrbitCatalog.concatenate([main_belt, neo, seen])
    return write_mpcorb(osculating_elements_at(now, N1 + 1.0 - 150.0), header=True)


@pytest.fixture(scope="module")
def stack():
    with EmbeddedStack(stack_name="orbitrefresh", clock_start=START,
                       parameter_overrides={"OrbitRefreshChunkOrbits": 8}) as s:
        s.run_until_idle(timeout_s=60)  # the s3:TestEvent
        yield s


def _apdb(stack) -> DynamoApdb:
    return DynamoApdb(stack.clients.dynamodb, stack.resources.level1_table)


def _staging(stack) -> S3BlobStore:
    return S3BlobStore(stack.clients.s3, stack.resources.alert_bucket)


def _arcsec(ra1, dec1, ra2, dec2) -> np.ndarray:
    return np.rad2deg(angular_separation(*np.deg2rad([ra1, dec1, ra2, dec2]))) * 3600


def test_an_mpcorb_upload_refreshes_the_current_night(stack, mpcorb):
    assert night_of(_tai(stack.clock)) == N0
    stack.clients.s3.put_object(Bucket=stack.resources.upload_bucket,
                                Key=f"{MPCORB_PREFIX}MPCORB.DAT", Body=mpcorb.encode())
    stack.run_until_idle(timeout_s=120)
    apdb = _apdb(stack)
    base = apdb.get_orbit_catalog_version()
    report = staged_report(apdb, _staging(stack), N0, base)
    assert report is not None and report["status"] == "refreshed"
    assert (report["orbits"], report["chunks"]) == (22, 3)  # 24 non-blank lines, 8 a chunk
    night = decode_night_elements(apdb.get_orbit_catalog(night_mjd=N0))
    assert night.base_version == base and len(night) == 22
    requests = [inv for inv in stack.invocations if inv.function_id == "OrbitRefreshWorkerFunction"
                and "request" in inv.event["Records"][0]["body"]]
    assert len(requests) == 1  # the ingest asked once, after loading the catalog
    assert apdb.get_orbit_catalog_version(night_mjd=N1) is None  # not the next night yet


def test_the_daily_schedule_refreshes_the_coming_night(stack):
    fired = stack.advance_clock(to=datetime(2027, 3, 11, 12, 30, tzinfo=UTC))
    (planner,) = [inv for inv in fired if inv.function_id == "OrbitRefreshPlannerFunction"]
    assert planner.event["time"] == "2027-03-11T12:00:00Z" and planner.outcome == "ok"
    assert (planner.response["status"], planner.response["night_mjd"]) == ("planned", N1)
    stack.run_until_idle(timeout_s=120)
    apdb = _apdb(stack)
    report = staged_report(apdb, _staging(stack), N1, apdb.get_orbit_catalog_version())
    assert report["status"] == "refreshed" and report["close_approachers"] == 1
    cost = report["cost"]
    assert cost["cpu_seconds"] > 0 and cost["invocations"] == 4 and cost["total_usd"] > 0


def test_a_duplicate_schedule_event_or_chunk_changes_nothing(stack):
    apdb = _apdb(stack)
    version = apdb.get_orbit_catalog_version(night_mjd=N1)
    stored = apdb.get_orbit_catalog(night_mjd=N1)
    (planner,) = [i for i in stack.invocations if i.function_id == "OrbitRefreshPlannerFunction"]
    assert stack.invoke("OrbitRefreshPlannerFunction", planner.event) == planner.response
    later = dict(planner.event, id="manual-rerun", time="2027-03-11T12:05:00Z")
    assert stack.invoke("OrbitRefreshPlannerFunction", later)["status"] == "already_refreshed"
    chunk = next(inv.event["Records"][0]["body"] for inv in stack.invocations
                 if inv.function_id == "OrbitRefreshWorkerFunction"
                 and f'"nightMjd": {N1}' in inv.event["Records"][0]["body"])
    before = len(stack.invocations)
    SqsQueue(stack.clients.sqs, stack.physical_id("OrbitRefreshQueue")).send(chunk)
    assert stack.run_until_idle(timeout_s=60) == 1  # nothing but the redelivered chunk
    (again,) = stack.invocations[before:]
    assert again.outcome == "ok"
    assert apdb.get_orbit_catalog_version(night_mjd=N1) == version
    assert apdb.get_orbit_catalog(night_mjd=N1) == stored


def test_the_nights_predictions_match_nbody_truth_within_0p05_arcsec(stack, mpcorb):
    base = read_mpcorb(mpcorb)
    truth = predict_positions_nbody(base, NIGHT_TIMES, **SITE)
    cache = OrbitCache(_apdb(stack))
    rows = []
    for k, t in enumerate(NIGHT_TIMES):
        warnings: list[str] = []
        p = predict_positions(cache.get(t, warnings=warnings), t, **SITE)
        assert warnings == []
        rows.append(_arcsec(p.ra_deg, p.dec_deg, truth.ra_deg[k], truth.dec_deg[k]))
    refreshed = np.stack(rows)
    assert refreshed.shape == (len(NIGHT_TIMES), 22)
    assert refreshed.max() < 0.05  # main belt, the Earth-approacher and the CCD's asteroid
    two_body = predict_positions_many(base, NIGHT_TIMES, **SITE)
    stale = _arcsec(two_body.ra_deg, two_body.dec_deg, truth.ra_deg, truth.dec_deg)
    assert np.median(stale[:, :20]) > 1.0  # the base elements: arcseconds off


def test_a_ccd_of_the_night_matches_its_asteroid(stack, mpcorb):
    base = read_mpcorb(mpcorb)
    where = predict_positions_nbody(base[21:22], T_CCD, **SITE)
    source = (float(where.ra_deg[0, 0]), float(where.dec_deg[0, 0]), 5000.0, True)
    put_upload(stack, *SKY.upload(7, 0, T_CCD, [source]))
    stack.run_until_idle(timeout_s=120)
    record = _ledger_record(stack, 7, 0)
    assert record["state"] == CcdState.DONE
    assert record["counts"]["ssoMatches"] == 1 and record["counts"]["newDiaObjects"] == 0
    assert not [w for w in record.get("warnings", []) if w.startswith("orbit_refresh")]


def _ledger_record(stack, visit: int, detector: int) -> dict:
    from alertprod.apdb import dynamo_level1

    return dynamo_level1(stack.clients.dynamodb, stack.resources.level1_table).ledger.get_ccd_record(
        visit, detector)


def test_a_crashed_chunk_is_retried_and_completes_the_refresh(stack, monkeypatch):
    real, calls = service_module.refresh_elements, []

    def crash_once(catalog, night, **kw):
        calls.append(night)
        if len(calls) == 1:
            raise RuntimeError("the worker was killed")
        return real(catalog, night, **kw)

    monkeypatch.setattr(service_module, "refresh_elements", crash_once)
    before = len(stack.invocations)
    stack.advance_clock(to=datetime(2027, 3, 12, 12, 30, tzinfo=UTC))
    stack.run_until_idle(timeout_s=120)
    worker = [i for i in stack.invocations[before:] if i.function_id == "OrbitRefreshWorkerFunction"]
    # three chunks, one of them twice: its only record failed, so the batch failed
    assert sorted(i.outcome for i in worker) == ["error", "ok", "ok", "ok"]
    apdb = _apdb(stack)
    report = staged_report(apdb, _staging(stack), N1 + 1, apdb.get_orbit_catalog_version())
    assert report["status"] == "refreshed" and report["orbits"] == 22
    dlq = SqsQueue(stack.clients.sqs, stack.physical_id("OrbitRefreshDLQ"))
    assert dlq.approximate_depth() == 0
    assert json.loads(json.dumps(report))["night_mjd"] == N1 + 1

"""The nightly pipeline on the embedded stack: uploads become Level 1 rows and alerts, once."""

from __future__ import annotations

import json

import numpy as np
import pytest
from ccdsky import CcdSky, put_upload

from alertprod.alerts.client import AlertConsumer
from alertprod.apdb import DynamoApdb
from alertprod.local.stack import EmbeddedStack

pytestmark = pytest.mark.integration

SKY = CcdSky(n_detectors=2)


@pytest.fixture
def stack():
    with EmbeddedStack() as s:
        yield s


@pytest.fixture
def consumer(stack):
    c = stack.clients
    with AlertConsumer(c.sqs, c.sns, c.s3, stack.resources.alert_topic_arn) as cons:
        yield cons


def _apdb(stack) -> DynamoApdb:
    return DynamoApdb(stack.clients.dynamodb, stack.resources.level1_table)


def _drain(consumer, expected: int, rounds: int = 20) -> list:
    got = []
    for _ in range(rounds):
        got += consumer.poll(max_messages=10, wait_s=0.2)
        if len(got) >= expected:
            more = consumer.poll(max_messages=10, wait_s=0.2)
            got += more
            if not more:
                break
    return got


def _sources(n=6, seed=0, detector=0):
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        x, y = rng.uniform(20, SKY.npix - 20, 2)
        ra, dec = SKY.radec(detector, x, y)
        out.append((ra, dec, float(rng.uniform(3000, 8000)), True))
    return out


def test_upload_becomes_one_alert_per_source_on_the_topic(stack, consumer):
    src = _sources(6)
    put_upload(stack, *SKY.upload(1, 0, 60000.10, src))
    stack.run_until_idle()
    alerts = _drain(consumer, 6)
    assert sorted(a.alert_id for a in alerts) == [100_000_001 + i for i in range(6)]
    first = alerts[0].alert
    assert first["diaObject"]["nDiaSources"] == 1
    assert first["cutoutDifference"] is not None and first["cutoutTemplate"] is not None
    assert first["cutoutScience"] is None
    exported = _apdb(stack).export()
    assert len(exported["DiaSource"]) == 6
    assert len(exported["DiaObject"]) == 6


def test_second_visit_associates_and_closes_the_previous_version(stack, consumer):
    src = _sources(5)
    put_upload(stack, *SKY.upload(1, 0, 60000.10, src))
    stack.run_until_idle()
    moved = [(ra + 0.1 / 3600, dec, f * 1.5, True) for ra, dec, f, _ in src]
    put_upload(stack, *SKY.upload(2, 0, 60000.12, moved))
    stack.run_until_idle()
    tables = _apdb(stack).export()
    assert len(tables["DiaObject"]) == 5
    assert set(np.asarray(tables["DiaObject"]["nDiaSources"])) == {2}
    hist = tables["DiaObjectHistory"]
    assert len(hist) == 10
    closed = hist[np.isfinite(np.asarray(hist["validityEndMjdTai"], float))]
    assert len(closed) == 5
    np.testing.assert_allclose(np.asarray(closed["validityEndMjdTai"], float), 60000.12)
    alerts = [a for a in _drain(consumer, 10) if a.alert["diaSource"]["visit"] == 2]
    assert len(alerts) == 5
    assert all(len(a.alert["prvDiaSources"]) == 1 for a in alerts)


def test_undetected_known_object_gets_forced_photometry(stack):
    src = _sources(4)
    put_upload(stack, *SKY.upload(1, 0, 60000.10, src))
    stack.run_until_idle()
    faded = [(ra, dec, 400.0, i != 0) for i, (ra, dec, f, _) in enumerate(src)]
    put_upload(stack, *SKY.upload(2, 0, 60000.12, faded))
    stack.run_until_idle()
    forced = _apdb(stack).export()["DiaForcedSource"]
    assert len(forced) == 1
    assert int(forced["visit"][0]) == 2
    # the faint source (400 nJy) is measured, within 5 sigma
    assert abs(float(forced["psfFlux"][0]) - 400.0) < 5 * float(forced["psfFluxErr"][0])


def test_same_upload_event_delivered_twice_adds_nothing(stack, consumer):
    key, cat, images = SKY.upload(1, 0, 60000.10, _sources(4))
    put_upload(stack, key, cat, images)
    stack.run_until_idle()
    before = _apdb(stack).export()
    # at-least-once delivery: the same notification again (moto never duplicates on its own)
    body = json.dumps({"Records": [{"eventName": "ObjectCreated:Put", "s3": {
        "bucket": {"name": stack.resources.upload_bucket}, "object": {"key": key, "size": len(cat)}}}]})
    queue_url = stack.physical_id("UploadQueue")  # Ref of a queue is its URL
    stack.clients.sqs.send_message(QueueUrl=queue_url, MessageBody=body)
    stack.run_until_idle()
    after = _apdb(stack).export()
    for name in ("DiaSource", "DiaObject", "DiaObjectHistory", "DiaForcedSource"):
        assert len(after[name]) == len(before[name]), name
    alerts = _drain(consumer, 4)
    assert len(alerts) == 4 and consumer.duplicates == 0


def test_malformed_upload_is_quarantined_and_writes_nothing(stack):
    key, cat, images = SKY.upload(1, 0, 60000.10, _sources(3))
    broken = cat.replace(b"psfFluxErr", b"psfFluxErX")
    put_upload(stack, key, broken, images)
    stack.run_until_idle()
    rec = json.loads(stack.clients.s3.get_object(Bucket=stack.resources.upload_bucket,
                                                 Key="quarantine/00000001/000.json")["Body"].read())
    assert rec["reason"] == "missing_column"
    tables = _apdb(stack).export()
    assert len(tables["DiaSource"]) == 0 and len(tables["DiaObject"]) == 0


def test_missing_template_is_quarantined_and_sends_nothing(stack, consumer):
    # images come first (the contract): a catalog without its template is refused whole
    put_upload(stack, *SKY.upload(1, 0, 60000.10, _sources(2), kinds=("science", "difference")))
    stack.run_until_idle()
    rec = json.loads(stack.clients.s3.get_object(Bucket=stack.resources.upload_bucket,
                                                 Key="quarantine/00000001/000.json")["Body"].read())
    assert rec["reason"] == "missing_image" and "template" in rec["detail"]
    tables = _apdb(stack).export()
    assert len(tables["DiaSource"]) == 0 and len(tables["DiaObject"]) == 0
    assert _drain(consumer, 0) == []


def test_known_asteroid_claims_its_source_before_dia_objects(stack, consumer):
    from alertprod.formats import RUBIN_SITE
    from alertprod.orbits import orbit_through, predict_positions, write_mpcorb

    t1, t2 = 60000.10, 60000.11
    ra0, dec0 = SKY.radec(0, 100.0, 100.0)
    orbit = orbit_through(ra0, dec0, t1, geocentric_distance_au=1.5, obs_lon_deg=RUBIN_SITE[0],
                          obs_lat_deg=RUBIN_SITE[1], obs_height_m=RUBIN_SITE[2],
                          rng=np.random.default_rng(1))
    stack.clients.s3.put_object(Bucket=stack.resources.upload_bucket, Key="config/mpcorb/MPCORB.DAT",
                                Body=write_mpcorb(orbit).encode())
    stack.run_until_idle()
    site = dict(obs_lon_deg=RUBIN_SITE[0], obs_lat_deg=RUBIN_SITE[1], obs_height_m=RUBIN_SITE[2])
    for visit, t in ((1, t1), (2, t2)):
        eph = predict_positions(orbit, t, **site)
        src = [(float(eph.ra_deg[0]), float(eph.dec_deg[0]), 5000.0, True)]
        put_upload(stack, *SKY.upload(visit, 0, t, src))
    stack.run_until_idle()
    alerts = _drain(consumer, 2)
    assert len(alerts) == 2
    for a in alerts:
        assert a.alert["diaObject"] is None
        assert a.alert["ssSource"]["ssObjectId"] == int(orbit.ss_object_ids[0])
        assert a.alert["ssSource"]["ephOffset"] < 0.1  # arcsec from the prediction
        assert a.alert["mpc_orbits"]["packed_primary_provisional_designation"] == str(orbit.packed_designation[0])
    tables = _apdb(stack).export()
    assert len(tables["DiaObject"]) == 0
    ss = tables["SSObject"]
    assert int(ss["nObs"][0]) == 2
    assert abs(float(ss["arc"][0]) - (t2 - t1)) < 1e-6

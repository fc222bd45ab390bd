"""The ingest entry point (``alertprod.pipeline.dispatch``): a notification → its uploads' fate."""

from __future__ import annotations

import json

import pytest

from alertprod.orbits import write_mpcorb
from alertprod.pipeline import handle_upload, handle_upload_message

pytestmark = pytest.mark.unit

T1 = 60000.10


def _notification(bucket: str, *keys: str) -> str:
    return json.dumps({"Records": [{"eventName": "ObjectCreated:Put", "s3": {
        "bucket": {"name": bucket}, "object": {"key": key, "size": 1}}} for key in keys]})


def _nothing_written(deployment) -> None:
    assert all(len(t) == 0 for t in deployment.export().values())
    assert list(deployment.archive.list()) == [] and deployment.topic.calls == []


def test_bad_key_is_quarantined_with_its_reason_and_nothing_is_written(deployment):
    key = "diasources/1/0.fits"  # the contract wants 8 and 3 digits
    deployment.uploads.put(key, b"SIMPLE")
    outcome = handle_upload(deployment.services, "uploads", key, pipeline=deployment.pipeline())
    assert (outcome.status, outcome.reason) == ("quarantined", "bad_key")
    record = json.loads(deployment.uploads.get("quarantine/other/diasources_1_0.fits.json"))
    assert record["reason"] == "bad_key" and record["key"] == key and record["bucket"] == "uploads"
    assert record["visit"] is None and record["detector"] is None
    _nothing_written(deployment)


def test_catalog_breaking_the_contract_is_quarantined_under_its_ccd(sky, sky_sources, deployment):
    key, cat, images = sky.upload(1, 0, T1, sky_sources(3, seed=40))
    deployment.put((key, cat.replace(b"psfFluxErr", b"psfFluxErX"), images))
    outcome = handle_upload(deployment.services, "uploads", key, pipeline=deployment.pipeline())
    assert (outcome.status, outcome.reason) == ("quarantined", "missing_column")
    record = json.loads(deployment.uploads.get("quarantine/00000001/000.json"))
    assert record["reason"] == "missing_column" and (record["visit"], record["detector"]) == (1, 0)
    assert deployment.level1.ledger.get_ccd_record(1, 0) is None
    _nothing_written(deployment)


def test_mpcorb_upload_loads_orbits(deployment, asteroid):
    key = "config/mpcorb/MPCORB.DAT"
    deployment.uploads.put(key, write_mpcorb(asteroid, header=True).encode())
    outcome = handle_upload(deployment.services, "uploads", key, pipeline=deployment.pipeline())
    assert outcome.status == "loaded" and outcome.detail == {"orbits": 1}
    apdb = deployment.level1.apdb
    assert apdb.get_orbit_catalog_version() is not None
    assert list(apdb.get_ss_objects()["ssObjectId"]) == [int(asteroid.ss_object_ids[0])]


def test_malformed_orbit_catalog_is_quarantined_and_the_current_one_kept(deployment, asteroid):
    pipeline = deployment.pipeline()
    pipeline.load_orbits(write_mpcorb(asteroid).encode())
    version = deployment.level1.apdb.get_orbit_catalog_version()
    key = "config/mpcorb/MPCORB.DAT"
    deployment.uploads.put(key, b"this is not an MPCORB record\n")
    outcome = handle_upload(deployment.services, "uploads", key, pipeline=pipeline)
    assert outcome.status == "quarantined"
    assert deployment.level1.apdb.get_orbit_catalog_version() == version
    assert any(k.startswith("quarantine/") for k in deployment.uploads.list())


def test_notification_processes_its_catalog_and_ignores_its_images(sky, sky_sources, deployment):
    key = deployment.put(sky.upload(1, 0, T1, sky_sources(3, seed=41)))
    image = next(deployment.images.list())
    body = _notification("uploads", key, image)
    outcomes = handle_upload_message(body, deployment.services, pipeline=deployment.pipeline())
    assert [o.status for o in outcomes] == ["processed", "ignored"]
    assert outcomes[0].detail["counts"]["alertsPublished"] == 3
    assert (outcomes[0].detail["visit"], outcomes[0].detail["detector"]) == (1, 0)
    again = handle_upload_message(_notification("uploads", key), deployment.services,
                                  pipeline=deployment.pipeline())
    assert [o.status for o in again] == ["duplicate"]
    assert len(deployment.topic.messages) == 3


def test_without_a_pipeline_a_catalog_is_only_validated_and_orbits_are_not_loaded(
        sky, sky_sources, deployment, asteroid):
    key = deployment.put(sky.upload(1, 0, T1, sky_sources(3, seed=42)))
    outcome = handle_upload(deployment.services, "uploads", key)
    assert outcome.status == "validated" and outcome.detail == {"warnings": [], "n": 3}
    deployment.uploads.put("config/mpcorb/MPCORB.DAT", write_mpcorb(asteroid).encode())
    assert handle_upload(deployment.services, "uploads", "config/mpcorb/MPCORB.DAT").status == \
        "ignored"
    assert deployment.level1.apdb.get_orbit_catalog_version() is None
    _nothing_written(deployment)


def test_bucket_test_event_names_no_upload(deployment):
    body = json.dumps({"Event": "s3:TestEvent", "Bucket": "uploads"})
    assert handle_upload_message(body, deployment.services, pipeline=deployment.pipeline()) == []


def test_a_missing_image_is_retried_through_the_queue_then_quarantined_on_the_last_receive(
        sky, sky_sources, deployment):
    from alertprod.pipeline.dispatch import RetryLaterError

    key, cat, images = sky.upload(2, 0, T1, sky_sources(3, seed=41))
    deployment.put((key, cat, {k: v for k, v in images.items() if not k.endswith("template.fits")}))
    body, pipeline = _notification("uploads", key), deployment.pipeline()
    for receive in (1, 2):  # the image may still arrive: the message goes back to the queue
        with pytest.raises(RetryLaterError, match="missing_image"):
            handle_upload_message(body, deployment.services, pipeline=pipeline,
                                  receive_count=receive, max_receives=3)
        assert not any(k.startswith("quarantine/") for k in deployment.uploads.list())
    [outcome] = handle_upload_message(body, deployment.services, pipeline=pipeline,
                                      receive_count=3, max_receives=3)
    assert (outcome.status, outcome.reason) == ("quarantined", "missing_image")
    _nothing_written(deployment)

"""Archiving cached images: compressed copies, the index, idempotency and refusals."""

from __future__ import annotations

import json

import numpy as np
import pytest

from alertprod.apdb import memory_level1
from alertprod.archive import (
    archive_image,
    archive_key,
    find_archived_at,
    handle_archive_message,
    open_archived,
)
from alertprod.aws import MemoryBlobStore
from alertprod.formats import image_key, read_exposure

pytestmark = pytest.mark.unit


def _s3_body(*keys: str) -> str:
    return json.dumps({"Records": [
        {"eventName": "ObjectCreated:Put",
         "s3": {"bucket": {"name": "images"}, "object": {"key": k, "size": 1, "sequencer": "1"}}}
        for k in keys]})


@pytest.fixture
def stores(upload_factory):
    images, archive = MemoryBlobStore("images"), MemoryBlobStore("archive")
    _, imgs = upload_factory(visit=7, detector=3, mjd=60000.1)
    for kind, data in imgs.items():
        images.put(image_key(7, 3, kind), data)
    return images, archive, memory_level1().apdb, imgs


def test_science_and_template_are_archived_compressed_and_indexed(stores):
    images, archive, apdb, imgs = stores
    body = _s3_body(*(image_key(7, 3, k) for k in ("science", "difference", "template")))
    outcomes = handle_archive_message(body, images=images, archive=archive, apdb=apdb)
    assert [o.status for o in outcomes] == ["archived", "ignored", "archived"]
    assert sorted(archive.list()) == [archive_key(7, 3, "science"), archive_key(7, 3, "template")]
    back = read_exposure(open_archived(archive, 7, 3, "science"))
    orig = read_exposure(imgs["science"])
    assert np.array_equal(back.mask, orig.mask)  # lossless mask
    assert back.info == orig.info
    noise = np.sqrt(np.median(orig.variance))
    assert np.max(np.abs(back.image - orig.image)) < noise  # quantised well below the noise
    centre = back.wcs.all_pix2world([[128.0, 128.0]], 0)[0]
    found = find_archived_at(apdb, centre[0], centre[1], 59999.0, 60001.0)
    assert sorted(found["kind"]) == ["science", "template"]
    assert set(found["visit"]) == {7} and set(found["detector"]) == {3}
    assert len(find_archived_at(apdb, centre[0] + 1.0, centre[1], 59999.0, 60001.0)) == 0


def test_redelivered_message_writes_nothing_new_and_lists_each_image_once(stores):
    images, archive, apdb, _ = stores
    key = image_key(7, 3, "science")
    first = archive_image(images, archive, apdb, key)
    before = archive.get(first.archive_key)
    again = archive_image(images, archive, apdb, key)
    assert (first.status, again.status) == ("archived", "unchanged")
    assert archive.get(first.archive_key) == before
    corners = read_exposure(before).wcs.all_pix2world([[0.0, 0.0], [255.0, 255.0]], 0)
    for ra, dec in corners:  # an image listed in several cells comes back once
        found = find_archived_at(apdb, ra, dec, 59999.0, 60001.0)
        assert list(zip(found["visit"], found["kind"], strict=True)) == [(7, "science")]


def test_compression_is_deterministic_so_a_recompressed_copy_is_identical(stores):
    images, archive, apdb, _ = stores
    key = image_key(7, 3, "template")
    archive_image(images, archive, apdb, key)
    first = archive.get(archive_key(7, 3, "template"))
    archive.delete(archive_key(7, 3, "template"))  # forces a second compression
    assert archive_image(images, archive, apdb, key).status == "archived"
    assert archive.get(archive_key(7, 3, "template")) == first


def test_bad_image_is_quarantined_with_its_reason_and_nothing_else_is_lost(stores):
    images, archive, apdb, _ = stores
    images.put(image_key(8, 3, "science"), b"not a FITS file")
    body = _s3_body(image_key(8, 3, "science"), image_key(7, 3, "science"))
    bad, good = handle_archive_message(body, images=images, archive=archive, apdb=apdb)
    assert (bad.status, bad.reason) == ("quarantined", "not_fits")
    assert good.status == "archived"
    record = json.loads(archive.get("quarantine/visits/00000008/003/science.json"))
    assert record["reason"] == "not_fits" and record["key"] == image_key(8, 3, "science")
    assert not archive.exists(archive_key(8, 3, "science"))


def test_image_whose_header_names_another_visit_is_refused(stores, upload_factory):
    images, archive, apdb, _ = stores
    _, imgs = upload_factory(visit=9, detector=3)
    images.put(image_key(10, 3, "science"), imgs["science"])
    out = archive_image(images, archive, apdb, image_key(10, 3, "science"))
    assert (out.status, out.reason) == ("quarantined", "key_mismatch")


def test_image_gone_from_the_cache_is_recorded_and_acknowledged(stores):
    images, archive, apdb, _ = stores
    out = archive_image(images, archive, apdb, image_key(99, 1, "science"))
    assert (out.status, out.reason) == ("missing", "missing_image")
    assert archive.exists("quarantine/visits/00000099/001/science.json")


def test_test_event_and_foreign_keys_archive_nothing(stores):
    images, archive, apdb, _ = stores
    assert handle_archive_message(json.dumps({"Event": "s3:TestEvent"}), images=images,
                                  archive=archive, apdb=apdb) == []
    assert archive_image(images, archive, apdb, "calib/flat.fits").status == "ignored"
    assert list(archive.list()) == []


def test_archive_keys_keep_only_science_and_template():
    assert archive_key(12, 5, "science") == "archive/visits/00000012/005/science.fits"
    with pytest.raises(ValueError, match="kind"):
        archive_key(12, 5, "difference")

"""One CCD through the four steps of ``NightlyPipeline``, exactly once, on the in-memory backend.

Crashes are injected by storage that fails (a thin subclass of the memory APDB, an alert topic
that refuses a call); every call that happens reaches the real in-memory implementation.
"""

from __future__ import annotations

import base64
import contextlib
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from alertprod.apdb import CcdState, MemoryApdb, memory_level1
from alertprod.orbits import write_mpcorb
from alertprod.pipeline.write_ahead import load_alerts, load_plan

pytestmark = pytest.mark.unit

T1, T2 = 60000.10, 60000.11
EXPORTED = ("DiaObject", "DiaObjectHistory", "DiaSource", "DiaForcedSource", "SSObject")


class CrashError(Exception):
    """The function container dies here (injected)."""


class CrashingApdb(MemoryApdb):
    """The memory APDB, whose next ``store_ccd`` dies once when armed.

    ``crash = "before"`` dies before writing anything, ``"after"`` once everything is written
    (before the ledger hears of it). Every CCD's writes are kept in :attr:`stored`, the one
    that died included.
    """

    def __init__(self, store, *, metrics):
        super().__init__(store, metrics=metrics)
        self.crash: str | None = None
        self.stored = []

    def store_ccd(self, writes, *, lease):
        crash, self.crash = self.crash, None
        self.stored.append(writes)
        if crash == "before":
            raise CrashError("died before storing")
        stats = super().store_ccd(writes, lease=lease)
        if crash == "after":
            raise CrashError("died after storing")
        return stats


class DiesReadingOnceApdb(MemoryApdb):
    """The memory APDB, whose first read of a footprint's DiaObjects dies."""

    def __init__(self, store, *, metrics):
        super().__init__(store, metrics=metrics)
        self.died = False

    def get_dia_objects(self, pixels):
        if not self.died:
            self.died = True
            raise CrashError("died while reading")
        return super().get_dia_objects(pixels)


def _second_visit(first):
    """Visit 2: the first visit's objects moved 0.1″, the last one faded below detection."""
    return [(ra + 0.1 / 3600, dec, f * 1.5, i != len(first) - 1)
            for i, (ra, dec, f, _) in enumerate(first)]


def _published_packets(topic) -> dict[int, bytes]:
    return {int(attrs["alert_id"]): base64.b64decode(body) for body, attrs in topic.messages}


def test_ccd_processed_once_ends_done_with_its_counts(sky, sky_sources, deployment):
    upload = deployment.validated(sky.upload(1, 0, T1, sky_sources(5, seed=30)))
    result = deployment.pipeline().process_ccd(upload)
    assert result.status == "processed" and (result.visit, result.detector) == (1, 0)
    record = deployment.level1.ledger.get_ccd_record(1, 0)
    assert record["state"] == CcdState.DONE
    assert record["counts"] == result.counts
    assert result.counts["diaSources"] == result.counts["newDiaObjects"] == 5
    assert result.counts["alerts"] == result.counts["alertsPublished"] == 5
    assert sorted(deployment.topic.alert_ids) == sorted(int(i) for i in
                                                        upload.catalog.table["diaSourceId"])
    assert record["band"] == "r" and record["mjdTai"] == T1
    assert result.dynamodb_requests > 0 and result.summary()["counts"] == result.counts
    tables = deployment.export()
    assert len(tables["DiaSource"]) == len(tables["DiaObject"]) == 5
    indexed = deployment.level1.apdb.find_exposures(*sky.radec(0, 100.0, 100.0), T1 - 1, T1 + 1)
    assert list(indexed["visit"]) == [1]  # cached images indexed for precovery


def test_redelivered_ccd_is_a_duplicate_and_writes_nothing_new(sky, sky_sources, deployment,
                                                              assert_same_tables):
    ccd = sky.upload(1, 0, T1, sky_sources(4, seed=31))
    first = deployment.pipeline().process_ccd(deployment.validated(ccd))
    before = deployment.export()
    archived = {key: deployment.archive.get(key) for key in deployment.archive.list()}
    sent = list(deployment.topic.messages)
    # at-least-once delivery: the same upload again, in a new container
    result = deployment.pipeline().process_ccd(deployment.validated(ccd))
    assert result.status == "duplicate" and result.counts == first.counts
    after = deployment.export()
    for name in EXPORTED:
        assert_same_tables(before[name], after[name], name)
    assert deployment.topic.messages == sent
    assert {key: deployment.archive.get(key) for key in deployment.archive.list()} == archived


def _validated_then_difference_cut(deployment, ccd):
    """The CCD validated whole, then its difference image cut after its primary header in the
    cache: validation passed (it refuses a truncated image), the pixels cannot be read."""
    upload = deployment.validated(ccd)
    _, _, images = ccd
    diff = next(k for k in images if k.endswith("/difference.fits"))
    deployment.images.put(diff, images[diff][:2 * 2880])
    return upload


def test_unreadable_image_warning_reaches_the_ccd_result(sky, sky_sources, deployment):
    upload = _validated_then_difference_cut(deployment, sky.upload(1, 0, T1, sky_sources(2, seed=36)))
    assert upload.warnings == []
    result = deployment.pipeline().process_ccd(upload)
    record = deployment.level1.ledger.get_ccd_record(1, 0)
    assert any(w.startswith("unreadable_image:difference") for w in record["warnings"])
    assert result.warnings == record["warnings"]


def test_replayed_ccd_keeps_the_warnings_of_the_attempt_that_computed_it(sky, sky_sources,
                                                                         new_deployment):
    deployment = new_deployment(apdb_class=CrashingApdb)
    ccd = sky.upload(1, 0, T1, sky_sources(2, seed=37))
    deployment.level1.apdb.crash = "before"
    with pytest.raises(CrashError):
        deployment.pipeline().process_ccd(_validated_then_difference_cut(deployment, ccd))
    planned = deployment.level1.ledger.get_ccd_record(1, 0)
    assert planned["state"] == CcdState.PLANNED
    assert any(w.startswith("unreadable_image:difference") for w in planned["warnings"])
    deployment.pipeline().process_ccd(deployment.validated(ccd))  # the redelivered message
    done = deployment.level1.ledger.get_ccd_record(1, 0)
    assert done["state"] == CcdState.DONE
    assert done["warnings"] == planned["warnings"]


@pytest.mark.parametrize("crash", ["before", "after"], ids=["before_writing", "after_writing"])
def test_crash_after_planned_replays_the_staged_plan(crash, sky, sky_sources, new_deployment,
                                                     assert_same_tables):
    deployment = new_deployment(apdb_class=CrashingApdb)
    apdb = deployment.level1.apdb
    first = sky_sources(5, seed=32)
    deployment.pipeline().process_ccd(deployment.validated(sky.upload(1, 0, T1, first)))
    upload = deployment.validated(sky.upload(2, 0, T2, _second_visit(first)))
    apdb.crash = crash
    with pytest.raises(CrashError):
        deployment.pipeline().process_ccd(upload)
    assert deployment.level1.ledger.get_ccd_record(2, 0)["state"] == CcdState.PLANNED
    assert deployment.topic.alert_ids[5:] == []  # nothing of visit 2 announced yet
    computed = apdb.stored[-1]  # the rows the first attempt computed (and staged)

    result = deployment.pipeline().process_ccd(upload)  # the redelivery, in a new container
    assert result.status == "processed"
    assert deployment.level1.ledger.get_ccd_record(2, 0)["state"] == CcdState.DONE
    assert apdb.stored[-1] is not computed and "read_staged" in result.seconds  # replayed

    # the same rows and versions as storing the first attempt's plan once, crash-free
    reference = memory_level1()
    for writes in apdb.stored[:-1]:
        reference.apdb.store_ccd(writes, lease=None)
        reference.apdb.record_ss_observations(writes.dia_sources)
    expected, got = reference.apdb.export(), deployment.export()
    for name in EXPORTED:
        assert_same_tables(expected[name], got[name], name)
    history = got["DiaObjectHistory"]
    assert len(history) == 5 + 4  # five first versions; four objects seen again
    assert np.sum(np.isnan(np.asarray(history["validityEndMjdTai"], float))) == 5
    assert len(got["DiaForcedSource"]) == 1

    # each alert of visit 2 announced once, with the packet that was staged
    staged = {a.alert_id: a.packet for a in load_alerts(deployment.archive, 2, 0)}
    visit2 = [i for i in deployment.topic.alert_ids if i in staged]
    assert sorted(visit2) == sorted(staged) and len(staged) == 4
    assert {i: p for i, p in _published_packets(deployment.topic).items() if i in staged} == staged


def test_crash_after_stored_resumes_at_publishing_and_never_republishes(sky, sky_sources,
                                                                        deployment):
    upload = deployment.validated(sky.upload(1, 0, T1, sky_sources(8, seed=33)))
    deployment.topic.fail_at_call = 2  # the first PublishBatch goes out, the second fails
    with pytest.raises(RuntimeError, match="PublishBatch"):
        deployment.pipeline().process_ccd(upload)
    assert deployment.level1.ledger.get_ccd_record(1, 0)["state"] == CcdState.STORED
    sent_first = list(deployment.topic.alert_ids)
    assert 0 < len(sent_first) < 8
    stored = deployment.export()

    result = deployment.pipeline().process_ccd(upload)
    assert result.status == "processed"
    assert "store" not in result.seconds and "read_staged" in result.seconds
    assert result.counts["alertsPublished"] == 8  # announced now, or before the crash
    ids = deployment.topic.alert_ids
    assert ids[:len(sent_first)] == sent_first
    assert len(ids) == len(set(ids)) == 8
    assert sorted(ids) == sorted(int(i) for i in upload.catalog.table["diaSourceId"])
    after = deployment.export()
    for name in EXPORTED:
        assert len(after[name]) == len(stored[name]), name
    assert deployment.level1.ledger.get_ccd_record(1, 0)["state"] == CcdState.DONE


def test_crash_while_computing_leaves_the_database_untouched_and_the_retry_starts_afresh(
        sky, sky_sources, new_deployment):
    deployment = new_deployment(apdb_class=DiesReadingOnceApdb)
    upload = deployment.validated(sky.upload(1, 0, T1, sky_sources(3, seed=34)))
    with pytest.raises(CrashError):
        deployment.pipeline().process_ccd(upload)
    assert deployment.level1.ledger.get_ccd_record(1, 0)["state"] == CcdState.STARTED
    assert len(deployment.export()["DiaSource"]) == 0 and deployment.topic.calls == []
    assert list(deployment.archive.list("staging/")) == []
    result = deployment.pipeline().process_ccd(upload)
    assert result.status == "processed" and result.counts["newDiaObjects"] == 3
    assert len(load_plan(deployment.archive, 1, 0).writes.dia_sources) == 3


class ReadTogetherApdb(MemoryApdb):
    """The memory APDB, where reading a footprint's DiaObjects waits up to 0.2 s for a second
    CCD to read too: two CCDs free to run at once would both read before either writes."""

    def __init__(self, store, *, metrics):
        super().__init__(store, metrics=metrics)
        self.together = threading.Barrier(2, timeout=0.2)

    def get_dia_objects(self, pixels):
        with contextlib.suppress(threading.BrokenBarrierError):  # the other CCD is held off
            self.together.wait()
        return super().get_dia_objects(pixels)


def test_overlapping_ccds_from_two_threads_make_one_object_for_a_shared_transient(
        sky, new_deployment):
    deployment = new_deployment(apdb_class=ReadTogetherApdb)
    # a transient 0.3″ inside detector 0's edge at visit 1, 0.5″ further (on detector 1) at
    # visit 2: the padded footprints of the two CCDs overlap around it
    at_1 = sky.radec(0, 198.0, 100.0)
    at_2 = sky.radec(1, 0.5, 100.0)
    assert sky.detector_of(*at_1)[0] == 0 and sky.detector_of(*at_2)[0] == 1
    uploads = [deployment.validated(sky.upload(1, 0, T1, [(*at_1, 6000.0, True),
                                                          (*sky.radec(0, 50, 50), 4000.0, True)])),
               deployment.validated(sky.upload(2, 1, T1 + 0.0005,
                                               [(*at_2, 6000.0, True),
                                                (*sky.radec(1, 150, 150), 4000.0, True)]))]
    start = threading.Barrier(2)

    def run(upload):
        pipeline = deployment.pipeline()  # each CCD in its own container
        start.wait()
        return pipeline.process_ccd(upload)

    with ThreadPoolExecutor(2) as pool:
        results = list(pool.map(run, uploads))
    assert [r.status for r in results] == ["processed", "processed"]
    assert sorted(r.counts["newDiaObjects"] for r in results) == [1, 2]
    tables = deployment.export()
    src = tables["DiaSource"]
    transient = np.isin(np.asarray(src["diaSourceId"], np.int64), [100_000_001, 200_100_001])
    (oid,) = np.unique(np.asarray(src["diaObjectId"], np.int64)[transient])
    assert len(tables["DiaObject"]) == 3
    last = tables["DiaObject"][np.asarray(tables["DiaObject"]["diaObjectId"]) == oid]
    assert int(last["nDiaSources"][0]) == 2
    versions = tables["DiaObjectHistory"][np.asarray(tables["DiaObjectHistory"]["diaObjectId"])
                                          == oid]
    assert np.sum(np.isnan(np.asarray(versions["validityEndMjdTai"], float))) == 1


def test_two_deliveries_of_one_upload_at_once_announce_each_alert_once(sky, sky_sources,
                                                                       deployment):
    ccd = sky.upload(1, 0, T1, sky_sources(3, seed=35))
    deliveries = [deployment.validated(ccd) for _ in range(2)]  # one message, delivered twice
    start = threading.Barrier(2)
    # the first publisher waits (up to 1 s) at the topic for a second one to arrive
    meet = threading.Barrier(2, timeout=1.0)

    def wait_for_the_other():
        with contextlib.suppress(threading.BrokenBarrierError):
            meet.wait()

    deployment.topic.on_publish = wait_for_the_other

    def run(upload):
        pipeline = deployment.pipeline()  # each delivery in its own container
        start.wait()
        return pipeline.process_ccd(upload)

    with ThreadPoolExecutor(2) as pool:
        results = list(pool.map(run, deliveries))
    assert sorted(r.status for r in results) == ["processed", "processed"]
    assert sum("associate" in r.seconds for r in results) == 1  # computed once, as documented
    ids = deployment.topic.alert_ids
    assert sorted(ids) == sorted(set(ids)), f"announced twice: {sorted(ids)}"


def test_loading_orbits_stores_ss_objects_and_refreshes_this_containers_cache(deployment,
                                                                              asteroid):
    pipeline = deployment.pipeline()
    assert pipeline.orbits.get() is None  # cached "no catalog" in this container
    assert pipeline.load_orbits(write_mpcorb(asteroid).encode()) == 1
    ss = deployment.level1.apdb.get_ss_objects()
    assert list(ss["ssObjectId"]) == [int(asteroid.ss_object_ids[0])]
    catalog = pipeline.orbits.get()
    assert catalog is not None and list(catalog.ss_object_ids) == list(asteroid.ss_object_ids)

"""The contract every Level 1 backend passes: what the pipeline may rely on, case by case.

A backend's test module subclasses :class:`ApdbContract`, :class:`CcdLedgerContract` and
:class:`LeaseManagerContract` (with a ``Test`` name) and provides one fixture, ``connect``: a
callable ``connect(*, clock=time.time, sleep=time.sleep, before_transaction=None,
before_request=None) -> Level1`` that opens a new connection (its own caches and metrics, like
another Lambda container) to the one fresh storage of the test. ``before_transaction(n)``, when
given, is called before the connection sends its n-th TransactWriteItems request (n from 1):
raise in it to crash the writer there, or write through another connection to race it.
``before_request(operation)`` is called before every request of the connection's APDB, with
DynamoDB's operation name (``"update_item"``, ...): raise in it to crash between two requests. The suite builds the default
``level1`` from ``connect`` with a :class:`FakeClock`, so lease expiry needs no waiting.

The cases are named after the guarantee they prove, and each fails against a backend that
skips the check behind it (``tests/unit/apdb/test_apdb_contract_sensitivity.py`` shows it for
the key ones). The Apdb cases on DiaObjects, history, fencing and request limits are here;
those on the solar system, orbits, image index and export in
:mod:`contract.services_contract`, those on precovery runs in :mod:`contract.runs_contract`; the lease and ledger cases in
:mod:`contract.coordination_contract`. Shared data: :mod:`contract._data`.
"""

from __future__ import annotations

import numpy as np
import pytest
from astropy.table import Table
from contract._data import (
    DEC,
    FOOTPRINT,
    RA,
    RADIUS,
    T0,
    T1,
    T2,
    create_objects,
    no_objects,
    object_states,
    same_tables,
)
from contract.coordination_contract import (
    CONTRACT_FAILURES,
    CcdLedgerContract,
    FakeClock,
    LeaseManagerContract,
    Level1Contract,
    crash_at,
    run_case,
)
from contract.reprocessing_contract import ReprocessingContract
from contract.services_contract import ApdbServicesContract

from alertprod.apdb import CcdWrites, cells_for_footprint
from alertprod.apdb.testing import make_ccd_writes, make_forced, make_objects, make_sources
from alertprod.errors import ConflictError
from alertprod.pixelization import pixel_of, pixels_in_cone

__all__ = ["CONTRACT_FAILURES", "ApdbContract", "ApdbServicesContract", "CcdLedgerContract",
           "FakeClock", "LeaseManagerContract", "Level1Contract", "crash_at", "run_case"]


class ApdbContract(ApdbServicesContract, ReprocessingContract):
    """What every :class:`~alertprod.apdb.Apdb` guarantees (with :class:`ApdbServicesContract`)."""

    # -- reads and writes ----------------------------------------------------------------------
    def test_stored_objects_read_back_by_pixel_and_by_id(self, level1):
        apdb = level1.apdb
        objs = make_objects(12, RA, DEC, RADIUS)
        apdb.store_ccd(make_ccd_writes(objs, 1, 1, T0, new=True), lease=None)
        got = apdb.get_dia_objects(pixels_in_cone(RA, DEC, RADIUS))
        assert list(got["diaObjectId"]) == list(objs["diaObjectId"])  # sorted by id
        assert np.allclose(got["ra"], objs["ra"]) and np.allclose(got["dec"], objs["dec"])
        assert np.all(got["validityStartMjdTai"] == T0)
        assert np.all(np.isnan(np.asarray(got["validityEndMjdTai"], float)))
        pix = np.asarray(pixel_of(got["ra"], got["dec"]))
        one = int(pix[0])
        assert list(apdb.get_dia_objects([one])["diaObjectId"]) == \
            list(got["diaObjectId"][pix == one])
        ids = objs["diaObjectId"]
        assert list(apdb.get_dia_objects_by_id([ids[5], 999_999, ids[3]])["diaObjectId"]) == \
            [ids[3], ids[5]]
        assert len(apdb.get_dia_objects([])) == 0 and len(apdb.get_dia_objects_by_id([])) == 0

    def test_stored_state_cannot_be_changed_through_inputs_or_results(self, level1):
        apdb = level1.apdb
        objs = make_objects(3, RA, DEC, RADIUS)
        writes = make_ccd_writes(objs, 1, 1, T0, new=True)
        apdb.store_ccd(writes, lease=None)
        writes.dia_objects["ra"] += 1.0
        writes.dia_sources["psfFlux"] = -1.0
        got = apdb.get_dia_objects_by_id(objs["diaObjectId"])
        got["ra"] = 0.0
        assert np.allclose(apdb.get_dia_objects_by_id(objs["diaObjectId"])["ra"], objs["ra"])
        assert np.all(apdb.get_dia_sources(objs["diaObjectId"], T1)["psfFlux"] > 0)

    def test_reads_beyond_one_batch_return_everything(self, level1):
        apdb = level1.apdb
        got = create_objects(apdb, 12)
        ids = got["diaObjectId"]
        many = np.concatenate([np.arange(10_000, 10_150), ids])  # 162 keys > 100
        assert list(apdb.get_dia_objects_by_id(many)["diaObjectId"]) == list(ids)
        pixels = np.concatenate([pixels_in_cone(RA, DEC, RADIUS), np.arange(150) + 10**6])
        assert list(apdb.get_dia_objects(pixels)["diaObjectId"]) == list(ids)
        sources, _ = apdb.get_dia_history(ids, T1)  # 12 objects x 13 buckets > 100 keys
        assert sorted(sources["diaObjectId"]) == list(ids)
        assert len(apdb.new_dia_objects(T0 - 2, T0 + 1)) == 12  # 4 days x 128 shards

    # -- versions ------------------------------------------------------------------------------
    def test_new_version_closes_the_previous_one_at_its_start(self, level1):
        apdb = level1.apdb
        got = create_objects(apdb, 12)
        stats = apdb.store_ccd(make_ccd_writes(got, 2, 1, T1, detected=np.arange(12) < 5),
                               lease=None)
        assert (stats.objects_written, stats.sources_written,
                stats.forced_sources_written) == (5, 5, 7)
        history = apdb.export()["DiaObjectHistory"]
        assert len(history) == 12 + 5
        for oid in got["diaObjectId"]:
            rows = history[history["diaObjectId"] == oid]
            start = np.asarray(rows["validityStartMjdTai"], float)
            end = np.asarray(rows["validityEndMjdTai"], float)
            assert np.isnan(end[-1]) and not np.any(np.isnan(end[:-1]))  # one open: the latest
            assert np.array_equal(end[:-1], start[1:])
        latest = apdb.get_dia_objects_by_id(got["diaObjectId"])
        assert list(latest["validityStartMjdTai"]) == [T1] * 5 + [T0] * 7
        assert list(latest["nDiaSources"]) == [2] * 5 + [1] * 7

    def test_close_and_open_of_a_version_is_atomic(self, level1, connect, clock):
        """A crash between the transactions of a CCD leaves each object before or after."""
        got = create_objects(level1.apdb, 30)
        writes = make_ccd_writes(got, 2, 1, T1)  # 30 x (Last, version, close, history) > 100
        crashing = connect(clock=clock, sleep=clock.sleep, before_transaction=crash_at(2))
        with pytest.raises(RuntimeError, match="injected crash"):
            crashing.apdb.store_ccd(writes, lease=None)
        assert set(object_states(level1.apdb, got["diaObjectId"]).values()) == {"before",
                                                                               "after"}

    def test_retry_after_a_crash_completes_the_ccd_exactly_once(self, level1, connect, clock):
        got = create_objects(level1.apdb, 30)
        writes = make_ccd_writes(got, 2, 1, T1, detected=np.arange(30) < 28)  # > 100 items
        crashing = connect(clock=clock, sleep=clock.sleep, before_transaction=crash_at(2))
        with pytest.raises(RuntimeError, match="injected crash"):
            crashing.apdb.store_ccd(writes, lease=None)
        stats = level1.apdb.store_ccd(writes, lease=None)
        assert stats.objects_already_done > 0 and stats.objects_written > 0
        assert stats.objects_already_done + stats.objects_written == 28
        out = level1.apdb.export()
        assert len(out["DiaObjectHistory"]) == 30 + 28 and len(out["DiaObject"]) == 30
        assert len(out["DiaSource"]) == len(set(out["DiaSource"]["diaSourceId"])) == 30 + 28
        assert len(out["DiaForcedSource"]) == 2

    def test_redelivered_plan_adds_nothing(self, level1):
        apdb = level1.apdb
        objs = make_objects(12, RA, DEC, RADIUS)
        create = make_ccd_writes(objs, 1, 1, T0, new=True)
        apdb.store_ccd(create, lease=None)
        got = apdb.get_dia_objects_by_id(objs["diaObjectId"])
        update = make_ccd_writes(got, 2, 1, T1, detected=np.arange(12) < 5)
        apdb.store_ccd(update, lease=None)
        before = apdb.export()
        again = apdb.store_ccd(update, lease=None)
        assert (again.objects_written, again.objects_already_done) == (0, 5)
        late = apdb.store_ccd(create, lease=None)  # after visit 2 built on its versions
        assert (late.objects_written, late.objects_already_done) == (0, 12)
        assert same_tables(before, apdb.export())
        assert len(apdb.new_dia_objects(T0 - 1, T2)) == 12

    def test_concurrent_redelivery_of_a_plan_commits_it_once(self, level1, connect, clock):
        got = create_objects(level1.apdb, 6)
        writes = make_ccd_writes(got, 2, 1, T1, detected=np.arange(6) < 4)

        def twin(n):  # the other delivery of the same plan commits while we are in flight
            if n == 1:
                level1.apdb.store_ccd(writes, lease=None)

        racing = connect(clock=clock, sleep=clock.sleep, before_transaction=twin)
        stats = racing.apdb.store_ccd(writes, lease=None)
        assert (stats.objects_written, stats.objects_already_done) == (0, 4)
        out = level1.apdb.export()
        assert len(out["DiaObjectHistory"]) == 6 + 4
        assert len(out["DiaSource"]) == len(set(out["DiaSource"]["diaSourceId"])) == 6 + 4
        assert len(out["DiaForcedSource"]) == 2

    def test_version_may_start_after_the_visit_time(self, level1):
        """The pipeline moves a start past the version it replaces when CCDs commit late."""
        got = create_objects(level1.apdb, 2)
        writes = make_ccd_writes(got, 2, 1, T1)
        writes.dia_objects["validityStartMjdTai"] = [T1 + 0.5, np.nan]  # NaN: the visit time
        level1.apdb.store_ccd(writes, lease=None)
        latest = level1.apdb.get_dia_objects_by_id(got["diaObjectId"])
        assert list(latest["validityStartMjdTai"]) == [T1 + 0.5, T1]
        history = level1.apdb.export()["DiaObjectHistory"]
        assert list(history["validityEndMjdTai"][history["validityStartMjdTai"] == T0]) == \
            [T1 + 0.5, T1]

    def test_update_built_on_an_outdated_version_is_a_conflict(self, level1):
        apdb = level1.apdb
        got = create_objects(apdb, 6)
        apdb.store_ccd(make_ccd_writes(got, 2, 1, T1), lease=None)
        before = apdb.export()
        with pytest.raises(ConflictError):  # built from the versions before visit 2
            apdb.store_ccd(make_ccd_writes(got, 3, 1, T2), lease=None)
        assert same_tables(before, apdb.export())

    def test_update_racing_a_newer_version_is_refused_whole(self, level1, connect, clock):
        """The expected-previous-version condition holds inside the transaction itself."""
        got = create_objects(level1.apdb, 6)

        def race(n):  # after our pre-read, another CCD updates one of our objects
            if n == 1:
                level1.apdb.store_ccd(make_ccd_writes(got[:1], 2, 2, T1), lease=None)

        racing = connect(clock=clock, sleep=clock.sleep, before_transaction=race)
        with pytest.raises(ConflictError):
            racing.apdb.store_ccd(make_ccd_writes(got, 3, 1, T2), lease=None)
        latest = level1.apdb.get_dia_objects_by_id(got["diaObjectId"])
        assert list(latest["validityStartMjdTai"]) == [T1] + [T0] * 5
        assert len(level1.apdb.export()["DiaObjectHistory"]) == 6 + 1
        assert not np.any(level1.apdb.get_dia_sources(got["diaObjectId"], T2 + 1)["visit"] == 3)

    def test_creating_an_object_another_ccd_created_is_a_conflict(self, level1):
        apdb = level1.apdb
        objs = make_objects(3, RA, DEC, RADIUS)
        apdb.store_ccd(make_ccd_writes(objs, 1, 1, T0, new=True), lease=None)
        before = apdb.export()
        with pytest.raises(ConflictError):
            apdb.store_ccd(make_ccd_writes(objs, 1, 2, T0, new=True), lease=None)
        with pytest.raises(ConflictError):
            apdb.store_ccd(make_ccd_writes(objs, 2, 1, T1, new=True), lease=None)
        assert same_tables(before, apdb.export())

    def test_update_of_an_unknown_object_is_a_conflict(self, level1):
        objs = make_objects(2, RA, DEC, RADIUS)
        objs["validityStartMjdTai"] = T0
        with pytest.raises(ConflictError):
            level1.apdb.store_ccd(make_ccd_writes(objs, 2, 1, T1), lease=None)
        assert all(len(t) == 0 for t in level1.apdb.export().values())

    def test_second_ccd_of_a_visit_replaces_the_version_the_first_wrote(self, level1):
        apdb = level1.apdb
        got = create_objects(apdb, 1)
        apdb.store_ccd(make_ccd_writes(got, 2, 1, T1), lease=None)
        first = apdb.get_dia_objects_by_id(got["diaObjectId"])
        apdb.store_ccd(make_ccd_writes(first, 2, 2, T1), lease=None)  # same visit, same start
        history = apdb.export()["DiaObjectHistory"]
        assert list(history["validityStartMjdTai"]) == [T0, T1]  # no zero-length version
        assert np.array_equal(history["validityEndMjdTai"], [T1, np.nan], equal_nan=True)
        assert apdb.get_dia_objects_by_id(got["diaObjectId"])["nDiaSources"][0] == 3

    def test_object_moving_across_a_pixel_border_is_found_in_its_new_pixel_only(self, level1):
        apdb = level1.apdb
        got = create_objects(apdb, 1)
        moved = got.copy()
        moved["ra"] = got["ra"][0] + 0.2  # several order-10 pixels away
        apdb.store_ccd(make_ccd_writes(moved, 2, 1, T1), lease=None)
        old, new = int(pixel_of(got["ra"][0], got["dec"][0])), int(pixel_of(moved["ra"][0],
                                                                              moved["dec"][0]))
        assert old != new
        assert len(apdb.get_dia_objects([old])) == 0
        assert list(apdb.get_dia_objects([new])["diaObjectId"]) == list(got["diaObjectId"])
        assert list(apdb.get_dia_objects([old, new])["diaObjectId"]) == list(got["diaObjectId"])

    def test_new_dia_objects_of_a_night(self, level1):
        apdb = level1.apdb
        objs = make_objects(6, 30.0, -20.0, 0.02)
        apdb.store_ccd(make_ccd_writes(objs, 1, 1, 60010.3, new=True), lease=None)
        later = make_objects(2, 30.0, -20.0, 0.02, first_id=100)
        apdb.store_ccd(make_ccd_writes(later, 2, 1, 60011.3, new=True), lease=None)
        updated = apdb.get_dia_objects_by_id(objs["diaObjectId"][:3])
        apdb.store_ccd(make_ccd_writes(updated, 3, 1, 60011.4), lease=None)  # not new
        night = apdb.new_dia_objects(60010.0, 60011.0)
        assert list(night["diaObjectId"]) == list(objs["diaObjectId"])
        assert np.allclose(night["ra"], objs["ra"]) and np.allclose(night["dec"], objs["dec"])
        assert np.all(night["validityStartMjdTai"] == 60010.3)
        assert len(apdb.new_dia_objects(60010.0, 60012.0)) == 8
        assert len(apdb.new_dia_objects(60010.0, 60010.3)) == 0  # the end is exclusive

    # -- history -------------------------------------------------------------------------------
    def test_history_is_the_months_before_the_visit_sorted_by_object_then_time(self, level1):
        apdb = level1.apdb
        t = 60400.0
        times = np.array([t - 1e-6, t - 360.0 - 1e-6, t, t - 360.0, t + 1.0, t - 20.0])
        oids = np.array([77, 77, 77, 77, 77, 5])
        src = make_sources(oids, np.full(6, RA), np.full(6, DEC), 9, 1, 0.0)
        src["midpointMjdTai"], src["diaSourceId"] = times, np.arange(100, 106)
        forced = make_forced(oids, np.full(6, RA), np.full(6, DEC), 9, 1, 0.0)
        forced["midpointMjdTai"], forced["diaForcedSourceId"] = times, np.arange(200, 206)
        apdb.store_ccd(CcdWrites(9, 1, t, src, forced, no_objects()), lease=None)
        sources, forced_sources = apdb.get_dia_history([77, 5, 6], t)
        expected = [(5, t - 20.0), (77, t - 360.0), (77, t - 1e-6)]
        for table in (sources, forced_sources, apdb.get_dia_sources([5, 77], t),
                      apdb.get_dia_forced_sources([5, 77], t)):
            assert list(zip(table["diaObjectId"].tolist(), table["midpointMjdTai"].tolist(),
                            strict=True)) == expected
        assert list(apdb.get_dia_sources([77], t, months=1)["midpointMjdTai"]) == [t - 1e-6]
        assert len(apdb.get_dia_sources([77], t, months=0)) == 0

    def test_solar_system_sources_are_kept_apart_from_object_history(self, level1):
        apdb = level1.apdb
        src = make_sources(np.zeros(3, np.int64), np.full(3, RA), np.full(3, DEC), 5, 1, T0)
        src["diaObjectId"] = np.ma.masked_all(3, dtype=np.int64)
        src["ssObjectId"] = np.array([12, 11, 12], np.int64)
        src["midpointMjdTai"] = [T0, T0, T0 - 1.0]
        apdb.store_ccd(CcdWrites(5, 1, T0, src, Table(), no_objects()), lease=None)
        ss = apdb.get_ss_sources([11, 12, 13], T0 + 1)
        assert list(zip(ss["ssObjectId"].tolist(), ss["midpointMjdTai"].tolist(), strict=True)) \
            == [(11, T0), (12, T0 - 1.0), (12, T0)]
        assert len(apdb.get_ss_sources([11, 12], T0)) == 1  # midpoint < visit time
        assert len(apdb.get_dia_sources([11, 12], T0 + 1)) == 0
        exported = apdb.export()["DiaSource"]
        assert sorted(exported["ssObjectId"]) == [11, 12, 12]
        assert np.all(np.ma.getmaskarray(exported["diaObjectId"]))

    # -- leases and fencing --------------------------------------------------------------------
    def test_fenced_write_refused_after_lease_taken_over(self, level1, clock):
        apdb, cells = level1.apdb, cells_for_footprint(FOOTPRINT)
        objs = make_objects(4, RA, DEC, RADIUS)
        stale = level1.leases.acquire(cells, "ccd-A", ttl_s=60)
        clock.advance(61)  # A stalls past its expiry; B takes the cells over
        fresh = level1.leases.acquire(cells, "ccd-B", ttl_s=60, wait_s=0)
        with pytest.raises(ConflictError):
            apdb.store_ccd(make_ccd_writes(objs, 1, 1, T0, new=True), lease=stale)
        assert all(len(t) == 0 for t in apdb.export().values())
        apdb.store_ccd(make_ccd_writes(objs, 1, 1, T0, new=True), lease=fresh)
        objs["validityStartMjdTai"] = T0
        forced_only = make_ccd_writes(objs, 2, 1, T1, detected=np.zeros(4, bool))
        with pytest.raises(ConflictError):  # history-only writes are fenced too
            apdb.store_ccd(forced_only, lease=stale)
        assert len(apdb.get_dia_objects(pixels_in_cone(RA, DEC, RADIUS))) == 4
        assert len(apdb.get_dia_forced_sources(objs["diaObjectId"], T2)) == 0

    def test_takeover_mid_ccd_refuses_the_rest_and_the_new_holder_completes_it(
            self, level1, connect, clock):
        cells = cells_for_footprint(FOOTPRINT)
        got = create_objects(level1.apdb, 30)
        writes = make_ccd_writes(got, 2, 1, T1)
        stale = level1.leases.acquire(cells, "ccd-A", ttl_s=60)
        retry = {}

        def takeover(n):  # A stalls between its transactions; its retry takes the cells over
            if n == 2:
                clock.advance(61)
                retry["lease"] = level1.leases.acquire(cells, "ccd-A-retry", ttl_s=60, wait_s=0)

        stalled = connect(clock=clock, sleep=clock.sleep, before_transaction=takeover)
        with pytest.raises(ConflictError):
            stalled.apdb.store_ccd(writes, lease=stale)
        assert set(object_states(level1.apdb, got["diaObjectId"]).values()) == {"before",
                                                                               "after"}
        stats = level1.apdb.store_ccd(writes, lease=retry["lease"])
        assert stats.objects_already_done + stats.objects_written == 30
        assert set(object_states(level1.apdb, got["diaObjectId"]).values()) == {"after"}

    def test_fencing_depends_on_tokens_not_on_clocks(self, level1, clock):
        lease = level1.leases.acquire(cells_for_footprint(FOOTPRINT), "ccd-A", ttl_s=60)
        clock.advance(3600)  # lapsed, but nobody took a cell: its writes are still the latest
        objs = make_objects(2, RA, DEC, RADIUS)
        level1.apdb.store_ccd(make_ccd_writes(objs, 1, 1, T0, new=True), lease=lease)
        assert len(level1.apdb.get_dia_objects_by_id(objs["diaObjectId"])) == 2

    # -- request limits ------------------------------------------------------------------------
    def test_ccd_larger_than_one_transaction_is_stored_whole(self, level1):
        lease = level1.leases.acquire(cells_for_footprint(FOOTPRINT), "ccd", ttl_s=60)
        objs = make_objects(40, RA, DEC, RADIUS)  # 40 x (Last, version, history) + shared > 100
        stats = level1.apdb.store_ccd(make_ccd_writes(objs, 1, 1, T0, new=True), lease=lease)
        assert stats.transactions >= 2 and stats.objects_written == 40
        assert stats.requests["transact_write_items"] == stats.transactions
        out = level1.apdb.export()
        assert len(out["DiaObject"]) == len(out["DiaSource"]) == 40
        assert len(level1.apdb.new_dia_objects(T0 - 1, T1)) == 40

    def test_forced_measurements_beyond_one_transaction_are_stored_whole(self, level1):
        objs = make_objects(120, RA, DEC, RADIUS)  # 120 history items, no new version
        objs["validityStartMjdTai"] = T0
        writes = make_ccd_writes(objs, 2, 1, T1, detected=np.zeros(120, bool))
        stats = level1.apdb.store_ccd(writes, lease=None)
        assert stats.transactions >= 2 and stats.forced_sources_written == 120
        assert len(level1.apdb.get_dia_forced_sources(objs["diaObjectId"], T2)) == 120

    def test_store_ccd_reports_the_requests_it_sent(self, level1):
        before = level1.metrics.total()
        stats = level1.apdb.store_ccd(make_ccd_writes(make_objects(30, RA, DEC, RADIUS), 1, 1,
                                                      T0, new=True), lease=None)
        assert stats.requests["transact_write_items"] == stats.transactions >= 1
        assert stats.requests["batch_get_item"] >= 1
        assert stats.total_requests == level1.metrics.total() - before

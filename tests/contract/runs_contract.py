"""The contract of precovery runs: a fan-in that counts each unit once and finalises once,
whatever the size of the run.

Mixed into :class:`contract.apdb_contract.ApdbContract` (see there for the fixture API). The
large-run case is sized to break the former one-item run record: 420 unit keys of 1,000 bytes
(420 KB of done-set) and 60,000 diaObjectIds (480 KB), both over DynamoDB's 400 KB item limit,
which the embedded stack and the in-memory backend enforce.
"""

from __future__ import annotations

import threading

import numpy as np
import pytest
from contract._data import T0, run_threads
from contract.coordination_contract import Level1Contract

from alertprod.apdb.testing import make_ccd_writes, make_objects
from alertprod.errors import NotFoundError

__all__ = ["PrecoveryRunsContract", "LARGE_RUN_UNITS", "long_unit_keys"]

#: Units of the large-run case, and the bytes of each key (1,000: the longest allowed).
LARGE_RUN_UNITS, LONG_KEY_BYTES = 420, 1000


def long_unit_keys(n: int) -> list[str]:
    """``n`` distinct unit keys of the longest allowed size."""
    return [f"visit{k:06d}-" + "x" * (LONG_KEY_BYTES - 13) for k in range(n)]


def crash_before(operation: str):
    """A ``before_request`` hook that crashes the caller before its first ``operation``."""

    def hook(name: str) -> None:
        if name == operation:
            raise RuntimeError(f"injected crash before {operation}")

    return hook


class PrecoveryRunsContract(Level1Contract):
    """What :meth:`Apdb.start_precovery_run`, ``complete_precovery_unit`` and
    ``get_precovery_run`` guarantee."""

    def test_precovery_run_counts_each_unit_once_and_finalizes_once(self, level1):
        apdb = level1.apdb
        assert apdb.get_precovery_run("r1") is None
        apdb.start_precovery_run("r1", n_units=3, object_ids=np.array([5, 3, 5]),
                                 validity_start_mjd_tai=60001.5)
        run = apdb.get_precovery_run("r1")
        assert (run.expected_units, run.done_units, list(run.object_ids),
                run.validity_start_mjd_tai, run.finalized) == (3, frozenset(), [3, 5], 60001.5,
                                                                False)
        assert apdb.complete_precovery_unit("r1", "a") is False
        assert apdb.complete_precovery_unit("r1", "a") is False  # redelivered: adds nothing
        assert apdb.complete_precovery_unit("r1", "b") is False
        apdb.start_precovery_run("r1", n_units=3, object_ids=np.array([3, 5, 8]),
                                 validity_start_mjd_tai=60001.5)  # a rerun keeps the done units
        assert apdb.get_precovery_run("r1").done_units == {"a", "b"}
        assert apdb.complete_precovery_unit("r1", "c") is True
        assert apdb.complete_precovery_unit("r1", "c") is False  # redelivered last unit
        assert apdb.complete_precovery_unit("r1", "a") is False
        run = apdb.get_precovery_run("r1")
        assert run.finalized and list(run.object_ids) == [3, 5, 8]
        assert apdb.get_precovery_run("r2") is None

    def test_unit_of_a_run_never_started_is_refused_and_writes_nothing(self, level1):
        apdb = level1.apdb
        with pytest.raises(NotFoundError, match="never started"):
            apdb.complete_precovery_unit("ghost", "a")
        assert apdb.get_precovery_run("ghost") is None
        apdb.start_precovery_run("ghost", n_units=1, object_ids=np.array([1]),
                                 validity_start_mjd_tai=60001.5)
        assert apdb.complete_precovery_unit("ghost", "a") is True  # then it finalizes normally

    def test_concurrent_unit_completions_finalize_once(self, connect):
        units = [f"u{k}" for k in range(8)]
        connect().apdb.start_precovery_run("night", n_units=len(units), object_ids=np.arange(3),
                                           validity_start_mjd_tai=T0)
        connections = [connect() for _ in units]
        barrier = threading.Barrier(len(units))
        won: list[str] = []

        def complete(k):  # each unit is delivered twice, as SQS may
            barrier.wait()
            for _ in range(2):
                if connections[k].apdb.complete_precovery_unit("night", units[k]):
                    won.append(units[k])

        run_threads(complete, len(units))
        assert len(won) == 1
        assert connect().apdb.get_precovery_run("night").finalized

    def test_run_larger_than_one_item_counts_every_unit_and_finalizes_once(self, level1):
        apdb = level1.apdb
        keys = long_unit_keys(LARGE_RUN_UNITS)
        ids = np.arange(1, 60_001, dtype=np.int64)[::-1]
        apdb.start_precovery_run("big", n_units=len(keys), object_ids=ids,
                                 validity_start_mjd_tai=T0)
        won = [apdb.complete_precovery_unit("big", k) for k in keys]
        assert won == [False] * (len(keys) - 1) + [True]
        assert not any(apdb.complete_precovery_unit("big", k) for k in keys[::100])  # redelivered
        run = apdb.get_precovery_run("big")
        assert run.finalized and run.expected_units == len(keys)
        assert run.done_units == frozenset(keys)
        assert np.array_equal(run.object_ids, np.sort(ids))

    def test_crash_between_the_last_count_and_the_flag_finalizes_on_redelivery(self, level1,
                                                                                connect):
        apdb = level1.apdb
        apdb.start_precovery_run("r", n_units=2, object_ids=np.array([7]),
                                 validity_start_mjd_tai=T0)
        assert apdb.complete_precovery_unit("r", "a") is False
        crashing = connect(before_request=crash_before("update_item")).apdb
        with pytest.raises(RuntimeError, match="injected crash"):
            crashing.complete_precovery_unit("r", "b")  # counted, then crashed before the flag
        run = apdb.get_precovery_run("r")
        assert run.done_units == {"a", "b"} and not run.finalized
        assert apdb.complete_precovery_unit("r", "b") is True  # the redelivery finalises
        assert apdb.complete_precovery_unit("r", "b") is False
        assert apdb.complete_precovery_unit("r", "a") is False
        assert apdb.get_precovery_run("r").finalized

    def test_crash_before_a_unit_is_counted_leaves_no_trace(self, level1, connect):
        apdb = level1.apdb
        apdb.start_precovery_run("r", n_units=1, object_ids=np.array([7]),
                                 validity_start_mjd_tai=T0)
        crashing = connect(before_request=crash_before("transact_write_items")).apdb
        with pytest.raises(RuntimeError, match="injected crash"):
            crashing.complete_precovery_unit("r", "a")
        assert apdb.get_precovery_run("r").done_units == frozenset()
        assert apdb.complete_precovery_unit("r", "a") is True

    def test_unit_key_must_be_text_within_the_key_limit(self, level1):
        apdb = level1.apdb
        apdb.start_precovery_run("r", n_units=1, object_ids=np.array([7]),
                                 validity_start_mjd_tai=T0)
        for bad in ("", "x" * 1001, None, 5):
            with pytest.raises(ValueError, match="unit_key"):
                apdb.complete_precovery_unit("r", bad)
        assert apdb.get_precovery_run("r").done_units == frozenset()

    # -- claims of the new-object index (the daily precovery's planner) ------------------------
    def test_each_new_object_is_claimed_by_one_run_however_late_its_ccd_is_stored(self, level1):
        apdb = level1.apdb
        early = make_objects(4, 30.0, -20.0, 0.02)
        apdb.store_ccd(make_ccd_writes(early, 1, 1, 60010.3, new=True), lease=None)
        first = apdb.claim_new_dia_objects("day-1", 60000.0, 60010.6)
        assert list(first["diaObjectId"]) == list(early["diaObjectId"])
        late = make_objects(3, 31.0, -20.0, 0.02, first_id=100)  # same night, stored after run 1
        apdb.store_ccd(make_ccd_writes(late, 2, 1, 60010.4, new=True), lease=None)
        second = apdb.claim_new_dia_objects("day-2", 60000.0, 60011.6)
        assert list(second["diaObjectId"]) == list(late["diaObjectId"])
        assert np.all(second["validityStartMjdTai"] == 60010.4)
        # reruns (a duplicated schedule, a retried planner) get back what they claimed, only that
        assert list(apdb.claim_new_dia_objects("day-1", 60000.0, 60010.6)["diaObjectId"]) == \
            list(early["diaObjectId"])
        assert list(apdb.claim_new_dia_objects("day-2", 60000.0, 60011.6)["diaObjectId"]) == \
            list(late["diaObjectId"])
        assert len(apdb.claim_new_dia_objects("day-3", 60000.0, 60012.6)) == 0
        assert len(apdb.new_dia_objects(60010.0, 60011.0)) == 7  # claims hide nothing from reads

    def test_new_objects_outside_the_window_stay_for_a_later_run(self, level1):
        apdb = level1.apdb
        before = make_objects(2, 30.0, -20.0, 0.02)
        after = make_objects(2, 31.0, -20.0, 0.02, first_id=100)
        apdb.store_ccd(make_ccd_writes(before, 1, 1, 60010.3, new=True), lease=None)
        apdb.store_ccd(make_ccd_writes(after, 2, 1, 60010.7, new=True), lease=None)  # same day
        got = apdb.claim_new_dia_objects("r1", 60009.6, 60010.6)
        assert list(got["diaObjectId"]) == list(before["diaObjectId"])
        got = apdb.claim_new_dia_objects("r2", 60010.6, 60011.6)
        assert list(got["diaObjectId"]) == list(after["diaObjectId"])

    def test_claim_run_id_must_be_text_within_the_limit(self, level1):
        apdb = level1.apdb
        apdb.store_ccd(make_ccd_writes(make_objects(2, 30.0, -20.0, 0.02), 1, 1, 60010.3,
                                       new=True), lease=None)
        for bad in ("", "x" * 201, None, 5):
            with pytest.raises(ValueError, match="run_id"):
                apdb.claim_new_dia_objects(bad, 60010.0, 60011.0)
        with pytest.raises(ValueError, match="mjd_end"):
            apdb.claim_new_dia_objects("r", 60011.0, 60010.0)
        assert len(apdb.claim_new_dia_objects("r", 60010.0, 60011.0)) == 2  # nothing claimed

"""Each key case of the contract fails against a backend that skips the check behind it.

Every broken backend below is the in-memory one with a single check removed; the case that
guards it must pass on the real backend and fail on the broken one. A contract case that
passed on both would prove nothing.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from contract.apdb_contract import (
    CONTRACT_FAILURES,
    ApdbContract,
    CcdLedgerContract,
    LeaseManagerContract,
    run_case,
)
from test_apdb_memory import memory_connector

from alertprod.apdb._layout import item_size_bytes
from alertprod.apdb.memory import MemoryApdb, MemoryCcdLedger, MemoryLeaseManager
from alertprod.apdb.memory._ccd import Group
from alertprod.errors import StorageError

pytestmark = pytest.mark.unit


class _SkipsFencing(MemoryApdb):
    def _fence_holds(self, lease):
        return True


class _SkipsExpectedVersion(MemoryApdb):
    def _last_condition(self, v, last, tag):
        return True


class _NeverCloses(MemoryApdb):
    def _apply(self, batch, tag):
        super()._apply([replace(g, version=replace(g.version, prev=g.version.start))
                        if g.version is not None and g.version.closes else g for g in batch], tag)


class _SplitsVersionFromItsSources(MemoryApdb):
    def _transactions(self, groups, budget):
        versions = [Group(g.oid, g.version, add_pixel=g.add_pixel) for g in groups
                    if g.version is not None]
        rows = [Group(None, rows=g.rows) for g in groups if g.rows]
        return super()._transactions(versions + rows, budget)


class _SendsOneRequest:
    """Mixin: every operation in a single request, whatever its size."""

    def _requests(self, operation, n_items):
        if n_items:
            self._request(operation, n_items)
        return int(n_items > 0)


class _ApdbSplitsNothing(_SendsOneRequest, MemoryApdb):
    def _transactions(self, groups, budget):
        return [groups] if groups else []


class _LedgerSplitsNothing(_SendsOneRequest, MemoryCcdLedger):
    pass


class _LeasesSplitNothing(_SendsOneRequest, MemoryLeaseManager):
    def _chunks(self, cells):
        return [list(cells)]


class _FinalizesTwice(MemoryApdb):
    def _win_finalization(self, run_id):
        super()._win_finalization(run_id)
        return True


class _KeepsTheRunInOneItem(MemoryApdb):
    """The former layout: the done-set and the object ids in the run record itself."""

    def _record_bytes(self, run_id, ids, done):
        return item_size_bytes(f"PRECOVERY#{run_id}", "RUN", {"objects": ids, "done": "".join(done)})

    def start_precovery_run(self, run_id, *, n_units, object_ids, validity_start_mjd_tai):
        ids = np.unique(np.asarray(object_ids, np.int64)).tobytes()
        self._check_item_size("precovery run", self._record_bytes(run_id, ids, ()))
        super().start_precovery_run(run_id, n_units=n_units, object_ids=object_ids,
                                    validity_start_mjd_tai=validity_start_mjd_tai)

    def complete_precovery_unit(self, run_id, unit_key):
        self._request("update_item")  # ADD the key to the record's done-set
        with self.store.lock:
            run = self.store.runs[run_id]
            done = run.units | {unit_key}
            self._check_item_size("precovery run", self._record_bytes(run_id, run.objects, done))
            run.units, run.n = done, len(done)
        return self._win_finalization(run_id)


class _OnlyTheCountingUnitFinalizes(MemoryApdb):
    """A redelivered unit returns at once: a crash before the flag leaves the run unfinished."""

    def complete_precovery_unit(self, run_id, unit_key):
        with self.store.lock:
            run = self.store.runs.get(run_id)
            if run is not None and unit_key in run.units:
                return False
        return super().complete_precovery_unit(run_id, unit_key)


class _HistoryNeverFillsUp(MemoryApdb):
    def _head_has_room(self, head, n_bytes):
        return True


class _IndexNeverSpills(MemoryApdb):
    @staticmethod
    def _spill_has_room(spill, n_bytes):
        return True


class _LedgerMovesBackwards(MemoryCcdLedger):
    @staticmethod
    def _may_move(current, state):
        return True


BROKEN = [
    pytest.param(ApdbContract, "test_fenced_write_refused_after_lease_taken_over",
                 {"apdb_cls": _SkipsFencing}, CONTRACT_FAILURES, id="skips-fencing"),
    pytest.param(ApdbContract, "test_takeover_mid_ccd_refuses_the_rest_and_the_new_holder_"
                 "completes_it", {"apdb_cls": _SkipsFencing}, CONTRACT_FAILURES,
                 id="skips-fencing-mid-ccd"),
    pytest.param(ApdbContract, "test_update_racing_a_newer_version_is_refused_whole",
                 {"apdb_cls": _SkipsExpectedVersion}, CONTRACT_FAILURES,
                 id="skips-expected-previous-version"),
    pytest.param(ApdbContract, "test_new_version_closes_the_previous_one_at_its_start",
                 {"apdb_cls": _NeverCloses}, CONTRACT_FAILURES, id="never-closes"),
    pytest.param(ApdbContract, "test_close_and_open_of_a_version_is_atomic",
                 {"apdb_cls": _SplitsVersionFromItsSources}, CONTRACT_FAILURES,
                 id="version-and-sources-not-atomic"),
    pytest.param(ApdbContract, "test_ccd_larger_than_one_transaction_is_stored_whole",
                 {"apdb_cls": _ApdbSplitsNothing}, StorageError, id="one-big-transaction"),
    pytest.param(ApdbContract, "test_forced_measurements_beyond_one_transaction_are_stored_"
                 "whole", {"apdb_cls": _ApdbSplitsNothing}, StorageError,
                 id="one-big-history-transaction"),
    pytest.param(ApdbContract, "test_reads_beyond_one_batch_return_everything",
                 {"apdb_cls": _ApdbSplitsNothing}, StorageError, id="one-big-read"),
    pytest.param(CcdLedgerContract, "test_alert_marks_beyond_one_batch_are_all_recorded",
                 {"ledger_cls": _LedgerSplitsNothing}, StorageError, id="one-big-batch-write"),
    pytest.param(LeaseManagerContract, "test_more_cells_than_one_transaction_are_leased_whole",
                 {"leases_cls": _LeasesSplitNothing}, StorageError, id="one-big-lease"),
    pytest.param(ApdbContract, "test_precovery_run_counts_each_unit_once_and_finalizes_once",
                 {"apdb_cls": _FinalizesTwice}, CONTRACT_FAILURES, id="finalizes-twice"),
    pytest.param(ApdbContract, "test_concurrent_unit_completions_finalize_once",
                 {"apdb_cls": _FinalizesTwice}, CONTRACT_FAILURES,
                 id="finalizes-twice-concurrently"),
    pytest.param(ApdbContract, "test_run_larger_than_one_item_counts_every_unit_and_finalizes_once",
                 {"apdb_cls": _KeepsTheRunInOneItem}, StorageError, id="run-in-one-item"),
    pytest.param(ApdbContract, "test_crash_between_the_last_count_and_the_flag_finalizes_on_"
                 "redelivery", {"apdb_cls": _OnlyTheCountingUnitFinalizes}, CONTRACT_FAILURES,
                 id="crash-before-the-flag-never-finalizes"),
    pytest.param(ApdbContract, "test_deep_drilling_month_of_one_object_is_stored_and_read_whole",
                 {"apdb_cls": _HistoryNeverFillsUp}, StorageError, id="history-in-one-item"),
    pytest.param(ApdbContract, "test_image_index_of_a_deep_drilling_month_holds_every_exposure",
                 {"apdb_cls": _IndexNeverSpills}, StorageError, id="image-index-in-one-item"),
    pytest.param(ApdbContract, "test_observations_of_an_asteroid_watched_for_years_are_all_"
                 "counted", {"apdb_cls": _IndexNeverSpills}, StorageError,
                 id="observations-in-one-item"),
    pytest.param(CcdLedgerContract, "test_ledger_refuses_backward_move",
                 {"ledger_cls": _LedgerMovesBackwards}, CONTRACT_FAILURES,
                 id="ledger-moves-backwards"),
]


@pytest.mark.parametrize(("contract", "case", "broken", "failure"), BROKEN)
def test_contract_case_fails_against_a_backend_that_skips_its_check(contract, case, broken,
                                                                   failure):
    run_case(contract, case, memory_connector())  # the real backend passes it
    with pytest.raises(failure):
        run_case(contract, case, memory_connector(**broken))

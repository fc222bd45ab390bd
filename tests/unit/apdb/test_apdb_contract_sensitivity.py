"""Each key case of the contract fails against a backend that skips the check behind it.

Every broken backend below is the in-memory one with a single check removed; the case that
guards it must pass on the real backend and fail on the broken one. A contract case that
passed on both would prove nothing.
"""

from __future__ import annotations

from dataclasses import replace

import pytest
from contract.apdb_contract import (
    CONTRACT_FAILURES,
    ApdbContract,
    CcdLedgerContract,
    LeaseManagerContract,
    run_case,
)
from test_apdb_memory import memory_connector

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

"""The contract of reprocessing a CCD: a ledger record reopened, rows withdrawn in place.

Part of :class:`contract.apdb_contract.ApdbContract` (same fixtures). What
:func:`alertprod.pipeline.reprocess.reprocess_ccd` relies on of every backend:

- :meth:`~alertprod.apdb.CcdLedger.reopen_ccd_record` moves a ``DONE`` record of the named
  catalog back to ``STARTED`` (once; a repeat changes nothing), and refuses anything else;
- a CCD's rows written again with ``timeWithdrawnMjdTai`` replace the stored ones (no second
  copy), and new versions written by another writer than the CCD follow its versions, then
  the CCD's reprocessed upload (writer: the CCD again) follows them.
"""

from __future__ import annotations

import numpy as np
import pytest
from astropy.table import Table
from contract._data import T0, T1, T2, create_objects
from contract.coordination_contract import Level1Contract

from alertprod.apdb import CcdState, CcdWrites
from alertprod.apdb.interface import PREV_VALIDITY_COLUMN
from alertprod.apdb.testing import make_ccd_writes
from alertprod.errors import ConflictError

__all__ = ["ReprocessingContract"]

SHA_A, SHA_B = "a" * 64, "b" * 64


def _withdrawal(writes: CcdWrites, stored: Table, t: float, writer: str) -> CcdWrites:
    """``writes``' rows withdrawn at ``t``, and one new version of each object at ``t``."""
    src = Table(writes.dia_sources, copy=True)
    src["timeWithdrawnMjdTai"] = np.full(len(src), t)
    forced = Table(writes.dia_forced_sources, copy=True)
    forced["timeWithdrawnMjdTai"] = np.full(len(forced), t)
    versions = Table(stored, copy=True)
    versions[PREV_VALIDITY_COLUMN] = np.asarray(stored["validityStartMjdTai"], float)
    versions["validityStartMjdTai"] = np.full(len(versions), t)
    versions["nDiaSources"] = np.asarray(stored["nDiaSources"]) - 1
    return CcdWrites(visit=writes.visit, detector=writes.detector, visit_time_mjd_tai=t,
                     dia_sources=src, dia_forced_sources=forced, dia_objects=versions,
                     writer=writer)


class ReprocessingContract(Level1Contract):
    """What reprocessing a CCD needs of every backend."""

    def test_done_ccd_is_reopened_once_for_its_catalog(self, level1):
        ledger = level1.ledger
        ledger.put_ccd_record(5, 2, "started", catalogSha256=SHA_A)
        ledger.put_ccd_record(5, 2, "done", counts={"diaSources": 3})
        with pytest.raises(ConflictError):
            ledger.reopen_ccd_record(5, 2, catalog_sha256=SHA_B)  # a stale request
        assert ledger.get_ccd_record(5, 2)["state"] is CcdState.DONE
        ledger.reopen_ccd_record(5, 2, catalog_sha256=SHA_A, withdrawals=1)
        record = ledger.get_ccd_record(5, 2)
        assert record["state"] is CcdState.STARTED and "catalogSha256" not in record
        assert (record["reopenedFrom"], record["withdrawals"]) == (SHA_A, 1)
        ledger.reopen_ccd_record(5, 2, catalog_sha256=SHA_A, withdrawals=1)  # a repeat
        assert ledger.get_ccd_record(5, 2)["state"] is CcdState.STARTED
        # the new upload moves it forward again, as any CCD
        ledger.put_ccd_record(5, 2, "started", catalogSha256=SHA_B)
        ledger.put_ccd_record(5, 2, "done")
        record = ledger.get_ccd_record(5, 2)
        assert (record["state"], record["catalogSha256"]) == (CcdState.DONE, SHA_B)
        with pytest.raises(ConflictError):  # reopened from A no longer: B is done
            ledger.reopen_ccd_record(5, 2, catalog_sha256=SHA_A)

    def test_unfinished_or_unknown_ccd_is_not_reopened(self, level1):
        ledger = level1.ledger
        with pytest.raises(ConflictError):
            ledger.reopen_ccd_record(6, 1, catalog_sha256=SHA_A)
        assert ledger.get_ccd_record(6, 1) is None
        ledger.put_ccd_record(6, 1, "stored", catalogSha256=SHA_A)
        with pytest.raises(ConflictError):
            ledger.reopen_ccd_record(6, 1, catalog_sha256=SHA_A)
        assert ledger.get_ccd_record(6, 1)["state"] is CcdState.STORED
        with pytest.raises(ValueError, match="catalog_sha256"):
            ledger.reopen_ccd_record(6, 1, catalog_sha256="")

    def test_withdrawn_rows_replace_the_stored_ones_and_versions_follow(self, level1):
        apdb = level1.apdb
        objs = create_objects(apdb, 4)
        ids = np.asarray(objs["diaObjectId"], np.int64)
        ccd = make_ccd_writes(objs, 2, 1, T1, detected=np.array([1, 1, 1, 0], bool))
        apdb.store_ccd(ccd, lease=None)
        stored = apdb.get_dia_objects_by_id(ids)
        withdrawal = _withdrawal(ccd, stored, T2, "withdraw:2/1:1")
        apdb.store_ccd(withdrawal, lease=None)
        assert apdb.store_ccd(withdrawal, lease=None).objects_already_done == 4  # a retry
        sources, forced = apdb.get_dia_history(ids, T2 + 1)
        assert len(sources) == 4 + 3 and len(forced) == 1  # replaced, not added
        when = np.ma.filled(np.ma.asarray(sources["timeWithdrawnMjdTai"], float), np.nan)
        visit = np.asarray(sources["visit"])
        assert np.all(when[visit == 2] == T2) and np.all(np.isnan(when[visit != 2]))
        assert np.asarray(forced["timeWithdrawnMjdTai"], float).tolist() == [T2]
        last = apdb.get_dia_objects_by_id(ids)
        assert np.all(np.asarray(last["validityStartMjdTai"], float) == T2)
        # the reprocessed upload (the CCD's own writer again) replaces the withdrawal's versions
        again = make_ccd_writes(last, 2, 1, T2 + 0.5, seed=3)
        again.dia_sources["diaSourceId"] = np.asarray(again.dia_sources["diaSourceId"]) + 500
        apdb.store_ccd(again, lease=None)
        history = apdb.export()["DiaObjectHistory"]
        for k, oid in enumerate(ids.tolist()):  # the fourth was only force-measured at T1
            rows = history[np.asarray(history["diaObjectId"]) == oid]
            starts = sorted(np.asarray(rows["validityStartMjdTai"], float).tolist())
            assert starts == ([T0, T1, T2, T2 + 0.5] if k < 3 else [T0, T2, T2 + 0.5])
        assert len(apdb.get_dia_history(ids, T2 + 1)[0]) == 4 + 3 + 4

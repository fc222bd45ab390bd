"""Reprocessing a CCD: its rows withdrawn (not deleted), the next upload accepted, new versions.

On the in-memory deployment of ``conftest.py``: the CCD is processed, reprocessed with
:func:`alertprod.pipeline.reprocess.reprocess_ccd` (what ``alertprod reprocess`` runs), and
uploaded again with other content through the ingest entry point, as the ingest function does.
"""

from __future__ import annotations

import io

import numpy as np
import pytest
from astropy.io import fits

from alertprod.apdb import CcdState
from alertprod.errors import ConflictError, NotFoundError
from alertprod.pipeline import handle_upload
from alertprod.pipeline.reprocess import reprocess_ccd

pytestmark = pytest.mark.unit

T1, T2 = 60000.10, 60000.11
T_WITHDRAWN = 60001.5


def _with_new_ids(upload, offset: int = 50_000, flux_scale: float = 1.2):
    """The same CCD upload, its catalog with other content: new diaSourceIds, brighter fluxes."""
    key, cat, images = upload
    with fits.open(io.BytesIO(cat)) as hdul:
        data = hdul[1].data
        data["diaSourceId"] = data["diaSourceId"] + offset
        data["psfFlux"] = data["psfFlux"] * flux_scale
        buf = io.BytesIO()
        hdul.writeto(buf)
    return key, buf.getvalue(), images


def _process(deployment, upload):
    key = deployment.put(upload)
    return handle_upload(deployment.services, "uploads", key, pipeline=deployment.pipeline())


@pytest.fixture
def processed(sky, sky_sources, deployment):
    """Visit 1 detector 0 with 6 sources, then visit 2 (same objects) processed: done."""
    first = sky_sources(6, seed=41)
    assert _process(deployment, sky.upload(1, 0, T1, first)).status == "processed"
    moved = [(ra + 0.1 / 3600, dec, f * 1.5, True) for ra, dec, f, _ in first]
    upload = sky.upload(2, 0, T2, moved)
    assert _process(deployment, upload).status == "processed"
    return upload


def _rows(table, column, value):
    return table[np.asarray(table[column]) == value]


def test_reupload_without_reprocessing_is_still_refused(deployment, processed):
    before = deployment.export()
    out = _process(deployment, _with_new_ids(processed))
    assert (out.status, out.reason) == ("quarantined", "already_processed")
    after = deployment.export()
    assert len(after["DiaSource"]) == len(before["DiaSource"])
    assert len(after["DiaObjectHistory"]) == len(before["DiaObjectHistory"])


def test_reprocessed_ccd_rows_are_withdrawn_and_new_upload_is_accepted(deployment, processed):
    before = deployment.export()
    old_ids = set(np.asarray(_rows(before["DiaSource"], "visit", 2)["diaSourceId"]).tolist())
    n_alerts_before = len(deployment.topic.alert_ids)
    result = reprocess_ccd(deployment.level1, deployment.archive, 2, 0,
                           time_withdrawn_mjd_tai=T_WITHDRAWN)
    assert result.dia_sources_withdrawn == len(old_ids) == 6
    assert result.dia_objects_versioned == 6
    mid = deployment.export()
    withdrawn = _rows(mid["DiaSource"], "visit", 2)
    assert set(np.asarray(withdrawn["diaSourceId"]).tolist()) == old_ids  # kept, not deleted
    assert np.all(np.asarray(withdrawn["timeWithdrawnMjdTai"], float) == T_WITHDRAWN)
    assert not np.any(np.isfinite(np.ma.filled(np.ma.asarray(
        _rows(mid["DiaSource"], "visit", 1)["timeWithdrawnMjdTai"], float), np.nan)))
    # every object counts its visit-1 source only, in a version that follows the visit-2 one
    last = mid["DiaObject"]
    assert np.all(np.asarray(last["nDiaSources"]) == 1)
    assert np.all(np.asarray(last["validityStartMjdTai"], float) == T_WITHDRAWN)
    assert deployment.level1.ledger.get_ccd_record(2, 0)["state"] is CcdState.STARTED

    out = _process(deployment, _with_new_ids(processed))
    assert out.status == "processed", out
    after = deployment.export()
    visit2 = _rows(after["DiaSource"], "visit", 2)
    new = visit2[~np.isin(np.asarray(visit2["diaSourceId"]), list(old_ids))]
    assert len(new) == 6 and len(visit2) == 12  # old rows withdrawn beside the new ones
    assert not np.any(np.isfinite(np.ma.filled(np.ma.asarray(new["timeWithdrawnMjdTai"], float),
                                               np.nan)))
    # the new sources join the same objects, whose versions advance past the withdrawal
    assert set(np.asarray(new["diaObjectId"]).tolist()) == set(np.asarray(last["diaObjectId"]).tolist())
    final = after["DiaObject"]
    assert np.all(np.asarray(final["nDiaSources"]) == 2)
    assert np.all(np.asarray(final["validityStartMjdTai"], float) > T_WITHDRAWN)
    hist = after["DiaObjectHistory"]
    assert len(hist) == len(before["DiaObjectHistory"]) + 2 * 6  # withdrawal + new versions
    # alerts re-issued for the new sources, with history free of withdrawn rows
    issued = deployment.topic.alert_ids[n_alerts_before:]
    assert sorted(issued) == sorted(np.asarray(new["diaSourceId"]).tolist())
    record = deployment.level1.ledger.get_ccd_record(2, 0)
    assert record["state"] is CcdState.DONE and record["withdrawals"] == 1


def test_new_summaries_do_not_use_withdrawn_fluxes(deployment, processed):
    reprocess_ccd(deployment.level1, deployment.archive, 2, 0, time_withdrawn_mjd_tai=T_WITHDRAWN)
    assert _process(deployment, _with_new_ids(processed, flux_scale=3.0)).status == "processed"
    out = deployment.export()
    src = out["DiaSource"]
    live = src[~np.isfinite(np.ma.filled(np.ma.asarray(src["timeWithdrawnMjdTai"], float), np.nan))]
    for row in out["DiaObject"]:
        fluxes = np.asarray(_rows(live, "diaObjectId", row["diaObjectId"])["psfFlux"], float)
        assert len(fluxes) == 2
        assert row["r_psfFluxMean"] == pytest.approx(np.average(
            fluxes, weights=1 / np.asarray(
                _rows(live, "diaObjectId", row["diaObjectId"])["psfFluxErr"], float) ** 2),
            rel=1e-6)


def test_reprocessing_twice_is_refused_until_the_new_upload(deployment, processed):
    reprocess_ccd(deployment.level1, deployment.archive, 2, 0, time_withdrawn_mjd_tai=T_WITHDRAWN)
    rows = len(deployment.export()["DiaObjectHistory"])
    with pytest.raises(ConflictError, match="already withdrawn"):
        reprocess_ccd(deployment.level1, deployment.archive, 2, 0)
    assert len(deployment.export()["DiaObjectHistory"]) == rows


def test_reprocessing_rerun_after_a_crash_replays_the_same_withdrawal(deployment, processed):
    ledger = deployment.level1.ledger
    reopen = ledger.reopen_ccd_record

    def crash(*args, **kwargs):
        raise RuntimeError("died before reopening the ledger")

    ledger.reopen_ccd_record = crash
    with pytest.raises(RuntimeError):
        reprocess_ccd(deployment.level1, deployment.archive, 2, 0, time_withdrawn_mjd_tai=T_WITHDRAWN)
    ledger.reopen_ccd_record = reopen
    first = deployment.export()
    result = reprocess_ccd(deployment.level1, deployment.archive, 2, 0,
                           time_withdrawn_mjd_tai=T_WITHDRAWN + 1)  # replayed: its time is kept
    assert result.time_withdrawn_mjd_tai == T_WITHDRAWN
    again = deployment.export()
    assert len(again["DiaObjectHistory"]) == len(first["DiaObjectHistory"])
    assert ledger.get_ccd_record(2, 0)["state"] is CcdState.STARTED


def test_reprocessing_an_unknown_or_unfinished_ccd_is_refused(deployment, processed):
    with pytest.raises(NotFoundError, match="never processed"):
        reprocess_ccd(deployment.level1, deployment.archive, 3, 0)
    deployment.level1.ledger.put_ccd_record(4, 0, "planned", catalogSha256="ab" * 32)
    with pytest.raises(ConflictError, match="still being processed"):
        reprocess_ccd(deployment.level1, deployment.archive, 4, 0)
    with pytest.raises(ValueError, match="detector"):
        reprocess_ccd(deployment.level1, deployment.archive, 2, 1000)


def test_reprocessing_after_the_staged_plan_expired_is_refused(deployment, processed):
    for key in list(deployment.archive.list("staging/00000002/000")):
        deployment.archive.delete(key)
    with pytest.raises(NotFoundError, match="expired"):
        reprocess_ccd(deployment.level1, deployment.archive, 2, 0)
    assert deployment.level1.ledger.get_ccd_record(2, 0)["state"] is CcdState.DONE

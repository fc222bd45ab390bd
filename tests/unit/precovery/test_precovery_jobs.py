"""A precovery-service job run inline: options, plan, measurement, results, phases."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime

import numpy as np
import pytest

from alertprod.apdb import MemoryApdb
from alertprod.errors import PrecoveryError
from alertprod.precovery.jobs import parse_options, result_key, run_job_inline
from alertprod.precovery.sed import colour_corrections, parse_sed
from alertprod.precovery.targets import TargetError
from alertprod.precovery.uws import new_job

pytestmark = pytest.mark.unit

T = datetime(2027, 3, 10, 12, 0, tzinfo=UTC)


def _apdb(stores, *, cached: bool):
    images, archive, ra, dec = stores
    corners = np.array([[ra.max() + 0.02, dec.min() - 0.02], [ra.min() - 0.02, dec.min() - 0.02],
                        [ra.min() - 0.02, dec.max() + 0.02], [ra.max() + 0.02, dec.max() + 0.02]])
    db = MemoryApdb()
    for kind in ("science", "template"):
        db.index_archived_exposure(42, 3, kind, "r", 60500.2, corners)
    if cached:
        db.index_exposure(42, 3, "r", 60500.2, corners, ["science", "difference"])
    return db


@pytest.mark.parametrize("age_days, recreated", [(10.0, False), (100.0, True)])
def test_a_job_completes_with_its_light_curve_in_every_format(stores, true_fluxes, age_days,
                                                               recreated):
    images, archive, ra, dec = stores
    from alertprod.aws import MemoryBlobStore

    results = MemoryBlobStore()
    target = {"kind": "batch", "positions": [{"ra": float(r), "dec": float(d)} for r, d in zip(ra, dec, strict=True)]}
    job = new_job("job-1", "alice", {"target": target, "options": {"mjd_min": 60000.0,
                                                                    "sed": {"kind": "blackbody", "temperature_k": 3000}}}, now=T)
    done = run_job_inline(job, apdb=_apdb(stores, cached=True), images=images, archive=archive,
                          results=results, now=lambda: T, now_mjd_tai=60500.2 + age_days)
    assert done.phase == "COMPLETED" and done.error is None
    rows = json.loads(results.get(result_key("job-1", "json")))["rows"]
    assert [r["target"] for r in rows] == [0, 1, 2]
    assert all(r["recreated"] is recreated for r in rows)
    pulls = (np.array([r["psfFlux"] for r in rows]) - true_fluxes) / np.array([r["psfFluxErr"] for r in rows])
    assert np.all(np.abs(pulls) < 4)
    k_r = colour_corrections(parse_sed({"kind": "blackbody", "temperature_k": 3000}))["r"]
    assert abs(k_r - 1.0) > 1e-3 and all(r["colourCorrection"] == pytest.approx(k_r) for r in rows)
    assert len(list(csv.DictReader(io.StringIO(results.get(result_key("job-1", "csv")).decode())))) == 3
    assert b"VOTABLE" in results.get(result_key("job-1", "votable"))
    assert {rid for rid, _ in done.results} == {"lightcurve.csv", "lightcurve.json", "lightcurve.votable"}


def test_a_bad_target_or_option_ends_the_job_in_error_with_the_reason(stores):
    images, archive, _, _ = stores
    from alertprod.aws import MemoryBlobStore

    job = new_job("job-2", "bob", {"target": {"kind": "position", "ra": 10.0, "dec": 95.0}}, now=T)
    failed = run_job_inline(job, apdb=MemoryApdb(), images=images, archive=archive,
                            results=MemoryBlobStore(), now=lambda: T, now_mjd_tai=60600.0)
    assert failed.phase == "ERROR" and "dec" in failed.error
    with pytest.raises(TargetError, match="'stamps' must be true or false"):
        parse_options({"stamps": "yes"}, now_mjd_tai=60600.0)
    with pytest.raises(TargetError, match="'images' must be one of"):
        parse_options({"images": "deep"}, now_mjd_tai=60600.0)
    with pytest.raises(TargetError, match="unknown option"):
        parse_options({"colour": 1}, now_mjd_tai=60600.0)
    with pytest.raises(TargetError, match="mjd_min < mjd_max"):
        parse_options({"mjd_min": 60700.0}, now_mjd_tai=60600.0)


def test_a_job_with_stamps_stores_one_fits_and_png_per_target_beside_its_light_curve(stores):
    images, archive, ra, dec = stores
    from alertprod.aws import MemoryBlobStore
    from alertprod.precovery.jobs import stamp_key

    results = MemoryBlobStore()
    target = {"kind": "position", "ra": float(ra[1]), "dec": float(dec[1])}
    job = new_job("job-3", "alice", {"target": target, "options": {"mjd_min": 60000.0,
                                                                    "stamps": True}}, now=T)
    done = run_job_inline(job, apdb=_apdb(stores, cached=False), images=images, archive=archive,
                          results=results, now=lambda: T, now_mjd_tai=60600.0)
    assert done.phase == "COMPLETED"
    assert ("stamps", "/api/precovery/jobs/job-3/results/stamps") in done.results
    for suffix in ("fits", "png"):
        assert results.exists(stamp_key("job-3", f"stamps/target00000/00000042_003.{suffix}"))
    with pytest.raises(PrecoveryError, match="not a stamp name"):
        stamp_key("job-3", "../lightcurve.csv")

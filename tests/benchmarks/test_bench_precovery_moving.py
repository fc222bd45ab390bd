"""Benchmark: planning a moving precovery target against planning a fixed position, same span.

The archive index (the in-memory backend, which charges DynamoDB's requests) holds one CCD
(±0.1°) every third night along each target's path, with science and template; the named peer
is :func:`~alertprod.precovery.job_plan.plan_fixed_target` of a fixed position with one CCD
every third night over the same span. Cases: a 4″/yr star with 200 mas of parallax over 10
years; Ceres over 2 and 10 years. Wall seconds of one call (each case runs once on a short
range before it is timed: astropy's IERS tables load once), BatchGetItem requests on the
index, and the ratio to the peer. Figures in ``results/precovery_moving.json``; docs/precovery-service.md, "Moving
targets", quotes them.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pytest

from alertprod.apdb import MemoryApdb
from alertprod.precovery.job_plan import plan_fixed_target, plan_job
from alertprod.precovery.targets import parse_target

pytestmark = pytest.mark.bench

RESULTS = Path(__file__).parent / "results" / "precovery_moving.json"
NOW = 61000.0
CERES = ("00001    3.34  0.15 K25BL 231.53974   73.29974   80.24964   10.58789  0.0795764  "
         "0.21429712   2.7656157  0 MPO980521  7297 126 1801-2026 0.83 M-v 30k Veres      "
         "4000      (1) Ceres              20260103")


def _square(ra0, dec0, half_deg=0.1):
    c = np.cos(np.deg2rad(dec0))
    return np.array([[ra0 - half_deg / c, dec0 - half_deg], [ra0 + half_deg / c, dec0 - half_deg],
                     [ra0 + half_deg / c, dec0 + half_deg], [ra0 - half_deg / c, dec0 + half_deg]])


def _index(ra, dec, mjd):
    db = MemoryApdb()
    for k, (r, d, t) in enumerate(zip(ra, dec, mjd, strict=True)):
        for kind in ("science", "template"):
            db.index_archived_exposure(k + 1, 0, kind, "r", float(t), _square(r + 0.03, d - 0.02))
    return db


def _timed(fn):
    t0 = time.perf_counter()
    result = fn()
    return result, time.perf_counter() - t0


def test_moving_target_planning_cost_against_a_fixed_position(rubin_site):
    star = parse_target({"kind": "proper_motion", "ra": 150.0, "dec": -20.0, "pmra": 3000.0,
                         "pmdec": -2500.0, "parallax": 200.0, "epoch": 2016.0})
    ceres = parse_target({"kind": "orbit", "mpcorb": CERES})
    point = parse_target({"kind": "position", "ra": 150.0, "dec": -20.0})
    figures = {}
    for name, target, years in (("star_10y", star, 10), ("ceres_2y", ceres, 2),
                                ("ceres_10y", ceres, 10)):
        span = 365.25 * years
        mjd = NOW - span + 3.0 * np.arange(int(span // 3)) + 0.2
        ra, dec = target.positions_at(mjd, **rubin_site)
        db = _index(ra[0], dec[0], mjd)
        peer_db = _index(np.full(mjd.size, 150.0), np.full(mjd.size, -20.0), mjd)
        kw = {"mjd_min": NOW - span, "mjd_max": NOW, "now_mjd_tai": NOW}
        plan_job(db, target, mjd_min=NOW - 5.0, mjd_max=NOW, now_mjd_tai=NOW)  # warm caches
        before = db.metrics.snapshot().get("batch_get_item", 0)
        units, moving_s = _timed(lambda db=db, target=target, kw=kw: plan_job(db, target, **kw))
        requests = db.metrics.snapshot().get("batch_get_item", 0) - before
        before = peer_db.metrics.snapshot().get("batch_get_item", 0)
        peer, peer_s = _timed(lambda peer_db=peer_db, kw=kw: plan_fixed_target(peer_db, point, **kw))
        peer_requests = peer_db.metrics.snapshot().get("batch_get_item", 0) - before
        assert len(units) == len(peer) == mjd.size  # every CCD on the path found, nothing else
        figures[name] = {"epochs": int(mjd.size), "moving_s": round(moving_s, 2),
                         "fixed_peer_s": round(peer_s, 3), "ratio": round(moving_s / peer_s, 1),
                         "moving_batch_get_items": requests,
                         "fixed_peer_batch_get_items": peer_requests}
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(figures, indent=2) + "\n")
    print(json.dumps(figures, indent=2))
    # a slow star is planned in a handful of index reads: within a few times a fixed position
    assert figures["star_10y"]["ratio"] < 50

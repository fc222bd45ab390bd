"""Moving precovery targets: the images their predicted path crossed, measured where they were."""

from __future__ import annotations

import numpy as np
import pytest
from astropy.time import Time

from alertprod.apdb import MemoryApdb
from alertprod.errors import PrecoveryError
from alertprod.formats import RUBIN_SITE
from alertprod.pixelization import polygon_contains
from alertprod.precovery.job_plan import plan_job
from alertprod.precovery.moving import MAX_MOVING_SPAN_DAYS, plan_moving_target
from alertprod.precovery.targets import parse_target

pytestmark = pytest.mark.unit

SITE = {"obs_lon_deg": RUBIN_SITE[0], "obs_lat_deg": RUBIN_SITE[1], "obs_height_m": RUBIN_SITE[2]}
NOW = 61010.0
CERES = ("00001    3.34  0.15 K25BL 231.53974   73.29974   80.24964   10.58789  0.0795764  "
         "0.21429712   2.7656157  0 MPO980521  7297 126 1801-2026 0.83 M-v 30k Veres      "
         "4000      (1) Ceres              20260103")


def _square(ra0, dec0, half_deg):
    c = np.cos(np.deg2rad(dec0))
    return np.array([[ra0 - half_deg / c, dec0 - half_deg], [ra0 + half_deg / c, dec0 - half_deg],
                     [ra0 + half_deg / c, dec0 + half_deg], [ra0 - half_deg / c, dec0 + half_deg]])


def _archive(db, visit, mjd, corners, *, kinds=("science", "template"), cached=False):
    for kind in kinds:
        db.index_archived_exposure(visit, 5, kind, "r", mjd, corners)
    if cached:
        db.index_exposure(visit, 5, "r", mjd, corners, ["science", "difference", "template"])


def _sep_arcsec(ra1, dec1, ra2, dec2):
    d_ra = (np.asarray(ra1) - ra2 + 180.0) % 360.0 - 180.0
    return np.hypot(d_ra * np.cos(np.deg2rad(dec2)), np.asarray(dec1) - dec2) * 3600.0


@pytest.fixture(scope="module")
def asteroid_scene():
    """Ceres over 40 days: CCDs (±0.05°) holding it at their midpoints, and decoys that do not."""
    target = parse_target({"kind": "orbit", "mpcorb": CERES})
    mjd = NOW - np.array([39.3, 31.2, 22.25, 12.1, 5.3, 1.2])
    ra, dec = target.positions_at(mjd, **SITE)
    db = MemoryApdb()
    for k, (t, r, d) in enumerate(zip(mjd, ra[0], dec[0], strict=True)):
        # off-centre by a few arcmin, as a target falls anywhere on a CCD
        _archive(db, 10 + k, t, _square(r + 0.02, d - 0.03, 0.05), cached=t > NOW - 30)
    # where Ceres is a day later, exposed now: near the path, but it is not on the CCD yet
    later_ra, later_dec = target.positions_at(mjd[:2] + 1.0, **SITE)
    _archive(db, 90, mjd[0], _square(later_ra[0, 0], later_dec[0, 0], 0.05))
    _archive(db, 91, mjd[1], _square(later_ra[0, 1], later_dec[0, 1], 0.05))
    # on the path but its template was never archived: cannot be re-created
    t = NOW - 35.5
    r, d = target.positions_at([t], **SITE)
    _archive(db, 92, t, _square(r[0, 0], d[0, 0], 0.05), kinds=("science",))
    _archive(db, 93, NOW - 20.0, _square(10.0, -40.0, 0.05))  # elsewhere on the sky
    return target, db, mjd


def test_asteroid_images_are_those_holding_its_predicted_position_at_their_own_midpoint(asteroid_scene):
    target, db, mjd = asteroid_scene
    units = plan_job(db, target, mjd_min=NOW - 45, mjd_max=NOW, now_mjd_tai=NOW, cache_days=30)
    assert [u.visit for u in units] == [10, 11, 12, 13, 14, 15]
    assert [u.source for u in units] == ["archive", "archive", "cache", "cache", "cache", "cache"]
    ra, dec = target.positions_at([u.mjd_tai for u in units], **SITE)
    for u, r, d in zip(units, ra[0], dec[0], strict=True):
        assert u.targets == (0,) and _sep_arcsec(u.ra_deg[0], u.dec_deg[0], r, d) < 1e-3
    # the epochs' positions are the path's: several degrees apart over the weeks
    assert _sep_arcsec(units[0].ra_deg[0], units[0].dec_deg[0],
                       units[-1].ra_deg[0], units[-1].dec_deg[0]) > 3600.0


def test_asteroid_time_range_bounds_the_images_planned(asteroid_scene):
    target, db, mjd = asteroid_scene
    units = plan_job(db, target, mjd_min=NOW - 25, mjd_max=NOW - 3, now_mjd_tai=NOW)
    assert [u.visit for u in units] == [12, 13, 14]


@pytest.fixture(scope="module")
def fast_star():
    """A star moving 4″/yr with 200 mas of parallax, catalogued at J2016.0."""
    return parse_target({"kind": "proper_motion", "ra": 150.0, "dec": -20.0, "pmra": 3000.0,
                         "pmdec": -2500.0, "parallax": 200.0, "epoch": 2016.0})


def test_high_proper_motion_star_is_found_where_it_has_moved_not_where_it_was_catalogued(fast_star):
    db = MemoryApdb()
    t = NOW - 100.0
    ra, dec = fast_star.positions_at([t], **SITE)
    # ten years on the star is 39″ from its catalogue position; CCDs of ±15″
    assert _sep_arcsec(ra[0, 0], dec[0, 0], 150.0, -20.0) > 30.0
    _archive(db, 1, t, _square(ra[0, 0], dec[0, 0], 15 / 3600))
    _archive(db, 2, t + 0.01, _square(150.0, -20.0, 15 / 3600))
    units = plan_job(db, fast_star, mjd_min=NOW - 400, mjd_max=NOW, now_mjd_tai=NOW)
    assert [u.visit for u in units] == [1]
    assert _sep_arcsec(units[0].ra_deg[0], units[0].dec_deg[0], ra[0, 0], dec[0, 0]) < 1e-3
    assert polygon_contains(_square(ra[0, 0], dec[0, 0], 15 / 3600), units[0].ra_deg[0],
                            units[0].dec_deg[0])


def test_star_positions_carry_the_parallax_of_each_epoch(fast_star):
    """Two epochs half a year apart: the positions differ from the linear motion by the parallax."""
    db = MemoryApdb()
    t = np.array([NOW - 300.0, NOW - 117.375])
    ra, dec = fast_star.positions_at(t, **SITE)
    for k in range(2):
        _archive(db, 1 + k, t[k], _square(ra[0, k], dec[0, k], 20 / 3600))
    units = plan_job(db, fast_star, mjd_min=NOW - 400, mjd_max=NOW, now_mjd_tai=NOW)
    assert len(units) == 2
    # the same star without parallax: the measured positions differ by ~0.1–0.4″
    flat = parse_target({"kind": "proper_motion", "ra": 150.0, "dec": -20.0, "pmra": 3000.0,
                         "pmdec": -2500.0, "parallax": 1e-6, "epoch": 2016.0})
    fra, fdec = flat.positions_at(t, **SITE)
    offsets = [_sep_arcsec(u.ra_deg[0], u.dec_deg[0], fra[0, k], fdec[0, k])
               for k, u in enumerate(units)]
    assert max(offsets) > 0.1


def test_moving_plans_are_bounded_and_refuse_empty_ranges(fast_star):
    db = MemoryApdb()
    old = NOW - MAX_MOVING_SPAN_DAYS - 50.0
    ra, dec = fast_star.positions_at([old], **SITE)
    _archive(db, 1, old, _square(ra[0, 0], dec[0, 0], 20 / 3600))
    assert plan_job(db, fast_star, mjd_min=50000.0, mjd_max=NOW, now_mjd_tai=NOW) == []
    with pytest.raises(PrecoveryError, match="before"):
        plan_moving_target(db, fast_star, mjd_min=NOW, mjd_max=NOW, now_mjd_tai=NOW)
    point = parse_target({"kind": "position", "ra": 1.0, "dec": 2.0})
    with pytest.raises(PrecoveryError, match="does not move"):
        plan_moving_target(db, point, mjd_min=NOW - 1, mjd_max=NOW, now_mjd_tai=NOW)
    assert Time(NOW - MAX_MOVING_SPAN_DAYS, format="mjd").jyear < 2008.0

"""Which images a precovery-service job measures: cached differences, or re-created from the archive."""

from __future__ import annotations

import numpy as np
import pytest

from alertprod.apdb import MemoryApdb
from alertprod.errors import PrecoveryError
from alertprod.precovery.job_plan import plan_fixed_target
from alertprod.precovery.targets import TargetError, parse_target

pytestmark = pytest.mark.unit

NOW = 61000.0


def _square(ra0, dec0, half_deg=0.1):
    return np.array([[ra0 - half_deg, dec0 - half_deg], [ra0 + half_deg, dec0 - half_deg],
                     [ra0 + half_deg, dec0 + half_deg], [ra0 - half_deg, dec0 + half_deg]])


@pytest.fixture
def apdb():
    """Visits 1-6 on a field at (150, 2): 1-4 long ago (archive only), 5-6 recent (cached too);
    visit 7 on a neighbouring field; visit 3's template was never archived."""
    db = MemoryApdb()
    for visit, mjd in ((1, NOW - 300), (2, NOW - 200), (3, NOW - 100), (4, NOW - 40),
                       (5, NOW - 10), (6, NOW - 2)):
        corners = _square(150.0, 2.0)
        for kind in ("science", "template"):
            if not (visit == 3 and kind == "template"):
                db.index_archived_exposure(visit, 7, kind, "r", mjd, corners)
        if mjd > NOW - 30:
            db.index_exposure(visit, 7, "r", mjd, corners, ["science", "difference", "template"])
    db.index_archived_exposure(7, 9, "science", "g", NOW - 5, _square(150.3, 2.0))
    db.index_archived_exposure(7, 9, "template", "g", NOW - 5, _square(150.3, 2.0))
    return db


def test_expired_epochs_are_recreated_from_the_archive_and_recent_ones_read_from_the_cache(apdb):
    target = parse_target({"kind": "position", "ra": 150.01, "dec": 2.02})
    units = plan_fixed_target(apdb, target, mjd_min=NOW - 400, mjd_max=NOW, now_mjd_tai=NOW)
    assert [(u.visit, u.source) for u in units] == [(1, "archive"), (2, "archive"), (4, "archive"),
                                                    (5, "cache"), (6, "cache")]
    assert all(u.targets == (0,) and u.detector == 7 for u in units)  # visit 3: no template


def test_a_batch_reads_each_image_once_for_every_position_it_covers(apdb):
    target = parse_target({"kind": "batch", "positions": [
        {"ra": 150.0, "dec": 2.0}, {"ra": 150.05, "dec": 1.95}, {"ra": 150.3, "dec": 2.0}]})
    units = plan_fixed_target(apdb, target, mjd_min=NOW - 60, mjd_max=NOW, now_mjd_tai=NOW)
    by_visit = {u.visit: u for u in units}
    assert by_visit[5].targets == (0, 1) and by_visit[7].targets == (2,)
    assert by_visit[7].source == "archive"  # no cached difference was indexed for it


def test_a_region_needing_far_more_images_than_its_centroid_is_refused_with_the_numbers(apdb):
    near = parse_target({"kind": "positions", "positions": [{"ra": 150.0, "dec": 2.0},
                                                             {"ra": 150.02, "dec": 2.01}]})
    assert len(plan_fixed_target(apdb, near, mjd_min=NOW - 60, mjd_max=NOW, now_mjd_tai=NOW)) == 3
    wide = parse_target({"kind": "positions", "positions": [{"ra": 150.05, "dec": 2.0},
                                                             {"ra": 150.3, "dec": 2.0}]})
    with pytest.raises(TargetError, match="needs 4 images"):
        plan_fixed_target(apdb, wide, mjd_min=NOW - 60, mjd_max=NOW, now_mjd_tai=NOW)


def test_moving_targets_and_empty_ranges_are_refused(apdb):
    star = parse_target({"kind": "proper_motion", "ra": 150.0, "dec": 2.0, "pmra": 100.0,
                         "pmdec": 0.0, "parallax": 10.0})
    with pytest.raises(PrecoveryError, match="moves"):
        plan_fixed_target(apdb, star, mjd_min=NOW - 60, mjd_max=NOW, now_mjd_tai=NOW)
    point = parse_target({"kind": "position", "ra": 150.0, "dec": 2.0})
    with pytest.raises(PrecoveryError, match="before"):
        plan_fixed_target(apdb, point, mjd_min=NOW, mjd_max=NOW, now_mjd_tai=NOW)

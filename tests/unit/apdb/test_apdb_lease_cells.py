"""Lease cells of CCD footprints and the fencing contract of a lease (no database needed)."""

import numpy as np
import pytest

from alertprod.apdb import LEASE_ORDER, Lease, cells_for_footprint
from alertprod.apdb.dynamodb._leases import fence_checks
from alertprod.pixelization import pixel_of


def _square(ra, dec, side_arcsec):
    h = side_arcsec / 3600 / 2
    return np.array([[ra - h / np.cos(np.deg2rad(dec)), dec - h], [ra + h / np.cos(np.deg2rad(dec)), dec - h],
                     [ra + h / np.cos(np.deg2rad(dec)), dec + h], [ra - h / np.cos(np.deg2rad(dec)), dec + h]])


def test_neighbouring_ccds_within_twice_the_margin_always_share_a_cell():
    # Gaps below 2 × 20″ between CCD edges: some object can be within 20″ of both CCDs.
    rng = np.random.default_rng(5)
    for ra, dec, gap in zip(rng.uniform(0, 360, 80), rng.uniform(-80, 80, 80),
                            rng.uniform(0, 39, 80), strict=True):
        side = 51.0
        shift = (side + gap) / 3600 / np.cos(np.deg2rad(dec))
        a = cells_for_footprint(_square(ra, dec, side))
        b = cells_for_footprint(_square(ra + shift, dec, side))
        assert set(a) & set(b), (ra, dec, gap)


def test_cells_hold_every_corner_and_are_sorted_and_unique():
    corners = _square(359.99, -30.0, 816)
    cells = cells_for_footprint(corners)
    assert cells == sorted(set(cells))
    assert set(np.asarray(pixel_of(corners[:, 0], corners[:, 1], order=LEASE_ORDER)).tolist()) \
        <= set(cells)
    assert len(cells) <= 9


def test_footprint_needs_three_corners():
    with pytest.raises(ValueError, match="corners_radec"):
        cells_for_footprint(np.zeros((2, 2)))


def test_fence_checks_test_owner_and_token_of_every_cell():
    lease = Lease("ccd-A", {5: 17, 3: 2}, 0.0)
    checks = fence_checks(lease, "t")
    assert lease.cells == [3, 5]
    assert [c["ConditionCheck"]["Key"]["pk"]["S"] for c in checks] == ["LEASE#3", "LEASE#5"]
    assert [c["ConditionCheck"]["ExpressionAttributeValues"][":t"]["N"] for c in checks] == ["2", "17"]
    assert all(c["ConditionCheck"]["ExpressionAttributeValues"][":o"]["S"] == "ccd-A" for c in checks)

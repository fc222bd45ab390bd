"""The archive index's items stay far below DynamoDB's 400 KB at a deep-drilling field's worst night.

Worst case (docs/archive.md "Index sizing"): a deep-drilling field observed for two hours in one
night (200 visits of 36 s), every visit's footprint touching the cell with 4 CCDs, science and
template of each archived: 1,600 entries in one (order-9 cell, MJD day) item, with the longest
names (8-digit visits, 3-digit detectors).
"""

from __future__ import annotations

import numpy as np
import pytest

from alertprod.apdb import memory_level1
from alertprod.apdb._archiveindex import ARCHIVE_INDEX_ORDER, MAX_ITEM_BYTES, item_size_bytes
from alertprod.apdb.dynamodb import _keys as keys
from alertprod.pixelization import pixel_of, pixels_covering

pytestmark = [pytest.mark.unit, pytest.mark.slow]

VISITS_PER_NIGHT = 200
CCDS_TOUCHING_A_CELL = 4
KINDS = ("science", "template")


def test_worst_deep_drilling_night_fills_one_item_to_a_third_of_the_limit():
    apdb = memory_level1().apdb
    ra, dec = 53.125, -28.1  # a deep-drilling field (ECDFS)
    cell = int(pixel_of(ra, dec, order=ARCHIVE_INDEX_ORDER))
    square = np.array([[-1, -1], [1, -1], [1, 1], [-1, 1]]) * 0.005 + [ra, dec]
    assert pixels_covering(square, order=ARCHIVE_INDEX_ORDER).tolist() == [cell]
    for i in range(VISITS_PER_NIGHT):
        for detector in range(189 - CCDS_TOUCHING_A_CELL, 189):
            for kind in KINDS:
                apdb.index_archived_exposure(99_999_000 + i, detector, kind, "g",
                                             60400.05 + i * 0.0004, square)
    (item_key,) = [k for k in apdb.store.archive if k[0] == cell]
    attrs = apdb.store.archive[item_key]
    assert len(attrs) == VISITS_PER_NIGHT * CCDS_TOUCHING_A_CELL * len(KINDS) == 1600
    key = keys.archive_index(*item_key)
    size = item_size_bytes(key["pk"]["S"], key["sk"]["S"], attrs)
    per_entry = max(len(name) + len(value) for name, value in attrs.items())
    assert per_entry == 87  # 13-character name, 74-byte packed entry
    assert 1600 * 80 < size < 0.35 * MAX_ITEM_BYTES  # ~139 KB
    # the same night in a 30-day bucket (the image-cache index's layout) would not fit:
    assert 30 * size > MAX_ITEM_BYTES
    found = apdb.find_archived_exposures([cell], 60400.0, 60401.0)
    assert len(found) == 1600


def test_ten_years_of_a_cell_is_read_in_37_requests():
    apdb = memory_level1().apdb
    before = apdb.metrics.total()
    apdb.find_archived_exposures([12345], 60000.0, 60000.0 + 3650.0)
    assert apdb.metrics.total() - before == 37  # 3,651 (cell, day) keys, 100 per BatchGetItem


def test_a_field_observed_all_night_spills_to_parts_below_400_kb(monkeypatch):
    """Beyond the planned worst case: 900 visits of 36 s (nine hours on one field), 4 CCDs
    touching the cell, science and template archived: 7,200 entries, 626 KB — more than one
    item holds, so the item spills to continuation parts and everything reads back."""
    from alertprod.apdb._layout import SPILL_HEAD_BYTES
    from alertprod.apdb.memory import _apdb as memory_apdb

    apdb = memory_level1().apdb
    cell = 3_000_000
    monkeypatch.setattr(memory_apdb, "pixels_covering", lambda corners, order: np.array([cell]))
    square = np.array([[-1, -1], [1, -1], [1, 1], [-1, 1]]) * 0.005 + [53.125, -28.1]
    for i in range(900):
        for detector in range(185, 189):
            for kind in KINDS:
                apdb.index_archived_exposure(99_999_000 + i, detector, kind, "g",
                                             60400.05 + i * 0.0004, square)
    spill = apdb.store.spill[("archive index", (cell, 60400))]
    assert spill.counted <= SPILL_HEAD_BYTES < spill.counted + spill.spilled
    assert max(spill.parts.values()) < 0.8 * MAX_ITEM_BYTES and len(spill.parts) == 2
    assert len(apdb.find_archived_exposures([cell], 60400.0, 60401.0)) == 7200

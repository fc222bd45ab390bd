"""Per-stage wall-clock timing of one CCD (``alertprod.pipeline.timing``)."""

from __future__ import annotations

import time

import pytest

from alertprod.pipeline.timing import StageTimer

pytestmark = pytest.mark.unit


def test_a_stage_entered_twice_accumulates_its_seconds():
    timer = StageTimer()
    for _ in range(2):
        with timer("read_staged"):
            time.sleep(0.002)
    assert list(timer.seconds) == ["read_staged"]
    assert timer.seconds["read_staged"] >= 0.004
    assert timer.total_s >= timer.seconds["read_staged"]


def test_a_stage_that_fails_still_counts_its_time():
    timer = StageTimer()
    with pytest.raises(ZeroDivisionError), timer("store"):
        time.sleep(0.002)
        1 / 0  # noqa: B018
    assert timer.seconds["store"] >= 0.002

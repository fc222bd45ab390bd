"""Replay of the alert archive by offset (``alertprod.alerts.replay``)."""

from __future__ import annotations

import io

import pytest

from alertprod.alerts import write_alert_container
from alertprod.alerts.examples import example_alert
from alertprod.alerts.publish import archive_key
from alertprod.alerts.replay import offset_of, replay_archive
from alertprod.aws import MemoryBlobStore
from alertprod.errors import AlertSchemaError, ConfigError

pytestmark = pytest.mark.unit


@pytest.fixture(scope="module")
def archive():
    store = MemoryBlobStore()
    for seed, visit, detector in [(1, 9, 3), (2, 10, 0), (3, 10, 2), (4, 99, 1), (5, 100, 0),
                                  (6, 1000, 5)]:
        alert = example_alert(seed, visit=visit, detector=detector, n_prv_sources=2,
                              n_prv_forced=2, cutout_size_pix=8)
        buf = io.BytesIO()
        write_alert_container([alert], buf)
        store.put(archive_key(alert), buf.getvalue())
    store.put("alerts/README.txt", b"not an alert")
    return store


def test_offsets_order_alerts_by_visit_then_detector_even_across_digit_counts(archive):
    got = [(a.visit, a.detector) for a in replay_archive(archive)]
    assert got == [(9, 3), (10, 0), (10, 2), (99, 1), (100, 0), (1000, 5)]


def test_replay_after_an_offset_returns_only_what_follows_it(archive):
    everything = list(replay_archive(archive))
    after = list(replay_archive(archive, after=everything[2].offset))
    assert [a.alert_id for a in after] == [a.alert_id for a in everything[3:]]
    assert offset_of(everything[2].alert) == everything[2].offset
    assert list(replay_archive(archive, after=everything[-1].offset)) == []


def test_visit_range_is_inclusive(archive):
    assert [a.visit for a in replay_archive(archive, visit_min=10, visit_max=99)] == [10, 10, 99]
    assert [a.visit for a in replay_archive(archive, visit_min=100)] == [100, 1000]


def test_bad_offsets_ranges_and_objects_are_refused(archive):
    with pytest.raises(ConfigError, match="offset"):
        list(replay_archive(archive, after="alerts/10/2/x.avro"))
    with pytest.raises(ConfigError, match="visit_min"):
        list(replay_archive(archive, visit_min=5, visit_max=4))
    broken = MemoryBlobStore()
    broken.put("alerts/00000001/000/5.avro", b"")
    with pytest.raises(AlertSchemaError):
        list(replay_archive(broken))

"""A CCD's alerts built, staged and published in parts: one part in memory at a time, each once.

On the in-memory deployment of ``conftest.py`` with ``alert_chunk_size`` 2, so that a CCD of
five DiaSources has three parts.
"""

from __future__ import annotations

import base64

import pytest

from alertprod.alerts import deserialize_alert
from alertprod.apdb import CcdState
from alertprod.pipeline.config import PipelineConfig
from alertprod.pipeline.write_ahead import alerts_part_key, iter_staged_alerts, load_plan

pytestmark = pytest.mark.unit

T1 = 60000.10


@pytest.fixture
def chunked(new_deployment):
    return new_deployment(config=PipelineConfig(lease_wait_s=10.0, alert_chunk_size=2))


def test_alerts_are_staged_in_parts_and_each_published_once(sky, sky_sources, chunked):
    upload = chunked.validated(sky.upload(1, 0, T1, sky_sources(5, seed=51)))
    result = chunked.pipeline().process_ccd(upload)
    assert result.status == "processed" and result.counts["alertsPublished"] == 5
    record = chunked.level1.ledger.get_ccd_record(1, 0)
    assert record["state"] is CcdState.DONE and record["alertParts"] == 3
    parts = [[a.alert_id for a in part] for part in iter_staged_alerts(chunked.archive, 1, 0, 3)]
    assert [len(p) for p in parts] == [2, 2, 1]
    ids = [i for p in parts for i in p]
    assert ids == sorted(ids) == sorted(chunked.topic.alert_ids)  # in diaSourceId order, once
    assert not chunked.archive.exists(alerts_part_key(1, 0, 3))
    plan = load_plan(chunked.archive, 1, 0)
    assert (plan.alert_parts, plan.alerts) == (3, None)  # left staged: read part by part
    # every alert carries its own source and its object's new version
    for body, attrs in chunked.topic.messages:
        alert = deserialize_alert(base64.b64decode(body))
        assert alert["diaSource"]["diaSourceId"] == int(attrs["alert_id"])
        assert alert["diaObject"]["nDiaSources"] == 1


def test_publish_failing_midway_resumes_from_the_staged_parts_without_repeats(sky, sky_sources,
                                                                              chunked):
    upload = chunked.validated(sky.upload(1, 0, T1, sky_sources(5, seed=52)))
    chunked.topic.fail_at_call = 2  # the second part's PublishBatch fails
    with pytest.raises(Exception, match="PublishBatch failed"):
        chunked.pipeline().process_ccd(upload)
    assert chunked.level1.ledger.get_ccd_record(1, 0)["state"] is CcdState.STORED
    sent_before = list(chunked.topic.alert_ids)
    assert len(sent_before) == 2
    result = chunked.pipeline().process_ccd(upload)  # a new container: reads the parts back
    assert result.status == "processed" and result.counts["alertsPublished"] == 5
    assert sorted(chunked.topic.alert_ids) == sorted(set(chunked.topic.alert_ids))
    assert len(chunked.topic.alert_ids) == 5


def test_alert_chunk_size_must_be_a_positive_integer():
    with pytest.raises(ValueError, match="alert_chunk_size"):
        PipelineConfig(alert_chunk_size=0)

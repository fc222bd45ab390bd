"""The per-alert latency metric: shutter close → publish, one EMF value per alert published.

Captured from a real Powertools ``Metrics`` (its Embedded Metric Format document), on the
in-memory deployment of ``conftest.py``.
"""

from __future__ import annotations

import time

import numpy as np
import pytest
from astropy.time import Time
from aws_lambda_powertools import Metrics

from alertprod.alerts import AlertMarksLedger, AlertPublisher
from alertprod.formats import ExposureInfo
from alertprod.pipeline import NightlyPipeline
from alertprod.pipeline.latency import (
    LATENCY_METRIC,
    alert_latency_s,
    record_alert_latency,
    shutter_close_unix_s,
)

pytestmark = pytest.mark.unit


@pytest.fixture
def metrics():
    m = Metrics(namespace="alertprod", service="alertprod")
    m.clear_metrics()  # Powertools shares the metric set between instances
    yield m
    m.clear_metrics()


def _latencies(metrics) -> list[float]:
    """The latency values of the EMF document the handler would flush."""
    doc = metrics.serialize_metric_set()
    names = [d["Name"] for d in doc["_aws"]["CloudWatchMetrics"][0]["Metrics"]]
    assert LATENCY_METRIC in names
    unit = {d["Name"]: d["Unit"] for d in doc["_aws"]["CloudWatchMetrics"][0]["Metrics"]}
    assert unit[LATENCY_METRIC] == "Seconds"
    values = doc[LATENCY_METRIC]
    return values if isinstance(values, list) else [values]


def _pipeline(deployment, metrics):
    publisher = AlertPublisher(deployment.archive, deployment.topic,
                               ledger=AlertMarksLedger(deployment.level1.ledger), max_workers=1)
    return NightlyPipeline(deployment.level1, deployment.archive, publisher, deployment.config,
                           metrics=metrics)


def test_shutter_close_is_midpoint_plus_half_the_exposure_in_utc():
    info = ExposureInfo(1, 0, "r", 60000.5, 30.0)
    expected = Time(60000.5, format="mjd", scale="tai").utc.unix + 15.0
    assert shutter_close_unix_s(info) == pytest.approx(expected, abs=1e-3)
    # TAI runs 37 s ahead of UTC since 2017: a TAI midpoint is 37 s earlier in Unix time
    naive_utc = (60000.5 - 40587.0) * 86400.0 + 15.0
    assert naive_utc - shutter_close_unix_s(info) == pytest.approx(37.0, abs=1e-3)
    assert alert_latency_s(info, shutter_close_unix_s(info) + 42.5) == pytest.approx(42.5)


def test_each_published_alert_records_its_latency(sky, sky_sources, deployment, metrics):
    now = time.time()
    mjd_mid = float(Time(now - 25.0, format="unix").tai.mjd)  # shutter closed 10 s ago (EXPTIME 30)
    upload = deployment.validated(sky.upload(1, 0, mjd_mid, sky_sources(7, seed=12)))
    before = time.time()
    result = _pipeline(deployment, metrics).process_ccd(upload)
    after = time.time()
    assert result.counts["alertsPublished"] == 7
    values = np.asarray(_latencies(metrics))
    close = shutter_close_unix_s(upload.catalog.info)
    assert len(values) == 7  # one per alert
    assert np.all(values >= before - close) and np.all(values <= after - close)
    assert 9.0 < values.min() < 60.0


def test_redelivered_ccd_records_no_second_latency(sky, sky_sources, deployment, metrics):
    upload = deployment.validated(sky.upload(1, 0, 60000.1, sky_sources(4, seed=13)))
    _pipeline(deployment, metrics).process_ccd(upload)
    assert len(_latencies(metrics)) == 4
    metrics.clear_metrics()
    assert _pipeline(deployment, metrics).process_ccd(upload).status == "duplicate"
    assert metrics.metric_set == {}


def test_latency_without_metrics_or_alerts_records_nothing(metrics):
    info = ExposureInfo(1, 0, "r", 60000.5, 30.0)
    assert record_alert_latency(None, info, 5) is None
    assert record_alert_latency(metrics, info, 0) is None
    assert metrics.metric_set == {}


def test_latency_is_measured_on_the_survey_clock_when_a_replay_sets_one(metrics, monkeypatch):
    # a replayed night a year ago: on the wall clock its alerts would be a year late
    info = ExposureInfo(visit=1, detector=0, band="r", mjd_mid_tai=Time(time.time() - 3.0e7, format="unix").tai.mjd,
                        exptime_s=30.0)
    monkeypatch.setenv("ALERTPROD_SURVEY_CLOCK_OFFSET_S", str(-3.0e7 + 20.0))
    latency = record_alert_latency(metrics, info, 1)
    assert 20.0 - 15.0 - 1.0 < latency < 20.0 - 15.0 + 5.0  # 20 s after the midpoint, 15 s after close
    monkeypatch.delenv("ALERTPROD_SURVEY_CLOCK_OFFSET_S")
    assert record_alert_latency(metrics, info, 1) > 2.9e7

"""Per-alert latency, shutter close → publish, as a CloudWatch metric (EMF through Powertools).

Rubin's requirement (OTT1, LSR-REQ-0101) is that 98 % of alerts leave within 60 s of the end of
the exposure. The publish step of the nightly pipeline records one value of
:data:`LATENCY_METRIC` (seconds) per alert it publishes (a redelivery that publishes nothing
new records nothing), with the time the CCD's alerts finished publishing: an upper bound of
each alert's own latency. Powertools writes them as Embedded Metric Format log lines (100
values per document), from which CloudWatch builds the metric; the template's
``AlertLatencyAlarm`` watches its p98 against 60 s (docs/operations.md).

Shutter close is the exposure midpoint plus half the exposure time (``MJD-MID`` +
``EXPTIME``/2 of the upload's header), converted from TAI to Unix time. "Now" is the survey's
clock (:func:`alertprod.times.survey_clock_offset_s`: the wall clock on AWS; the replayed
night's on the embedded stack, where the wall clock would report a year-old exposure as a
year late).
"""

from __future__ import annotations

import time
from typing import Any

from astropy.time import Time

from alertprod.formats import ExposureInfo
from alertprod.times import survey_clock_offset_s

__all__ = ["LATENCY_METRIC", "LATENCY_TARGET_S", "alert_latency_s", "record_alert_latency",
           "shutter_close_unix_s"]

#: Name of the per-alert latency metric (unit: seconds).
LATENCY_METRIC = "AlertLatency"
#: The latency 98 % of alerts must stay within (s).
LATENCY_TARGET_S = 60.0


def shutter_close_unix_s(info: ExposureInfo) -> float:
    """Unix time (s, UTC) at which the exposure ended: midpoint + half the exposure time."""
    close_mjd_tai = float(info.mjd_mid_tai) + float(info.exptime_s) / 2.0 / 86400.0
    return float(Time(close_mjd_tai, format="mjd", scale="tai").unix)


def alert_latency_s(info: ExposureInfo, published_unix_s: float) -> float:
    """Seconds from the exposure's shutter close to ``published_unix_s`` (Unix time, s)."""
    return float(published_unix_s) - shutter_close_unix_s(info)


def record_alert_latency(metrics: Any, info: ExposureInfo, n_alerts: int, *,
                         published_unix_s: float | None = None) -> float | None:
    """Add one :data:`LATENCY_METRIC` value per alert published to a Powertools ``Metrics``.

    Parameters
    ----------
    metrics : aws_lambda_powertools.Metrics or None
        Where to record (the handler flushes it); None records nothing.
    info : ExposureInfo
        The CCD's exposure (midpoint and exposure time).
    n_alerts : int
        Alerts published now.
    published_unix_s : float, keyword-only, optional
        When they were published (Unix s); now on the survey's clock by default.

    Returns
    -------
    float or None
        The latency recorded (s), None when nothing was recorded.
    """
    if metrics is None or n_alerts <= 0:
        return None
    from aws_lambda_powertools.metrics import MetricUnit

    if published_unix_s is None:
        published = time.time() + survey_clock_offset_s()
    else:
        published = float(published_unix_s)
    latency = alert_latency_s(info, published)
    for _ in range(int(n_alerts)):  # one value per alert: CloudWatch's percentiles count alerts
        metrics.add_metric(name=LATENCY_METRIC, unit=MetricUnit.Seconds, value=latency)
    return latency

"""The template alarms on the per-alert latency metric the pipeline emits (98 % within 60 s)."""

from __future__ import annotations

from pathlib import Path

import pytest

from alertprod.local.template import load_template
from alertprod.pipeline.latency import LATENCY_METRIC, LATENCY_TARGET_S

pytestmark = pytest.mark.unit

TEMPLATE = Path(__file__).parents[3] / "infra" / "template.yaml"


@pytest.fixture(scope="module")
def template() -> dict:
    return load_template(TEMPLATE)


def test_latency_alarm_watches_p98_of_the_emitted_metric_against_60_s(template):
    alarm = template["Resources"]["AlertLatencyAlarm"]
    assert alarm["Type"] == "AWS::CloudWatch::Alarm"
    props = alarm["Properties"]
    env = template["Globals"]["Function"]["Environment"]["Variables"]
    assert props["MetricName"] == LATENCY_METRIC
    assert props["Namespace"] == env["POWERTOOLS_METRICS_NAMESPACE"]
    assert props["Dimensions"] == [{"Name": "service", "Value": env["POWERTOOLS_SERVICE_NAME"]}]
    assert (props["ExtendedStatistic"], props["Threshold"]) == ("p98", LATENCY_TARGET_S)
    assert props["ComparisonOperator"] == "GreaterThanThreshold" and props["Unit"] == "Seconds"
    assert "Statistic" not in props


def test_ingest_function_keeps_the_namespace_and_service_the_alarm_names(template):
    ingest = template["Resources"]["IngestFunction"]["Properties"]
    own = ingest.get("Environment", {}).get("Variables", {})
    assert "POWERTOOLS_METRICS_NAMESPACE" not in own and "POWERTOOLS_SERVICE_NAME" not in own
    assert "AlertLatencyAlarm" in str(template["Outputs"])

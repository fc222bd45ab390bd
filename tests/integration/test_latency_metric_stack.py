"""The ingest function on the embedded stack writes the latency metric as CloudWatch would read it.

Powertools prints Embedded Metric Format documents on standard output (CloudWatch Logs on
AWS); the one written for a CCD names the namespace and dimension the template's
``AlertLatencyAlarm`` watches, with one value per alert.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from ccdsky import CcdSky, put_upload

from alertprod.local.stack import EmbeddedStack
from alertprod.local.template import load_template
from alertprod.pipeline.latency import LATENCY_METRIC

pytestmark = pytest.mark.integration

SKY = CcdSky(n_detectors=1)


def _emf_documents(text: str) -> list[dict]:
    docs = []
    for line in text.splitlines():
        if line.startswith("{") and '"_aws"' in line:
            docs.append(json.loads(line))
    return docs


def test_ingest_emits_one_latency_value_per_alert_with_the_alarms_dimensions(capsys):
    rng = np.random.default_rng(8)
    sources = [(*SKY.radec(0, *rng.uniform(20, SKY.npix - 20, 2)), 5000.0, True) for _ in range(6)]
    with EmbeddedStack(stack_name="latency") as stack:
        capsys.readouterr()
        put_upload(stack, *SKY.upload(1, 0, 60000.10, sources))
        stack.run_until_idle()
        alarm = load_template(stack.template_path)["Resources"]["AlertLatencyAlarm"]["Properties"]
    docs = [d for d in _emf_documents(capsys.readouterr().out) if LATENCY_METRIC in d]
    assert len(docs) == 1
    (doc,) = docs
    directive = doc["_aws"]["CloudWatchMetrics"][0]
    assert directive["Namespace"] == alarm["Namespace"]
    (dim,) = alarm["Dimensions"]
    assert doc[dim["Name"]] == dim["Value"] and [dim["Name"]] in directive["Dimensions"]
    values = doc[LATENCY_METRIC]
    assert len(values) == 6 and len(set(values)) == 1 and values[0] > 0

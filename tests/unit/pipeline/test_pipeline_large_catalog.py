"""A crowded CCD of 50,000 DiaSources is processed to completion within the ingest function's memory.

Run in a subprocess of its own (``tests/large_ccd.py``) so that its peak resident memory is
this CCD's alone; the buckets keep their objects on disk, as S3 keeps them out of the
function's memory. The 200,000-row limit is measured by the benchmark
``tests/benchmarks/test_bench_ccd_memory.py``.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from alertprod.local.template import load_template

pytestmark = [pytest.mark.unit, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[3]


def ingest_memory_mb() -> int:
    """The IngestFunction's MemorySize in the template (its own, or the Globals')."""
    template = load_template(ROOT / "infra" / "template.yaml")
    own = template["Resources"]["IngestFunction"]["Properties"].get("MemorySize")
    return int(own if own is not None else template["Globals"]["Function"]["MemorySize"])


def test_fifty_thousand_row_catalog_is_processed_within_the_function_memory(tmp_path):
    out = subprocess.run([sys.executable, str(ROOT / "tests" / "large_ccd.py"), "50000", "1024",
                          str(tmp_path)], capture_output=True, text=True, timeout=3600, check=True)
    shutil.rmtree(tmp_path)  # its buckets: 50,000 alerts of ~100 KB (5 GB) on disk
    report = json.loads(out.stdout.strip().splitlines()[-1])
    assert report["status"] == "processed"
    assert report["dia_sources"] == report["alerts_sent"] == 50_000
    assert report["alert_parts"] == 50  # chunks of 1,000: one in memory at a time
    assert report["peak_rss_mb"] < ingest_memory_mb(), report

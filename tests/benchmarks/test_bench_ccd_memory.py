"""Peak memory of one CCD against the ingest function's MemorySize, up to the largest legal catalog.

Each size runs in a subprocess of its own (``tests/large_ccd.py``; its peak resident memory is
``VmHWM``, this process image's own), with its buckets on disk as S3 keeps them out of the function.
The peer is the function's ``MemorySize`` (2,048 MB): the headline is the 200,000-row
(``MAX_CATALOG_ROWS``) CCD's peak as a fraction of it; the 20,000-row CCD shows the slope.
Writes ``results/ccd_memory.json``.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from alertprod.formats.catalog import MAX_CATALOG_ROWS
from alertprod.local.template import load_template

pytestmark = pytest.mark.bench

ROOT = Path(__file__).resolve().parents[2]
RESULTS = Path(__file__).parent / "results"


def _run(rows: int, workdir: Path) -> dict:
    out = subprocess.run([sys.executable, str(ROOT / "tests" / "large_ccd.py"), str(rows), "2048",
                          str(workdir)], capture_output=True, text=True, timeout=7200, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_bench_peak_memory_of_the_largest_legal_ccd(tmp_path):
    template = load_template(ROOT / "infra" / "template.yaml")
    props = template["Resources"]["IngestFunction"]["Properties"]
    memory_mb = int(props.get("MemorySize", template["Globals"]["Function"]["MemorySize"]))
    runs = {}
    for rows in (20_000, MAX_CATALOG_ROWS):
        (tmp_path / str(rows)).mkdir()
        runs[rows] = _run(rows, tmp_path / str(rows))
        shutil.rmtree(tmp_path / str(rows))  # its alerts: ~100 KB each, 20 GB at 200,000 rows
        assert runs[rows]["status"] == "processed" and runs[rows]["alerts_sent"] == rows
    small, large = runs[20_000], runs[MAX_CATALOG_ROWS]
    slope_kb = ((large["peak_rss_mb"] - small["peak_rss_mb"]) * 1024
                / (MAX_CATALOG_ROWS - 20_000))
    result = {
        "memory_size_mb": memory_mb,
        "peak_rss_mb": {str(k): v["peak_rss_mb"] for k, v in runs.items()},
        "ratio_peak_over_memory_size": round(large["peak_rss_mb"] / memory_mb, 3),
        "slope_kb_per_row": round(slope_kb, 2),
        "seconds": {str(k): v["seconds"] for k, v in runs.items()},
        "stages_200000": large["stages"],
        "alert_parts_200000": large["alert_parts"],
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "ccd_memory.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    assert large["peak_rss_mb"] < memory_mb

"""One table of every benchmark's headline figure and its ratio to the peer measured beside it.

``make bench`` runs the benchmarks (each writes ``results/<name>.json``), then this script:
it reads the JSON files, picks each benchmark's headline figures by the paths below, prints
one table and writes it to ``results/SUMMARY.md`` (the README summarises it). A benchmark whose
file is missing shows "not run"; a path that no longer exists shows "missing" — so a renamed
figure is noticed, not silently dropped.

Run: ``python tests/benchmarks/summary.py [--results DIR]``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, NamedTuple

RESULTS = Path(__file__).parent / "results"


class Figure(NamedTuple):
    """One row: where the figure is, how it reads, and its peer."""

    file: str
    label: str
    path: str
    unit: str
    peer: str = ""
    ratio_path: str = ""
    goal: str = ""


FIGURES: tuple[Figure, ...] = (
    Figure("pipeline", "one CCD's compute (200 sources, 5,000 objects), CPU",
           "total_cpu_s.pipeline", "s", "per-row alert building (previous path)",
           "", "≤ 1 s"),
    Figure("forced", "forced PSF photometry", "ours_sources_per_s", "sources/s",
           "photutils PSFPhotometry", "speedup"),
    Figure("association", "association of 10⁴ sources with 10⁶ objects", "ours_s", "s",
           "astropy greedy match", "speedup"),
    Figure("alert_build", "alert records (batch)", "alerts_per_s.build_alerts", "alerts/s",
           "reference per-row builder", "ratio_vs_reference.build_alerts", "≥ 2,000/s"),
    Figure("alert_encode", "alert Avro encoding", "alerts_per_s.fastencode.encode_alert",
           "alerts/s", "fastavro schemaless_writer", "ratio"),
    Figure("cutouts", "alert cutouts", "cutouts_fits_ms_per_stamp", "ms/stamp",
           "astropy Cutout2D + FITS", "speedup"),
    Figure("subtraction", "ZOGY subtraction of a 1024² image", "zogy_1024_s", "s",
           "SFFT (numpy)", "ratio_sfft_over_zogy_1024"),
    Figure("ephemeris", "asteroid positions", "ours_positions_per_second", "positions/s",
           "astropy frames only", "ratio_ours_over_astropy_rate"),
    Figure("apdb", "one CCD's Level 1 reads and writes (moto)", "ours_moto_s.total_s", "s",
           "Rubin dax_apdb on SQLite", "ratio_total"),
    Figure("nbody", "n-body refresh, 30 days, per orbit", "refresh.30_days.nbody_cpu_ms_per_orbit",
           "ms", "two-body", "refresh.30_days.ratio_nbody_over_two_body"),
    Figure("orbit_refresh", "nightly per-CCD asteroid prediction after the refresh",
           "ccd_prediction.after_cpu_seconds", "s", "before the refresh",
           "ccd_prediction.ratio_after_over_before", "≤ 1"),
    Figure("precovery", "precovery photometry at 1,000 objects", "photometry_rate_per_s_at_1000",
           "sources/s"),
    Figure("recreate", "re-created difference + photometry, 10 positions of a 4k² epoch",
           "default.10.measure_cpu_s", "s", "whole-CCD ZOGY", "default.10.ratio_measure_over_whole"),
    Figure("recreate", "re-created difference + photometry, 1,000 positions",
           "default.1000.measure_cpu_s", "s", "whole-CCD ZOGY",
           "default.1000.ratio_measure_over_whole"),
    Figure("image_reads", "bytes read per forced measurement", "goals.stamp_fraction.0",
           "of the file", "whole-file read", "", "≤ 0.01"),
    Figure("image_reads", "bytes read per nightly CCD (cost model's choice)",
           "goals.ccd_fraction.0", "of the files", "whole-file read", "", "≤ 0.3"),
    Figure("image_reads", "precovery unit, one object, download modelled", "goals.unit_speedup_1_object.0",
           "× faster", "whole-file read", "", "≥ 10×"),
    Figure("precovery_service", "precovery-service unit, re-created 4k² epoch, p50",
           "units.recreated.latency_s.p50", "s", "whole-file path",
           "ratios.recreated.latency_p50_whole_over_ours"),
    Figure("precovery_service", "LSST-shaped job (800 epochs): 240 jobs on 16 workers",
           "lsst_job.worst_case_latency_h_if_all_240_jobs_share_the_service_workers", "h", "", "",
           "≤ 24 h"),
    Figure("archive", "archive bytes per exposure, templates included",
           "fraction_science_plus_template", "of uncompressed", "", "", "≤ 0.25"),
    Figure("filters", "filter-alert evaluations (1,000 filters × 10⁴ alerts)",
           "engine_evals_per_cpu_s_incl_batch_build", "per CPU s", "per-alert interpreter",
           "speedup_vs_interpreter", "≥ 10⁶/s"),
    Figure("filters", "the same, against SQLite over the alert columns",
           "engine_evals_per_cpu_s_incl_batch_build", "per CPU s", "SQLite (Lasair's way)",
           "speedup_vs_sqlite"),
    Figure("science_flux_pulls", "scienceFlux pulls, S/N 10–30: std", "after.scienceFlux.1.std", "",
           "DiaObject position, no refinement (before)", "", "1.00 ± 0.05"),
    Figure("science_flux_pulls", "scienceFlux pulls, S/N 10–30: mean", "after.scienceFlux.1.mean", "",
           "", "", "0 ± 0.05"),
    Figure("science_flux_pulls", "scienceFlux pulls, S/N > 100: mean", "after.scienceFlux.3.mean", "",
           "", "", "0 ± 0.05"),
    Figure("ccd_memory", "peak memory of one 200,000-row CCD (the catalog limit)",
           "peak_rss_mb.200000", "MB", "the ingest function's MemorySize",
           "ratio_peak_over_memory_size", "< 1"),
    Figure("ingest_batch", "one ingest invocation of IngestBatchSize 4k × 4k CCDs (isolated)",
           "invocation_s", "s", "the ingest function's Timeout",
           "ratio_invocation_over_timeout", "< 1"),
    Figure("capacity", "scaled focal plane (189 CCDs of 256²): ingest seconds per CCD, p95",
           "measured.visits.2.ccd_seconds_in_ledger.p95", "s"),
    Figure("capacity", "LSST night, monthly AWS cost (docs/capacity.md, docs/deployment.md)",
           "lsst.cost.total_usd_per_month", "USD"),
    Figure("capacity", "LSST peak visit: worst CCD's shutter-to-publish budget (after upload)",
           "lsst.latency_budget_s.total_worst_s", "s", "the 60 s target", "", "≤ 60"),
)


def _get(doc: Any, path: str) -> Any:
    """The value at a dotted path; a key may itself hold dots (the longest match wins)."""
    if path == "":
        return doc
    if isinstance(doc, list):
        head, _, rest = path.partition(".")
        return _get(doc[int(head)], rest) if head.isdigit() and int(head) < len(doc) else None
    if not isinstance(doc, dict):
        return None
    parts = path.split(".")
    for n in range(len(parts), 0, -1):
        key = ".".join(parts[:n])
        if key in doc:
            found = _get(doc[key], ".".join(parts[n:]))
            if found is not None:
                return found
    return None


def _fmt(value: Any) -> str:
    if value is None:
        return "missing"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int | float):
        v = float(value)
        if v != 0 and (abs(v) >= 1e5 or abs(v) < 1e-3):
            return f"{v:.3g}"
        return f"{v:,.3f}".rstrip("0").rstrip(".") if abs(v) < 100 else f"{v:,.0f}"
    return str(value)


def summary_rows(results: Path = RESULTS) -> list[list[str]]:
    """``[benchmark, figure, value, unit, peer, ratio, goal]`` per figure."""
    rows = []
    cache: dict[str, Any] = {}
    for fig in FIGURES:
        path = results / f"{fig.file}.json"
        if fig.file not in cache:
            cache[fig.file] = json.loads(path.read_text()) if path.exists() else None
        doc = cache[fig.file]
        if doc is None:
            rows.append([fig.file, fig.label, "not run", fig.unit, fig.peer, "", fig.goal])
            continue
        ratio = _fmt(_get(doc, fig.ratio_path)) if fig.ratio_path else ""
        rows.append([fig.file, fig.label, _fmt(_get(doc, fig.path)), fig.unit, fig.peer, ratio,
                     fig.goal])
    return rows


def markdown(rows: list[list[str]]) -> str:
    """The rows as a Markdown table."""
    head = ["benchmark", "figure", "value", "unit", "peer (same run)", "ratio", "goal"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    table = markdown(summary_rows(args.results))
    (args.results / "SUMMARY.md").write_text(
        "# Benchmark summary\n\nWritten by `tests/benchmarks/summary.py` from the JSON files "
        "beside it (`make bench`). Ratios compare with the peer measured in the same run.\n\n"
        + table)
    sys.stdout.write(table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

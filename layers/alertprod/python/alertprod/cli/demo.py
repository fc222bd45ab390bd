"""``alertprod demo``: the main job on the embedded stack, with nothing but this machine.

Simulates a small survey, replays it through the embedded stack (every Lambda handler, the
daily precovery, the alert topic), prints the summary and writes an HTML report.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import time
import warnings
from pathlib import Path

__all__ = ["register", "run_demo"]


def run_demo(out: Path, *, preset: str = "night", seed: int = 1, report: bool = True,
             progress: bool = True) -> dict:
    """Simulate, replay, report; returns the replay summary."""
    from alertprod.cli.demo_filters import DemoFilters
    from alertprod.cli.replay import print_summary
    from alertprod.replay.runner import replay
    from alertprod.sky import simulate_survey

    out.mkdir(parents=True, exist_ok=True)
    survey = out / "survey"
    export = out / "export"
    t0 = time.perf_counter()
    print(f"[1/3] simulating a '{preset}' survey (seed {seed}) into {survey}/")
    simulate_survey(survey, preset=preset, seed=seed, progress=progress)
    print(f"      done in {time.perf_counter() - t0:.0f} s")
    print("[2/3] replaying it through the embedded stack (moto server + local Lambda runner)")
    filters = DemoFilters()
    delivered: dict = {}
    # what the functions print (their metrics as Embedded Metric Format lines, which CloudWatch
    # Logs would take) goes to a file, not between the progress bar and the summary
    function_output = out / "function-output.log"
    # an invocation that recorded no metric makes Powertools warn on every flush: noise here
    warnings.filterwarnings("ignore", "No application metrics to publish", UserWarning)
    with function_output.open("w") as sink, contextlib.redirect_stdout(sink):
        result = replay(survey, export, progress=progress, on_start=filters.register,
                        before_export=lambda stack: delivered.update(filters.collect(stack)),
                        parameter_overrides={"WebhookAllowPrivate": "1"})  # the loopback receiver
    print(f"      the functions' output (metrics, as CloudWatch Logs would hold it): {function_output}")
    result.summary["filters"] = delivered
    (export / "summary.json").write_text(json.dumps(result.summary, indent=1, default=str))
    index = None
    if report:
        print("[3/3] writing the HTML report")
        from alertprod.report import build_report

        index = build_report(export)
    print_summary(result.summary, export)
    print("\n  alert filters (registered through the HTTP API; deliveries deduplicated by id):")
    for user, got in delivered.items():
        totals = got["counters"]
        print(f"    {user:<11} {got['filter']!r} -> {got['transport']}: {got['unique_alerts']} alerts "
              f"received (matched {totals.get('matched', 0)}, delivered {totals.get('delivered', 0)}, "
              f"failed {totals.get('failed', 0)})")
    print("\n  where to look next:")
    if index is not None:
        print(f"    open {index}   (the night at a glance, per-CCD timings, alerts with cutouts and light curves)")
    print(f"    alertprod serve --replay {survey}   (the precovery service's web page on this night:")
    print("        forced photometry anywhere; open the url it prints, sign in with a token it prints)")
    print(f"    alertprod alerts show {export}/alerts/*.avro | head     (decode alert packets)")
    print(f"    {survey}/truth/                                (what the simulator put in the sky)")
    print("    alertprod stack up                              (the embedded stack, for aws --endpoint-url)")
    return result.summary


def _run(args: argparse.Namespace) -> int:
    run_demo(Path(args.out), preset=args.preset, seed=args.seed, report=not args.no_report,
             progress=not args.quiet)
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "demo", help="simulate a night and process it end to end on the embedded stack",
        description="Start the embedded AWS stack (no cloud account, no Docker), simulate a small "
                    "survey, process it end to end through the same handlers that run on AWS, print "
                    "a summary and write an HTML report.")
    p.add_argument("--out", default="demo-out", help="output directory (default: demo-out)")
    p.add_argument("--preset", default="night", choices=("tiny", "night"), help="survey size")
    p.add_argument("--seed", type=int, default=1, help="random seed of the simulation")
    p.add_argument("--no-report", action="store_true", help="skip the HTML report")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=_run)

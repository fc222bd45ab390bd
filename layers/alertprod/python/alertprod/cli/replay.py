"""``alertprod replay DIR --export OUT``: a survey directory through a fresh embedded stack."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

__all__ = ["register", "print_summary"]


def print_summary(summary: dict, out: Path) -> None:
    """The closing summary of a replay, for people."""
    def f(x, fmt=".2f"):
        return "n/a" if x is None or x != x else format(x, fmt)

    rows = [
        ("visits", summary.get("visits")), ("CCDs", summary.get("ccds")),
        ("DiaSources", summary.get("diaSources")), ("new DiaObjects", summary.get("newDiaObjects")),
        ("updated DiaObjects", summary.get("updatedDiaObjects")),
        ("solar-system matches", summary.get("ssoMatches")),
        ("forced sources (nightly)", summary.get("forcedSources")),
        ("forced sources (precovery)", summary.get("precoverySources")),
        ("alerts published", summary.get("alerts")),
        ("  of which by claim-check", summary.get("alertsClaimChecked")),
        ("quarantined uploads", summary.get("quarantined")),
        ("dead-lettered messages", f"{summary.get('deadLetters', 0)}"
                                   + (" (see dead_letters.json)" if summary.get("deadLetters") else "")),
        ("per-CCD seconds p50 / p95", f"{f(summary.get('ccdSecondsP50'), '.3f')} / "
                                      f"{f(summary.get('ccdSecondsP95'), '.3f')}"),
        ("DynamoDB requests per CCD", f(summary.get("dynamodbRequestsPerCcd"), ".1f")),
        ("precovery days run", summary.get("precoveryDays")),
        ("image cache days", summary.get("imageArchive", {}).get("imageCacheDays")),
        ("cached images expired", summary.get("imageArchive", {}).get("expiredCacheImages")),
        ("images archived (MB)", f"{summary.get('imageArchive', {}).get('archivedImages', 0)} "
                                 f"({summary.get('imageArchive', {}).get('archivedBytes', 0) / 1e6:.1f})"),
        ("wall time (s)", summary.get("wallSeconds")),
    ]
    width = max(len(r[0]) for r in rows)
    print()
    for name, value in rows:
        print(f"  {name:<{width}}  {value}")
    print(f"\n  exported to {out}/ (DiaObject.fits, DiaSource.fits, DiaForcedSource.fits, "
          f"SSObject.fits, alerts/, quarantine.json, summary.json)")


def _days(text: str) -> int:
    """``--image-cache-days``: a whole number of days >= 1 (the template's MinValue)."""
    try:
        days = int(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"expected a whole number of days, got {text!r}") from exc
    if days < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1 day, got {days}")
    return days


def _run(args: argparse.Namespace) -> int:
    from alertprod.replay.runner import replay

    result = replay(args.survey_dir, args.export, progress=not args.quiet,
                    image_cache_days=args.image_cache_days)
    if args.json:
        print(json.dumps({k: v for k, v in result.summary.items() if k != "perCcd"}, indent=1))
    else:
        print_summary(result.summary, Path(args.export))
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "replay", help="upload a survey directory to a fresh embedded stack and export the results",
        description="Upload the contents of DIR (laid out as `alertprod simulate` writes it) to a fresh "
                    "embedded stack in time order, run every function the cloud would run (including "
                    "the daily precovery at each day boundary), then export the Level 1 database, "
                    "the alerts and the quarantine records to OUT.")
    p.add_argument("survey_dir", metavar="DIR", help="survey directory (simulate layout)")
    p.add_argument("--export", metavar="OUT", required=True, help="export directory")
    p.add_argument("--image-cache-days", metavar="N", type=_days, default=None,
                   help="keep cached images N days instead of the template's ImageCacheDays (30): "
                        "older epochs expire from the cache during the replay (the long-term "
                        "archive keeps their science and template images)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.set_defaults(func=_run)

"""``alertprod precovery``: submit precovery jobs to a running service and follow them.

- ``submit`` builds the target from flags (``--ra --dec``; ``--positions FILE.csv`` for a small
  region; ``--batch FILE.csv`` for independent positions; ``--pmra --pmdec [--parallax
  --epoch]`` with ``--ra --dec`` for a star with proper motion; ``--designation`` or
  ``--mpcorb`` for an asteroid) or takes a whole request with ``--json``, and prints the job id;
- ``status JOB`` prints the job document; ``wait JOB`` draws a progress bar from the job's unit
  counts, queue position and ETA until the job is final;
- ``results JOB [--format json|csv|votable] [-o FILE]`` writes the light curve, ``stamps JOB -o
  FILE.zip`` the postage stamps; ``abort``, ``delete`` and ``list`` do what they say.

The service is ``--url`` (or ``$ALERTPROD_URL``), the caller ``--token`` (or
``$ALERTPROD_TOKEN``): ``alertprod serve`` prints both. Exit status: 0 on success (``wait``:
the job COMPLETED), 1 when the job ended in ERROR or ABORTED, 2 for a refused request or bad
arguments, 3 when ``wait`` timed out. See docs/cli.md.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from alertprod.errors import AlertprodError, PrecoveryError
from alertprod.precovery.client import (
    FINAL_PHASES,
    RESULT_FORMATS,
    PrecoveryClient,
    job_progress,
)

__all__ = ["register", "target_from_args", "read_positions_csv"]

EXIT_JOB_FAILED, EXIT_REFUSED, EXIT_TIMEOUT = 1, 2, 3


def read_positions_csv(path: str | Path) -> list[dict[str, float]]:
    """``[{"ra": deg, "dec": deg}, ...]`` from a CSV file with ``ra`` and ``dec`` columns.

    Column names are matched without regard to case; other columns are ignored. A row whose
    ra or dec is not a finite number is refused with its line number.
    """
    try:
        with open(path, newline="", encoding="utf-8") as f:
            reader = csv.DictReader(f)
            names = {(n or "").strip().lower(): n for n in reader.fieldnames or []}
            if "ra" not in names or "dec" not in names:
                raise PrecoveryError(f"{path}: needs 'ra' and 'dec' columns (degrees), "
                                     f"found {list(names)}")
            out = []
            for row in reader:
                try:
                    ra, dec = float(row[names["ra"]]), float(row[names["dec"]])
                except (TypeError, ValueError) as exc:
                    raise PrecoveryError(f"{path}, line {reader.line_num}: ra and dec must be "
                                         f"numbers ({exc})") from exc
                if not (math.isfinite(ra) and math.isfinite(dec)):
                    raise PrecoveryError(f"{path}, line {reader.line_num}: ra and dec must be finite")
                out.append({"ra": ra, "dec": dec})
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise PrecoveryError(f"cannot read {path}: {exc}") from exc
    if not out:
        raise PrecoveryError(f"{path}: no positions")
    return out


def _text_or_file(value: str) -> str:
    """``@FILE`` reads FILE (``@-``: standard input); anything else is the text itself."""
    if not value.startswith("@"):
        return value
    if value == "@-":
        return sys.stdin.read()
    try:
        return Path(value[1:]).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise PrecoveryError(f"cannot read {value[1:]}: {exc}") from exc


def _json_arg(value: str, what: str) -> Any:
    try:
        return json.loads(_text_or_file(value))
    except ValueError as exc:
        raise PrecoveryError(f"{what}: not JSON ({exc})") from exc


def target_from_args(args: argparse.Namespace) -> tuple[dict[str, Any], dict[str, Any]]:
    """``(target, options)`` of ``submit``'s flags (interfaces.md §6); exactly one target kind."""
    options: dict[str, Any] = {"mjd_min": args.mjd_min, "mjd_max": args.mjd_max,
                               "images": args.images}
    if args.stamps:
        options["stamps"] = True
    if args.sed is not None:
        options["sed"] = _json_arg(args.sed, "--sed")
    has_pm = any(v is not None for v in (args.pmra, args.pmdec, args.parallax, args.epoch))
    kinds = [k for k, given in (("json", args.json is not None), ("positions", args.positions),
                                ("batch", args.batch), ("designation", args.designation),
                                ("mpcorb", args.mpcorb),
                                ("position", args.ra is not None or args.dec is not None))
             if given]
    if len(kinds) != 1:
        raise PrecoveryError("give exactly one target: --ra/--dec (with --pmra/--pmdec for proper "
                             "motion), --positions, --batch, --designation, --mpcorb or --json"
                             + (f"; got {', '.join(kinds)}" if kinds else ""))
    if has_pm and kinds != ["position"]:
        raise PrecoveryError("--pmra/--pmdec/--parallax/--epoch go with --ra and --dec")
    kind = kinds[0]
    if kind == "json":
        doc = _json_arg(args.json, "--json")
        if isinstance(doc, dict) and "target" in doc:  # a whole request; flags add options
            given = doc.get("options") or {}
            if not isinstance(given, dict):
                raise PrecoveryError("--json: 'options' must be an object")
            return doc["target"], {**given, **{k: v for k, v in options.items() if v is not None}}
        if not isinstance(doc, dict):
            raise PrecoveryError("--json: expected a target object or {\"target\": ..., \"options\": ...}")
        return doc, options
    if kind in ("positions", "batch"):
        return {"kind": kind, "positions": read_positions_csv(getattr(args, kind))}, options
    if kind == "designation":
        return {"kind": "orbit", "designation": args.designation}, options
    if kind == "mpcorb":
        line = next((s for s in _text_or_file(args.mpcorb).splitlines() if s.strip()), "")
        return {"kind": "orbit", "mpcorb": line}, options
    if args.ra is None or args.dec is None:
        raise PrecoveryError("--ra and --dec go together")
    target: dict[str, Any] = {"kind": "position", "ra": args.ra, "dec": args.dec}
    if has_pm:
        if args.pmra is None or args.pmdec is None:
            raise PrecoveryError("proper motion needs both --pmra and --pmdec (mas/yr)")
        target.update(kind="proper_motion", pmra=args.pmra, pmdec=args.pmdec,
                      parallax=args.parallax if args.parallax is not None else 0.0)
        if args.epoch is not None:
            target["epoch"] = args.epoch
    return target, options


def _client(args: argparse.Namespace) -> PrecoveryClient:
    url = args.url or os.environ.get("ALERTPROD_URL", "")
    token = args.token or os.environ.get("ALERTPROD_TOKEN", "")
    if not url:
        raise PrecoveryError("no service: pass --url or set ALERTPROD_URL (alertprod serve prints it)")
    if not token:
        raise PrecoveryError("no token: pass --token or set ALERTPROD_TOKEN")
    return PrecoveryClient(url, token)


def _summary(job: dict[str, Any]) -> str:
    done, total = job_progress(job)
    parts = [f"job {job.get('jobId')}", str(job.get("phase"))]
    if job.get("queuePosition"):
        parts.append(f"queue position {job['queuePosition']}")
    if total is not None:
        parts.append(f"{done or 0}/{total} images")
    if job.get("eta"):
        parts.append(f"eta {job['eta']}")
    summary = job.get("errorSummary")
    if isinstance(summary, dict) and summary.get("message"):
        parts.append(f"error: {summary['message']}")
    return "  ".join(parts)


def _submit(args: argparse.Namespace) -> int:
    target, options = target_from_args(args)
    notify = {k: v for k, v in (("webhook", args.notify_webhook), ("email", args.notify_email)) if v}
    job = _client(args).submit(target, idempotency_key=args.idempotency_key, notify=notify or None,
                               **options)
    if args.doc:
        print(json.dumps(job, indent=2))
    else:
        print(job["jobId"])
    print(_summary(job), file=sys.stderr)
    return 0


def _status(args: argparse.Namespace) -> int:
    print(json.dumps(_client(args).status(args.job_id), indent=2))
    return 0


def _eta_text(job: dict[str, Any]) -> str:
    """Time left: the service's ``etaSeconds`` (its own clock), else ``eta`` against ours."""
    seconds = job.get("etaSeconds")
    if not isinstance(seconds, int | float) or isinstance(seconds, bool) or not math.isfinite(seconds):
        try:
            left = datetime.fromisoformat(str(job.get("eta")).replace("Z", "+00:00")) - datetime.now(UTC)
        except ValueError:
            return ""
        seconds = left.total_seconds()
    seconds = max(0, int(seconds))
    return f"eta {seconds // 3600}h{seconds // 60 % 60:02d}m{seconds % 60:02d}s"


def _wait(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    bar = tqdm(total=None, unit="image", desc=args.job_id[:12], disable=args.quiet,
               file=sys.stderr, dynamic_ncols=True)

    def progress(job: dict[str, Any]) -> None:
        done, total = job_progress(job)
        if total is not None and bar.total != total:
            bar.total = total
        if done is not None and done != bar.n:
            bar.n = done
        status = [str(job.get("phase"))]
        if job.get("queuePosition"):
            status.append(f"queue {job['queuePosition']}")
        if job.get("phase") not in FINAL_PHASES and (eta := _eta_text(job)):
            status.append(eta)
        bar.set_postfix_str(" ".join(status), refresh=False)
        bar.refresh()

    try:
        job = _client(args).wait(args.job_id, timeout_s=args.timeout, progress=progress)
    finally:
        bar.close()
    print(_summary(job))
    if job.get("phase") == "COMPLETED":
        return 0
    return EXIT_JOB_FAILED if job.get("phase") in FINAL_PHASES else EXIT_TIMEOUT


def _write(data: bytes, output: str | None) -> None:
    if output in (None, "-"):
        sys.stdout.buffer.write(data)
        sys.stdout.flush()
        return
    Path(output).write_bytes(data)
    print(f"wrote {len(data)} bytes to {output}", file=sys.stderr)


def _results(args: argparse.Namespace) -> int:
    data = _client(args).results(args.job_id, args.format, raw=True)
    assert isinstance(data, bytes)
    _write(data, args.output)
    return 0


def _stamps(args: argparse.Namespace) -> int:
    if args.output in (None, "-") and sys.stdout.isatty():
        raise PrecoveryError("the stamps are a zip archive: pass -o FILE.zip")
    _write(_client(args).stamps(args.job_id), args.output)
    return 0


def _abort(args: argparse.Namespace) -> int:
    print(_summary(_client(args).abort(args.job_id)))
    return 0


def _delete(args: argparse.Namespace) -> int:
    _client(args).delete(args.job_id)
    print(f"deleted {args.job_id}")
    return 0


def _list(args: argparse.Namespace) -> int:
    for job in _client(args).list():
        print(json.dumps(job) if args.json else _summary(job))
    return 0


def _run(func):
    def run(args: argparse.Namespace) -> int:
        try:
            return func(args)
        except AlertprodError as exc:
            print(f"alertprod precovery: {exc}", file=sys.stderr)
            return EXIT_REFUSED
    return run


def _number(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"not a finite number: {text!r}")
    return value


def _add_submit(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("submit", parents=[common], help="submit a job; prints its id",
                       description="Submit a precovery job. Give exactly one target.")
    t = p.add_argument_group("target (one of)")
    t.add_argument("--ra", type=_number, help="right ascension, deg (ICRS)")
    t.add_argument("--dec", type=_number, help="declination, deg (ICRS)")
    t.add_argument("--positions", metavar="FILE.csv", help="a small region: CSV with ra, dec columns")
    t.add_argument("--batch", metavar="FILE.csv", help="independent positions: CSV with ra, dec columns")
    t.add_argument("--designation", help="asteroid from the loaded orbit catalog (e.g. '2014 QX17')")
    t.add_argument("--mpcorb", metavar="LINE|@FILE", help="asteroid from one MPCORB.DAT line")
    t.add_argument("--json", metavar="JSON|@FILE", help="the target object, or a whole request "
                   "{\"target\": ..., \"options\": ...} (@- reads standard input)")
    pm = p.add_argument_group("proper motion (with --ra --dec; Gaia conventions)")
    pm.add_argument("--pmra", type=_number, help="μα cos δ, mas/yr")
    pm.add_argument("--pmdec", type=_number, help="μδ, mas/yr")
    pm.add_argument("--parallax", type=_number, help="mas (default 0)")
    pm.add_argument("--epoch", type=_number, help="epoch of ra/dec, Julian year (service default 2016.0)")
    o = p.add_argument_group("options")
    o.add_argument("--mjd-min", type=_number, help="first epoch, TAI MJD")
    o.add_argument("--mjd-max", type=_number, help="last epoch, TAI MJD")
    o.add_argument("--stamps", action="store_true", help="postage stamps per epoch (FITS and PNG)")
    o.add_argument("--images", choices=("nightly", "data_release"), help="difference images to use")
    o.add_argument("--sed", metavar="JSON|@FILE", help="a user SED for colour corrections")
    n = p.add_argument_group("delivery")
    n.add_argument("--notify-webhook", metavar="URL", help="POST the job document here when it ends")
    n.add_argument("--notify-email", metavar="ADDRESS", help="e-mail this address when it ends")
    n.add_argument("--idempotency-key", metavar="KEY", help="submitting again with the same key "
                   "returns the first job (safe retries from scripts)")
    p.add_argument("--doc", action="store_true", help="print the whole job document, not its id")
    p.set_defaults(func=_run(_submit))


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``precovery submit|status|wait|results|stamps|abort|delete|list`` to ``alertprod``."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--url", default=None, help="service root URL (default $ALERTPROD_URL)")
    common.add_argument("--token", default=None, help="bearer token (default $ALERTPROD_TOKEN)")
    parser = subparsers.add_parser("precovery", help="submit precovery jobs and fetch light curves",
                                   description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="precovery_command", metavar="SUBCOMMAND")
    sub.required = True
    _add_submit(sub, common)
    for name, func, text in (("status", _status, "print a job's document"),
                             ("abort", _abort, "abort a job that has not ended"),
                             ("delete", _delete, "delete a job and its results")):
        p = sub.add_parser(name, parents=[common], help=text)
        p.add_argument("job_id", help="the job's id (submit prints it)")
        p.set_defaults(func=_run(func))
    w = sub.add_parser("wait", parents=[common], help="wait for a job, with a progress bar")
    w.add_argument("job_id", help="the job's id")
    w.add_argument("--timeout", type=_number, default=86400.0, help="give up after, s (default 1 day)")
    w.add_argument("--quiet", action="store_true", help="no progress bar")
    w.set_defaults(func=_run(_wait))
    r = sub.add_parser("results", parents=[common], help="write a job's light curve")
    r.add_argument("job_id", help="the job's id")
    r.add_argument("--format", choices=RESULT_FORMATS, default="csv", help="default csv")
    r.add_argument("-o", "--output", default=None, help="file (default standard output)")
    r.set_defaults(func=_run(_results))
    s = sub.add_parser("stamps", parents=[common], help="write a job's postage stamps (zip)")
    s.add_argument("job_id", help="the job's id")
    s.add_argument("-o", "--output", default=None, help="zip file (default standard output)")
    s.set_defaults(func=_run(_stamps))
    lst = sub.add_parser("list", parents=[common], help="list your jobs")
    lst.add_argument("--json", action="store_true", help="one JSON document per job")
    lst.set_defaults(func=_run(_list))

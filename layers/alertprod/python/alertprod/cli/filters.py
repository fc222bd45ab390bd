"""``alertprod filters``: check a filter, run it over alert files, explain its verdict on one alert.

- ``check EXPR`` prints the normalised expression (exit 0), or the error with a caret under the
  offending token on standard error (exit 2);
- ``run EXPR FILE...`` prints the ``diaSourceId`` of every matching alert, one per line;
- ``explain EXPR ALERT_FILE [--id diaSourceId]`` prints the value of every sub-expression;
- ``fields`` lists the fields a filter may name, with their types.

Files are Avro container files (``alertprod replay --export`` writes ``OUT/alerts/*.avro``, the
archive holds one per alert) or single Confluent-framed packets. ``--watchlist NAME=FILE`` (CSV or
VOTable) and ``--watchmap NAME=FILE`` (MOC: FITS, JSON or ASCII) make ``in_watchlist('NAME')`` and
``in_watchmap('NAME')`` available. See docs/filters.md.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from alertprod.alerts.serialize import deserialize_alert, read_alert_container
from alertprod.errors import AlertprodError, FilterError
from alertprod.filtering import (
    AlertBatch,
    CompiledFilter,
    Watchlist,
    Watchmap,
    compile_filter,
    filter_fields,
)

__all__ = ["register", "format_filter_error", "read_alert_file"]

#: Exit status for an invalid expression (interfaces.md §4).
EXIT_INVALID = 2


def format_filter_error(text: str, exc: FilterError) -> str:
    """The error, the line of the expression holding the token, and a caret under it."""
    start = text.rfind("\n", 0, exc.position) + 1
    end = text.find("\n", exc.position)
    line = text[start:end if end >= 0 else len(text)]
    col = exc.position - start
    if len(line) > 100:  # show a window around the token
        lo = max(0, col - 50)
        line, col = line[lo:lo + 100], col - lo
    return f"{exc}\n  {line}\n  {' ' * col}^"


def read_alert_file(path: str | Path) -> list[dict[str, Any]]:
    """Alert records of a container file or of one framed packet."""
    data = Path(path).read_bytes()
    if data[:1] == b"\x00":
        return [deserialize_alert(data)]
    return list(read_alert_container(data))


def _watch(args: argparse.Namespace) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for spec, loader in [(s, Watchlist.read) for s in args.watchlist or []] + \
                        [(s, Watchmap.read) for s in args.watchmap or []]:
        name, sep, path = spec.partition("=")
        if not sep or not name:
            raise ValueError(f"{spec!r}: give NAME=FILE")
        out[name] = loader(path)
    return out


def _compile(args: argparse.Namespace, command: str) -> CompiledFilter | None:
    try:
        return compile_filter(args.expr, watchlists=_watch(args))
    except FilterError as exc:
        print(f"alertprod filters {command}: invalid filter: {format_filter_error(args.expr, exc)}",
              file=sys.stderr)
    except (ValueError, OSError) as exc:
        print(f"alertprod filters {command}: {exc}", file=sys.stderr)
    return None


def _check(args: argparse.Namespace) -> int:
    compiled = _compile(args, "check")
    if compiled is None:
        return EXIT_INVALID
    print(compiled.normalized)
    return 0


#: Alerts evaluated together by ``filters run`` (the archive and a replay export hold one alert
#: per file, so records of many files are batched; only the filterable parts are kept).
RUN_BATCH_ALERTS = 10_000
_KEEP = ("diaSourceId", "observation_reason", "target_name", "diaSource", "diaObject", "ssSource")


def _run(args: argparse.Namespace) -> int:
    compiled = _compile(args, "run")
    if compiled is None:
        return EXIT_INVALID
    status = 0
    pending: list[dict[str, Any]] = []

    def flush() -> None:
        if pending:
            batch = AlertBatch.from_records(pending, fields=compiled.fields)
            ids = batch.dia_source_ids[compiled.evaluate(batch)]
            sys.stdout.write("".join(f"{i}\n" for i in ids.tolist()))
            pending.clear()

    for path in args.files:
        try:
            records = read_alert_file(path)
        except (AlertprodError, OSError, ValueError) as exc:
            print(f"{path}: {exc}", file=sys.stderr)
            status = 1
            continue
        pending.extend({k: r.get(k) for k in _KEEP} for r in records)
        if len(pending) >= RUN_BATCH_ALERTS:
            flush()
    flush()
    sys.stdout.flush()
    return status


def _explain(args: argparse.Namespace) -> int:
    compiled = _compile(args, "explain")
    if compiled is None:
        return EXIT_INVALID
    try:
        records = read_alert_file(args.alert_file)
    except (AlertprodError, OSError, ValueError) as exc:
        print(f"{args.alert_file}: {exc}", file=sys.stderr)
        return 1
    if args.id is not None:
        records = [r for r in records if r.get("diaSourceId") == args.id]
        if not records:
            print(f"{args.alert_file}: no alert with diaSourceId {args.id}", file=sys.stderr)
            return 1
    for k, record in enumerate(records):
        print(("\n" if k else "") + str(compiled.explain(record)))
    return 0


def _fields(args: argparse.Namespace) -> int:
    for info in filter_fields().values():
        print(f"{info.path:45s} {info.type:6s} {info.avro_kind}")
    return 0


def _add_watch_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--watchlist", action="append", metavar="NAME=FILE",
                        help="a watchlist (CSV ra,dec[,radius][,name], deg and arcsec; or VOTable) "
                        "for in_watchlist('NAME'); repeatable")
    parser.add_argument("--watchmap", action="append", metavar="NAME=FILE",
                        help="a MOC (FITS, JSON or ASCII) for in_watchmap('NAME'); repeatable")


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``filters check|run|explain|fields`` to the ``alertprod`` parser."""
    parser = subparsers.add_parser("filters", help="check, run and explain per-user alert filters",
                                   description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="filters_command", metavar="SUBCOMMAND")
    sub.required = True

    check = sub.add_parser("check", help="validate a filter and print its normalised form (exit 2 if invalid)")
    check.add_argument("expr", metavar="EXPR", help="the filter, e.g. \"diaSource.snr > 10 AND diaSource.band = 'r'\"")
    _add_watch_options(check)
    check.set_defaults(func=_check)

    run = sub.add_parser("run", help="print the diaSourceId of every alert of FILEs that matches")
    run.add_argument("expr", metavar="EXPR", help="the filter")
    run.add_argument("files", metavar="FILE", nargs="+",
                     help="Avro container files (replay export, archive) or Confluent-framed packets")
    _add_watch_options(run)
    run.set_defaults(func=_run)

    explain = sub.add_parser("explain", help="show why a filter matches an alert or not")
    explain.add_argument("expr", metavar="EXPR", help="the filter")
    explain.add_argument("alert_file", metavar="ALERT_FILE", help="container file or framed packet")
    explain.add_argument("--id", type=int, default=None, metavar="diaSourceId",
                         help="the alert to explain (default: every alert of the file)")
    _add_watch_options(explain)
    explain.set_defaults(func=_explain)

    fields = sub.add_parser("fields", help="list the fields a filter may name, with their types")
    fields.set_defaults(func=_fields)

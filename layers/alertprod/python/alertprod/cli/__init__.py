"""The ``alertprod`` console script.

Each command group lives in its own module of this package and exposes
``register(subparsers)``; :func:`main` builds the parser from :data:`COMMAND_MODULES`.
"""

from __future__ import annotations

import argparse
import importlib
import sys

__all__ = ["main", "build_parser", "COMMAND_MODULES"]

#: Modules of :mod:`alertprod.cli` that register commands, in ``--help`` order.
COMMAND_MODULES = ("demo", "simulate", "replay", "stack", "alerts", "filters", "watchlists", "tokens", "dlq",
                   "reprocess", "precovery", "serve", "templates")


def build_parser() -> argparse.ArgumentParser:
    """Build the argument parser with every registered command."""
    parser = argparse.ArgumentParser(
        prog="alertprod",
        description="Serverless alert production for time-domain astronomy.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name in COMMAND_MODULES:
        module = importlib.import_module(f"alertprod.cli.{name}")
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``alertprod`` console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except BrokenPipeError:  # `alertprod alerts show ... | head`: the reader left; not an error
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

"""``alertprod serve``: the precovery service's page and API on the embedded stack, for people.

Starts the embedded stack (or, with ``--replay DIR``, replays a survey into one exactly as
``alertprod replay`` does — :func:`alertprod.replay.runner.replay`, daily precovery
included — and keeps it running), serves the template's HTTP API (the page at ``/``, the API
under ``/api/``), issues tokens for two demo users and runs the functions until Ctrl-C.

Standard output carries only the lines a script reads (interfaces.md §6), each flushed at
once: ``url: <base URL>`` and ``token: <bearer token>`` for each demo user. Everything for
people (progress, hints) goes to standard error, and so does whatever the functions print
(their embedded-metric lines, which Lambda would send to CloudWatch Logs).
"""

from __future__ import annotations

import argparse
import contextlib
import signal
import sys
import tempfile
import threading
from typing import Any

__all__ = ["DEMO_USERS", "register", "serve_stack"]

#: The demo users whose tokens ``serve`` prints, in order.
DEMO_USERS = ("demo-alice", "demo-bob")


class _ServeStoppedError(Exception):
    """Ctrl-C or SIGTERM while serving: leave the replay without exporting."""


def serve_stack(stack: Any, *, host: str = "127.0.0.1", port: int = 0,
                stop: threading.Event | None = None, out: Any = None) -> None:
    """Serve ``stack``'s HTTP API, print the URL and the demo tokens, run until ``stop``.

    Parameters
    ----------
    stack : alertprod.local.EmbeddedStack
        A running stack.
    host, port : str, int
        Where the API listens (port 0: a free port).
    stop : threading.Event, optional
        Set to stop serving (default: a new event, set by SIGTERM; Ctrl-C stops too).
    out : file, optional
        Where the ``url:`` and ``token:`` lines go (default: standard output).
    """
    from alertprod.api.tokens import issue_token
    from alertprod.distribution.store import DynamoServiceStore

    store = DynamoServiceStore(stack.clients.dynamodb, stack.physical_id("ServiceTable"))
    tokens = [issue_token(store, user, label="alertprod serve demo user", days=30).token
              for user in DEMO_USERS]
    endpoint = stack.serve_api("HttpApi", host=host, port=port)
    out = out or sys.stdout
    print(f"url: {endpoint.url}", file=out, flush=True)
    for token in tokens:
        print(f"token: {token}", file=out, flush=True)
    print(f"\nopen {endpoint.url}/ in a browser and sign in with a token above "
          f"({' and '.join(DEMO_USERS)}); Ctrl-C stops the stack (its state is not kept).",
          file=sys.stderr, flush=True)
    stop = stop or threading.Event()
    stack.run_forever(stop)
    raise _ServeStoppedError


def _run(args: argparse.Namespace) -> int:
    stop = threading.Event()
    previous = signal.signal(signal.SIGTERM, lambda *_: stop.set())
    out = sys.stdout
    serve = lambda stack: serve_stack(stack, host=args.host, port=args.port, stop=stop, out=out)  # noqa: E731
    try:
        with contextlib.redirect_stdout(sys.stderr):  # what the functions print
            if args.replay:
                from alertprod.replay.runner import replay

                print(f"replaying {args.replay} into the embedded stack…", flush=True)
                with tempfile.TemporaryDirectory(prefix="alertprod-serve-") as tmp:
                    replay(args.replay, tmp, progress=not args.quiet, export=False,
                           image_cache_days=args.image_cache_days, before_export=serve)
            else:
                from alertprod.local.stack import EmbeddedStack

                overrides: dict[str, Any] = {"LogLevel": "WARNING"}
                if args.image_cache_days is not None:
                    overrides["ImageCacheDays"] = args.image_cache_days
                with EmbeddedStack(parameter_overrides=overrides) as stack:
                    serve(stack)
    except (_ServeStoppedError, KeyboardInterrupt):
        print("\nstopped", file=sys.stderr)
    finally:
        signal.signal(signal.SIGTERM, previous)
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    from alertprod.cli.replay import _days

    p = sub.add_parser(
        "serve", help="serve the precovery service's web page and API on the embedded stack",
        description="Start the embedded stack (replaying a survey into it with --replay), serve the "
                    "web page at / and the API under /api/, and print `url: ...` and one "
                    "`token: ...` line for each of two demo users. Runs until Ctrl-C.")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default %(default)s)")
    p.add_argument("--port", type=int, default=8080,
                   help="port to listen on (0: any free port; default %(default)s)")
    p.add_argument("--replay", metavar="DIR", default=None,
                   help="first replay the survey in DIR (as `alertprod replay` does, daily "
                        "precovery included)")
    p.add_argument("--image-cache-days", metavar="N", type=_days, default=None,
                   help="keep cached images N days instead of the template's 30: older epochs "
                        "need difference images re-created from the archive")
    p.add_argument("--quiet", action="store_true", help="no progress bar during --replay")
    p.set_defaults(func=_run)

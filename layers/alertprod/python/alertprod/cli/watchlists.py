"""``alertprod watchlists``: a user's own watchlists on a deployment's API, from the command line.

``put NAME FILE`` uploads a CSV (``ra,dec[,radius][,id]``), JSON or VOTable file — through a
pre-signed upload URL when it is larger than one API request may carry (a 10⁶-entry list) —;
``list``, ``show NAME``, ``get NAME`` (the entries as CSV) and ``delete NAME`` do the rest.
The API is ``--api`` or ``$ALERTPROD_API``, the bearer token ``--token`` or ``$ALERTPROD_TOKEN``.
Exit status: 0 done, 1 the API refused (its message on standard error), 2 a usage error.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import quote

from alertprod.errors import AlertprodError

__all__ = ["register"]

#: Files up to this size go in the request body; larger ones through an upload URL.
DIRECT_UPLOAD_BYTES = 4 * 1024 * 1024
_TYPES = {".csv": "text/csv", ".txt": "text/csv", ".json": "application/json",
          ".xml": "application/x-votable+xml", ".vot": "application/x-votable+xml",
          ".votable": "application/x-votable+xml"}


class _ApiRefusedError(AlertprodError):
    def __init__(self, status: int, message: str):
        super().__init__(f"{status}: {message}")


def _call(args: argparse.Namespace, method: str, path: str, data: bytes | None = None,
          content_type: str = "application/json") -> tuple[int, bytes]:
    api, token = args.api or os.environ.get("ALERTPROD_API", ""), args.token or os.environ.get("ALERTPROD_TOKEN", "")
    if not api or not token:
        raise SystemExit("alertprod watchlists: pass --api and --token (or set ALERTPROD_API, ALERTPROD_TOKEN)")
    request = urllib.request.Request(api.rstrip("/") + path, data=data, method=method)
    request.add_header("Authorization", f"Bearer {token}")
    if data is not None:
        request.add_header("Content-Type", content_type)
    try:
        with urllib.request.urlopen(request, timeout=args.timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        body = exc.read()
        try:
            message = json.loads(body)["error"]
        except (ValueError, KeyError, TypeError):
            message = body.decode("utf-8", "replace")[:300]
        raise _ApiRefusedError(exc.code, message) from exc


def _path(name: str, tail: str = "") -> str:
    return f"/api/watchlists/{quote(name, safe='')}{tail}"


def _put(args: argparse.Namespace) -> int:
    path = Path(args.file)
    kind = args.content_type or _TYPES.get(path.suffix.lower())
    if kind is None:
        raise SystemExit(f"alertprod watchlists: {path.name}: unknown type; pass --content-type")
    data = path.read_bytes()
    if len(data) <= DIRECT_UPLOAD_BYTES:
        query = f"?radius_arcsec={args.radius_arcsec}" if args.radius_arcsec else ""
        _, body = _call(args, "PUT", _path(args.name, query), data, kind)
    else:
        _, body = _call(args, "POST", _path(args.name, "/upload"), b"{}")
        upload = json.loads(body)
        put = urllib.request.Request(upload["upload_url"], data=data, method="PUT",
                                     headers={"Content-Type": kind})
        with urllib.request.urlopen(put, timeout=args.timeout):
            pass
        done = {"upload_id": upload["upload_id"], "content_type": kind}
        if args.radius_arcsec:
            done["radius_arcsec"] = args.radius_arcsec
        _, body = _call(args, "POST", _path(args.name, "/complete"), json.dumps(done).encode())
    print(json.dumps(json.loads(body), indent=2))
    return 0


def _show(args: argparse.Namespace) -> int:
    _, body = _call(args, "GET", _path(args.name) if args.name else "/api/watchlists")
    print(json.dumps(json.loads(body), indent=2))
    return 0


def _get(args: argparse.Namespace) -> int:
    _, body = _call(args, "GET", _path(args.name, "/entries"))
    sys.stdout.write(body.decode("utf-8"))
    return 0


def _delete(args: argparse.Namespace) -> int:
    _call(args, "DELETE", _path(args.name))
    print(f"deleted {args.name}")
    return 0


def _run(handler):
    def run(args: argparse.Namespace) -> int:
        try:
            return handler(args)
        except _ApiRefusedError as exc:
            print(f"alertprod watchlists: {exc}", file=sys.stderr)
            return 1
        except (OSError, urllib.error.URLError) as exc:
            print(f"alertprod watchlists: {exc}", file=sys.stderr)
            return 1
    return run


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``alertprod watchlists``."""
    parser = subparsers.add_parser("watchlists", help="upload, list, read and delete your watchlists (API)",
                                   description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--api", help="base URL of the API (default $ALERTPROD_API)")
    parser.add_argument("--token", help="bearer token (default $ALERTPROD_TOKEN)")
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds per request (default 120)")
    sub = parser.add_subparsers(dest="action", metavar="ACTION")
    sub.required = True
    put = sub.add_parser("put", help="upload or replace a watchlist from a CSV, JSON or VOTable file")
    put.add_argument("name")
    put.add_argument("file")
    put.add_argument("--radius-arcsec", type=float, help="radius of rows without one (default 1)")
    put.add_argument("--content-type", choices=sorted(set(_TYPES.values())), help="when the suffix does not say")
    put.set_defaults(func=_run(_put))
    listing = sub.add_parser("list", help="your watchlists")
    listing.set_defaults(func=_run(_show), name=None)
    show = sub.add_parser("show", help="one watchlist's summary")
    show.add_argument("name")
    show.set_defaults(func=_run(_show))
    get = sub.add_parser("get", help="a watchlist's entries as CSV on standard output")
    get.add_argument("name")
    get.set_defaults(func=_run(_get))
    delete = sub.add_parser("delete", help="delete a watchlist no filter of yours names")
    delete.add_argument("name")
    delete.set_defaults(func=_run(_delete))

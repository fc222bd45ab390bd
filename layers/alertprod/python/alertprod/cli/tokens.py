"""``alertprod tokens``: issue, list and revoke API tokens (an operator's command).

The token is printed once, when issued; the service table keeps only its sha256. The table is
``--table`` or ``$SERVICE_TABLE``, reached through ``AWS_ENDPOINT_URL`` when set (the embedded
stack), else AWS.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from datetime import UTC, datetime

from alertprod.api.tokens import issue_token, revoke_token
from alertprod.distribution.store import DynamoServiceStore, ServiceStore
from alertprod.errors import AlertprodError

__all__ = ["register"]


def _store(args: argparse.Namespace) -> ServiceStore:
    from alertprod.aws import make_clients

    table = args.table or os.environ.get("SERVICE_TABLE", "")
    if not table:
        raise AlertprodError("no table: pass --table or set SERVICE_TABLE")
    return DynamoServiceStore(make_clients().dynamodb, table)


def _iso(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def _issue(args: argparse.Namespace) -> int:
    issued = issue_token(_store(args), args.user, label=args.label, days=args.days)
    r = issued.record
    print(f"token: {issued.token}")
    print(f"id: {r.token_id}  user: {r.user_id}  expires: {_iso(r.expires_unix)}")
    print("(the token is shown once; only its hash is stored)", file=sys.stderr)
    return 0


def _list(args: argparse.Namespace) -> int:
    tokens = _store(args).list_tokens(args.user)
    if args.json:
        for t in tokens:
            print(json.dumps({"id": t.token_id, "user": t.user_id, "label": t.label,
                              "created": _iso(t.created_unix), "expires": _iso(t.expires_unix),
                              "revoked": t.revoked}))
        return 0
    print(f"{'id':<13}{'user':<20}{'created':<22}{'expires':<22}{'revoked':<8}label")
    for t in tokens:
        print(f"{t.token_id:<13}{t.user_id:<20}{_iso(t.created_unix):<22}{_iso(t.expires_unix):<22}"
              f"{'yes' if t.revoked else 'no':<8}{t.label}")
    return 0


def _revoke(args: argparse.Namespace) -> int:
    token = revoke_token(_store(args), args.token_id)
    print(f"revoked {token.token_id} (user {token.user_id})")
    return 0


def _run(func):
    def run(args: argparse.Namespace) -> int:
        try:
            return func(args)
        except AlertprodError as exc:
            print(f"alertprod tokens: {exc}", file=sys.stderr)
            return 2
    return run


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``tokens issue``, ``list`` and ``revoke`` to the ``alertprod`` parser."""
    parser = subparsers.add_parser("tokens", help="issue, list and revoke API tokens (operators)",
                                   description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--table", default=None, help="service table (default: $SERVICE_TABLE)")
    sub = parser.add_subparsers(dest="tokens_command", metavar="SUBCOMMAND")
    sub.required = True
    issue = sub.add_parser("issue", help="issue a token for a user and print it (once)")
    issue.add_argument("--user", required=True, help="user id (letters, digits, _ . @ -; up to 64)")
    issue.add_argument("--label", default="", help="what the token is for")
    issue.add_argument("--days", type=float, default=365.0, help="validity, days (default 365)")
    issue.set_defaults(func=_run(_issue))
    lst = sub.add_parser("list", help="list tokens (ids, users, dates; never the tokens)")
    lst.add_argument("--user", default=None, help="only this user's")
    lst.add_argument("--json", action="store_true", help="one JSON document per token")
    lst.set_defaults(func=_run(_list))
    revoke = sub.add_parser("revoke", help="revoke a token by its id (from list)")
    revoke.add_argument("token_id", help="the token's id (first hex digits of its hash)")
    revoke.set_defaults(func=_run(_revoke))

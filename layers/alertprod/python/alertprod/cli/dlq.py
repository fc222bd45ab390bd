"""``alertprod dlq``: the dead-letter queues, for operators — list, look, send back.

- ``dlq list`` — every dead-letter queue with its depth and the queue it serves;
- ``dlq show QUEUE_URL [--max N] [--json]`` — its messages, left in place;
- ``dlq redrive QUEUE_URL [--to URL] [--max N]`` — move them back to be processed again.

On the endpoint of ``AWS_ENDPOINT_URL`` when set (the embedded stack), else on AWS. The
library side is :mod:`alertprod.aws.dlq`.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

__all__ = ["register"]


def _clients() -> Any:
    from alertprod.aws import make_clients  # the CLI builds boto3 clients; the library never does

    return make_clients().sqs


def _list(args: argparse.Namespace) -> int:
    from alertprod.aws.dlq import dead_letter_queues

    queues = dead_letter_queues(_clients(), prefix=args.prefix)
    if not queues:
        print("no dead-letter queue found", file=sys.stderr)
        return 0
    for q in queues:
        print(f"{q.depth:>7}  {q.url}  <- {', '.join(q.sources)}")
    return 0


def _show(args: argparse.Namespace) -> int:
    from alertprod.aws.dlq import peek

    for m in peek(_clients(), args.queue_url, max_messages=args.max):
        if args.json:
            print(json.dumps({"messageId": m.message_id, "body": m.body,
                              "receiveCount": m.attributes.get("ApproximateReceiveCount"),
                              "sentTimestamp": m.attributes.get("SentTimestamp")}))
        else:
            body = m.body if len(m.body) <= 200 else m.body[:197] + "..."
            print(f"{m.message_id}  receives {m.attributes.get('ApproximateReceiveCount', '?')}  {body}")
    return 0


def _redrive(args: argparse.Namespace) -> int:
    from alertprod.aws.dlq import redrive

    moved = sum(1 for _ in redrive(_clients(), args.queue_url, to_url=args.to, max_messages=args.max))
    print(f"moved {moved} message(s) back")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("dlq", help="list, show and redrive the dead-letter queues",
                            description=__doc__.splitlines()[0],
                            formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="dlq_command", metavar="SUBCOMMAND")
    commands.required = True
    p = commands.add_parser("list", help="every dead-letter queue, its depth and source")
    p.add_argument("--prefix", default="", help="only queues whose names start with this")
    p.set_defaults(func=_list)
    p = commands.add_parser("show", help="print a queue's messages, leaving them in place")
    p.add_argument("queue_url")
    p.add_argument("--max", type=int, default=10, help="at most this many (default 10)")
    p.add_argument("--json", action="store_true", help="one JSON document per message")
    p.set_defaults(func=_show)
    p = commands.add_parser("redrive", help="move messages back to their source queue")
    p.add_argument("queue_url")
    p.add_argument("--to", default=None, help="target queue URL (default: the DLQ's one source)")
    p.add_argument("--max", type=int, default=None, help="at most this many (default: all)")
    p.set_defaults(func=_redrive)

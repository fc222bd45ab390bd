"""``alertprod stack``: run the embedded AWS stack (moto + local Lambda runner) in the foreground."""

from __future__ import annotations

import argparse
import threading
from typing import Any

__all__ = ["register"]


def register(subparsers: Any) -> None:
    """Add ``stack up`` and ``stack resources`` to the ``alertprod`` parser."""
    parser = subparsers.add_parser(
        "stack", help="run the embedded AWS stack locally",
        description="The SAM template's resources on moto's server, with the functions run locally.")
    sub = parser.add_subparsers(dest="stack_command", metavar="SUBCOMMAND")
    sub.required = True
    for name, func, text in (
        ("up", _up, "start the stack, print how to reach it, run the functions until Ctrl-C"),
        ("resources", _resources, "start the stack, print every resource's physical id, stop"),
    ):
        p = sub.add_parser(name, help=text, description=text[0].upper() + text[1:] + ".")
        p.add_argument("--template", default=None, help="SAM template (default: infra/template.yaml)")
        p.add_argument("--stack-name", default="alertprod-local", help="lower-case prefix of physical names")
        p.add_argument("--host", default="127.0.0.1", help="address moto listens on (default %(default)s)")
        p.add_argument("--port", type=int, default=4566 if name == "up" else 0,
                       help="port moto listens on (0: any free port; default %(default)s)")
        p.set_defaults(func=func)


def _print_resources(stack: Any) -> None:
    width = max(len(k) for k in stack.template["Resources"])
    for logical_id, spec in stack.template["Resources"].items():
        print(f"  {logical_id:<{width}}  {spec['Type']:<32} {stack.physical_id(logical_id)}")


def _stack(args: argparse.Namespace) -> Any:
    from alertprod.local.stack import EmbeddedStack

    return EmbeddedStack(args.template, stack_name=args.stack_name, host=args.host, port=args.port)


def _resources(args: argparse.Namespace) -> int:
    with _stack(args) as stack:
        _print_resources(stack)
    return 0


def _up(args: argparse.Namespace) -> int:
    import logging

    # failed invocations and partial batch failures, as CloudWatch Logs would show them
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    logging.getLogger("alertprod.local").addHandler(handler)
    logging.getLogger("alertprod.local").setLevel(logging.WARNING)
    stop = threading.Event()
    with _stack(args) as stack:
        print(f"embedded AWS stack on {stack.endpoint_url}")
        print("point boto3 and the AWS CLI at it with:")
        print(f"  export AWS_ENDPOINT_URL={stack.endpoint_url} AWS_DEFAULT_REGION={stack.region} "
              "AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing")
        print("resources:")
        _print_resources(stack)
        print("functions run as messages arrive; failed invocations are printed here. Ctrl-C stops "
              "the stack (its state is not kept).")
        try:
            stack.run_forever(stop)
        except KeyboardInterrupt:
            stop.set()
            print("\nstopping")
    return 0

"""``alertprod reprocess``: withdraw a processed CCD's rows so that a new upload of it is accepted.

``alertprod reprocess --visit V --detector D`` marks the CCD's DiaSources and
DiaForcedSources withdrawn (``timeWithdrawnMjdTai``), gives the DiaObjects they touched new
versions without them, and reopens the CCD: the next upload of ``diasources/{V:08d}/{D:03d}.fits``
is processed as a new one (with new ``diaSourceId`` values) and its alerts are issued. Safe to
repeat after a failure. Prints a JSON summary.

On the deployment named by ``--level1-table``/``--alert-bucket`` (default: the environment's
``LEVEL1_TABLE``/``ALERT_BUCKET``), at the endpoint of ``AWS_ENDPOINT_URL`` when set (the
embedded stack), else on AWS. Library: :func:`alertprod.pipeline.reprocess.reprocess_ccd`.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any

__all__ = ["register"]


def _run(args: argparse.Namespace) -> int:
    from alertprod.apdb import dynamo_level1
    from alertprod.aws import make_clients  # the CLI builds boto3 clients; the library never does
    from alertprod.aws.s3 import S3BlobStore
    from alertprod.errors import AlertprodError
    from alertprod.pipeline.reprocess import reprocess_ccd

    table = args.level1_table or os.environ.get("LEVEL1_TABLE", "")
    bucket = args.alert_bucket or os.environ.get("ALERT_BUCKET", "")
    if not table or not bucket:
        print("alertprod reprocess: give --level1-table and --alert-bucket (or set LEVEL1_TABLE "
              "and ALERT_BUCKET)", file=sys.stderr)
        return 2
    clients = make_clients()
    level1 = dynamo_level1(clients.dynamodb, table)
    try:
        result = reprocess_ccd(level1, S3BlobStore(clients.s3, bucket), args.visit, args.detector)
    except (AlertprodError, ValueError) as exc:
        print(f"alertprod reprocess: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(result.summary()))
    return 0


def register(sub: Any) -> None:
    """Add ``reprocess`` to the ``alertprod`` parser."""
    parser = sub.add_parser("reprocess", help="withdraw a processed CCD so that it can be uploaded again",
                            description=__doc__.split("\n\n")[1],
                            formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--visit", type=int, required=True, help="visit number")
    parser.add_argument("--detector", type=int, required=True, help="detector number")
    parser.add_argument("--level1-table", default=None,
                        help="the Level 1 DynamoDB table (default: $LEVEL1_TABLE)")
    parser.add_argument("--alert-bucket", default=None,
                        help="the alert bucket holding staged plans (default: $ALERT_BUCKET)")
    parser.set_defaults(func=_run)

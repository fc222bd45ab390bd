"""``alertprod templates``: load a data release's deeper template coadds into the archive.

``alertprod templates load DIR`` checks every coadd (``DIR/*.fits``: exposure files with the
``DRNAME``, ``DRPATCH`` and ``DRDEPTH`` cards) and, when all pass, writes them and the index
to the archive bucket (docs/archive.md, "Data-release templates"); a coadd already stored from
the same bytes is not written again, so a rerun is safe. ``--check`` only checks.
``alertprod templates list`` prints the loaded index. The precovery service then offers
``"images": "data_release"`` where a coadd covers a target. ``alertprod simulate`` writes a
survey's coadds to ``OUT/dr_templates``.

On the deployment named by ``--archive-bucket`` (default: the environment's
``ARCHIVE_BUCKET``), at the endpoint of ``AWS_ENDPOINT_URL`` when set (the embedded stack),
else on AWS. Library: :mod:`alertprod.archive.data_release`.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any

__all__ = ["register"]


def _archive(args: argparse.Namespace):
    from alertprod.aws import make_clients  # the CLI builds boto3 clients; the library never does
    from alertprod.aws.s3 import S3BlobStore

    bucket = args.archive_bucket or os.environ.get("ARCHIVE_BUCKET", "")
    if not bucket:
        print("alertprod templates: give --archive-bucket (or set ARCHIVE_BUCKET)", file=sys.stderr)
        return None
    return S3BlobStore(make_clients().s3, bucket)


def _load(args: argparse.Namespace) -> int:
    from alertprod.archive.data_release import load_data_release
    from alertprod.aws import MemoryBlobStore
    from alertprod.errors import AlertprodError

    archive = MemoryBlobStore() if args.check else _archive(args)
    if archive is None:
        return 2
    try:
        report = load_data_release(args.directory, archive)
    except AlertprodError as exc:
        print(f"alertprod templates load: {exc}", file=sys.stderr)
        return 1
    if args.check:
        report = {**report, "checked": True, "written": 0}
    print(json.dumps(report))
    return 0


def _list(args: argparse.Namespace) -> int:
    from alertprod.archive.data_release import read_data_release_index

    archive = _archive(args)
    if archive is None:
        return 2
    index = read_data_release_index(archive)
    if index is None:
        print("no data-release templates are loaded")
        return 0
    print(f"release {index.release}: {len(index)} coadds")
    for t in sorted(index.templates, key=lambda t: (t.patch, t.band)):
        ra, dec = t.corners.mean(axis=0)
        print(f"  {t.patch:<12} {t.band}  depth {t.depth_visits:>4} visits  "
              f"centre ({ra:.4f}, {dec:+.4f})  {t.key}")
    return 0


def register(sub: Any) -> None:
    """Add ``templates load`` and ``templates list`` to the ``alertprod`` parser."""
    parser = sub.add_parser("templates", help="load data-release template coadds into the archive",
                            description=__doc__.split("\n\n")[1],
                            formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="templates_command", metavar="SUBCOMMAND")
    commands.required = True
    load = commands.add_parser("load", help="check and load the coadds of a directory",
                               description="Check every DIR/*.fits coadd, then write them and "
                                           "the index to the archive bucket.")
    load.add_argument("directory", metavar="DIR", help="directory of one release's coadds")
    load.add_argument("--check", action="store_true", help="only check the coadds; write nothing")
    listing = commands.add_parser("list", help="print the loaded data-release index")
    for p in (load, listing):
        p.add_argument("--archive-bucket", default=None,
                       help="the archive bucket (default: $ARCHIVE_BUCKET)")
    load.set_defaults(func=_load)
    listing.set_defaults(func=_list)

"""``alertprod alerts``: watch the alert stream (``tail``), read alert files (``show``), write them
as VOEvent 2.0 documents (``voevent``) and send those to a VOEvent broker (``vtp-send``).

``alertprod alerts tail`` subscribes a private queue to the alert topic — on the endpoint in
``AWS_ENDPOINT_URL`` (the embedded stack) or on AWS — and prints one line per alert, or one JSON
document per line with ``--json``; the queue is deleted on exit.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from alertprod.alerts.client import AlertConsumer
from alertprod.alerts.serialize import deserialize_alert, read_alert_container
from alertprod.alerts.voevent import VOEventConfig, voevent_bytes
from alertprod.errors import AlertprodError, AlertSchemaError

__all__ = ["register", "summary_line", "alert_json"]

_HEADER = f"{'alert_id':>20} {'band':>4} {'ra':>11} {'dec':>11} {'snr':>8}  flags"


def summary_line(alert: Mapping[str, Any]) -> str:
    """One line: id, band, ra/dec (deg), snr, ``new`` / ``ss`` flags."""
    src = alert["diaSource"]
    obj = alert.get("diaObject")
    flags = []
    if obj is not None and (obj.get("diaObjectId") == alert["diaSourceId"] or obj.get("nDiaSources") == 1):
        flags.append("new")
    if alert.get("ssSource") is not None or src.get("ssObjectId") not in (None, 0):
        flags.append("ss")
    snr = src.get("snr")
    snr_text = f"{snr:8.1f}" if snr is not None and math.isfinite(snr) else f"{'-':>8}"
    return (f"{alert['diaSourceId']:>20} {src.get('band') or '-':>4} {src['ra']:11.6f} "
            f"{src['dec']:11.6f} {snr_text}  {','.join(flags)}")


def alert_json(alert: Mapping[str, Any], *, attributes: Mapping[str, Any] | None = None) -> str:
    """The alert as one line of JSON; cutouts are replaced by their size in bytes, NaN by null."""

    def clean(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: clean(v) for k, v in value.items()}
        if isinstance(value, list):
            return [clean(v) for v in value]
        if isinstance(value, bytes):
            return {"bytes": len(value)}
        if isinstance(value, float) and not math.isfinite(value):
            return None
        return value

    doc = clean(dict(alert))
    if attributes is not None:
        doc["_attributes"] = dict(attributes)
    return json.dumps(doc, default=str)


def _tail(args: argparse.Namespace) -> int:
    topic_arn = args.topic_arn or os.environ.get("ALERT_TOPIC_ARN", "")
    if not topic_arn:
        print("alertprod alerts tail: give --topic-arn or set ALERT_TOPIC_ARN", file=sys.stderr)
        return 2
    try:
        policy = json.loads(args.filter_policy) if args.filter_policy else None
    except json.JSONDecodeError as exc:
        print(f"alertprod alerts tail: --filter-policy is not JSON: {exc}", file=sys.stderr)
        return 2
    from alertprod.aws import make_clients  # the CLI builds boto3 clients; the library never does

    clients = make_clients()
    shown = 0
    last_seen = time.monotonic()
    bucket = os.environ.get("ALERT_BUCKET")
    where = os.environ.get("AWS_ENDPOINT_URL", "AWS")
    print(f"# tailing {topic_arn} on {where}" + (f" (archive s3://{bucket})" if bucket else ""),
          file=sys.stderr)
    try:
        with AlertConsumer(clients.sqs, clients.sns, clients.s3, topic_arn, filter_policy=policy) as consumer:
            if not args.json:
                print(_HEADER, flush=True)
            while args.count is None or shown < args.count:
                batch = consumer.poll(max_messages=10, wait_s=args.wait_s)
                if batch:
                    last_seen = time.monotonic()
                elif args.idle_timeout_s is not None and time.monotonic() - last_seen > args.idle_timeout_s:
                    break
                for received in batch[: None if args.count is None else args.count - shown]:
                    print(alert_json(received.alert, attributes=received.attributes) if args.json
                          else summary_line(received.alert), flush=True)
                    shown += 1
    except KeyboardInterrupt:
        pass
    except AlertprodError as exc:
        print(f"alertprod alerts tail: {exc}", file=sys.stderr)
        return 1
    return 0


def _read_alerts(path: str) -> list[dict[str, Any]]:
    """The alerts of one file: an Avro container file or a single framed packet."""
    data = Path(path).read_bytes()
    if data[:1] == b"\x00":
        return [deserialize_alert(data)]
    try:
        return list(read_alert_container(data))
    except (ValueError, EOFError, TypeError) as exc:   # a corrupt block past the header
        raise AlertSchemaError(f"corrupt Avro container file: {exc}") from exc


def _show(args: argparse.Namespace) -> int:
    status = 0
    for path in args.files:
        try:
            records = _read_alerts(path)
        except AlertprodError as exc:
            print(f"{path}: {exc}", file=sys.stderr)
            status = 1
            continue
        for alert in records:
            print(alert_json(alert) if args.json else summary_line(alert))
    return status


def _voevent(args: argparse.Namespace) -> int:
    try:
        config = VOEventConfig(authority=args.authority, resource=args.resource, role=args.role,
                               contact_name=args.contact_name, contact_email=args.contact_email,
                               alert_url_template=args.alert_url_template)
    except AlertprodError as exc:
        print(f"alertprod alerts voevent: {exc}", file=sys.stderr)
        return 2
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    status, written = 0, 0
    for path in args.files:
        try:
            for alert in _read_alerts(path):
                document = voevent_bytes(alert, config=config)
                (out / f"{int(alert['diaSourceId'])}.xml").write_bytes(document)
                written += 1
        except (AlertprodError, OSError) as exc:
            print(f"{path}: {exc}", file=sys.stderr)
            status = 1
    print(f"{written} VOEvent documents written to {out}", file=sys.stderr)
    return status


def _vtp_send(args: argparse.Namespace) -> int:
    from alertprod.delivery.vtp import VtpClient, VtpConfig, parse_broker_address

    try:
        host, port = parse_broker_address(args.broker)
        config = VtpConfig(local_ivorn=args.local_ivorn, response_timeout_s=args.timeout_s,
                           connect_timeout_s=min(args.timeout_s, 10.0),
                           max_attempts=args.attempts)
        documents = [Path(p).read_bytes() for p in args.files]
        with VtpClient(host, port, config=config) as client:
            report = client.send(documents)
    except (AlertprodError, OSError) as exc:
        print(f"alertprod alerts vtp-send: {exc}", file=sys.stderr)
        return 2
    for ivorn in report.acked:
        print(f"ack  {ivorn}")
    for ivorn, reason in report.naked.items():
        print(f"nak  {ivorn}  {reason}")
    for ivorn, reason in report.failed.items():
        print(f"fail {ivorn}  {reason}")
    return 0 if report.all_acked else 1


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``alerts tail``, ``show``, ``voevent`` and ``vtp-send`` to the ``alertprod`` parser."""
    parser = subparsers.add_parser("alerts", help="watch the alert stream, read alert files, "
                                   "write and send VOEvents",
                                   description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="alerts_command", metavar="SUBCOMMAND")
    sub.required = True

    tail = sub.add_parser("tail", help="print alerts as they are published",
                          description="Subscribe a temporary SQS queue to the alert topic and print "
                          "one line per alert (id, band, ra, dec, snr, new/ss flags). Uses "
                          "AWS_ENDPOINT_URL when set (the embedded stack), else AWS.")
    tail.add_argument("--topic-arn", default=None, help="alert topic (default: $ALERT_TOPIC_ARN)")
    tail.add_argument("--filter-policy", default=None, metavar="JSON",
                      help='SNS filter policy on the attributes, e.g. \'{"band": ["r"], '
                      '"snr": [{"numeric": [">", 10]}]}\'; attributes: band, snr, reliability, ra, '
                      "dec, is_new_object, is_solar_system, alert_id, schema_version, claim_check")
    tail.add_argument("--count", type=int, default=None, metavar="N", help="stop after N alerts")
    tail.add_argument("--json", action="store_true", help="one JSON document per alert (cutouts as sizes)")
    tail.add_argument("--wait-s", type=float, default=5.0, help="SQS long-poll time, s (0-20; default 5)")
    tail.add_argument("--idle-timeout-s", type=float, default=None,
                      help="stop when no alert arrived for this long, s (default: never)")
    tail.set_defaults(func=_tail)

    show = sub.add_parser("show", help="print alerts of .avro files (container files or framed packets)")
    show.add_argument("files", nargs="+", help="Avro container files (archive, replay export) or framed packets")
    show.add_argument("--json", action="store_true", help="one JSON document per alert (cutouts as sizes)")
    show.set_defaults(func=_show)

    voevent = sub.add_parser(
        "voevent", help="write one VOEvent 2.0 document per alert (DIR/<diaSourceId>.xml)",
        description="Write one VOEvent 2.0 document per alert of the given files (Avro container "
        "files as a replay exports them, or framed packets) to DIR/<diaSourceId>.xml. The ivorn "
        "is ivo://AUTHORITY/RESOURCE#<diaSourceId>; see docs/voevent.md.")
    voevent.add_argument("files", nargs="+", metavar="FILE",
                         help="Avro container files (archive, replay export) or framed packets")
    voevent.add_argument("--out", required=True, metavar="DIR", help="output directory (created)")
    voevent.add_argument("--authority", default=VOEventConfig.authority,
                         help=f"IVOA naming authority of the ivorns (default {VOEventConfig.authority})")
    voevent.add_argument("--resource", default=VOEventConfig.resource,
                         help=f"resource key of the ivorns (default {VOEventConfig.resource})")
    voevent.add_argument("--role", default="observation",
                         choices=("observation", "test", "utility", "prediction"),
                         help="VOEvent role (default observation)")
    voevent.add_argument("--contact-name", default="", help="Who/Author/contactName")
    voevent.add_argument("--contact-email", default="", help="Who/Author/contactEmail")
    voevent.add_argument("--alert-url-template", default=None, metavar="TEMPLATE",
                         help="add a Reference to the full packet, e.g. "
                         "'https://alerts.example.org/{visit:08d}/{detector:03d}/{diaSourceId}.avro'")
    voevent.set_defaults(func=_voevent)

    send = sub.add_parser(
        "vtp-send", help="send VOEvent documents to a broker (VOEvent Transport Protocol)",
        description="Send VOEvent XML files to a broker's VTP port, one ack or nak per event; "
        "prints 'ack|nak|fail IVORN [reason]' per event; exit 0 when every event was acked, 1 "
        "otherwise, 2 on bad arguments or unreadable files.")
    send.add_argument("files", nargs="+", metavar="XML", help="VOEvent documents")
    send.add_argument("--broker", required=True, metavar="HOST:PORT", help="broker (port default 8098)")
    send.add_argument("--local-ivorn", default="ivo://alertprod.invalid/alertprod",
                      help="our identity in iamalive replies")
    send.add_argument("--timeout-s", type=float, default=20.0, help="time for each ack, s (default 20)")
    send.add_argument("--attempts", type=int, default=3, help="tries per event (default 3)")
    send.set_defaults(func=_vtp_send)

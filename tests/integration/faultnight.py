"""One small night on the embedded stack, its content, and a comparison of two nights' content.

The night: two adjacent CCDs observed in three visits of one field (visit 3 only on CCD 0),
with objects on both CCDs and near their shared edge, one object new in visit 2, one missed
in visit 2 (forced photometry), then the daytime precovery at 15:00 UTC. A scenario runs it
with faults and compares what it leaves with what a clean run leaves:

- the Level 1 database: every table of the export, row for row, on every column — except
  the ones a clean rerun changes by itself (:data:`RUN_DEPENDENT_COLUMNS`);
- the alert archive: the same keys with the same bytes;
- the alert stream (an SQS queue subscribed to the alert topic, as a broker's): the same set
  of ``alert_id`` values with the same packet bytes each. Duplicates are counted, not refused:
  the stream is at-least-once by design (a crash between a publish and its mark re-sends at
  most that batch of 10; consumers deduplicate on ``alert_id``, docs/pipeline.md);
- nothing quarantined, nothing in a dead-letter queue, every CCD ``done``.

Between scenarios the stack's data are wiped (tables, buckets, queues), so one stack serves a
whole matrix; the state after a prefix of the night can be saved and restored the same way.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
from ccdsky import CcdSky

from alertprod.alerts import decode_message, read_alert_container
from alertprod.apdb import dynamo_level1
from alertprod.aws import Services
from alertprod.pipeline.dispatch import handle_upload
from alertprod.pipeline.nightly import NightlyPipeline

#: Columns whose values a clean rerun of the same night changes: when the row was computed
#: (wall clock). Every other value is a science time or a deterministic function of the inputs.
RUN_DEPENDENT_COLUMNS: frozenset[str] = frozenset({"timeProcessedMjdTai"})
VISITS = {1: 60000.10, 2: 60000.11, 3: 60000.12}
#: The stack's clock at the start of the night (before visit 1's midpoint).
NIGHT_START = datetime(2023, 2, 25, 2, 0, tzinfo=UTC)  # MJD 60000.083
ID_KEYS = {"DiaObject": ("diaObjectId",), "DiaObjectHistory": ("diaObjectId", "validityStartMjdTai"),
           "DiaSource": ("diaSourceId",), "DiaForcedSource": ("diaForcedSourceId",),
           "SSObject": ("ssObjectId",)}


def build_uploads() -> dict[tuple[int, int], tuple[str, bytes, dict[str, bytes]]]:
    """``{(visit, detector): (catalog key, catalog bytes, {image key: bytes})}`` of the night."""
    sky = CcdSky(n_detectors=2, npix=200)
    rng = np.random.default_rng(11)
    stars = [sky.radec(d, *rng.uniform(25, 175, 2)) for d in (0, 1) for _ in range(4)]
    stars += [sky.radec(0, 196.0, 100.0), sky.radec(1, 3.0, 60.0)]  # at the shared edge
    newcomer = sky.radec(0, 120.0, 150.0)  # appears in visit 2
    uploads = {}
    for v, mjd in VISITS.items():
        sources = [(ra, dec, 5000.0 + 400 * v, not (v == 2 and k == 1))  # star 1 missed in visit 2
                   for k, (ra, dec) in enumerate(stars)]
        if v >= 2:
            sources.append((*newcomer, 8000.0, True))
        for d in ((0, 1) if v < 3 else (0,)):
            uploads[(v, d)] = sky.upload(v, d, mjd, sources)
    return uploads


def put_images(stack, images: dict[str, bytes]) -> None:
    for key, data in images.items():
        stack.clients.s3.put_object(Bucket=stack.resources.image_bucket, Key=key, Body=data)


def put_catalog(stack, key: str, cat: bytes) -> None:
    stack.clients.s3.put_object(Bucket=stack.resources.upload_bucket, Key=key, Body=cat)


def upload(stack, item: tuple[str, bytes, dict[str, bytes]]) -> None:
    """Images first, then the catalog (the contract's order)."""
    key, cat, images = item
    put_images(stack, images)
    put_catalog(stack, key, cat)


def quiet_schedules(stack, keep: tuple[str, ...] = ("PrecoveryPlannerFunction",
                                                   "OrbitRefreshPlannerFunction")) -> None:
    """Keep only the night's own schedules (the precovery service's once-a-minute dispatcher
    would fire 800 times while the clock crosses a day, with nothing to dispatch)."""
    stack.schedules[:] = [s for s in stack.schedules if s.function_id in keep]


def end_night(stack) -> None:
    """Run the queues dry, then cross 15:00 UTC: the daytime precovery of the night."""
    stack.run_until_idle(timeout_s=300)
    stack.advance_clock(to=NIGHT_START.replace(hour=15, minute=30))
    stack.run_until_idle(timeout_s=300)


def expire_leases(stack) -> int:
    """Let every lease expire, as the lease TTL (120 s) passes before a killed CCD's message
    returns (visibility timeout 720 s). Returns the leases expired."""
    ddb, table = stack.clients.dynamodb, stack.resources.level1_table
    n = 0
    for item in _scan(ddb, table):
        if item["pk"]["S"].startswith("LEASE#") and float(item.get("expiresAt", {"N": "0"})["N"]) > 1:
            ddb.update_item(TableName=table, Key={"pk": item["pk"], "sk": item["sk"]},
                            UpdateExpression="SET expiresAt = :past",
                            ExpressionAttributeValues={":past": {"N": "1"}})
            n += 1
    return n


def ledger_state(stack, visit: int, detector: int) -> str | None:
    """The ledger state of one CCD."""
    item = stack.clients.dynamodb.get_item(
        TableName=stack.resources.level1_table, ConsistentRead=True,
        Key={"pk": {"S": f"CCD#{visit:08d}#{detector:03d}"}, "sk": {"S": "LEDGER"}}).get("Item")
    return item["state"]["S"] if item else None


def process_now(stack, key: str) -> str:
    """Process one catalog at once, outside the function (a neighbouring CCD's Lambda)."""
    services = Services.from_resources(stack.resources, clients=stack.clients)
    pipeline = NightlyPipeline.from_services(services)
    return handle_upload(services, stack.resources.upload_bucket, key, pipeline=pipeline).status


# -- content -----------------------------------------------------------------------------------
def _scan(ddb, table: str):
    kwargs: dict[str, Any] = {"TableName": table}
    while True:
        page = ddb.scan(**kwargs)
        yield from page.get("Items", [])
        if "LastEvaluatedKey" not in page:
            return
        kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def _list(s3, bucket: str, prefix: str = "") -> list[str]:
    keys, kwargs = [], {"Bucket": bucket, "Prefix": prefix}
    while True:
        page = s3.list_objects_v2(**kwargs)
        keys += [o["Key"] for o in page.get("Contents", [])]
        if not page.get("IsTruncated"):
            return keys
        kwargs["ContinuationToken"] = page["NextContinuationToken"]


def subscribe_stream(stack) -> str:
    """An SQS queue subscribed to the alert topic (raw delivery), as a broker's; its URL."""
    sqs, sns = stack.clients.sqs, stack.clients.sns
    url = sqs.create_queue(QueueName="fault-matrix-stream")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    sns.subscribe(TopicArn=stack.resources.alert_topic_arn, Protocol="sqs", Endpoint=arn,
                  Attributes={"RawMessageDelivery": "true"})
    return url


def _drain(sqs, url: str) -> list[dict]:
    out = []
    while True:
        msgs = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=0,
                                   MessageAttributeNames=["All"]).get("Messages", [])
        if not msgs:
            return out
        out += msgs
        sqs.delete_message_batch(QueueUrl=url, Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]}
                                                        for i, m in enumerate(msgs)])


@dataclass
class NightContent:
    """What a night left behind, in comparable form."""

    tables: dict[str, list[tuple]]
    columns: dict[str, list[str]]
    archive: dict[str, str]
    stream: dict[int, set[str]]
    stream_duplicates: int
    quarantined: list[str]
    dead_letters: dict[str, int]
    ledger: dict[str, str]
    extra: dict[str, Any] = field(default_factory=dict)


def _digest(data: bytes | str) -> str:
    return hashlib.sha256(data if isinstance(data, bytes) else data.encode()).hexdigest()[:16]


def _canonical(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _canonical(v) for k, v in sorted(value.items()) if k not in RUN_DEPENDENT_COLUMNS}
    if isinstance(value, list | tuple):
        return [_canonical(v) for v in value]
    if isinstance(value, bytes):
        return _digest(value)
    if isinstance(value, float) and np.isnan(value):
        return "nan"
    return value


def packet_digest(alert: dict) -> str:
    """Digest of an alert's content, run-dependent fields left out."""
    return _digest(json.dumps(_canonical(alert), sort_keys=True, default=repr))


def _rows(table, name: str) -> tuple[list[str], list[tuple]]:
    cols = [c for c in table.colnames if c not in RUN_DEPENDENT_COLUMNS]
    out = []
    for row in table:
        vals = []
        for c in cols:
            v = row[c]
            if np.ma.is_masked(v):
                vals.append(None)
            elif isinstance(v, float | np.floating) and np.isnan(v):
                vals.append("nan")
            elif isinstance(v, np.ndarray):
                vals.append(tuple(v.tolist()))
            else:
                vals.append(v.item() if hasattr(v, "item") else v)
        out.append(tuple(vals))
    keys = [cols.index(k) for k in ID_KEYS.get(name, cols[:1]) if k in cols]
    out.sort(key=lambda r: tuple(r[i] for i in keys))
    return cols, out


def night_content(stack, stream_url: str, *, drain: bool = True) -> NightContent:
    """Export the Level 1 database, the archive and the stream (draining its queue, or
    leaving its messages there with ``drain=False``)."""
    res, s3, sqs = stack.resources, stack.clients.s3, stack.clients.sqs
    tables = dynamo_level1(stack.clients.dynamodb, res.level1_table).apdb.export()
    rows, columns = {}, {}
    for name, t in tables.items():
        columns[name], rows[name] = _rows(t, name)
    archive = {k: ",".join(packet_digest(a) for a in read_alert_container(
        s3.get_object(Bucket=res.alert_bucket, Key=k)["Body"].read()))
        for k in _list(s3, res.alert_bucket, "alerts/")}
    stream: dict[int, set[str]] = {}
    count: Counter = Counter()
    messages = _drain(sqs, stream_url)
    if not drain:
        _resend(sqs, stream_url, messages)
    for m in messages:
        aid = int(m["MessageAttributes"]["alert_id"]["StringValue"])
        alert, _ = decode_message(m["Body"], s3)
        stream.setdefault(aid, set()).add(packet_digest(alert))
        count[aid] += 1
    dlqs = {}
    for url in stack.physical_ids("AWS::SQS::Queue"):
        if url.lower().endswith("dlq"):
            attrs = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages"])
            dlqs[url.rsplit("/", 1)[-1]] = int(attrs["Attributes"]["ApproximateNumberOfMessages"])
    ledger = {i["pk"]["S"]: i["state"]["S"] for i in _scan(stack.clients.dynamodb, res.level1_table)
              if i["pk"]["S"].startswith("CCD#")}
    return NightContent(rows, columns, archive, stream, sum(count.values()) - len(count),
                        _list(s3, res.upload_bucket, "quarantine/"), dlqs, ledger)


def differences(clean: NightContent, got: NightContent) -> list[str]:
    """What differs between a clean night and a scenario's (empty when they are equal)."""
    out = []
    for name in sorted(set(clean.tables) | set(got.tables)):
        a, b = clean.tables.get(name, []), got.tables.get(name, [])
        if clean.columns.get(name) != got.columns.get(name):
            out.append(f"{name}: columns differ")
        elif a != b:
            lost, extra = len(set(a) - set(b)), len(set(b) - set(a))
            cols = clean.columns[name]
            changed = sorted({cols[i] for ra, rb in zip(a, b, strict=False)
                              for i in range(len(cols)) if ra[i] != rb[i]})
            out.append(f"{name}: {len(a)} rows clean, {len(b)} here; {lost} missing or changed, "
                       f"{extra} extra or changed (columns {changed[:8]})")
    if clean.archive != got.archive:
        out.append(f"archive: {len(set(clean.archive.items()) ^ set(got.archive.items()))} "
                   f"objects differ")
    if set(clean.stream) != set(got.stream):
        out.append(f"stream: {len(set(clean.stream) - set(got.stream))} alerts lost, "
                   f"{len(set(got.stream) - set(clean.stream))} unexpected")
    changed = [a for a in clean.stream if a in got.stream and got.stream[a] != clean.stream[a]]
    if changed:
        out.append(f"stream: {len(changed)} alerts with other or several contents")
    if got.quarantined != clean.quarantined:
        out.append(f"quarantined: {got.quarantined}")
    if any(got.dead_letters.values()):
        out.append(f"dead letters: {got.dead_letters}")
    if set(got.ledger.values()) - {"done"} or got.ledger.keys() != clean.ledger.keys():
        out.append(f"ledger: {got.ledger}")
    return out


# -- wiping and restoring the stack's data ----------------------------------------------------
def wipe(stack) -> None:
    """Empty every table, bucket and queue of the stack (the resources stay).

    The stack's own tables and buckets, by its template: moto's server outlives one test and
    holds other tests' tables too, and ``ListTables`` answers 100 names a page (a wipe that
    read one page once missed the stack's tables after a busy module).
    """
    ddb, s3 = stack.clients.dynamodb, stack.clients.s3
    for table in stack.physical_ids("AWS::DynamoDB::Table"):
        schema = [k["AttributeName"] for k in ddb.describe_table(TableName=table)["Table"]["KeySchema"]]
        keys = [{k: i[k] for k in schema} for i in _scan(ddb, table)]
        for s in range(0, len(keys), 25):
            ddb.batch_write_item(RequestItems={table: [{"DeleteRequest": {"Key": k}}
                                                       for k in keys[s:s + 25]]})
    for bucket in stack.physical_ids("AWS::S3::Bucket"):
        keys = _list(s3, bucket)
        for s in range(0, len(keys), 1000):
            s3.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": k} for k in keys[s:s + 1000]]})
    purge_queues(stack)


def purge_queues(stack) -> None:
    """Empty every queue (received and deleted: SQS allows one PurgeQueue a minute)."""
    sqs = stack.clients.sqs
    for page in sqs.get_paginator("list_queues").paginate():
        for url in page.get("QueueUrls", []):
            _drain(sqs, url)


def reset_clock(stack) -> None:
    """Back to the night's start, schedules re-armed from there (the stack's own fields)."""
    stack._clock_offset = NIGHT_START - datetime.now(UTC)
    stack._schedule_cursor = NIGHT_START


def day() -> timedelta:
    return timedelta(days=1)


def dumps(content: NightContent) -> str:
    """A short JSON summary of a night (counts per table, alerts, duplicates)."""
    return json.dumps({"rows": {k: len(v) for k, v in content.tables.items()},
                       "alerts": len(content.stream), "duplicates": content.stream_duplicates})


@dataclass
class Saved:
    """The data of a stack at one moment: table items, bucket objects, the stream's messages."""

    items: dict[str, list[dict]]
    objects: dict[str, dict[str, bytes]]
    stream: list[dict]


def save(stack, stream_url: str) -> Saved:
    ddb, s3, sqs = stack.clients.dynamodb, stack.clients.s3, stack.clients.sqs
    items = {t: list(_scan(ddb, t)) for t in stack.physical_ids("AWS::DynamoDB::Table")}
    objects = {b: {k: s3.get_object(Bucket=b, Key=k)["Body"].read() for k in _list(s3, b)}
               for b in stack.physical_ids("AWS::S3::Bucket")}
    stream = _drain(sqs, stream_url)
    _resend(sqs, stream_url, stream)
    return Saved(items, objects, stream)


def _resend(sqs, url: str, messages: list[dict]) -> None:
    for m in messages:
        attrs = {k: {"DataType": v["DataType"], "StringValue": v["StringValue"]}
                 for k, v in m.get("MessageAttributes", {}).items() if "StringValue" in v}
        sqs.send_message(QueueUrl=url, MessageBody=m["Body"], MessageAttributes=attrs)


def restore(stack, saved: Saved, stream_url: str) -> None:
    """Wipe the stack's data and put ``saved`` back (no event of the restore is delivered)."""
    wipe(stack)
    ddb, s3 = stack.clients.dynamodb, stack.clients.s3
    for table, items in saved.items.items():
        for s in range(0, len(items), 25):
            ddb.batch_write_item(RequestItems={table: [{"PutRequest": {"Item": i}}
                                                       for i in items[s:s + 25]]})
    for bucket, objects in saved.objects.items():
        for k, data in objects.items():
            s3.put_object(Bucket=bucket, Key=k, Body=data)
    purge_queues(stack)
    _resend(stack.clients.sqs, stream_url, saved.stream)

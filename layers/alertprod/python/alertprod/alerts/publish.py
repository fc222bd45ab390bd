"""Publishing alerts: archive each packet, then send it to the alert topic, by claim-check when too big.

Every alert is archived first at ``alerts/{visit:08d}/{detector:03d}/{diaSourceId}.avro`` (an Avro
object-container file, one record, schema embedded), then published to the topic: the message
body is the base64 of the Confluent-framed packet, with message attributes brokers can filter on.
A packet whose message would exceed SNS's 256 KB (base64 inflates by 4/3) travels by claim-check:
the body is the JSON pointer ``{"claimCheck": "s3://bucket/key", "alertId": "..."}`` to the
archived copy, and the attribute ``claim_check`` is ``"true"``;
:class:`~alertprod.alerts.client.AlertConsumer` resolves it transparently.

The archive and the topic are injected (:class:`ArchiveStore`, :class:`AlertTopic`; in the cloud
:class:`alertprod.aws.S3BlobStore` and :class:`alertprod.aws.SnsTopic`), so this module never
touches boto3.
"""

from __future__ import annotations

import base64
import json
import math
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, NamedTuple, Protocol

import numpy as np

from alertprod.alerts.schema import SCHEMA_VERSION
from alertprod.alerts.serialize import container_from_packets, serialize_alert
from alertprod.errors import AlertSchemaError, ConfigError

__all__ = [
    "PreparedAlert",
    "prepare_alerts",
    "MAX_SNS_MESSAGE_BYTES",
    "MAX_SNS_BATCH_ENTRIES",
    "DEFAULT_MAX_MESSAGE_BYTES",
    "ArchiveStore",
    "AlertTopic",
    "PublishLedger",
    "MemoryPublishLedger",
    "AlertMarksLedger",
    "PublishStats",
    "AlertPublisher",
    "archive_key",
    "alert_attributes",
    "message_size",
]

#: SNS's limit on one message (body plus attribute names, types and values), and on a batch.
MAX_SNS_MESSAGE_BYTES = 262_144
#: SNS's limit on entries per PublishBatch call.
MAX_SNS_BATCH_ENTRIES = 10
#: Our default cap per message: SNS's limit less 4 KB of headroom for the envelope SNS adds when
#: it delivers to a subscriber without raw delivery.
DEFAULT_MAX_MESSAGE_BYTES = MAX_SNS_MESSAGE_BYTES - 4096


class ArchiveStore(Protocol):
    """Where archived packets go (e.g. :class:`alertprod.aws.S3BlobStore` on the alert bucket)."""

    def put(self, key: str, data: bytes, *, content_type: str | None = None,
            metadata: Mapping[str, str] | None = None) -> None: ...

    def uri(self, key: str) -> str: ...


class AlertTopic(Protocol):
    """Where alerts are announced (e.g. :class:`alertprod.aws.SnsTopic`)."""

    def publish_batch(self, entries: Iterable[tuple[str, Mapping[str, Any] | None]], *,
                      on_batch: Callable[[list[int]], None] | None = None) -> list[str]:
        """Publish within the service's batch limits; ``on_batch(positions)`` after each
        accepted batch (the one batching rule lives in the adapter)."""


class PublishLedger(Protocol):
    """Idempotency hook: which alerts were already published (e.g. by an earlier, retried attempt).

    Batch-shaped, so that a database-backed ledger costs one read and one write per batch.
    """

    def published(self, alert_ids: Sequence[int]) -> set[int]: ...

    def mark_published(self, alert_ids: Sequence[int]) -> None: ...


class MemoryPublishLedger:
    """A :class:`PublishLedger` in memory (tests, one-process runs); thread-safe."""

    def __init__(self) -> None:
        self._ids: set[int] = set()
        self._lock = threading.Lock()

    def published(self, alert_ids: Sequence[int]) -> set[int]:
        with self._lock:
            return {int(i) for i in alert_ids} & self._ids

    def mark_published(self, alert_ids: Sequence[int]) -> None:
        with self._lock:
            self._ids.update(int(i) for i in alert_ids)

    def __len__(self) -> int:
        return len(self._ids)


class AlertMarksLedger:
    """A :class:`PublishLedger` over a store of per-alert states, such as the APDB's CCD ledger.

    Parameters
    ----------
    marks : object
        Anything with ``get_alert_marks(ids) -> {id: state}`` and ``mark_alerts(ids, state)``
        (e.g. :class:`alertprod.apdb.ledger.CcdLedger`).
    state : str
        The state that means "published".
    """

    def __init__(self, marks: Any, *, state: str = "published") -> None:
        for method in ("get_alert_marks", "mark_alerts"):
            if not callable(getattr(marks, method, None)):
                raise ConfigError(f"marks: {type(marks).__name__} has no {method}()")
        self.marks = marks
        self.state = state

    def published(self, alert_ids: Sequence[int]) -> set[int]:
        if not alert_ids:
            return set()
        return {int(i) for i, s in self.marks.get_alert_marks(list(alert_ids)).items() if s == self.state}

    def mark_published(self, alert_ids: Sequence[int]) -> None:
        if alert_ids:
            self.marks.mark_alerts(list(alert_ids), self.state)


class PreparedAlert(NamedTuple):
    """An alert serialised once, ready to archive and publish.

    Attributes
    ----------
    alert_id : int
        Its ``diaSourceId``.
    archive_key : str
        Where it is archived (:func:`archive_key`).
    packet : bytes
        The Confluent-framed Avro packet.
    attributes : dict
        Its SNS message attributes (:func:`alert_attributes`).
    """

    alert_id: int
    archive_key: str
    packet: bytes
    attributes: dict[str, str | float]


def prepare_alerts(alerts: Sequence[Mapping[str, Any]]) -> list[PreparedAlert]:
    """Serialise alerts once (packet, archive key, attributes), for staging and publishing."""
    return [PreparedAlert(int(a["diaSourceId"]), archive_key(a), serialize_alert(a), alert_attributes(a))
            for a in alerts]


class PublishStats(NamedTuple):
    """What one :meth:`AlertPublisher.publish` call did.

    Attributes
    ----------
    published : int
        Alerts announced on the topic (inline or by claim-check).
    claim_checked : int
        Of those, alerts sent as a claim-check pointer to the archive.
    skipped : int
        Alerts the ledger reported as already published (neither archived nor sent again).
    packet_bytes : int
        Total size of the Confluent-framed packets, bytes.
    message_bytes : int
        Total size of the SNS messages (body and attributes), bytes.
    batches : int
        PublishBatch calls made.
    """

    published: int
    claim_checked: int
    skipped: int
    packet_bytes: int
    message_bytes: int
    batches: int


def archive_key(alert: Mapping[str, Any]) -> str:
    """Archive key ``alerts/{visit:08d}/{detector:03d}/{diaSourceId}.avro`` of an alert record."""
    try:
        src = alert["diaSource"]
        return f"alerts/{int(src['visit']):08d}/{int(src['detector']):03d}/{int(alert['diaSourceId'])}.avro"
    except (KeyError, TypeError, ValueError) as exc:
        raise AlertSchemaError(f"alert lacks diaSourceId/diaSource.visit/detector: {exc}") from exc


def _number(value: Any) -> float | None:
    """A finite number rounded to SNS's 5 decimal places, or None (NaN/None are not sent)."""
    if value is None:
        return None
    x = float(value)
    return round(x, 5) if math.isfinite(x) and abs(x) < 1e9 else None


def alert_attributes(alert: Mapping[str, Any]) -> dict[str, str | float]:
    """Message attributes of an alert, for SNS filter policies (at most 10, SNS's limit).

    ``band`` (String), ``snr``, ``reliability``, ``ra``, ``dec`` (Number, deg for angles; left
    out when null or NaN), ``is_new_object`` and ``is_solar_system`` (``"true"``/``"false"``),
    ``alert_id`` (String, the ``diaSourceId``; consumers deduplicate on it) and
    ``schema_version`` (e.g. ``"11.1"``). The publisher adds ``claim_check`` when it applies.
    A new object is one this DiaSource created: its ``diaObjectId`` is the ``diaSourceId``
    (:mod:`alertprod.ids`) or it has one DiaSource.
    """
    src = alert["diaSource"]
    obj = alert.get("diaObject")
    is_new = obj is not None and (obj.get("diaObjectId") == alert["diaSourceId"]
                                  or obj.get("nDiaSources") == 1)
    is_ss = alert.get("ssSource") is not None or src.get("ssObjectId") not in (None, 0)
    attrs: dict[str, str | float] = {}
    if src.get("band"):
        attrs["band"] = str(src["band"])
    for name, value, single in (("snr", src.get("snr"), True),
                                ("reliability", src.get("reliability"), True),
                                ("ra", src.get("ra"), False), ("dec", src.get("dec"), False)):
        # snr and reliability are Avro floats in the packet: round as the packet does, so the
        # attributes of a replayed (decoded) alert equal those of the first attempt
        number = _number(float(np.float32(value)) if single and value is not None else value)
        if number is not None:
            attrs[name] = number
    attrs["is_new_object"] = "true" if is_new else "false"
    attrs["is_solar_system"] = "true" if is_ss else "false"
    attrs["alert_id"] = str(int(alert["diaSourceId"]))
    attrs["schema_version"] = SCHEMA_VERSION
    return attrs


def message_size(body: str, attributes: Mapping[str, Any]) -> int:
    """Size SNS counts for a message: UTF-8 body plus attribute names, data types and values."""
    size = len(body.encode())
    for name, value in attributes.items():
        kind = "String" if isinstance(value, str) else "Number"
        size += len(name.encode()) + len(kind) + len((value if isinstance(value, str) else repr(value)).encode())
    return size


class AlertPublisher:
    """Archive and publish alert packets, by claim-check when a message would be too large.

    Parameters
    ----------
    archive : ArchiveStore
        The alert archive (claim-check target), e.g. ``S3BlobStore(s3, alert_bucket)``.
    topic : AlertTopic
        The alert topic, e.g. ``SnsTopic(sns, alert_topic_arn)``.
    max_message_bytes : int
        Largest message (body + attributes, bytes) sent inline; larger ones go by claim-check.
    ledger : PublishLedger, optional
        Idempotency hook: alerts it reports as published are skipped; the alerts of each
        PublishBatch call are marked right after the call succeeded
        (:class:`AlertMarksLedger` adapts the APDB's per-alert marks).
    max_workers : int
        Threads writing archive objects concurrently (boto3 clients are thread-safe).

    Notes
    -----
    Guarantees: an alert is archived before it is announced, so a claim-check always resolves;
    a retried call re-writes byte-identical archive objects and, with a ledger, announces each
    alert once; without a ledger it may announce an alert again, which consumers deduplicate
    on ``alert_id``.
    """

    def __init__(self, archive: ArchiveStore, topic: AlertTopic, *,
                 max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
                 ledger: PublishLedger | None = None, max_workers: int = 8) -> None:
        if not 1024 <= max_message_bytes <= MAX_SNS_MESSAGE_BYTES:
            raise ConfigError(f"max_message_bytes={max_message_bytes} must be in "
                              f"[1024, {MAX_SNS_MESSAGE_BYTES}]")
        if max_workers < 1:
            raise ConfigError(f"max_workers={max_workers} must be >= 1")
        self.archive = archive
        self.topic = topic
        self.max_message_bytes = max_message_bytes
        self.ledger = ledger
        self.max_workers = max_workers

    def _prepare(self, prepared: PreparedAlert) -> tuple[int, str, dict[str, Any], int, bool]:
        """Archive one alert and build its message: (id, body, attributes, packet bytes, claim-checked)."""
        alert_id, key, packet = prepared.alert_id, prepared.archive_key, prepared.packet
        # the archived container wraps the very bytes that are published: encoded once
        self.archive.put(key, container_from_packets([packet]), content_type="avro/binary",
                         metadata={"schema-version": SCHEMA_VERSION, "alert-id": str(alert_id)})
        attributes = dict(prepared.attributes)
        body = base64.b64encode(packet).decode("ascii")
        claim = message_size(body, attributes) > self.max_message_bytes
        if claim:
            body = json.dumps({"claimCheck": self.archive.uri(key), "alertId": str(alert_id)})
            attributes["claim_check"] = "true"
        return alert_id, body, attributes, len(packet), claim

    def publish(self, alerts: Sequence[Mapping[str, Any]]) -> PublishStats:
        """Archive and announce alerts.

        Parameters
        ----------
        alerts : sequence of Mapping
            Alert records (:func:`~alertprod.alerts.packet.build_alert`).

        Returns
        -------
        PublishStats
            Counts and byte totals.

        Raises
        ------
        AlertSchemaError
            When an alert does not fit the schema (nothing of it is archived or sent).
        alertprod.errors.StorageError
            When the archive or the topic fails; alerts of earlier successful batches stay
            marked in the ledger, so a retry sends only the rest.
        """
        return self.publish_prepared(prepare_alerts(alerts))

    def publish_prepared(self, prepared: Sequence[PreparedAlert]) -> PublishStats:
        """:meth:`publish` for alerts already serialised by :func:`prepare_alerts`."""
        done = set() if self.ledger is None else self.ledger.published([p.alert_id for p in prepared])
        todo = [p for p in prepared if p.alert_id not in done]
        skipped = len(prepared) - len(todo)
        if self.max_workers > 1 and len(todo) > 1:
            with ThreadPoolExecutor(max_workers=min(self.max_workers, len(todo))) as pool:
                prepared = list(pool.map(self._prepare, todo))
        else:
            prepared = [self._prepare(a) for a in todo]
        totals = dict.fromkeys(("published", "claims", "packet", "message", "batches"), 0)

        def sent(positions: list[int]) -> None:  # one accepted PublishBatch call
            chunk = [prepared[i] for i in positions]
            if self.ledger is not None:
                self.ledger.mark_published([item[0] for item in chunk])
            totals["batches"] += 1
            for _, body, attrs, n_packet, claim in chunk:
                totals["published"] += 1
                totals["claims"] += claim
                totals["packet"] += n_packet
                totals["message"] += message_size(body, attrs)

        if prepared:
            self.topic.publish_batch([(body, attrs) for _, body, attrs, _, _ in prepared],
                                     on_batch=sent)
        return PublishStats(totals["published"], totals["claims"], skipped, totals["packet"],
                            totals["message"], totals["batches"])

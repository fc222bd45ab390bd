"""Replay of the alert stream from the archive, by offset: what a broker does after an outage.

The live stream (SNS, one SQS queue per broker: docs/brokers.md) keeps a broker's undelivered
alerts for up to 14 days and has no rewind. The alert archive keeps every published alert at
``alerts/{visit:08d}/{detector:03d}/{diaSourceId}.avro``
(:func:`alertprod.alerts.publish.archive_key`), and S3 lists keys in lexicographic order, so
an archive key is an **offset**: zero-padded visit, then detector, then alert id. A broker
remembers the offset of what it has processed (:func:`offset_of`); after an outage it asks
for everything after it (:func:`replay_archive`), within a visit range if it likes, and
deduplicates on ``alert_id`` against what the live queue still delivers. Visits are numbered
in time order, so offsets order alerts by visit; within a visit, by detector and id.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from typing import Any, NamedTuple

from alertprod.alerts.publish import archive_key
from alertprod.alerts.serialize import read_alert_container
from alertprod.aws.blobs import BlobStore
from alertprod.errors import AlertSchemaError, ConfigError

__all__ = ["ArchivedAlert", "offset_of", "replay_archive"]

_KEY = re.compile(r"^alerts/(\d{8})/(\d{3})/(\d+)\.avro$")


class ArchivedAlert(NamedTuple):
    """One alert read back from the archive.

    Attributes
    ----------
    offset : str
        Its archive key: pass it as ``after`` to resume after this alert.
    alert_id : int
        ``diaSourceId``.
    visit, detector : int
        Where it was observed.
    alert : dict
        The decoded record (Rubin schema).
    """

    offset: str
    alert_id: int
    visit: int
    detector: int
    alert: dict[str, Any]


def offset_of(alert: Mapping[str, Any]) -> str:
    """The offset (archive key) of a decoded alert record, e.g. one received from the queue."""
    return archive_key(alert)


def replay_archive(archive: BlobStore, *, after: str | None = None, visit_min: int | None = None,
                   visit_max: int | None = None) -> Iterator[ArchivedAlert]:
    """Alerts of the archive in offset order, after ``after`` and within a visit range.

    Parameters
    ----------
    archive : BlobStore
        The alert bucket (:class:`~alertprod.aws.S3BlobStore` on AWS).
    after : str, keyword-only, optional
        An offset from :func:`offset_of` or :attr:`ArchivedAlert.offset`; only later ones are
        returned.
    visit_min, visit_max : int, keyword-only, optional
        Inclusive visit range.

    Raises
    ------
    ConfigError
        For a malformed offset or an empty visit range.
    AlertSchemaError
        When an archived object does not hold exactly one alert.
    """
    if after is not None and not _KEY.match(after):
        raise ConfigError(f"after: {after!r} is not an alert offset (alerts/VVVVVVVV/DDD/ID.avro)")
    if visit_min is not None and visit_max is not None and visit_min > visit_max:
        raise ConfigError(f"visit_min {visit_min} > visit_max {visit_max}")
    start = "alerts/"
    if visit_min is not None:
        start = max(start, f"alerts/{int(visit_min):08d}/")
    for key in archive.list(_common_prefix(visit_min, visit_max)):
        if key < start or (after is not None and key <= after):
            continue
        match = _KEY.match(key)
        if match is None:
            continue  # not an alert object (nothing else is written under alerts/)
        visit, detector, alert_id = (int(g) for g in match.groups())
        if visit_max is not None and visit > visit_max:
            break  # keys are listed in order: nothing later is in range
        records = list(read_alert_container(archive.get(key)))
        if len(records) != 1:
            raise AlertSchemaError(f"{key} holds {len(records)} alerts, not 1")
        yield ArchivedAlert(key, alert_id, visit, detector, records[0])


def _common_prefix(visit_min: int | None, visit_max: int | None) -> str:
    """The longest key prefix shared by every visit of the range (fewer keys listed)."""
    if visit_min is None or visit_max is None:
        return "alerts/"
    lo, hi = f"{int(visit_min):08d}", f"{int(visit_max):08d}"
    n = 0
    while n < 8 and lo[n] == hi[n]:
        n += 1
    return "alerts/" + lo[:n]

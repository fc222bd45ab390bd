"""The alert archive as the filtering service reads it: one packet by key, by id, or by night."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from alertprod.alerts.serialize import read_alert_container
from alertprod.aws.blobs import BlobStore
from alertprod.errors import AlertSchemaError, NotFoundError

__all__ = ["AlertArchive"]

_KEY_RE = re.compile(r"alerts/(\d{8})/(\d{3})/(\d+)\.avro")


class AlertArchive:
    """Read access to ``alerts/{visit:08d}/{detector:03d}/{diaSourceId}.avro``.

    Parameters
    ----------
    blobs : BlobStore
        The alert bucket (S3 or memory).
    """

    def __init__(self, blobs: BlobStore) -> None:
        self.blobs = blobs

    def uri(self, key: str) -> str:
        """``s3://bucket/key`` of an archived alert."""
        return self.blobs.uri(key)

    def get(self, key: str) -> dict[str, Any]:
        """The alert record archived at ``key`` (NotFoundError when absent)."""
        records = list(read_alert_container(self.blobs.get(key)))
        if len(records) != 1:
            raise AlertSchemaError(f"{key}: {len(records)} records, not 1")
        return records[0]

    def find(self, alert_id: int, *, visit: int | None = None, detector: int | None = None) -> str:
        """The archive key of alert ``alert_id``; a listing unless visit and detector are given."""
        if visit is not None and detector is not None:
            key = f"alerts/{int(visit):08d}/{int(detector):03d}/{int(alert_id)}.avro"
            if self.blobs.exists(key):
                return key
            raise NotFoundError(f"alert {alert_id} is not in the archive at visit {visit}, detector {detector}")
        suffix = f"/{int(alert_id)}.avro"
        prefix = f"alerts/{int(visit):08d}/" if visit is not None else "alerts/"
        for key in self.blobs.list(prefix):
            if key.endswith(suffix):
                return key
        raise NotFoundError(f"alert {alert_id} is not in the archive")

    def scan(self, *, min_mjd_tai: float, max_alerts: int, chunk: int = 1000) -> Iterator[list[dict[str, Any]]]:
        """Archived alerts whose ``diaSource.midpointMjdTai >= min_mjd_tai``, in lists of ``chunk``.

        Reads at most ``max_alerts`` archive objects (newest visits first).
        """
        keys = sorted((k for k in self.blobs.list("alerts/") if _KEY_RE.fullmatch(k)), reverse=True)
        batch: list[dict[str, Any]] = []
        for key in keys[:max_alerts]:
            try:
                record = self.get(key)
            except (NotFoundError, AlertSchemaError):
                continue
            mjd = (record.get("diaSource") or {}).get("midpointMjdTai")
            if mjd is None or mjd < min_mjd_tai:
                continue
            batch.append(record)
            if len(batch) >= chunk:
                yield batch
                batch = []
        if batch:
            yield batch

    def count_keys(self) -> int:
        """Archived alerts (a listing)."""
        return sum(1 for k in self.blobs.list("alerts/") if _KEY_RE.fullmatch(k))

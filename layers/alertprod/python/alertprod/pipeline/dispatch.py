"""Entry point of the ingest function: one SQS message → the uploads it names → their processing.

Catalog uploads (``diasources/``) are validated and processed per CCD; orbit catalogs
(``config/mpcorb/``) are loaded into the Level 1 database. Contract violations are quarantined
and acknowledged (retrying cannot fix them); anything else raises, so the message is retried and
eventually reaches the dead-letter queue.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from alertprod.errors import ContractError
from alertprod.formats.layout import parse_key
from alertprod.ingest import s3_objects_from_sqs_body, validate_upload, write_quarantine

if TYPE_CHECKING:
    from alertprod.aws import Services
    from alertprod.pipeline.nightly import NightlyPipeline

__all__ = ["UploadOutcome", "handle_upload_message", "handle_upload"]


@dataclass
class UploadOutcome:
    """What became of one uploaded object."""

    bucket: str
    key: str
    status: str  #: ``processed``, ``duplicate``, ``quarantined``, ``loaded``, ``ignored``
    reason: str | None = None
    detail: dict[str, Any] = field(default_factory=dict)


def handle_upload(services: Services, bucket: str, key: str, *,
                  pipeline: NightlyPipeline | None = None) -> UploadOutcome:
    """Process one uploaded object named by an S3 notification.

    Parameters
    ----------
    services : alertprod.aws.Services
        Adapters of the deployment (uploads, images, Level 1 table, alert topic, ...).
    bucket, key : str
        The object (key already URL-decoded).
    pipeline : NightlyPipeline, optional
        The nightly pipeline; without it a valid catalog is only validated (used by the
        foundation tests).
    """
    try:
        parsed = parse_key(key)
    except ContractError as exc:
        write_quarantine(services.uploads, bucket, key, exc)
        return UploadOutcome(bucket, key, "quarantined", exc.reason)
    if parsed.kind == "mpcorb":
        if pipeline is None:
            return UploadOutcome(bucket, key, "ignored", "no pipeline configured")
        try:
            n = pipeline.load_orbits(services.uploads.get(key))
        except ContractError as exc:
            write_quarantine(services.uploads, bucket, key, exc)
            return UploadOutcome(bucket, key, "quarantined", exc.reason, {"detail": exc.detail})
        return UploadOutcome(bucket, key, "loaded", detail={"orbits": n})
    if parsed.kind != "diasources":
        return UploadOutcome(bucket, key, "ignored", f"{parsed.kind} objects do not trigger processing")
    data = services.uploads.get(key)
    try:
        upload = validate_upload(data, key, services.images)
    except ContractError as exc:
        write_quarantine(services.uploads, bucket, key, exc)
        return UploadOutcome(bucket, key, "quarantined", exc.reason, {"detail": exc.detail})
    if pipeline is None:
        return UploadOutcome(bucket, key, "validated", detail={"warnings": upload.warnings,
                                                                "n": len(upload.catalog.table)})
    result = pipeline.process_ccd(upload)
    return UploadOutcome(bucket, key, result.status, detail=result.summary())


def handle_upload_message(body: str, services: Services, *,
                          pipeline: NightlyPipeline | None = None) -> list[UploadOutcome]:
    """Handle one SQS message body carrying an S3 notification (see :func:`handle_upload`)."""
    return [handle_upload(services, obj.bucket, obj.key, pipeline=pipeline)
            for obj in s3_objects_from_sqs_body(body)]

"""Entry point of the ingest function: one SQS message → the uploads it names → their processing.

Catalog uploads (``diasources/``) are validated, checked against what the Level 1 database
already holds (reused ids, a processed CCD uploaded again with other content) and processed per
CCD; orbit catalogs (``config/mpcorb/``) are loaded into the Level 1 database. Any key the
contract does not name under ``diasources/`` is quarantined (``bad_key``), not skipped. Contract
violations are quarantined and acknowledged (retrying cannot fix them); anything else raises,
so the message is retried and eventually reaches the dead-letter queue.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from alertprod.apdb import CcdState
from alertprod.errors import AlertprodError, ContractError
from alertprod.formats.layout import parse_key
from alertprod.ingest import (
    ValidatedUpload,
    s3_objects_from_sqs_body,
    validate_upload,
    write_quarantine,
)
from alertprod.pipeline.nightly import refuse_other_content

if TYPE_CHECKING:
    from alertprod.apdb import Level1
    from alertprod.aws import Services
    from alertprod.pipeline.nightly import NightlyPipeline

__all__ = ["RETRYABLE_REASONS", "RetryLaterError", "UploadOutcome", "check_against_level1",
           "handle_upload_message", "handle_upload"]


@dataclass
class UploadOutcome:
    """What became of one uploaded object."""

    bucket: str
    key: str
    status: str  #: ``processed``, ``duplicate``, ``quarantined``, ``loaded``, ``ignored``
    reason: str | None = None
    detail: dict[str, Any] = field(default_factory=dict)


#: Reasons that a later delivery may not have: an image uploaded late (S3 is strongly
#: consistent, but an upstream pipeline may write the catalog before an image's retry lands).
#: They are retried through the queue and quarantined only on the last receive.
RETRYABLE_REASONS = frozenset({"missing_image"})


class RetryLaterError(AlertprodError):
    """An upload refused for a reason a later delivery may not have (raised: SQS redelivers)."""


def handle_upload(services: Services, bucket: str, key: str, *,
                  pipeline: NightlyPipeline | None = None,
                  final_attempt: bool = True) -> UploadOutcome:
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
    final_attempt : bool, keyword-only
        False while the queue will deliver the message again: a refusal for a
        :data:`RETRYABLE_REASONS` reason then raises :class:`RetryLaterError` instead of
        quarantining, so a late image gets the queue's retries (visibility timeout apart).
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
        if pipeline is not None:
            check_against_level1(upload, pipeline.level1)
            result = pipeline.process_ccd(upload)  # refuses other content under the lease too
    except ContractError as exc:
        if exc.reason in RETRYABLE_REASONS and not final_attempt:
            raise RetryLaterError(f"{key}: {exc.reason}: retried before it is quarantined") from exc
        write_quarantine(services.uploads, bucket, key, exc)
        return UploadOutcome(bucket, key, "quarantined", exc.reason, {"detail": exc.detail})
    if pipeline is None:
        return UploadOutcome(bucket, key, "validated", detail={"warnings": upload.warnings,
                                                                "n": len(upload.catalog.table)})
    return UploadOutcome(bucket, key, result.status, detail=result.summary())


def check_against_level1(upload: ValidatedUpload, level1: Level1) -> None:
    """Refuse an upload that contradicts what the Level 1 database already holds.

    Before anything is written for the CCD (no ledger record, or ``started``):
    ``reused_id`` when one of its ``diaSourceId`` values already names a DiaObject (the id of
    the DiaSource that created it) or an alert that was published — stored by another CCD (or
    by this CCD before its ledger record expired, 90 days on). Once the CCD is ``planned`` or
    later, a redelivery of the same catalog resumes and a catalog with other content is
    ``already_processed`` (:func:`~alertprod.pipeline.nightly.refuse_other_content`).

    Costs two batched reads per 100 DiaSources (DiaObjects by id, alert marks). Two CCDs that
    reuse one id and run at the same moment, in sky cells no lease shares, can both pass.

    Raises
    ------
    ContractError
        ``reused_id`` or ``already_processed``.
    """
    record = level1.ledger.get_ccd_record(upload.visit, upload.detector) or {}
    refuse_other_content(record, upload)
    if record.get("state") not in (None, CcdState.STARTED):
        return  # a redelivery: the ledger says what is left to do
    ids = np.asarray(upload.catalog.table["diaSourceId"], dtype=np.int64)
    if ids.size == 0:
        return
    objects = level1.apdb.get_dia_objects_by_id(ids)
    taken = set(np.asarray(objects["diaObjectId"], np.int64).tolist()) if len(objects) else set()
    taken |= set(level1.ledger.get_alert_marks(ids.tolist()))
    if taken:
        first = sorted(taken)[:5]
        raise ContractError("reused_id", f"{upload.key}: {len(taken)} diaSourceId values are already "
                                         f"stored in the Level 1 database (e.g. {first}): by another "
                                         f"CCD, or by this one before its ledger record expired")


def handle_upload_message(body: str, services: Services, *,
                          pipeline: NightlyPipeline | None = None, receive_count: int = 1,
                          max_receives: int = 1) -> list[UploadOutcome]:
    """Handle one SQS message body carrying an S3 notification (see :func:`handle_upload`).

    ``receive_count`` (the message's ``ApproximateReceiveCount``) below ``max_receives`` (the
    queue's ``maxReceiveCount``) lets a :data:`RETRYABLE_REASONS` refusal wait for a later
    delivery; the defaults make every call the last.
    """
    final = int(receive_count) >= int(max_receives)
    return [handle_upload(services, obj.bucket, obj.key, pipeline=pipeline, final_attempt=final)
            for obj in s3_objects_from_sqs_body(body)]

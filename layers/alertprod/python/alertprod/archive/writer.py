"""Archiving one cached image: compress, store, index — idempotent, refusals recorded.

:func:`handle_archive_message` is ArchiveFunction's entry point (one SQS message of S3
ObjectCreated notifications on the image cache); :func:`archive_image` does one image:

1. only ``science`` and ``template`` images are archived; other keys are ``ignored``;
2. the cached bytes are read; an object already gone (deleted or expired before the
   message was handled) is recorded as ``missing`` and acknowledged;
3. when the archive already holds the copy made from the same bytes (``source-sha256``
   metadata: a redelivered message), nothing is compressed or written again (``unchanged``);
   otherwise the planes are tile-compressed — deterministic, so the same bytes always give
   the same object — and written to :func:`~alertprod.archive.keys.archive_key`;
4. the image is indexed by footprint and time (:meth:`Apdb.index_archived_exposure`, which
   replaces its own entry: re-indexing adds nothing). The copy is written before the index,
   so an indexed image can always be read.

An image that breaks the upload contract is refused with a quarantine-style JSON record under
``quarantine/`` in the archive bucket (the reason codes of docs/formats.md) and the message is
acknowledged; anything else (storage errors) raises, and SQS redelivers the message.
"""

from __future__ import annotations

import hashlib
import io
import json
from dataclasses import asdict, dataclass
from datetime import UTC, datetime

import numpy as np
from astropy.io import fits

from alertprod.apdb import ARCHIVE_KINDS
from alertprod.archive.keys import archive_key, archive_quarantine_key
from alertprod.errors import ContractError, NotFoundError
from alertprod.formats.compression import compress_exposure_bytes
from alertprod.formats.exposure import ExposureMeta, exposure_meta
from alertprod.formats.layout import parse_key
from alertprod.ingest.events import s3_objects_from_sqs_body
from alertprod.ingest.quarantine import quarantine_record

__all__ = ["ArchiveOutcome", "archive_image", "handle_archive_message", "footprint_of"]

#: Metadata key of an archived copy naming the SHA-256 of the cached bytes it was made from.
SOURCE_DIGEST = "source-sha256"


@dataclass(frozen=True)
class ArchiveOutcome:
    """What happened to one image-cache object.

    Attributes
    ----------
    key : str
        The image-cache key.
    status : str
        ``archived``, ``unchanged`` (the same bytes were archived before; re-indexed),
        ``ignored`` (not a science/template image), ``quarantined`` or ``missing``.
    archive_key : str
        Where the copy is ("" when none was made).
    reason : str
        The refusal's reason code (``quarantined``, ``missing``).
    source_bytes, archived_bytes : int
        Sizes of the cached and of the archived file.
    """

    key: str
    status: str
    archive_key: str = ""
    reason: str = ""
    source_bytes: int = 0
    archived_bytes: int = 0

    def as_dict(self) -> dict:
        """The outcome as a plain dict (for logs and batch responses)."""
        return asdict(self)


def footprint_of(meta: ExposureMeta) -> np.ndarray:
    """Sky corners (deg, shape (4, 2)) of an exposure's pixel grid, outer pixel edges."""
    ny, nx = meta.shape
    xs = np.array([-0.5, nx - 0.5, nx - 0.5, -0.5])
    ys = np.array([-0.5, -0.5, ny - 0.5, ny - 0.5])
    ra, dec = meta.wcs.all_pix2world(xs, ys, 0)
    return np.column_stack([ra, dec])


def _checked_meta(raw: bytes, key: str, visit: int, detector: int, kind: str) -> ExposureMeta:
    try:
        hdul = fits.open(io.BytesIO(raw), memmap=False)
    except Exception as exc:  # astropy raises OSError/ValueError/TypeError variously
        raise ContractError("not_fits", f"{key} is not a readable FITS file: {exc}") from exc
    with hdul:
        meta = exposure_meta(hdul, what=key)
    if meta.info.detector != detector or (kind == "science" and meta.info.visit != visit):
        raise ContractError("key_mismatch", f"{key}: header says visit {meta.info.visit} "
                                            f"detector {meta.info.detector}")
    corners = footprint_of(meta)
    if not np.all(np.isfinite(corners)):
        raise ContractError("bad_wcs", f"{key}: the WCS maps the image corners to non-finite sky")
    return meta


def archive_image(images, archive, apdb, key: str, *, now: datetime | None = None) -> ArchiveOutcome:
    """Archive one image-cache object (see the module notes for the steps and outcomes).

    Parameters
    ----------
    images, archive : BlobStore
        The image cache and the archive bucket.
    apdb : Apdb
        Where the archive index lives.
    key : str
        Image-cache key, ``visits/{V:08d}/{D:03d}/{kind}.fits``.
    now : datetime, optional
        Time stamped on a quarantine record.
    """
    try:
        parsed = parse_key(key)
    except ContractError:
        return ArchiveOutcome(key, "ignored")
    if parsed.kind not in ARCHIVE_KINDS:
        return ArchiveOutcome(key, "ignored")
    visit, detector, kind = int(parsed.visit), int(parsed.detector), parsed.kind
    target = archive_key(visit, detector, kind)
    try:
        raw = images.get(key)
    except NotFoundError:
        return _refuse(images, archive, key,
                       ContractError("missing_image", f"{key} is no longer in the cache"), now,
                       status="missing")
    digest = hashlib.sha256(raw).hexdigest()
    head = archive.head(target)
    try:
        meta = _checked_meta(raw, key, visit, detector, kind)
        if head is not None and head["metadata"].get(SOURCE_DIGEST) == digest:
            status, size = "unchanged", int(head["size"])
        else:
            packed = compress_exposure_bytes(raw, what=key)
            archive.put(target, packed, content_type="application/fits",
                        metadata={SOURCE_DIGEST: digest, "source-bytes": str(len(raw))})
            status, size = "archived", len(packed)
    except ContractError as exc:
        return _refuse(images, archive, key, exc, now, source_bytes=len(raw))
    apdb.index_archived_exposure(visit, detector, kind, meta.info.band, meta.info.mjd_mid_tai,
                                 footprint_of(meta))
    return ArchiveOutcome(key, status, target, "", len(raw), size)


def _refuse(images, archive, key: str, error: ContractError, now: datetime | None, *,
            status: str = "quarantined", source_bytes: int = 0) -> ArchiveOutcome:
    bucket = str(getattr(images, "bucket", getattr(images, "name", "")))
    _, body = quarantine_record(bucket, key, error, now=now or datetime.now(UTC))
    archive.put(archive_quarantine_key(key), json.dumps(body, indent=1, sort_keys=True).encode(),
                content_type="application/json")
    return ArchiveOutcome(key, status, "", error.reason, source_bytes, 0)


def handle_archive_message(body: str, *, images, archive, apdb,
                           now: datetime | None = None) -> list[ArchiveOutcome]:
    """Archive every image named by one SQS message body (S3 notifications).

    ``s3:TestEvent`` yields nothing. Raises :class:`~alertprod.errors.EventError` for a body
    that is not an S3 notification (it then reaches ArchiveDLQ after three receives).
    """
    return [archive_image(images, archive, apdb, obj.key, now=now)
            for obj in s3_objects_from_sqs_body(body)]

"""The long-term image archive: science and template images kept, tile-compressed, for good.

The 30-day image cache (``ImageBucket``, ``visits/``) expires; precovery beyond it re-creates
difference images from calibrated exposures and templates. Each uploaded ``science`` and
``template`` image is therefore copied, off the upload path, into ``ArchiveBucket`` at
:func:`archive_key` with its planes tile-compressed
(:func:`alertprod.formats.compression.compress_exposure_bytes`), and indexed by footprint and
time in the Level 1 database (:meth:`Apdb.index_archived_exposure`). Difference and snapdiff
images are not archived. See docs/archive.md.

- :func:`handle_archive_message` — one SQS message of S3 notifications (ArchiveFunction);
- :func:`archive_image` — one cached image into the archive, idempotent;
- :func:`open_archived`, :func:`find_archived_at` — what a re-creation reads.
"""

from alertprod.apdb import ARCHIVE_INDEX_ORDER, ARCHIVE_KINDS
from alertprod.archive.keys import ARCHIVE_PREFIX, archive_key, archive_quarantine_key
from alertprod.archive.reader import find_archived_at, open_archived
from alertprod.archive.writer import ArchiveOutcome, archive_image, handle_archive_message

__all__ = [
    "ARCHIVE_INDEX_ORDER",
    "ARCHIVE_KINDS",
    "ARCHIVE_PREFIX",
    "ArchiveOutcome",
    "archive_image",
    "archive_key",
    "archive_quarantine_key",
    "find_archived_at",
    "handle_archive_message",
    "open_archived",
]

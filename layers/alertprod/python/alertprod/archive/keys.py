"""Object keys of the long-term archive bucket (docs/archive.md "Keys")."""

from __future__ import annotations

from alertprod.apdb import ARCHIVE_KINDS
from alertprod.formats.layout import image_key

__all__ = ["ARCHIVE_PREFIX", "QUARANTINE_PREFIX", "archive_key", "archive_quarantine_key"]

#: Prefix of the archived images (the lifecycle's storage-class rule applies to it).
ARCHIVE_PREFIX = "archive/"
#: Prefix of the records of images refused by the archive.
QUARANTINE_PREFIX = "quarantine/"


def archive_key(visit: int, detector: int, kind: str) -> str:
    """``archive/visits/{V:08d}/{D:03d}/{kind}.fits``: the cache key under ``archive/``.

    Raises
    ------
    ValueError
        For a kind the archive does not keep (``difference``, ``snapdiff``).
    """
    if kind not in ARCHIVE_KINDS:
        raise ValueError(f"kind: the archive keeps {sorted(ARCHIVE_KINDS)}, got {kind!r}")
    return ARCHIVE_PREFIX + image_key(visit, detector, kind)


def archive_quarantine_key(image_cache_key: str) -> str:
    """Key of the JSON record of a refused image: ``quarantine/visits/.../{kind}.json``."""
    stem = image_cache_key[:-5] if image_cache_key.endswith(".fits") else image_cache_key
    return f"{QUARANTINE_PREFIX}{stem}.json"

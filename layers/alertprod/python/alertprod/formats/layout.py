"""Object keys of the upload contract (docs/formats.md, "Object layout").

Images go to the image-cache bucket at ``visits/{V:08d}/{D:03d}/{kind}.fits``; the DiaSource
catalog, uploaded last, goes to the upload bucket at ``diasources/{V:08d}/{D:03d}.fits``.
"""

from __future__ import annotations

import re
from typing import NamedTuple

from alertprod.errors import ContractError

__all__ = [
    "IMAGE_KINDS",
    "REQUIRED_IMAGE_KINDS",
    "MPCORB_PREFIX",
    "ObjectKey",
    "diasource_key",
    "image_key",
    "parse_key",
    "quarantine_key",
]

#: Every image kind an upstream pipeline may upload; ``snapdiff`` is optional.
IMAGE_KINDS = ("science", "difference", "template", "snapdiff")
#: Image kinds the pipeline expects for full processing.
REQUIRED_IMAGE_KINDS = ("science", "difference", "template")
#: Prefix of the upload bucket where orbit catalogs (MPCORB.DAT format) are dropped.
MPCORB_PREFIX = "config/mpcorb/"

_DIASOURCE_RE = re.compile(r"^diasources/(?P<visit>\d{8})/(?P<detector>\d{3})\.fits$")
_IMAGE_RE = re.compile(
    r"^visits/(?P<visit>\d{8})/(?P<detector>\d{3})/(?P<kind>science|difference|template|snapdiff)\.fits$"
)


class ObjectKey(NamedTuple):
    """A parsed object key of the upload contract."""

    kind: str  #: ``"diasources"``, an image kind, or ``"mpcorb"``
    visit: int | None
    detector: int | None


def _check_ids(visit: int, detector: int) -> None:
    if not (0 <= int(visit) < 100_000_000):
        raise ContractError("bad_key", f"visit {visit!r} does not fit 8 digits")
    if not (0 <= int(detector) < 1000):
        raise ContractError("bad_key", f"detector {detector!r} does not fit 3 digits")


def diasource_key(visit: int, detector: int) -> str:
    """Key of the DiaSource catalog of ``(visit, detector)`` in the upload bucket."""
    _check_ids(visit, detector)
    return f"diasources/{int(visit):08d}/{int(detector):03d}.fits"


def image_key(visit: int, detector: int, kind: str) -> str:
    """Key of one image of ``(visit, detector)`` in the image-cache bucket."""
    _check_ids(visit, detector)
    if kind not in IMAGE_KINDS:
        raise ContractError("bad_key", f"image kind {kind!r} is not one of {IMAGE_KINDS}")
    return f"visits/{int(visit):08d}/{int(detector):03d}/{kind}.fits"


def quarantine_key(visit: int | None, detector: int | None, source_key: str) -> str:
    """Key of the quarantine record (JSON) written for a refused upload."""
    if visit is not None and detector is not None:
        return f"quarantine/{int(visit):08d}/{int(detector):03d}.json"
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", source_key).strip("_") or "unnamed"
    return f"quarantine/other/{safe}.json"


def parse_key(key: str) -> ObjectKey:
    """Parse an upload-contract key.

    Raises
    ------
    ContractError
        ``bad_key`` when the key follows none of the contract's patterns.
    """
    m = _DIASOURCE_RE.match(key)
    if m:
        return ObjectKey("diasources", int(m["visit"]), int(m["detector"]))
    m = _IMAGE_RE.match(key)
    if m:
        return ObjectKey(m["kind"], int(m["visit"]), int(m["detector"]))
    if key.startswith(MPCORB_PREFIX) and len(key) > len(MPCORB_PREFIX):
        return ObjectKey("mpcorb", None, None)
    raise ContractError("bad_key", f"key {key!r} follows no pattern of the upload contract")

"""Deterministic identifiers, so that a retried computation produces the same ids.

- a new DiaObject takes the ``diaSourceId`` of the DiaSource that created it;
- an alert is identified by its ``diaSourceId`` (Rubin alert schema v11);
- a forced measurement's ``diaForcedSourceId`` is a hash of (diaObjectId, visit, detector);
- an ``ssObjectId`` packs the MPC packed designation's ASCII bytes into an int64 (reversible).
"""

from __future__ import annotations

import hashlib

import numpy as np

__all__ = ["forced_source_id", "forced_source_ids", "ss_object_id", "designation_from_ss_object_id",
           "time_bucket", "TIME_BUCKET_DAYS"]

#: Width of the time partitions of the Level 1 database and of the image-cache index.
TIME_BUCKET_DAYS = 30


def forced_source_id(dia_object_id: int, visit: int, detector: int) -> int:
    """Stable positive int63 id of the forced measurement of an object on one visit/detector."""
    digest = hashlib.blake2b(f"{int(dia_object_id)}:{int(visit)}:{int(detector)}".encode(),
                             digest_size=8).digest()
    return int.from_bytes(digest, "big") & 0x7FFF_FFFF_FFFF_FFFF


def forced_source_ids(dia_object_ids: np.ndarray, visit: int, detector: int) -> np.ndarray:
    """Vectorised :func:`forced_source_id`, shape (n,), int64."""
    return np.array([forced_source_id(int(i), visit, detector) for i in np.asarray(dia_object_ids)],
                    dtype=np.int64)


def ss_object_id(packed_designation: str) -> int:
    """int64 ``ssObjectId`` made of the (≤ 8 character, ASCII) MPC packed designation."""
    s = packed_designation.strip()
    if not s or len(s) > 8 or not s.isascii():
        raise ValueError(f"packed designation {packed_designation!r} must be 1-8 ASCII characters")
    return int.from_bytes(s.encode().rjust(8, b"\0"), "big")


def designation_from_ss_object_id(ss_id: int) -> str:
    """Inverse of :func:`ss_object_id`."""
    return int(ss_id).to_bytes(8, "big").lstrip(b"\0").decode()


def time_bucket(mjd_tai: float | np.ndarray) -> int | np.ndarray:
    """30-day time-partition index of a TAI MJD."""
    b = np.floor(np.asarray(mjd_tai, dtype=float) / TIME_BUCKET_DAYS).astype(np.int64)
    return int(b) if b.ndim == 0 else b

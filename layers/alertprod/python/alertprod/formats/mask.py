"""Mask bit meanings of the ``MASK`` extension (the Rubin afw default plane order)."""

from __future__ import annotations

import enum

__all__ = ["MaskBit", "UNUSABLE"]


class MaskBit(enum.IntFlag):
    """Bits of the int32 ``MASK`` plane. Values are powers of two; combine with ``|``."""

    BAD = 1 << 0  #: bad detector pixel (bad column, hot pixel)
    SAT = 1 << 1  #: saturated
    INTRP = 1 << 2  #: interpolated over
    CR = 1 << 3  #: cosmic ray
    EDGE = 1 << 4  #: too close to the detector edge for a full kernel
    DETECTED = 1 << 5  #: part of a positive detection footprint
    DETECTED_NEGATIVE = 1 << 6  #: part of a negative detection footprint
    SUSPECT = 1 << 7  #: near saturation or otherwise suspect
    NO_DATA = 1 << 8  #: no data (off the template, vignetted)


#: Bits that make a pixel unusable for photometry: such pixels get zero weight.
UNUSABLE = MaskBit.BAD | MaskBit.SAT | MaskBit.CR | MaskBit.NO_DATA

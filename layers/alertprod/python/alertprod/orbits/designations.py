"""The Minor Planet Center's packed forms of designations and epochs.

Packed designations (MPC, "Packed Provisional and Permanent Designations"):

- numbered minor planets: ``00433`` (< 100000), ``A0001`` (100001; letter = ten-thousands),
  ``~0000`` (620000 onwards, four base-62 digits of n − 620000);
- provisional designations: ``2024 AB12`` → ``K24A12B`` (century letter, year, half-month,
  two-character cycle count, second letter), cycle counts ≥ 100 as ``C3`` (= 123);
- survey designations: ``2040 P-L`` → ``PLS2040``, ``3138 T-1`` → ``T1S3138``.

Packed epochs: ``K24AH`` = 2024-10-17 0h TT (century letter, year, month 1-9A-C, day 1-9A-V).
"""

from __future__ import annotations

import datetime as _dt
import functools
import math
import re

from alertprod.errors import OrbitError

__all__ = [
    "pack_designation",
    "unpack_designation",
    "pack_provisional",
    "pack_epoch",
    "unpack_epoch",
]

_B62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_CENTURY = {"I": 1800, "J": 1900, "K": 2000, "L": 2100}
_CENTURY_LETTER = {v: k for k, v in _CENTURY.items()}
_MJD0 = _dt.date(1858, 11, 17).toordinal()
_SURVEYS = {"P-L": "PL", "T-1": "T1", "T-2": "T2", "T-3": "T3"}
_PROVISIONAL = re.compile(r"^(\d{4}) ([A-Z])([A-Z])(\d*)$")
_SURVEY = re.compile(r"^(\d{4}) (P-L|T-[123])$")


def _number_to_packed(number: int) -> str:
    if number < 1:
        raise OrbitError(f"number: minor-planet number {number} must be positive")
    if number < 100_000:
        return f"{number:05d}"
    if number < 620_000:
        return _B62[number // 10_000] + f"{number % 10_000:04d}"
    rest = number - 620_000
    if rest >= 62**4:
        raise OrbitError(f"number: {number} is beyond the packed format")
    digits = ""
    for _ in range(4):
        rest, d = divmod(rest, 62)
        digits = _B62[d] + digits
    return "~" + digits


def pack_provisional(year: int, half_month: str, second_letter: str, cycle: int) -> str:
    """Packed provisional designation, e.g. ``(2026, "W", "A", 0) -> "K26W00A"``."""
    century = _CENTURY_LETTER.get(year // 100 * 100)
    if century is None or not 0 <= cycle < 620:
        raise OrbitError(f"year/cycle: cannot pack {year} {half_month}{second_letter}{cycle}")
    return f"{century}{year % 100:02d}{half_month}{_B62[cycle // 10]}{cycle % 10}{second_letter}"


def pack_designation(designation: str) -> str:
    """Packed form of a readable designation (``"(433)"``, ``"433"``, ``"2024 AB12"``, ``"2040 P-L"``).

    Raises
    ------
    OrbitError
        When the designation has none of the supported forms.
    """
    s = designation.strip()
    number = s[1:-1] if s.startswith("(") and s.endswith(")") else s
    if number.isdigit():
        return _number_to_packed(int(number))
    if (m := _PROVISIONAL.match(s)) is not None:
        year, half, second, cycle = m.groups()
        return pack_provisional(int(year), half, second, int(cycle) if cycle else 0)
    if (m := _SURVEY.match(s)) is not None:
        return f"{_SURVEYS[m.group(2)]}S{m.group(1)}"
    raise OrbitError(f"designation: cannot pack {designation!r}")


def unpack_designation(packed: str) -> str:
    """Readable form of a packed designation: ``"00433" -> "(433)"``, ``"K24A12B" -> "2024 AB12"``.

    Raises
    ------
    OrbitError
        When ``packed`` is not a valid packed designation.
    """
    s = packed.strip()
    try:
        if len(s) == 5 and s[0] == "~":
            value = 0
            for ch in s[1:]:
                value = value * 62 + _B62.index(ch)
            return f"({value + 620_000})"
        if len(s) == 5 and s[1:].isdigit() and s[0] in _B62:
            return f"({_B62.index(s[0]) * 10_000 + int(s[1:])})"
        if len(s) == 7 and s[2] == "S" and s[:2] in _SURVEYS.values() and s[3:].isdigit():
            survey = {v: k for k, v in _SURVEYS.items()}[s[:2]]
            return f"{s[3:]} {survey}"
        if (len(s) == 7 and s[0] in _CENTURY and s[1:3].isdigit() and s[3].isupper()
                and s[6].isupper() and s[5].isdigit()):
            cycle = _B62.index(s[4]) * 10 + int(s[5])
            year = _CENTURY[s[0]] + int(s[1:3])
            return f"{year} {s[3]}{s[6]}{cycle if cycle else ''}"
    except ValueError as exc:
        raise OrbitError(f"packed designation {packed!r} is malformed") from exc
    raise OrbitError(f"packed designation {packed!r} is malformed")


@functools.lru_cache(maxsize=4096)
def unpack_epoch(packed: str) -> float:
    """TT MJD (0h) of a packed epoch such as ``K24AH``.

    Raises
    ------
    OrbitError
        When ``packed`` is not a valid packed date.
    """
    s = packed.strip()
    try:
        if len(s) != 5 or s[0] not in _CENTURY or not s[1:3].isdigit():
            raise ValueError(s)
        month, day = _B62.index(s[3]), _B62.index(s[4])
        date = _dt.date(_CENTURY[s[0]] + int(s[1:3]), month, day)
    except ValueError as exc:
        raise OrbitError(f"packed epoch {packed!r} is malformed") from exc
    return float(date.toordinal() - _MJD0)


@functools.lru_cache(maxsize=4096)
def pack_epoch(mjd_tt: float) -> str:
    """Packed form of a whole-day TT MJD (0h TT), inverse of :func:`unpack_epoch`.

    Raises
    ------
    OrbitError
        When ``mjd_tt`` is not a whole day or lies outside 1800-2199.
    """
    if not math.isfinite(mjd_tt) or abs(mjd_tt - round(mjd_tt)) > 1e-9:
        raise OrbitError(f"mjd_tt: packed epochs are whole days (0h TT), got {mjd_tt}")
    date = _dt.date.fromordinal(int(round(mjd_tt)) + _MJD0)
    century = _CENTURY_LETTER.get(date.year // 100 * 100)
    if century is None:
        raise OrbitError(f"mjd_tt: {mjd_tt} is outside the years 1800-2199")
    return f"{century}{date.year % 100:02d}{_B62[date.month]}{_B62[date.day]}"

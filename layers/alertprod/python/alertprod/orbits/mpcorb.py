"""Read and write the Minor Planet Center's MPCORB.DAT fixed-width orbit format.

Columns (1-based, inclusive) per the MPC's "Export Format for Minor-Planet Orbits":

=========  =====  ==============================================
1-7        a7     packed designation
9-13       f5.2   absolute magnitude H
15-19      f5.2   slope parameter G
21-25      a5     epoch, packed (0h TT)
27-35      f9.5   mean anomaly at the epoch (deg)
38-46      f9.5   argument of perihelion, J2000.0 (deg)
49-57      f9.5   longitude of the ascending node, J2000.0 (deg)
60-68      f9.5   inclination to the ecliptic, J2000.0 (deg)
71-79      f9.7   eccentricity
81-91      f11.8  mean daily motion (deg/day)
93-103     f11.7  semi-major axis (au)
106        i1     uncertainty parameter U
108-116    a9     reference
118-122    i5     number of observations
124-126    i3     number of oppositions
128-136    a9     arc: ``1801-2026`` or ``  30 days``
138-141    f4.2   r.m.s. residual (″)
143-149    a3 a3  coarse and precise perturbers
151-160    a10    computer
162-165    z4     hexadecimal flags
167-194    a28    readable designation
195-202    i8     date of the last observation, YYYYMMDD
=========  =====  ==============================================

A full MPCORB.DAT starts with a prose header that ends in a line of dashes; everything up to that
line is skipped, and so are the blank lines that separate its sections.
"""

from __future__ import annotations

import math

import numpy as np

from alertprod.errors import OrbitError
from alertprod.orbits.catalog import OrbitCatalog
from alertprod.orbits.designations import pack_epoch, unpack_designation, unpack_epoch
from alertprod.orbits.kepler import GAUSS_K, propagate

__all__ = ["read_mpcorb", "write_mpcorb", "MPCORB_HEADER"]

#: Column header and rule written by :func:`write_mpcorb` with ``header=True`` (as the MPC's).
MPCORB_HEADER = (
    "Des'n     H     G   Epoch     M        Peri.      Node       Incl.       e            n    "
    "       a        Reference #Obs #Opp    Arc    rms  Perts   Computer\n\n" + "-" * 160 + "\n"
)

# (name, first column, last column), 1-based inclusive, of the numeric element fields.
_FLOATS = (("h", 9, 13), ("g", 15, 19), ("mean_anomaly", 27, 35), ("argperi", 38, 46),
           ("node", 49, 57), ("i", 60, 68), ("e", 71, 79), ("mean_motion", 81, 91),
           ("a", 93, 103))
_MIN_LENGTH = 103
_HEADER_SEARCH_LINES = 200
_DEFAULT_G = 0.15
# Columns 104-165 for an orbit we made ourselves: U 0, 0 observations, 1 opposition.
_SYNTHETIC_INFO = f"  0 {'SIMULATED':9s} {0:5d} {1:3d} {0:4d} days {0.0:4.2f} {'':3s} {'':3s} " \
                  f"{'alertprod':10s} 0000"


def _is_rule(line: str) -> bool:
    s = line.strip()
    return len(s) >= 10 and set(s) == {"-"}


def _parse_line(line: str, line_number: int) -> dict:
    if len(line) < _MIN_LENGTH:
        raise OrbitError(f"line {line_number}: {len(line)} characters, an MPCORB record needs "
                         f"at least {_MIN_LENGTH}")
    packed = line[0:7].strip()
    if not packed or not packed.isascii() or " " in packed:
        raise OrbitError(f"line {line_number}: designation (columns 1-7) {line[0:7]!r} is invalid")
    row: dict = {"packed_designation": packed}
    for name, first, last in _FLOATS:
        text = line[first - 1:last].strip()
        if not text and name in ("h", "g"):
            row[name] = np.nan if name == "h" else _DEFAULT_G
            continue
        try:
            row[name] = float(text)
        except ValueError as exc:
            raise OrbitError(f"line {line_number}: {name} (columns {first}-{last}) "
                             f"{text!r} is not a number") from exc
    try:
        row["epoch_mjd"] = unpack_epoch(line[20:25])
    except OrbitError as exc:
        raise OrbitError(f"line {line_number}: epoch (columns 21-25) {line[20:25]!r} "
                         "is not a packed date") from exc
    if not (row["a"] > 0.0 and row["e"] >= 0.0):
        raise OrbitError(f"line {line_number}: a={row['a']} and e={row['e']} "
                         "are not an orbit")
    readable = line[166:194].strip()
    if not readable:
        try:
            readable = unpack_designation(packed)
        except OrbitError:
            readable = packed
    row["designation"] = readable
    row["mpc_info"] = line[103:165].rstrip()
    row["last_obs"] = line[194:202].strip()
    return row


def read_mpcorb(text: str, *, strict: bool = True,
                rejected: list[OrbitError] | None = None) -> OrbitCatalog:
    """Parse MPCORB.DAT text (a full file with its header, or bare records).

    Parameters
    ----------
    text : str
        File contents.
    strict : bool, keyword-only
        When True (default) the first malformed record raises; when False malformed records are
        skipped.
    rejected : list, keyword-only, optional
        With ``strict=False``, receives one :class:`OrbitError` per skipped record; each names
        its 1-based line number in its message and in its ``line_number`` attribute.

    Returns
    -------
    OrbitCatalog
        One row per record, in file order.

    Raises
    ------
    OrbitError
        On a malformed record (``strict=True``), naming its line number.
    """
    if not isinstance(text, str):
        raise OrbitError(f"text: expected str, got {type(text).__name__}")
    lines = text.splitlines()
    # The MPC's header is 43 lines; look for its closing rule only near the top.
    start = next((k + 1 for k, line in enumerate(lines[:_HEADER_SEARCH_LINES])
                  if _is_rule(line)), 0)
    rows = []
    for k in range(start, len(lines)):
        line = lines[k]
        if not line.strip():
            continue
        try:
            rows.append(_parse_line(line, k + 1))
        except OrbitError as exc:
            exc.line_number = k + 1
            if strict:
                raise
            if rejected is not None:
                rejected.append(exc)
    columns = {name: [r[name] for r in rows] for name in (
        "packed_designation", "h", "g", "epoch_mjd", "mean_anomaly", "argperi", "node", "i",
        "e", "mean_motion", "a", "designation", "mpc_info", "last_obs")}
    if not rows:
        columns = {name: np.array([], dtype=str if name in (
            "packed_designation", "designation", "mpc_info", "last_obs") else float)
            for name in columns}
    return OrbitCatalog(**columns)


def _format_float(value: float, width: int, decimals: int, name: str, designation: str) -> str:
    if value != value or value in (math.inf, -math.inf):
        if name == "h":
            return " " * width
        raise OrbitError(f"catalog.{name}: {value} for {designation} is not finite")
    text = f"{value:{width}.{decimals}f}"
    if len(text) > width:
        raise OrbitError(f"catalog.{name}: {value} for {designation} does not fit "
                         f"{width} columns")
    return text


def _readable_field(designation: str) -> str:
    """Columns 167-194 as the MPC lays them out: ``(n)`` ends in column 174, names and
    provisional designations start in column 176."""
    text = str(designation).strip()
    if text.startswith("(") and ")" in text:
        number, _, name = text.partition(")")
        text = f"{number + ')':>8s} {name.strip()}".rstrip()
    else:
        text = " " * 9 + text
    return f"{text[:28]:<28s}"


def write_mpcorb(catalog: OrbitCatalog, *, header: bool = False) -> str:
    """MPCORB.DAT records (202 columns each, newline-terminated) for every row of ``catalog``.

    Parameters
    ----------
    catalog : OrbitCatalog
        Orbits to write. An epoch that is not 0h TT of a whole day (the only epochs the packed
        format can hold) is moved to the nearest one by two-body propagation, which changes only
        the mean anomaly. The mean daily motion is written as k·a^−1.5.
    header : bool, keyword-only
        Prepend the column header and the dashed rule of a real MPCORB.DAT.

    Returns
    -------
    str
        The text; :func:`read_mpcorb` reads it back to the written precision.

    Raises
    ------
    OrbitError
        When a value does not fit its columns (e.g. a ≥ 1000 au).
    """
    if not isinstance(catalog, OrbitCatalog):
        raise OrbitError(f"catalog: expected OrbitCatalog, got {type(catalog).__name__}")
    elements = catalog.elements
    whole = np.round(catalog.epoch_mjd)
    moved = propagate(elements, whole)
    mean_motion = np.rad2deg(GAUSS_K / catalog.a**1.5)
    out = [MPCORB_HEADER] if header else []
    fmt = _format_float
    columns = zip(catalog.packed_designation.tolist(), catalog.h.tolist(), catalog.g.tolist(),
                  whole.tolist(), moved.mean_anomaly_deg.tolist(), catalog.argperi.tolist(),
                  catalog.node.tolist(), catalog.i.tolist(), catalog.e.tolist(),
                  mean_motion.tolist(), catalog.a.tolist(), catalog.mpc_info.tolist(),
                  catalog.designation.tolist(), catalog.last_obs.tolist(), strict=True)
    for packed, h, g, epoch, m, peri, node, incl, e, n, a, info, readable, last in columns:
        if len(packed) > 7:
            raise OrbitError(f"catalog.packed_designation: {packed!r} is longer than 7 columns")
        m_text = fmt(0.0 if round(m, 5) >= 360.0 else m, 9, 5, "mean_anomaly", packed)
        out.append(
            f"{packed:<7s} {fmt(h, 5, 2, 'h', packed)} {fmt(g, 5, 2, 'g', packed)} "
            f"{pack_epoch(epoch)} {m_text}  {fmt(peri, 9, 5, 'argperi', packed)}  "
            f"{fmt(node, 9, 5, 'node', packed)}  {fmt(incl, 9, 5, 'i', packed)}  "
            f"{fmt(e, 9, 7, 'e', packed)} {fmt(n, 11, 8, 'mean_motion', packed)} "
            f"{fmt(a, 11, 7, 'a', packed)}{(info or _SYNTHETIC_INFO)[:62]:<62s} "
            f"{_readable_field(readable)}{last[:8]:>8s}\n")
    return "".join(out)

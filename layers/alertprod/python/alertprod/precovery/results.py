"""Light curves of the precovery service: columns, flags, upper limits, baseline, and formats.

One row per (target position, image) — interfaces.md §6: ``target`` (0-based index of the
position in the request), ``ra``, ``dec`` (where it was measured), ``visit``, ``detector``,
``band``, ``midpointMjdTai``, ``psfFlux``, ``psfFluxErr`` (difference image, nJy),
``scienceFlux``, ``scienceFluxErr``, ``recreated``, ``flags`` — and the extensions users of
ZTF's and ATLAS's services ask for: ``status`` (a word per row, below), ``snr``,
``upperLimit`` (nJy: the 5σ limit where the source is not detected at 5σ), ``template``
(the template's provenance: which kind and which image), ``baseline`` / ``baselineErr``
(per target and band: below).

Flags and status codes (:mod:`alertprod.precovery.flags`): ``flags`` holds the mask bits of
the pixels under the measurement's footprint, numbered as :class:`alertprod.formats.MaskBit`,
plus row bits from 16 up (:class:`~alertprod.precovery.flags.PrecoveryFlag`); ``status`` is
``ok``, ``flagged`` (measured, quality bits under the core), ``no_data`` (no usable pixel: NaN
fluxes), ``off_image`` (outside the CCD at that epoch) or ``failed`` (the unit failed
permanently). A row's own ``status`` wins; rows without one get it from ``flags``.

Baseline: per target and band, the inverse-variance weighted mean of ``psfFlux`` over the
rows not detected at 5σ, iterated with a 3σ clip (a quiescent level to subtract, as ZTF's
forced-photometry guide recommends doing by hand).

Formats: CSV (RFC 4180, header line), JSON ``{"rows": [...], "baseline": [...]}`` (nulls for
NaN), VOTable (astropy, units and UCDs on the columns).
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from astropy.io.votable.tree import VOTableFile
from astropy.table import Table

from alertprod.errors import PrecoveryError
from alertprod.precovery.flags import PrecoveryFlag, row_status

__all__ = ["COLUMNS", "DETECTION_SNR", "add_derived_columns", "baseline_table",
           "rows_from_records", "to_csv", "to_json", "to_votable"]

#: Rows above this |S/N| are detections; below, the row carries a 5σ upper limit.
DETECTION_SNR = 5.0

#: Column: (dtype, unit, UCD, description).
COLUMNS: dict[str, tuple[str, str | None, str, str]] = {
    "target": ("i4", None, "meta.id", "0-based index of the position in the request"),
    "ra": ("f8", "deg", "pos.eq.ra;meta.main", "where it was measured"),
    "dec": ("f8", "deg", "pos.eq.dec;meta.main", "where it was measured"),
    "visit": ("i8", None, "meta.id;obs", "visit"),
    "detector": ("i2", None, "meta.id;instr.det", "detector"),
    "band": ("U1", None, "instr.bandpass", "LSST band"),
    "midpointMjdTai": ("f8", "d", "time.epoch", "exposure midpoint, TAI MJD"),
    "psfFlux": ("f8", "nJy", "phot.flux", "PSF flux on the difference image"),
    "psfFluxErr": ("f8", "nJy", "stat.error;phot.flux", "its 1σ error"),
    "scienceFlux": ("f8", "nJy", "phot.flux", "PSF flux on the calibrated exposure"),
    "scienceFluxErr": ("f8", "nJy", "stat.error;phot.flux", "its 1σ error"),
    "recreated": ("?", None, "meta.code", "difference image re-created from the archive"),
    "flags": ("i4", None, "meta.code.qual",
              "mask bits under the footprint (MaskBit numbering) | row bits 16+ (docs)"),
    "status": ("U9", None, "meta.code.status", "ok, flagged, no_data, off_image, failed"),
    "snr": ("f8", None, "stat.snr", "psfFlux / psfFluxErr"),
    "upperLimit": ("f8", "nJy", "phot.flux;stat.max", "5σ upper limit where not detected"),
    "template": ("U40", None, "meta.dataset", "template provenance"),
}


def add_derived_columns(rows: Table) -> Table:
    """``snr``, ``upperLimit`` and ``status`` from the measured columns (a copy)."""
    for col in ("psfFlux", "psfFluxErr", "flags"):
        if col not in rows.colnames:
            raise PrecoveryError(f"light curve lacks column {col!r}")
    out = Table(rows, copy=True)
    flux = np.asarray(out["psfFlux"], float)
    err = np.asarray(out["psfFluxErr"], float)
    with np.errstate(divide="ignore", invalid="ignore"):
        snr = np.where(err > 0, flux / err, np.nan)
    out["snr"] = snr
    detected = np.abs(snr) >= DETECTION_SNR
    out["upperLimit"] = np.where(~detected & np.isfinite(err) & (err > 0),
                                 np.fmax(flux, 0.0) + DETECTION_SNR * err, np.nan)
    status = row_status(np.asarray(out["flags"], np.int64), flux)
    if "status" in rows.colnames:  # an upstream word (e.g. the job service's failed) wins
        given = np.asarray(rows["status"]).astype("U9")
        status = np.where(given != "", given, status)
    out["status"] = status
    return out


def baseline_table(rows: Table, *, clip_sigma: float = 3.0, iterations: int = 5) -> Table:
    """Per (target, band): weighted mean flux of the non-detections, 3σ-clipped (module notes)."""
    derived = add_derived_columns(rows)
    out = {"target": [], "band": [], "baseline": [], "baselineErr": [], "nEpochs": []}
    if len(derived) == 0:
        return Table({"target": np.zeros(0, "i4"), "band": np.zeros(0, "U1"),
                      "baseline": np.zeros(0), "baselineErr": np.zeros(0),
                      "nEpochs": np.zeros(0, "i4")})
    target = np.asarray(derived["target"], np.int64)
    band = np.asarray(derived["band"]).astype("U1")
    flux = np.asarray(derived["psfFlux"], float)
    err = np.asarray(derived["psfFluxErr"], float)
    quiet = (np.abs(np.asarray(derived["snr"], float)) < DETECTION_SNR) & np.isfinite(flux) & (err > 0)
    for t in np.unique(target):
        for b in np.unique(band[target == t]):
            sel = quiet & (target == t) & (band == b)
            f, e = flux[sel], err[sel]
            keep = np.ones(f.size, bool)
            mean, mean_err = math.nan, math.nan
            for _ in range(iterations):
                if not keep.any():
                    break
                w = 1.0 / e[keep] ** 2
                mean = float(np.sum(w * f[keep]) / np.sum(w))
                mean_err = float(1.0 / np.sqrt(np.sum(w)))
                new = np.abs(f - mean) <= clip_sigma * e
                if np.array_equal(new, keep):
                    break
                keep = new
            out["target"].append(int(t))
            out["band"].append(str(b))
            out["baseline"].append(mean)
            out["baselineErr"].append(mean_err)
            out["nEpochs"].append(int(keep.sum()) if f.size else 0)
    return Table(out)


def _plain(value: Any) -> Any:
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _records(table: Table) -> list[dict[str, Any]]:
    names = table.colnames
    return [{n: _plain(row[n]) for n in names} for row in table]


def _ordered(rows: Table) -> Table:
    derived = add_derived_columns(rows)
    names = [c for c in COLUMNS if c in derived.colnames]
    return derived[names]


def to_csv(rows: Table) -> str:
    """The light curve as CSV (header line; empty fields for NaN)."""
    table = _ordered(rows)
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(table.colnames)
    for record in _records(table):
        writer.writerow(["" if v is None else v for v in record.values()])
    return buf.getvalue()


def to_json(rows: Table) -> str:
    """``{"rows": [...], "baseline": [...]}`` with nulls for NaN."""
    table = _ordered(rows)
    return json.dumps({"rows": _records(table), "baseline": _records(baseline_table(table))},
                      allow_nan=False)


def to_votable(rows: Table, *, description: str = "alertprod precovery light curve") -> bytes:
    """The light curve as a VOTable (units and UCDs on the columns)."""
    table = _ordered(rows)
    for name in table.colnames:
        _, unit, ucd, text = COLUMNS[name]
        if unit:
            table[name].unit = unit
        table[name].description = text
        table[name].meta["ucd"] = ucd
    votable = VOTableFile.from_table(table)
    resource_table = votable.get_first_table()
    resource_table.description = description
    for fld in resource_table.fields:
        fld.ucd = COLUMNS[fld.name][2]
    buf = io.BytesIO()
    votable.to_xml(buf)
    return buf.getvalue()


def rows_from_records(records: Sequence[Mapping[str, Any]]) -> Table:
    """A light-curve table from measurement dicts (missing columns filled: NaN, 0, '').

    A record whose ``status`` is ``failed`` measured nothing: its ``flags`` are
    :attr:`~alertprod.precovery.flags.PrecoveryFlag.FAILED` alone, whatever it said.
    """
    cols: dict[str, list] = {name: [] for name in COLUMNS}
    for rec in records:
        if rec.get("status") == "failed":
            rec = {**rec, "flags": int(PrecoveryFlag.FAILED)}
        for name, (dtype, *_rest) in COLUMNS.items():
            default: Any = math.nan if dtype.startswith("f") else (False if dtype == "?" else (
                "" if dtype.startswith("U") else 0))
            value = rec.get(name, default)
            cols[name].append(default if value is None else value)
    return Table({n: np.asarray(v, dtype=COLUMNS[n][0]) for n, v in cols.items()})

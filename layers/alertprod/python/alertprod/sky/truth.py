"""The truth of a simulated survey: what was put on the sky, and what each detection is.

Files under ``DIR/truth/``:

- ``objects.fits``: every object (``truthId``, ``kind`` ∈ {star, galaxy, variable, transient,
  hpm_star, asteroid}, ``ra``, ``dec``, fluxes per band, parameters, ``ssObjectId`` of asteroids);
- ``diasources.fits``: ``diaSourceId`` → ``truthId`` (−1 for bogus) and ``bogusKind``;
- ``footprints.fits``: one row per CCD-visit with its corners and WCS header;
- ``lightcurves.fits``: the true flux of every changing object at every visit whose CCD covers it;
- ``survey.json``: preset, seed, visits, nights, counts.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import NamedTuple

import numpy as np
from astropy.table import MaskedColumn, Table, vstack

from alertprod.sky.bogus import ArtifactList
from alertprod.sky.scene import SceneTruth

__all__ = ["Truth", "assemble_objects", "match_detections", "write_truth", "load_truth",
           "BOGUS_KINDS"]

#: ``bogusKind`` values of detections that are not a simulated object's signal.
BOGUS_KINDS = ("cr_residual", "hot_pixel", "edge", "dipole", "static_residual", "noise")


class Truth(NamedTuple):
    """The truth tables of a simulated survey (see the module docstring)."""

    objects: Table
    diasources: Table
    footprints: Table
    lightcurves: Table
    survey: dict


def assemble_objects(parts: list[Table]) -> Table:
    """Stack per-kind tables into one with ``truthId`` 1..N; absent values filled
    (NaN for floats, 0 for integers, "" for strings)."""
    t = vstack([p for p in parts if len(p)], join_type="outer", metadata_conflicts="silent")
    for name in t.colnames:
        col = t[name]
        if isinstance(col, MaskedColumn):
            fill = np.nan if col.dtype.kind == "f" else ("" if col.dtype.kind in "US" else 0)
            t[name] = col.filled(fill)
    t.add_column(np.arange(1, len(t) + 1, dtype=np.int64), name="truthId", index=0)
    return t


def match_detections(catalog: Table, truth: SceneTruth, artifacts: ArtifactList, *,
                     radius_pix: float = 5.0, bright_radius_pix: float = 20.0) -> Table:
    """Label each detection with the object or artifact that caused it.

    The nearest candidate within ``radius_pix`` wins: a changing object (its position at the
    visit, or a proper-motion star's template position, the negative lobe of its dipole) gives
    its ``truthId``; an unflagged artifact or a misaligned star gives ``truthId`` −1 and the
    artifact's kind. Otherwise a bright static star within ``bright_radius_pix`` makes it a
    ``static_residual``, and anything else is ``noise``.

    Returns
    -------
    astropy.table.Table
        ``diaSourceId``, ``truthId``, ``bogusKind`` ("" for real objects), ``matchDistPix``.
    """
    n = len(catalog)
    x = np.asarray(catalog["x"], dtype=float) if n else np.zeros(0)
    y = np.asarray(catalog["y"], dtype=float) if n else np.zeros(0)
    cx = np.concatenate([truth.match_x, np.asarray(artifacts.x, dtype=float), truth.dipole_x])
    cy = np.concatenate([truth.match_y, np.asarray(artifacts.y, dtype=float), truth.dipole_y])
    c_id = np.concatenate([truth.match_truth_id, np.full(len(artifacts) + len(truth.dipole_x), -1)])
    c_kind = np.array([""] * len(truth.match_x) + list(artifacts.kind) + ["dipole"] * len(truth.dipole_x),
                      dtype="U16")
    truth_id = np.full(n, -1, dtype=np.int64)
    kind = np.full(n, "noise", dtype="U16")
    dist = np.full(n, np.nan)
    if n and cx.size:
        d = np.hypot(x[:, None] - cx[None, :], y[:, None] - cy[None, :])
        best = np.argmin(d, axis=1)
        dist = d[np.arange(n), best]
        ok = dist <= radius_pix
        truth_id[ok] = c_id[best[ok]]
        kind[ok] = c_kind[best[ok]]
    if n and truth.bright_x.size:
        db = np.min(np.hypot(x[:, None] - truth.bright_x[None, :], y[:, None] - truth.bright_y[None, :]), axis=1)
        kind[(kind == "noise") & (db <= bright_radius_pix)] = "static_residual"
    out = Table()
    out["diaSourceId"] = np.asarray(catalog["diaSourceId"], dtype=np.int64) if n else np.zeros(0, np.int64)
    out["truthId"] = truth_id
    out["bogusKind"] = kind
    out["matchDistPix"] = dist
    return out


def write_truth(out_dir: Path, truth: Truth) -> None:
    """Write the truth tables under ``out_dir/truth/`` (FITS binary tables and JSON)."""
    d = Path(out_dir) / "truth"
    d.mkdir(parents=True, exist_ok=True)
    for name in ("objects", "diasources", "footprints", "lightcurves"):
        table = Table(getattr(truth, name), copy=False)
        table.meta.clear()
        table.write(d / f"{name}.fits", format="fits", overwrite=True)
    (d / "survey.json").write_text(json.dumps(truth.survey, indent=2, sort_keys=True) + "\n")


def load_truth(directory) -> Truth:
    """Read the truth written by :func:`alertprod.sky.simulate_survey`.

    Parameters
    ----------
    directory : str or pathlib.Path
        The simulation's output directory (the one holding ``truth/``) or ``truth/`` itself.

    Raises
    ------
    FileNotFoundError
        When the truth files are missing.
    """
    d = Path(directory)
    if not (d / "survey.json").exists():
        d = d / "truth"
    if not (d / "survey.json").exists():
        raise FileNotFoundError(f"no truth/survey.json under {directory!s}")
    tables = {}
    for name in ("objects", "diasources", "footprints", "lightcurves"):
        t = Table.read(d / f"{name}.fits", format="fits")
        for col in t.colnames:  # FITS pads strings: strip them back
            if t[col].dtype.kind in "US":
                t[col] = np.char.strip(np.asarray(t[col]).astype(str))
        tables[name] = t
    return Truth(survey=json.loads((d / "survey.json").read_text()), **tables)

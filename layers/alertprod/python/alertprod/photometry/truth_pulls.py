"""Pulls of exported DiaForcedSource fluxes against the survey simulator's truth.

How the forced photometry of a replayed survey (``alertprod simulate`` then ``alertprod replay``)
is checked: each DiaForcedSource row whose DiaObject stands for one simulated, non-moving point
source — or for empty sky — gets the true flux there at that visit, and the pulls
``(scienceFlux − true flux) / scienceFluxErr`` and ``(psfFlux − true difference flux) /
psfFluxErr`` are summarised in bins of the true science S/N (true flux / ``scienceFluxErr``:
binning on the true value keeps the bins free of the selection a measured S/N would add).
Which rows count, and why:

- **variables and transients**: the simulated object behind most of the DiaObject's
  DiaSources (``truth/diasources.fits``); true fluxes from ``truth/lightcurves.fits`` (``flux``
  on the science image, ``diffFlux`` on the difference image);
- **static stars**: their DiaObjects come from bogus detections (misalignment dipoles,
  subtraction residuals), which the truth labels as bogus; the star is the static star nearest
  the DiaObject; true difference flux 0;
- **empty sky**: the other DiaObjects of bogus detections (noise, cosmic rays, hot pixels), where
  nothing simulated lies near them: true fluxes 0;
- in every case the DiaObject position the row was measured from (``object_positions``: by
  default the exported DiaObject's) lies within ``max_object_offset_arcsec`` (0.4″) of the
  source: such offsets cluster below 0.3″, beyond which a DiaObject stands for something else;
- out: proper-motion stars and asteroids (they move, so their DiaObjects sit on a dipole lobe or
  an old position that no fixed-position measurement follows), galaxies (a PSF flux is not
  their flux); rows whose PSF stamp at the source crosses the CCD edge, holds a saturated or
  no-data pixel, or holds another detection of that visit (unmasked cosmic rays, hot pixels and
  edge junk are not in the truth, but are detected); rows where the neighbours (every simulated
  source, at its position at that visit) add more than ``max_blend_sigma`` (0.1σ) to a PSF fit
  at the source; and rows whose true difference flux is ``max_true_diff_snr`` (2)
  ``psfFluxErr`` or more — a forced row exists only where the object was *not* detected, so
  near the 5σ threshold the rows are the visits whose noise fell low (a selection, not a
  measurement bias: −0.3σ at a true difference S/N of 4).

``psfPull`` is NaN where the difference image's stamp is not clean (its border, a template's
saturated star): ``psfFlux`` is then not comparable with the truth, ``scienceFlux`` still is.
``python -m alertprod.photometry.truth_pulls SURVEY_DIR EXPORT_DIR`` prints the tables.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import NamedTuple

import numpy as np
from astropy.table import Table
from astropy.wcs.utils import proj_plane_pixel_scales
from scipy import ndimage, signal
from scipy.spatial import cKDTree

from alertprod.formats import Exposure, MaskBit, image_key, read_exposure
from alertprod.sky import load_truth

__all__ = ["SCIENCE_SNR_EDGES", "forced_source_pulls", "pull_summary"]

#: Edges of the true science S/N bins of the summary (< 10, 10–30, 30–100, > 100).
SCIENCE_SNR_EDGES = (10.0, 30.0, 100.0)

_KINDS = ("variable", "transient")
_EMPTY = -1  # truthId of empty sky
_UNMODELLED = int(MaskBit.SAT | MaskBit.EDGE | MaskBit.NO_DATA)


class _Pick(NamedTuple):
    """A DiaForcedSource row and the truth it is compared with."""

    row: int
    truth_id: int  # _EMPTY for empty sky
    flux: float  # nJy, science image
    diff_flux: float  # nJy, difference image
    ra: float  # where the source is at that visit (deg)
    dec: float


def _xy_arcsec(ra, dec, dec0: float) -> np.ndarray:
    return np.column_stack([np.asarray(ra, float) * np.cos(np.deg2rad(dec0)),
                            np.asarray(dec, float)]) * 3600.0


def _offset_arcsec(ra1, dec1, ra2, dec2) -> np.ndarray:
    cosd = np.cos(np.deg2rad(np.asarray(dec2, float)))
    return np.hypot((np.asarray(ra1, float) - ra2) * cosd, np.asarray(dec1, float) - dec2) * 3600.0


def _object_truth(truth, sources: Table) -> dict[int, int]:
    """diaObjectId → truthId behind most of its DiaSources (−1: bogus)."""
    d2t = dict(zip(np.asarray(truth.diasources["diaSourceId"], np.int64).tolist(),
                   np.asarray(truth.diasources["truthId"], np.int64).tolist(), strict=True))
    votes: dict[int, list[int]] = {}
    for oid, sid in zip(np.asarray(sources["diaObjectId"], np.int64).tolist(),
                        np.asarray(sources["diaSourceId"], np.int64).tolist(), strict=True):
        votes.setdefault(oid, []).append(d2t.get(sid, -1))
    out = {}
    for oid, v in votes.items():
        ids, counts = np.unique(np.asarray(v), return_counts=True)
        out[oid] = int(ids[np.argmax(counts)])
    return out


def _picks(truth, forced: Table, behind: dict[int, int], from_ra: np.ndarray,
           from_dec: np.ndarray, max_offset_arcsec: float) -> list[_Pick]:
    """Each row whose DiaObject stood, where it was measured from, for one source or empty sky."""
    obj, lc = truth.objects, truth.lightcurves
    kind_of = dict(zip(np.asarray(obj["truthId"], np.int64).tolist(),
                       np.asarray(obj["kind"]).astype(str), strict=True))
    dec0 = float(np.mean(obj["dec"]))
    stars = np.flatnonzero(np.asarray(obj["kind"]).astype(str) == "star")
    star_dist, star_k = cKDTree(_xy_arcsec(obj["ra"][stars], obj["dec"][stars], dec0)).query(
        _xy_arcsec(from_ra, from_dec, dec0))
    lc_row = {(int(t), int(v), int(d)): i for i, (t, v, d) in
              enumerate(zip(lc["truthId"], lc["visit"], lc["detector"], strict=True))}
    picks = []
    for i, row in enumerate(forced):
        tid = behind.get(int(row["diaObjectId"]), -1)
        if kind_of.get(tid) in _KINDS:
            j = lc_row.get((tid, int(row["visit"]), int(row["detector"])))
            if j is not None and _offset_arcsec(from_ra[i], from_dec[i], lc["ra"][j],
                                                lc["dec"][j]) <= max_offset_arcsec:
                picks.append(_Pick(i, tid, float(lc["flux"][j]), float(lc["diffFlux"][j]),
                                   float(lc["ra"][j]), float(lc["dec"][j])))
        elif tid < 0 and star_dist[i] <= max_offset_arcsec:
            s = stars[star_k[i]]
            picks.append(_Pick(i, int(obj["truthId"][s]), float(obj[f"flux_{row['band']}"][s]), 0.0,
                               float(obj["ra"][s]), float(obj["dec"][s])))
        elif tid < 0:  # empty sky, if the blend test finds nothing near it
            picks.append(_Pick(i, _EMPTY, 0.0, 0.0, float(from_ra[i]), float(from_dec[i])))
    return picks


class _Scene:
    """Every simulated source at one visit: sky positions and fluxes in the visit's band."""

    def __init__(self, truth, visit: int, band: str, dec0: float):
        obj, lc = truth.objects, truth.lightcurves
        kind = np.asarray(obj["kind"]).astype(str)
        static = np.isin(kind, ("star", "galaxy"))
        here = np.asarray(lc["visit"], np.int64) == visit
        self.truth_id = np.concatenate([np.asarray(obj["truthId"], np.int64)[static],
                                        np.asarray(lc["truthId"], np.int64)[here]])
        self.ra = np.concatenate([np.asarray(obj["ra"], float)[static], np.asarray(lc["ra"], float)[here]])
        self.dec = np.concatenate([np.asarray(obj["dec"], float)[static], np.asarray(lc["dec"], float)[here]])
        self.flux = np.concatenate([np.asarray(obj[f"flux_{band}"], float)[static],
                                    np.abs(np.asarray(lc["flux"], float)[here])])
        r_eff = np.nan_to_num(np.asarray(obj["r_eff_arcsec"], float))[static]
        self.galaxy_r = np.concatenate([np.where(kind[static] == "galaxy", r_eff, 0.0),
                                        np.zeros(int(here.sum()))])
        self.tree = cKDTree(_xy_arcsec(self.ra, self.dec, dec0))
        self.dec0 = dec0


class _Image:
    """One CCD-visit as the checks need it: science and difference exposures, detections."""

    def __init__(self, survey_dir: Path, visit: int, detector: int):
        images = survey_dir / "images"
        self.science = read_exposure((images / image_key(visit, detector, "science")).read_bytes())
        self.difference = read_exposure((images / image_key(visit, detector, "difference")).read_bytes())
        cat = Table.read(survey_dir / "diasources" / f"{visit:08d}" / f"{detector:03d}.fits", hdu=1)
        self.detections = np.column_stack([np.asarray(cat["x"], float), np.asarray(cat["y"], float)])
        ac = signal.fftconvolve(self.science.psf, self.science.psf[::-1, ::-1])
        self.autocorrelation = ac / ac[ac.shape[0] // 2, ac.shape[1] // 2]
        self.pixel_arcsec = float(np.mean(proj_plane_pixel_scales(self.science.wcs.celestial))) * 3600

    def response(self, dx: np.ndarray, dy: np.ndarray) -> np.ndarray:
        """The PSF fit's response to a unit point source at an offset (pixels): P ⋆ P."""
        c = self.autocorrelation.shape[0] // 2
        return ndimage.map_coordinates(self.autocorrelation, [np.asarray(dy) + c, np.asarray(dx) + c],
                                       order=1, cval=0.0)


def _clean(exp: Exposure, x: float, y: float) -> bool:
    """Whether the PSF stamp at (x, y) lies on the image, clear of saturation, edges, no data.

    Bad columns and masked cosmic rays are left in: forced photometry gives them zero weight.
    A saturated star's halo and bleed trail (on a difference image also the template's) and a
    CCD's edge (light of sources beyond it, the subtraction's border) are not in the truth.
    """
    h = exp.psf.shape[0] // 2
    ix, iy = int(round(x)), int(round(y))
    ny, nx = exp.shape
    if not (h <= ix < nx - h and h <= iy < ny - h):
        return False
    return not np.any(exp.mask[iy - h:iy + h + 1, ix - h:ix + h + 1] & _UNMODELLED)


def _usable(image: _Image, scene: _Scene, pick: _Pick, err: float, max_blend_sigma: float) -> bool:
    """A clean science stamp with no other detection in it, and neighbours below the limit."""
    (x, y), = image.science.wcs.all_world2pix([[pick.ra, pick.dec]], 0)
    if not _clean(image.science, x, y):
        return False
    k = image.science.psf.shape[0]
    if np.any(np.max(np.abs(image.detections - [x, y]), axis=1) <= k // 2):
        return False  # an artefact, or another source, detected inside the stamp
    # a point source reaches the fit through the PSF autocorrelation: up to k − 1 pixels away;
    # a galaxy's light reaches closer than its centre: taken as a point 3 r_eff nearer
    reach = (k - 1) * image.pixel_arcsec
    near = np.asarray(scene.tree.query_ball_point(_xy_arcsec([pick.ra], [pick.dec], scene.dec0)[0],
                                                  reach + 3 * float(scene.galaxy_r.max(initial=0))),
                      dtype=int)
    near = near[scene.truth_id[near] != pick.truth_id]
    if near.size == 0:
        return True
    xn, yn = image.science.wcs.all_world2pix(scene.ra[near], scene.dec[near], 0)
    dx, dy = np.asarray(xn) - x, np.asarray(yn) - y
    sep = np.hypot(dx, dy)
    shrink = np.maximum(sep - 3 * scene.galaxy_r[near] / image.pixel_arcsec, 0) / np.maximum(sep, 1e-9)
    leak = scene.flux[near] * image.response(dx * shrink, dy * shrink)
    return bool(np.sum(np.abs(leak)) <= max_blend_sigma * err)


def _kept(survey_dir: Path, truth, forced: Table, picks: list[_Pick], *, max_blend_sigma: float,
          max_true_diff_snr: float) -> tuple[list[_Pick], list[bool]]:
    """The picks out of reach of the detection threshold, usable, and whether each one's
    difference-image stamp is clean too."""
    dec0 = float(np.mean(truth.objects["dec"]))
    by_image: dict[tuple[int, int], list[_Pick]] = {}
    for p in picks:
        if abs(p.diff_flux) < max_true_diff_snr * float(forced["psfFluxErr"][p.row]):
            key = (int(forced["visit"][p.row]), int(forced["detector"][p.row]))
            by_image.setdefault(key, []).append(p)
    kept, diff_clean = [], []
    for (visit, det), members in sorted(by_image.items()):
        if not (survey_dir / "images" / image_key(visit, det, "science")).exists():
            continue
        image = _Image(survey_dir, visit, det)
        scene = _Scene(truth, visit, str(forced["band"][members[0].row]), dec0)
        for p in members:
            err = float(forced["scienceFluxErr"][p.row])
            if np.isfinite(err) and _usable(image, scene, p, err, max_blend_sigma):
                kept.append(p)
                (x, y), = image.difference.wcs.all_world2pix([[p.ra, p.dec]], 0)
                diff_clean.append(_clean(image.difference, x, y))
    order = np.argsort([p.row for p in kept], kind="stable")
    return [kept[i] for i in order], [diff_clean[i] for i in order]


def forced_source_pulls(survey_dir: str | Path, export_dir: str | Path, *,
                        object_positions: Table | None = None, max_object_offset_arcsec: float = 0.4,
                        max_blend_sigma: float = 0.1, max_true_diff_snr: float = 2.0) -> Table:
    """The DiaForcedSource rows of one simulated point source (or empty sky), with their pulls.

    Parameters
    ----------
    survey_dir : path
        The simulated survey (``images/``, ``diasources/``, ``truth/``).
    export_dir : path
        The replay's export (``DiaForcedSource.fits``, ``DiaSource.fits``, ``DiaObject.fits``).
    object_positions : astropy.table.Table, keyword-only, optional
        ``diaForcedSourceId``, ``ra``, ``dec`` (deg): the DiaObject position each row was
        measured from; by default the exported DiaObject's (its last version).
    max_object_offset_arcsec : float, keyword-only
        Largest distance from that position to the source the row is compared with (arcsec).
    max_blend_sigma : float, keyword-only
        Rows whose neighbours add more than this many ``scienceFluxErr`` to a PSF fit at the
        source are left out.
    max_true_diff_snr : float, keyword-only
        Rows whose true difference flux is this many ``psfFluxErr`` or more are left out: the
        detection threshold decides which visits become forced rows there.

    Returns
    -------
    astropy.table.Table
        One row per kept DiaForcedSource: ``diaForcedSourceId``, ``diaObjectId``, ``visit``,
        ``detector``, ``band``, ``isPrecovery``, ``kind`` (variable, transient, star, empty),
        ``truthId`` (−1 for empty sky), ``trueFlux``, ``trueDiffFlux`` (nJy), ``scienceFlux``,
        ``scienceFluxErr``, ``psfFlux``, ``psfFluxErr``, ``trueScienceSnr``, ``sciencePull``,
        ``psfPull`` (NaN where the difference stamp is not clean), the source's position at
        the visit ``trueRa``/``trueDec``, ``objectOffsetArcsec`` (from the DiaObject position
        measured from) and ``rowOffsetArcsec`` (from the row's ``ra``/``dec``).
    """
    survey_dir, export_dir = Path(survey_dir), Path(export_dir)
    truth = load_truth(survey_dir)
    forced = Table.read(export_dir / "DiaForcedSource.fits")
    from_ra, from_dec = _measured_from(forced, export_dir, object_positions)
    behind = _object_truth(truth, Table.read(export_dir / "DiaSource.fits"))
    picks = _picks(truth, forced, behind, from_ra, from_dec, max_object_offset_arcsec)
    kept, diff_clean = _kept(survey_dir, truth, forced, picks, max_blend_sigma=max_blend_sigma,
                             max_true_diff_snr=max_true_diff_snr)
    out = _pull_table(truth, forced, kept, from_ra, from_dec)
    out["psfPull"][~np.asarray(diff_clean, dtype=bool)] = np.nan
    return out


def _measured_from(forced: Table, export_dir: Path, object_positions: Table | None
                   ) -> tuple[np.ndarray, np.ndarray]:
    """Each row's DiaObject position: given per row, or the exported DiaObject's."""
    if object_positions is not None:
        key, ra, dec = (np.asarray(object_positions[c]) for c in ("diaForcedSourceId", "ra", "dec"))
        ids = np.asarray(forced["diaForcedSourceId"])
    else:
        objects = Table.read(export_dir / "DiaObject.fits")
        key, ra, dec = (np.asarray(objects[c]) for c in ("diaObjectId", "ra", "dec"))
        ids = np.asarray(forced["diaObjectId"])
    where = {int(k): i for i, k in enumerate(key)}
    idx = np.array([where.get(int(i), -1) for i in ids], dtype=int)
    ra_out = np.where(idx >= 0, np.asarray(ra, float)[idx], np.nan)
    dec_out = np.where(idx >= 0, np.asarray(dec, float)[idx], np.nan)
    return ra_out, dec_out


def _pull_table(truth, forced: Table, sel: list[_Pick], from_ra: np.ndarray,
                from_dec: np.ndarray) -> Table:
    rows = forced[[p.row for p in sel]]
    kind_of = dict(zip(np.asarray(truth.objects["truthId"], np.int64).tolist(),
                       np.asarray(truth.objects["kind"]).astype(str), strict=True))
    out = Table()
    for col in ("diaForcedSourceId", "diaObjectId", "visit", "detector", "band", "isPrecovery"):
        out[col] = rows[col]
    out["kind"] = np.array([kind_of.get(p.truth_id, "empty") for p in sel], dtype="U10")
    out["truthId"] = np.array([p.truth_id for p in sel], dtype=np.int64)
    out["trueFlux"] = np.array([p.flux for p in sel], dtype=float)
    out["trueDiffFlux"] = np.array([p.diff_flux for p in sel], dtype=float)
    for col in ("scienceFlux", "scienceFluxErr", "psfFlux", "psfFluxErr"):
        out[col] = np.asarray(rows[col], float)
    out["trueScienceSnr"] = out["trueFlux"] / out["scienceFluxErr"]
    out["sciencePull"] = (out["scienceFlux"] - out["trueFlux"]) / out["scienceFluxErr"]
    out["psfPull"] = (out["psfFlux"] - out["trueDiffFlux"]) / out["psfFluxErr"]
    out["trueRa"] = np.array([p.ra for p in sel], dtype=float)
    out["trueDec"] = np.array([p.dec for p in sel], dtype=float)
    i = np.array([p.row for p in sel], dtype=int)
    out["objectOffsetArcsec"] = _offset_arcsec(from_ra[i], from_dec[i], out["trueRa"], out["trueDec"])
    out["rowOffsetArcsec"] = _offset_arcsec(np.asarray(rows["ra"], float),
                                            np.asarray(rows["dec"], float),
                                            out["trueRa"], out["trueDec"])
    return out


def pull_summary(pulls: Table, *, pull: str = "sciencePull", snr: str = "trueScienceSnr",
                 edges: tuple[float, ...] = SCIENCE_SNR_EDGES) -> Table:
    """Rows, mean and standard deviation of a pull column per S/N bin (NaN pulls left out).

    Parameters
    ----------
    pulls : astropy.table.Table
        From :func:`forced_source_pulls`.
    pull, snr : str, keyword-only
        The pull column and the S/N column that bins it.
    edges : tuple of float, keyword-only
        Inner bin edges: bins ``< edges[0]``, ``[edges[0], edges[1])`` … ``≥ edges[-1]``.

    Returns
    -------
    astropy.table.Table
        ``bin`` (label), ``rows``, ``mean``, ``std`` (ddof 1), ``median`` per bin.
    """
    lo, hi = (-np.inf, *edges), (*edges, np.inf)
    s, p = np.asarray(pulls[snr], float), np.asarray(pulls[pull], float)
    out: dict[str, list] = {"bin": [], "rows": [], "mean": [], "std": [], "median": []}
    for a, b in zip(lo, hi, strict=True):
        m = (s >= a) & (s < b) & np.isfinite(p)
        label = f"< {b:g}" if not np.isfinite(a) else (f"> {a:g}" if not np.isfinite(b) else f"{a:g}–{b:g}")
        out["bin"].append(label)
        out["rows"].append(int(m.sum()))
        out["mean"].append(float(np.mean(p[m])) if m.any() else np.nan)
        out["std"].append(float(np.std(p[m], ddof=1)) if m.sum() > 1 else np.nan)
        out["median"].append(float(np.median(p[m])) if m.any() else np.nan)
    return Table(out)


def main(argv: list[str] | None = None) -> int:
    """Print the scienceFlux and psfFlux pull tables of a replayed survey."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2:
        print("usage: python -m alertprod.photometry.truth_pulls SURVEY_DIR EXPORT_DIR", file=sys.stderr)
        return 2
    pulls = forced_source_pulls(args[0], args[1])
    for col in ("sciencePull", "psfPull"):
        print(f"{col} by true science S/N ({len(pulls)} rows)")
        pull_summary(pulls, pull=col).pprint(max_width=-1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

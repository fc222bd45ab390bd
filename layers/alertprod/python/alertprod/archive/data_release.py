"""Data-release templates: deeper coadds per sky patch and band, kept in the archive with an index.

The nightly template of a CCD-visit is uploaded with it, on its pixel grid. A data release
adds deeper coadds per sky *patch* (a tangent-plane pixel grid of its own) and band; the
precovery service can re-create a difference image against one (option F, ``"images":
"data_release"``): lower template noise, so smaller errors on faint, old epochs.

Keys (archive bucket; docs/archive.md "Data-release templates")::

    archive/templates/{release}/{band}/{patch}.fits   one coadd, tile-compressed exposure format
    archive/templates/index.json                      the index: release, and per coadd its key,
                                                      band, patch, footprint corners, depth

A coadd file is an exposure file (docs/formats.md: ``IMAGE``/``VARIANCE``/``MASK``/``PSF``
with its WCS, nJy) whose primary header also names ``DRNAME`` (the release), ``DRPATCH`` (the
patch) and ``DRDEPTH`` (visits coadded). :func:`load_data_release` (the operator's
``alertprod templates load DIR``) checks every file of a directory, writes the coadds (a file
already stored from the same bytes is not written again) and then the index, so an indexed
coadd can always be read and a rerun changes nothing.

A re-creation reads a coadd by windows and resamples it onto the science CCD's pixels
(:func:`template_on_science_grid`, :func:`alertprod.imaging.resample.resample_exposure`).
Patches overlap (the simulator's by 20 % of their side), and the patch chosen for a position is
the one whose centre is nearest, so a position's re-creation window lies inside one patch.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from alertprod.archive.keys import ARCHIVE_PREFIX
from alertprod.errors import ContractError, NotFoundError, PrecoveryError
from alertprod.formats import BlobSource, Exposure, ExposureFile
from alertprod.formats.compression import compress_exposure_bytes
from alertprod.formats.mask import MaskBit
from alertprod.pixelization import polygon_contains

__all__ = ["DR_INDEX_KEY", "DR_PREFIX", "DataReleaseIndex", "DataReleaseTemplate",
           "dr_template_key", "load_data_release", "read_data_release_index",
           "template_on_science_grid"]

DR_PREFIX = ARCHIVE_PREFIX + "templates/"
DR_INDEX_KEY = DR_PREFIX + "index.json"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,31}$")
_BANDS = "ugrizy"
#: Extra patch pixels read around a window's footprint (the cubic spline's reach and rotation).
_READ_MARGIN_PIX = 8
_SOURCE_DIGEST = "source-sha256"


def dr_template_key(release: str, band: str, patch: str) -> str:
    """``archive/templates/{release}/{band}/{patch}.fits`` (names checked)."""
    for what, value in (("release", release), ("patch", patch)):
        if not isinstance(value, str) or not _NAME.match(value):
            raise ContractError("bad_header", f"data-release {what} name {value!r}: expected 1-32 "
                                              "letters, digits, '_', '.', '-'")
    if band not in _BANDS or len(band) != 1:
        raise ContractError("bad_header", f"band must be one of {list(_BANDS)}, got {band!r}")
    return f"{DR_PREFIX}{release}/{band}/{patch}.fits"


@dataclass(frozen=True)
class DataReleaseTemplate:
    """One coadd of the index: ``release``, ``patch``, ``band``, ``key``, ``corners`` (deg,
    shape (4, 2)), ``depth_visits``."""

    release: str
    patch: str
    band: str
    key: str
    corners: np.ndarray
    depth_visits: int

    @property
    def provenance(self) -> str:
        """``data_release:{release}/{patch}``: what a row's ``template`` column says."""
        return f"data_release:{self.release}/{self.patch}"

    def centre(self) -> np.ndarray:
        """Unit vector of the footprint's centre."""
        ra, dec = np.deg2rad(self.corners[:, 0]), np.deg2rad(self.corners[:, 1])
        v = np.array([np.cos(dec) * np.cos(ra), np.cos(dec) * np.sin(ra), np.sin(dec)]).sum(axis=1)
        return v / np.linalg.norm(v)


class DataReleaseIndex:
    """The loaded coadds, searchable by position and band."""

    def __init__(self, release: str, templates: list[DataReleaseTemplate]):
        self.release, self.templates = release, list(templates)

    def __len__(self) -> int:
        return len(self.templates)

    def covering(self, ra_deg: float, dec_deg: float, band: str | None = None
                 ) -> DataReleaseTemplate | None:
        """The coadd (of ``band``, or any) whose footprint holds the position and whose centre
        is nearest to it; None when none does."""
        ra, dec = np.deg2rad(float(ra_deg)), np.deg2rad(float(dec_deg))
        p = np.array([np.cos(dec) * np.cos(ra), np.cos(dec) * np.sin(ra), np.sin(dec)])
        best, best_dot = None, -2.0
        for t in self.templates:
            if band is not None and t.band != band:
                continue
            if polygon_contains(t.corners, float(ra_deg), float(dec_deg)):
                dot = float(t.centre() @ p)
                if dot > best_dot:
                    best, best_dot = t, dot
        return best

    def to_json(self) -> str:
        """The index document (sorted, so the same coadds always give the same bytes)."""
        items = [{"patch": t.patch, "band": t.band, "key": t.key,
                  "corners": [[float(a), float(b)] for a, b in t.corners],
                  "depthVisits": int(t.depth_visits)}
                 for t in sorted(self.templates, key=lambda t: (t.patch, t.band))]
        return json.dumps({"release": self.release, "templates": items}, indent=1, sort_keys=True)

    @classmethod
    def from_json(cls, text: str | bytes) -> DataReleaseIndex:
        """Parse an index document (:class:`~alertprod.errors.ContractError` if malformed)."""
        try:
            doc = json.loads(text)
            release = str(doc["release"])
            templates = [DataReleaseTemplate(release, str(i["patch"]), str(i["band"]), str(i["key"]),
                                             np.asarray(i["corners"], float).reshape(-1, 2),
                                             int(i["depthVisits"]))
                         for i in doc["templates"]]
        except (ValueError, KeyError, TypeError) as exc:
            raise ContractError("bad_index", f"data-release index is malformed: {exc}") from exc
        return cls(release, templates)


def read_data_release_index(store) -> DataReleaseIndex | None:
    """The loaded index from the archive bucket, or None when no data release is loaded."""
    try:
        return DataReleaseIndex.from_json(store.get(DR_INDEX_KEY))
    except NotFoundError:
        return None


def _footprint(efile: ExposureFile) -> np.ndarray:
    ny, nx = efile.shape
    ra, dec = efile.wcs.all_pix2world([-0.5, nx - 0.5, nx - 0.5, -0.5],
                                      [-0.5, -0.5, ny - 0.5, ny - 0.5], 0)
    return np.column_stack([np.asarray(ra) % 360.0, dec])


def _checked(path: Path, raw: bytes) -> tuple[DataReleaseTemplate, bytes]:
    """The index entry of one coadd file, after checking it (ContractError naming the file)."""
    what = path.name
    try:
        efile = ExposureFile.open(raw, what=what)
    except ContractError:
        raise
    except Exception as exc:  # astropy's varied exceptions for a file that is not FITS
        raise ContractError("not_fits", f"{what} is not a readable exposure file: {exc}") from exc
    header = efile.header
    for card in ("DRNAME", "DRPATCH", "DRDEPTH"):
        if card not in header:
            raise ContractError("bad_header", f"{what}: a data-release coadd needs the {card} card")
    depth = header["DRDEPTH"]
    if isinstance(depth, bool) or not isinstance(depth, int) or depth < 1:
        raise ContractError("bad_header", f"{what}: DRDEPTH must be a positive integer, got {depth!r}")
    corners = _footprint(efile)
    if not np.all(np.isfinite(corners)):
        raise ContractError("bad_wcs", f"{what}: the WCS maps the corners to non-finite sky")
    key = dr_template_key(str(header["DRNAME"]), efile.info.band, str(header["DRPATCH"]))
    return DataReleaseTemplate(str(header["DRNAME"]), str(header["DRPATCH"]), efile.info.band, key,
                               corners, int(depth)), raw


def load_data_release(directory, archive) -> dict[str, Any]:
    """Check and load every coadd (``*.fits``) of a directory into the archive, then the index.

    Parameters
    ----------
    directory : str or Path
        The coadds of one release.
    archive : BlobStore
        The archive bucket.

    Returns
    -------
    dict
        ``release``, ``templates`` (count), ``written``, ``unchanged``, ``bands``, ``patches``.

    Raises
    ------
    ContractError
        Naming the file and the rule it breaks (nothing is written then): not an exposure
        file, a missing ``DRNAME``/``DRPATCH``/``DRDEPTH``, a bad name or WCS, two releases in
        one directory, or the same (patch, band) twice.
    """
    root = Path(directory)
    files = sorted(root.glob("*.fits"))
    if not root.is_dir() or not files:
        raise ContractError("no_templates", f"{directory}: no data-release coadds (*.fits) found")
    # every file checked before anything is written; one file in memory at a time
    checked = []
    for path in files:
        raw = path.read_bytes()
        checked.append((_checked(path, raw)[0], path, hashlib.sha256(raw).hexdigest()))
        del raw
    releases = {t.release for t, _, _ in checked}
    if len(releases) != 1:
        raise ContractError("bad_header", f"{directory}: one release per load, found {sorted(releases)}")
    seen: set[tuple[str, str]] = set()
    for t, path, _ in checked:
        if (t.patch, t.band) in seen:
            raise ContractError("duplicate", f"{directory}: patch {t.patch} band {t.band} twice "
                                             f"({path.name})")
        seen.add((t.patch, t.band))
    written = unchanged = 0
    for t, path, digest in checked:
        head = archive.head(t.key)
        if head is not None and head["metadata"].get(_SOURCE_DIGEST) == digest:
            unchanged += 1
            continue
        raw = path.read_bytes()
        if hashlib.sha256(raw).hexdigest() != digest:
            raise ContractError("changed", f"{path.name} changed while it was being loaded")
        archive.put(t.key, compress_exposure_bytes(raw, what=t.key), content_type="application/fits",
                    metadata={_SOURCE_DIGEST: digest})
        written += 1
    index = DataReleaseIndex(releases.pop(), [t for t, _, _ in checked])
    archive.put(DR_INDEX_KEY, index.to_json().encode(), content_type="application/json")
    return {"release": index.release, "templates": len(index), "written": written,
            "unchanged": unchanged, "bands": sorted({t.band for t in index.templates}),
            "patches": len({t.patch for t in index.templates})}


def template_on_science_grid(store, entry: DataReleaseTemplate, science: Exposure,
                             windows) -> Exposure:
    """A data-release coadd resampled onto a science CCD's pixels, inside ``windows`` only.

    Parameters
    ----------
    store : BlobStore
        Where the coadd is (the archive bucket).
    entry : DataReleaseTemplate
        From :meth:`DataReleaseIndex.covering`.
    science : Exposure
        The science exposure (its WCS and shape are the target grid).
    windows : sequence of (y0, y1, x0, x1)
        The science pixels a re-creation reads.

    Returns
    -------
    Exposure
        Full science shape; inside the windows the coadd resampled (cubic spline; variance,
        mask and PSF as :func:`~alertprod.imaging.resample.resample_exposure` carries them),
        ``NO_DATA`` where the patch does not reach; NaN / ``NO_DATA`` elsewhere. Header cards
        ``DRNAME``, ``DRPATCH`` name the coadd.
    """
    from alertprod.imaging.resample import resample_exposure

    try:
        efile = ExposureFile.open(BlobSource(store, entry.key), what=entry.key)
    except NotFoundError as exc:
        raise PrecoveryError(f"data-release template {entry.key} is indexed but missing") from exc
    ny, nx = science.shape
    py, px = efile.shape
    boxes = []
    for y0, y1, x0, x1 in windows:
        ra, dec = science.wcs.all_pix2world([x0 - 0.5, x1 - 0.5, x1 - 0.5, x0 - 0.5],
                                            [y0 - 0.5, y0 - 0.5, y1 - 0.5, y1 - 0.5], 0)
        u, v = efile.wcs.all_world2pix(ra, dec, 0)
        box = (max(0, int(np.floor(np.min(v))) - _READ_MARGIN_PIX),
               min(py, int(np.ceil(np.max(v))) + _READ_MARGIN_PIX + 1),
               max(0, int(np.floor(np.min(u))) - _READ_MARGIN_PIX),
               min(px, int(np.ceil(np.max(u))) + _READ_MARGIN_PIX + 1))
        boxes.append(box)
    usable = [b for b in boxes if b[1] > b[0] and b[3] > b[2]]
    patch = efile.read_windows(np.array(usable, np.int64).reshape(-1, 4))
    image = np.full((ny, nx), np.nan, np.float32)
    variance = np.full((ny, nx), np.nan, np.float32)
    mask = np.full((ny, nx), int(MaskBit.NO_DATA), np.int32)
    psf = None
    for (y0, y1, x0, x1), (a0, a1, b0, b1) in zip(windows, boxes, strict=True):
        if not (a1 > a0 and b1 > b0):
            continue  # the window is off the patch: it stays NO_DATA
        crop = Exposure(patch.image[a0:a1, b0:b1], patch.variance[a0:a1, b0:b1],
                        patch.mask[a0:a1, b0:b1], patch.psf, patch.wcs[a0:a1, b0:b1], patch.info,
                        patch.header)
        out = resample_exposure(crop, science.wcs[y0:y1, x0:x1], (y1 - y0, x1 - x0))
        image[y0:y1, x0:x1] = out.image
        variance[y0:y1, x0:x1] = out.variance
        mask[y0:y1, x0:x1] = out.mask
        psf = out.psf if psf is None else psf
    if psf is None:
        psf = patch.psf
    header = {"DRNAME": entry.release, "DRPATCH": entry.patch}
    return Exposure(image, variance, mask, psf, science.wcs, patch.info, header)

"""Postage stamps of a precovery job (option A): one FITS file with a WCS per epoch and target.

What users of ZTF's and ATLAS's services ask for is a way to *see* each measured epoch. For
every (target, image) a job measured, :func:`make_stamps` cuts the difference image (its
variance and mask) and the calibrated exposure around the position the target was measured
at — for a moving target its own position at that epoch, so each stamp is centred on the
object (one stamp per epoch, not a cube on a fixed grid). The cut is
:class:`astropy.nddata.Cutout2D` (``mode="partial"``: pixels off the image are NaN, and the
cutout's WCS is the image's, shifted), from the windows the unit read already
(:func:`stamp_points` says which pixels a stamp needs so that the reader fetches them).

The FITS file: a primary HDU whose header is the provenance (``VISIT``, ``DETECTOR``,
``BAND``, ``MJD-MID`` (TAI), ``RECREATE``, ``TEMPLATE`` (which template the difference was
made against), ``TARGET``, ``RA_TARG``, ``DEC_TARG``), and image extensions ``DIFF``
(nJy), ``DIFFVAR`` (nJy²), ``DIFFMASK`` (mask bits) and ``SCIENCE`` (nJy), each with the
stamp's celestial WCS. Each stamp has a PNG preview of its difference plane drawn with the
nightly report's cutout stretch (:func:`alertprod.report.plots.save_cutout`). Names:
``stamps/target{T:05d}/{V:08d}_{D:03d}.fits`` and ``.png``, unique per (target, visit,
detector). Side: :data:`STAMP_SIZE_PIX` pixels (docs/precovery-service.md, "Stamps").
"""

from __future__ import annotations

import io
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

import numpy as np
from astropy.io import fits
from astropy.nddata import Cutout2D
from astropy.wcs import WCS

from alertprod.formats.exposure import Exposure

__all__ = ["STAMP_SIZE_PIX", "Stamp", "make_stamps", "stamp_name", "stamp_points"]

#: Side of a stamp (pixels; odd, so that the target sits on the centre pixel): 12.2″ at the
#: LSST's 0.2″ pixels, ten times the median seeing.
STAMP_SIZE_PIX = 61


class Stamp(NamedTuple):
    """One stamp file: its name in the job's stamp archive, bytes and media type."""

    name: str
    data: bytes
    content_type: str


def stamp_name(target: int, visit: int, detector: int, suffix: str) -> str:
    """``stamps/target{T:05d}/{V:08d}_{D:03d}.{suffix}``: unique per (target, visit, detector)."""
    return f"stamps/target{int(target):05d}/{int(visit):08d}_{int(detector):03d}.{suffix}"


def stamp_points(wcs: WCS, ra_deg: np.ndarray, dec_deg: np.ndarray, *,
                 size_pix: int = STAMP_SIZE_PIX, spacing_pix: int = 15
                 ) -> tuple[np.ndarray, np.ndarray]:
    """Sky points on a grid over each stamp, at most ``spacing_pix`` apart.

    A reader or a re-creation that serves every point's PSF-sized stamp
    (:func:`alertprod.imaging.recreate.recreation_tiles`) then covers the whole stamp whatever
    the tiling, as long as ``spacing_pix`` is at most the PSF's side.

    Returns
    -------
    ra_deg, dec_deg : ndarray, shape (n · g²,)
    """
    ra, dec = np.atleast_1d(np.asarray(ra_deg, float)), np.atleast_1d(np.asarray(dec_deg, float))
    if ra.size == 0:
        return ra, dec
    half = size_pix // 2
    n = int(np.ceil(2 * half / max(1, int(spacing_pix)))) + 1
    offsets = np.linspace(-half, half, n)
    dx, dy = np.meshgrid(offsets, offsets)
    with np.errstate(invalid="ignore"):
        x, y = wcs.all_world2pix(ra, dec, 0, quiet=True)
    px = (np.asarray(x)[:, None] + dx.ravel()[None, :]).ravel()
    py = (np.asarray(y)[:, None] + dy.ravel()[None, :]).ravel()
    ok = np.isfinite(px) & np.isfinite(py)
    sra, sdec = wcs.all_pix2world(px[ok], py[ok], 0)
    return np.asarray(sra, float) % 360.0, np.asarray(sdec, float)


def _cut(plane: np.ndarray, wcs: WCS, x: float, y: float, size: int, fill) -> Cutout2D:
    return Cutout2D(plane, (x, y), (size, size), wcs=wcs, mode="partial", fill_value=fill)


def _png(image: np.ndarray) -> bytes:
    from alertprod.report.plots import save_cutout  # matplotlib: only when stamps are drawn

    with tempfile.TemporaryDirectory() as tmp:
        return save_cutout(image, Path(tmp) / "stamp.png").read_bytes()


def make_stamps(difference: Exposure, science: Exposure | None, targets: Sequence[int],
                ra_deg: Sequence[float], dec_deg: Sequence[float], *, visit: int, detector: int,
                band: str, mjd_tai: float, recreated: bool, template: str,
                size_pix: int = STAMP_SIZE_PIX, preview: bool = True) -> list[Stamp]:
    """The FITS stamps (and PNG previews) of one image for the positions it measured.

    Parameters
    ----------
    difference : Exposure
        The difference image (cached or re-created; windows around the positions suffice).
    science : Exposure or None
        The calibrated exposure on the same pixel grid (its plane is left out when None).
    targets : sequence of int
        Index of each position in the request.
    ra_deg, dec_deg : sequence of float
        Where each target was measured on this image (ICRS, degrees).
    visit, detector, band, mjd_tai, recreated, template : keyword-only
        Provenance written to the header (``template``: e.g. ``"nightly"``,
        ``"data_release:DR1/p012"``).
    size_pix : int, keyword-only
        Stamp side (pixels).
    preview : bool, keyword-only
        Also draw a PNG of each difference stamp.

    Returns
    -------
    list of Stamp
        For each target on the image: its FITS file, then its PNG when ``preview``.
    """
    out: list[Stamp] = []
    wcs = difference.wcs
    with np.errstate(invalid="ignore"):
        xs, ys = wcs.all_world2pix(np.asarray(ra_deg, float), np.asarray(dec_deg, float), 0,
                                   quiet=True)
    ny, nx = difference.shape
    for t, r, d, x, y in zip(targets, ra_deg, dec_deg, np.atleast_1d(xs), np.atleast_1d(ys),
                             strict=True):
        if not (np.isfinite(x) and np.isfinite(y) and -0.5 <= x < nx - 0.5 and -0.5 <= y < ny - 0.5):
            continue  # not on this image: nothing to show
        x_c, y_c = float(np.floor(x + 0.5)), float(np.floor(y + 0.5))  # centre pixel
        diff = _cut(difference.image, wcs, x_c, y_c, size_pix, np.nan)
        header = fits.Header()
        for key, value, comment in (
                ("VISIT", int(visit), "visit"), ("DETECTOR", int(detector), "detector"),
                ("BAND", str(band), "LSST band"), ("MJD-MID", float(mjd_tai), "[d] exposure midpoint"),
                ("TIMESYS", "TAI", "time scale of MJD-MID"),
                ("RECREATE", bool(recreated), "difference re-created from the archive"),
                ("TEMPLATE", str(template)[:68], "template the difference was made against"),
                ("TARGET", int(t), "index of the target in the request"),
                ("RA_TARG", float(r), "[deg] where the target was measured"),
                ("DEC_TARG", float(d), "[deg] where the target was measured"),
                ("STMPSIZE", int(size_pix), "[pix] stamp side"), ("BUNIT", "nJy", "")):
            header[key] = (value, comment)
        hdus = [fits.PrimaryHDU(header=header)]
        stamp_wcs = diff.wcs.to_header()
        planes = [("DIFF", diff.data, np.float32, "nJy"),
                  ("DIFFVAR", _cut(difference.variance, wcs, x_c, y_c, size_pix, np.nan).data,
                   np.float32, "nJy2"),
                  ("DIFFMASK", _cut(difference.mask, wcs, x_c, y_c, size_pix, 0).data, np.int32, "")]
        if science is not None:
            planes.append(("SCIENCE", _cut(science.image, science.wcs, x_c, y_c, size_pix,
                                           np.nan).data, np.float32, "nJy"))
        for name, data, dtype, unit in planes:
            hdu = fits.ImageHDU(np.asarray(data, dtype), header=stamp_wcs.copy(), name=name)
            if unit:
                hdu.header["BUNIT"] = unit
            hdus.append(hdu)
        buffer = io.BytesIO()
        fits.HDUList(hdus).writeto(buffer, checksum=True)
        out.append(Stamp(stamp_name(t, visit, detector, "fits"), buffer.getvalue(),
                             "application/fits"))
        if preview:
            out.append(Stamp(stamp_name(t, visit, detector, "png"), _png(diff.data),
                                 "image/png"))
    return out

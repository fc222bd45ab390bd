"""Per-epoch quality of a precovery light-curve row: the ``flags`` bit mask and the ``status`` word.

The nightly pipeline's forced photometry gives unusable pixels zero weight and drops a position
with none left; that is right for an alert stream but leaves a precovery user unable to tell a
clean epoch from one measured next to a saturated core, or an epoch that covered the target but
had no usable pixel from one that never covered it. This module looks at the mask planes the
measurement already read — no new reads, and nothing of the nightly rows changes — and says so
per row.

``flags`` keeps the numbering of :class:`alertprod.formats.MaskBit` for the pixel-quality
bits: the OR of the mask bits of the pixels within :data:`FOOTPRINT_FWHM` × FWHM of the
position (capped at the PSF stamp forced photometry fits) on the difference image and on the
science image. The source-detection planes (``DETECTED``, ``DETECTED_NEGATIVE``) describe the
sky, not the pixels' quality, and are left out. A footprint that runs off the CCD sets
``EDGE``. Bits 16 and up say what happened to the row (:class:`PrecoveryFlag`).

``status``: ``failed`` (the unit failed permanently; written by the job service),
``off_image`` (the position falls outside the CCD at that epoch), ``no_data`` (no usable pixel:
NaN fluxes), ``flagged`` (measured, with quality bits under the core), ``ok``.
"""

from __future__ import annotations

import enum

import numpy as np

from alertprod.errors import PrecoveryError
from alertprod.formats import Exposure
from alertprod.formats.mask import MaskBit
from alertprod.imaging.psf import psf_fwhm_pix
from alertprod.photometry.stamps import forced_half_size_pix

__all__ = ["FOOTPRINT_FWHM", "QUALITY_BITS", "STATUSES", "PrecoveryFlag", "footprint_flags",
           "row_status", "sky_to_pixels"]

#: Radius of the footprint whose mask bits a row carries, in units of the PSF's FWHM.
FOOTPRINT_FWHM = 2.0


class PrecoveryFlag(enum.IntFlag):
    """Bits of a light-curve row's ``flags``: 0–8 as :class:`~alertprod.formats.MaskBit`."""

    BAD = int(MaskBit.BAD)  #: bad detector pixel under the footprint
    SAT = int(MaskBit.SAT)  #: saturated pixel under the footprint
    INTRP = int(MaskBit.INTRP)  #: interpolated pixel under the footprint
    CR = int(MaskBit.CR)  #: cosmic ray under the footprint
    EDGE = int(MaskBit.EDGE)  #: footprint at (or partly off) the detector or kernel edge
    SUSPECT = int(MaskBit.SUSPECT)  #: near-saturated or otherwise suspect pixel
    NO_DATA = int(MaskBit.NO_DATA)  #: pixel without data under the footprint
    OFF_IMAGE = 1 << 16  #: the position falls outside the CCD at this epoch: no measurement
    NOT_MEASURED = 1 << 17  #: no usable pixel on the difference image: fluxes NaN
    FAILED = 1 << 18  #: the unit failed permanently (the job service's row)


#: The mask bits that say something about a pixel's quality (all but the detection planes).
QUALITY_BITS = int(PrecoveryFlag.BAD | PrecoveryFlag.SAT | PrecoveryFlag.INTRP | PrecoveryFlag.CR
                   | PrecoveryFlag.EDGE | PrecoveryFlag.SUSPECT | PrecoveryFlag.NO_DATA)

#: Status words, from the worst.
STATUSES = ("failed", "off_image", "no_data", "flagged", "ok")


def sky_to_pixels(exposure: Exposure, ra_deg: np.ndarray, dec_deg: np.ndarray
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Nearest pixels ``(ix, iy, on)`` of sky positions, as forced photometry centres its stamp.

    ``on`` is False where the WCS cannot map the position or its nearest pixel is off the CCD
    (``ix``/``iy`` are then meaningless).
    """
    ra = np.atleast_1d(np.asarray(ra_deg, float))
    dec = np.atleast_1d(np.asarray(dec_deg, float))
    if ra.shape != dec.shape or ra.ndim != 1:
        raise PrecoveryError(f"ra_deg and dec_deg must be 1-D of equal length, got {ra.shape}, "
                             f"{dec.shape}")
    if ra.size == 0:
        empty = np.zeros(0, np.int64)
        return empty, empty.copy(), np.zeros(0, bool)
    with np.errstate(invalid="ignore"):
        x, y = exposure.wcs.all_world2pix(ra, dec, 0, quiet=True)
    x, y = np.asarray(x, float), np.asarray(y, float)
    ok = np.isfinite(x) & np.isfinite(y) & (np.abs(x) < 1e9) & (np.abs(y) < 1e9)
    ix = np.where(ok, np.floor(np.where(ok, x, 0.0) + 0.5), -1).astype(np.int64)
    iy = np.where(ok, np.floor(np.where(ok, y, 0.0) + 0.5), -1).astype(np.int64)
    ny, nx = exposure.shape
    on = ok & (ix >= 0) & (ix < nx) & (iy >= 0) & (iy < ny)
    return ix, iy, on


def footprint_radius_pix(psf: np.ndarray) -> float:
    """:data:`FOOTPRINT_FWHM` × the PSF's FWHM, capped at the half-side of its stamp (pixels).

    The cap keeps the footprint inside the pixels a windowed read fetched (the forced-photometry
    stamp: :func:`alertprod.photometry.stamps.forced_half_size_pix`); outside them a windowed
    exposure says ``NO_DATA``.
    """
    return min(FOOTPRINT_FWHM * psf_fwhm_pix(np.asarray(psf, float)), float(forced_half_size_pix(psf)))


def footprint_flags(exposure: Exposure, ix: np.ndarray, iy: np.ndarray, *,
                    radius_pix: float | None = None) -> np.ndarray:
    """OR of the quality mask bits within ``radius_pix`` of each pixel (vectorised).

    Parameters
    ----------
    exposure : Exposure
        The image whose ``mask`` plane is read (:class:`~alertprod.formats.MaskBit` bits).
    ix, iy : ndarray of int, shape (n,)
        Centre pixels (:func:`sky_to_pixels`); centres off the image give 0.
    radius_pix : float, keyword-only, optional
        Footprint radius, pixels (default :func:`footprint_radius_pix` of the exposure's PSF).

    Returns
    -------
    ndarray of int64, shape (n,)
        :data:`QUALITY_BITS` of the footprint's pixels, plus ``EDGE`` where it runs off the CCD.
    """
    ix = np.atleast_1d(np.asarray(ix, np.int64))
    iy = np.atleast_1d(np.asarray(iy, np.int64))
    if ix.shape != iy.shape or ix.ndim != 1:
        raise PrecoveryError(f"ix and iy must be 1-D of equal length, got {ix.shape}, {iy.shape}")
    r = footprint_radius_pix(exposure.psf) if radius_pix is None else float(radius_pix)
    if not np.isfinite(r) or r < 0:
        raise PrecoveryError(f"radius_pix must be finite and >= 0, got {radius_pix!r}")
    h = int(np.floor(r))
    dy, dx = np.mgrid[-h:h + 1, -h:h + 1]
    inside = dx**2 + dy**2 <= r * r
    dx, dy = dx[inside], dy[inside]
    ny, nx = exposure.shape
    on = (ix >= 0) & (ix < nx) & (iy >= 0) & (iy < ny)
    px, py = ix[:, None] + dx[None, :], iy[:, None] + dy[None, :]  # (n, m)
    within = (px >= 0) & (px < nx) & (py >= 0) & (py < ny)
    bits = np.asarray(exposure.mask)[np.clip(py, 0, ny - 1), np.clip(px, 0, nx - 1)].astype(np.int64)
    flags = np.bitwise_or.reduce(np.where(within, bits, 0), axis=1) & QUALITY_BITS
    flags |= np.where(within.all(axis=1), 0, int(PrecoveryFlag.EDGE))
    return np.where(on, flags, 0).astype(np.int64)


def row_status(flags: np.ndarray, psf_flux: np.ndarray) -> np.ndarray:
    """The ``status`` word of rows from their ``flags`` and ``psfFlux`` (module notes).

    Parameters
    ----------
    flags : array_like of int, shape (n,)
        :class:`PrecoveryFlag` bits.
    psf_flux : array_like of float, shape (n,)
        Difference-image flux; NaN where nothing was measured.

    Returns
    -------
    ndarray of str, shape (n,)
        One of :data:`STATUSES` per row.
    """
    flags = np.atleast_1d(np.asarray(flags, np.int64))
    flux = np.atleast_1d(np.asarray(psf_flux, float))
    if flags.shape != flux.shape:
        raise PrecoveryError(f"flags and psf_flux must be of equal shape, got {flags.shape}, "
                             f"{flux.shape}")
    status = np.full(flags.shape, "ok", dtype="U9")
    status[(flags & QUALITY_BITS) != 0] = "flagged"
    status[((flags & int(PrecoveryFlag.NOT_MEASURED)) != 0) | ~np.isfinite(flux)] = "no_data"
    status[(flags & int(PrecoveryFlag.OFF_IMAGE)) != 0] = "off_image"
    status[(flags & int(PrecoveryFlag.FAILED)) != 0] = "failed"
    return status

"""Postage stamps for alert packets: small FITS cutouts of an exposure around a sky position.

A cutout is a multi-extension FITS file, like Rubin's alert cutouts: a primary header with the
visit metadata (``VISIT``, ``DETECTOR``, ``BAND``, ``MJD-MID``, ``EXPTIME``, observatory) and the
requested position, then ``IMAGE`` (float32, nJy, with the exposure's WCS re-referenced to the
cutout so sky positions map to the same place as in the parent), ``VARIANCE`` (float32, nJy²),
``MASK`` (int16 when the bits fit, else int32) and ``PSF`` (float32). Parts of the stamp off the
parent image hold NaN (image, variance) and ``NO_DATA`` (mask). Cutting and WCS re-referencing
are astropy's :class:`~astropy.nddata.Cutout2D`.

Size: a default 31 × 31 cutout with all four planes is 31,680 bytes (eleven 2,880-byte FITS
blocks), so an alert's two cutouts stay well inside the ~82 KB packet budget.
"""

from __future__ import annotations

import io
import math
import warnings

import numpy as np
from astropy.io import fits
from astropy.nddata import Cutout2D
from astropy.wcs import WCS, FITSFixedWarning

from alertprod.errors import ImageError
from alertprod.formats.exposure import Exposure, info_from_header, info_to_header
from alertprod.formats.mask import MaskBit
from alertprod.imaging.psf import psf_fwhm_pix

__all__ = ["DEFAULT_MIN_SIZE_PIX", "DEFAULT_MAX_SIZE_PIX", "cutout_size_pix", "cutout_fits",
           "read_cutout"]

#: Smallest default cutout side, pixels (odd).
DEFAULT_MIN_SIZE_PIX = 31
#: Largest default cutout side, pixels (odd): long trails are clipped to this.
DEFAULT_MAX_SIZE_PIX = 101
#: Cutout side per PSF FWHM: ±4 FWHM around the source.
_SIZE_PER_FWHM = 8.0


def cutout_size_pix(psf_fwhm_pix: float, *, trail_length_pix: float = 0.0,
                    min_size_pix: int = DEFAULT_MIN_SIZE_PIX,
                    max_size_pix: int = DEFAULT_MAX_SIZE_PIX) -> int:
    """Odd side of a cutout that holds the source: ``8 × FWHM + trail length``, clamped.

    Parameters
    ----------
    psf_fwhm_pix : float
        PSF full width at half maximum, pixels.
    trail_length_pix : float, optional
        Length of the source's trail (fast-moving objects), pixels.
    min_size_pix, max_size_pix : int, optional
        Bounds of the side, pixels (odd).

    Returns
    -------
    int
        Odd side in pixels.
    """
    fwhm, trail = float(psf_fwhm_pix), float(trail_length_pix)
    if not (np.isfinite(fwhm) and fwhm > 0):
        raise ImageError(f"psf_fwhm_pix must be positive, got {psf_fwhm_pix!r}")
    if not (np.isfinite(trail) and trail >= 0):
        raise ImageError(f"trail_length_pix must be ≥ 0, got {trail_length_pix!r}")
    for name, v in (("min_size_pix", min_size_pix), ("max_size_pix", max_size_pix)):
        if int(v) != v or v < 1 or v % 2 == 0:
            raise ImageError(f"{name} must be a positive odd integer, got {v!r}")
    if min_size_pix > max_size_pix:
        raise ImageError(f"min_size_pix {min_size_pix} exceeds max_size_pix {max_size_pix}")
    size = math.ceil(_SIZE_PER_FWHM * fwhm + trail)
    size += 1 - size % 2
    return int(min(max(size, min_size_pix), max_size_pix))


def cutout_fits(exposure: Exposure, ra_deg: float, dec_deg: float, *, size_pix: int | None = None,
                include_variance: bool = True, include_mask: bool = True,
                include_psf: bool = True) -> bytes:
    """FITS postage stamp of an exposure centred on the pixel nearest a sky position.

    Parameters
    ----------
    exposure : Exposure
        The parent image with variance, mask, PSF, WCS and metadata.
    ra_deg, dec_deg : float
        ICRS position, degrees.
    size_pix : int, optional
        Odd side, pixels. Default: :func:`cutout_size_pix` of the PSF's FWHM.
    include_variance, include_mask, include_psf : bool, optional
        Which planes besides ``IMAGE`` to write.

    Returns
    -------
    bytes
        The FITS file (see the module notes for its layout).

    Raises
    ------
    ImageError
        Bad size, non-finite position, a position the WCS cannot map, or a cutout that would
        lie wholly off the image.
    """
    ra, dec = float(ra_deg), float(dec_deg)
    if not (np.isfinite(ra) and np.isfinite(dec) and -90 <= dec <= 90):
        raise ImageError(f"ra_deg, dec_deg = {ra_deg!r}, {dec_deg!r} is not a sky position")
    if size_pix is None:
        size_pix = cutout_size_pix(psf_fwhm_pix(exposure.psf))
    if int(size_pix) != size_pix or size_pix < 1 or size_pix % 2 == 0:
        raise ImageError(f"size_pix must be a positive odd integer, got {size_pix!r}")
    size = int(size_pix)
    x, y = exposure.wcs.all_world2pix(ra, dec, 0)
    if not (np.isfinite(x) and np.isfinite(y)):
        raise ImageError(f"({ra}, {dec}) does not map to a pixel of this exposure")
    ix, iy = int(math.floor(float(x) + 0.5)), int(math.floor(float(y) + 0.5))
    ny, nx = exposure.shape
    h = size // 2
    if ix + h < 0 or iy + h < 0 or ix - h >= nx or iy - h >= ny:
        raise ImageError(f"a {size}-pixel cutout at pixel ({ix}, {iy}) lies wholly off the image")

    def cut(data: np.ndarray, fill: float | int) -> Cutout2D:
        return Cutout2D(data, (ix, iy), (size, size), wcs=exposure.wcs, mode="partial",
                        fill_value=fill, copy=True)

    image = cut(np.asarray(exposure.image, dtype=np.float32), np.nan)
    whdr = image.wcs.to_header(relax=True)
    primary = info_to_header(exposure.info)
    primary["CUTRA"] = (ra, "[deg] requested position, ICRS")
    primary["CUTDEC"] = (dec, "[deg] requested position, ICRS")
    # IRAF's LTV convention: parent pixel = cutout pixel - LTV (1-based either way).
    primary["LTV1"] = (float(h - ix), "[pix] offset from parent x")
    primary["LTV2"] = (float(h - iy), "[pix] offset from parent y")
    hdus: list[fits.hdu.base.ExtensionHDU] = [
        fits.ImageHDU(image.data.astype(np.float32), header=whdr, name="IMAGE")]
    if include_variance:
        var = cut(np.asarray(exposure.variance, dtype=np.float32), np.nan)
        hdus.append(fits.ImageHDU(var.data.astype(np.float32), header=whdr, name="VARIANCE"))
    if include_mask:
        mask = cut(np.asarray(exposure.mask, dtype=np.int32), int(MaskBit.NO_DATA)).data
        small = mask.size == 0 or (mask.min() >= 0 and mask.max() < 2**15)
        hdus.append(fits.ImageHDU(mask.astype(np.int16 if small else np.int32), header=whdr,
                                  name="MASK"))
    if include_psf:
        hdus.append(fits.ImageHDU(np.asarray(exposure.psf, dtype=np.float32), name="PSF"))
    buf = io.BytesIO()
    fits.HDUList([fits.PrimaryHDU(header=primary), *hdus]).writeto(buf)
    return buf.getvalue()


def read_cutout(data: bytes) -> Exposure:
    """Parse a cutout written by :func:`cutout_fits` into an :class:`Exposure`.

    Planes the cutout lacks come back as NaN variance, a zero mask and a 1 × 1 delta PSF.

    Raises
    ------
    ImageError
        The bytes are not a cutout (unreadable FITS, no ``IMAGE``, no celestial WCS).
    """
    try:
        hdul = fits.open(io.BytesIO(data), memmap=False)
    except Exception as exc:  # astropy raises OSError/ValueError/TypeError variously
        raise ImageError(f"cutout is not a readable FITS file: {exc}") from exc
    with hdul:
        names = {h.name for h in hdul}
        if "IMAGE" not in names:
            raise ImageError("cutout has no IMAGE extension")
        try:
            info = info_from_header(hdul[0].header, what="cutout")
        except Exception as exc:
            raise ImageError(f"cutout primary header: {exc}") from exc
        image = np.asarray(hdul["IMAGE"].data, dtype=np.float32)
        variance = (np.asarray(hdul["VARIANCE"].data, dtype=np.float32) if "VARIANCE" in names
                    else np.full_like(image, np.nan))
        mask = (np.asarray(hdul["MASK"].data, dtype=np.int32) if "MASK" in names
                else np.zeros(image.shape, dtype=np.int32))
        psf = (np.asarray(hdul["PSF"].data, dtype=np.float64) if "PSF" in names
               else np.ones((1, 1)))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FITSFixedWarning)
            wcs = WCS(hdul["IMAGE"].header)
        if not wcs.has_celestial:
            raise ImageError("cutout IMAGE header has no celestial WCS")
        extra = {k: hdul[0].header[k] for k in ("CUTRA", "CUTDEC", "LTV1", "LTV2")
                 if k in hdul[0].header}
    return Exposure(image, variance, mask, psf, wcs.celestial, info, extra)

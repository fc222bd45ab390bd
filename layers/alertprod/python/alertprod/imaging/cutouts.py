"""Postage stamps for alert packets: small FITS cutouts of an exposure around a sky position.

A cutout is a multi-extension FITS file, like Rubin's alert cutouts: a primary header with the
visit metadata (``VISIT``, ``DETECTOR``, ``BAND``, ``MJD-MID``, ``EXPTIME``, observatory) and the
requested position, then ``IMAGE`` (float32, nJy, with the exposure's WCS re-referenced to the
cutout so sky positions map to the same place as in the parent), ``VARIANCE`` (float32, nJy²),
``MASK`` (int16 when the bits fit, else int32) and ``PSF`` (float32). Parts of the stamp off the
parent image hold NaN (image, variance) and ``NO_DATA`` (mask).

:func:`cutouts_fits` writes the stamps of many positions of one exposure at once (the nightly
pipeline makes two per alert, for up to ~10⁴ alerts per detector, in a ~1 s budget): astropy
writes each extension's header once per call as a template, and each stamp patches only the
cards that change (``CRPIX1/2``, ``CUTRA/CUTDEC``, ``LTV1/2``) and appends its pixels. The
bytes equal those of astropy's :class:`~astropy.nddata.Cutout2D` and HDU writer, which cost
~20 ms a stamp. :func:`cutout_fits` is the one-position form.

Size: a default 31 × 31 cutout with all four planes is 31,680 bytes (eleven 2,880-byte FITS
blocks), so an alert's two cutouts stay well inside the ~82 KB packet budget.
"""

from __future__ import annotations

import io
import math
import re
import warnings
from functools import lru_cache

import numpy as np
from astropy.io import fits
from astropy.wcs import WCS, FITSFixedWarning, NoConvergence

from alertprod.errors import ImageError
from alertprod.formats.exposure import Exposure, info_from_header, info_to_header
from alertprod.formats.mask import MaskBit
from alertprod.imaging.psf import psf_fwhm_pix

__all__ = ["DEFAULT_MIN_SIZE_PIX", "DEFAULT_MAX_SIZE_PIX", "cutout_size_pix", "cutout_fits",
           "cutouts_fits", "read_cutout"]

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


#: FITS files are sequences of 2,880-byte blocks of 80-character header cards.
_BLOCK = 2880
_CARD = 80
_CUTRA_COMMENT = "[deg] requested position, ICRS"
_LTV_COMMENT = ("[pix] offset from parent x", "[pix] offset from parent y")
_CRPIX_COMMENT = "Pixel coordinate of reference point"


def _check_size(exposure: Exposure, size_pix: int | None) -> int:
    if size_pix is None:
        size_pix = cutout_size_pix(psf_fwhm_pix(exposure.psf))
    if int(size_pix) != size_pix or size_pix < 1 or size_pix % 2 == 0:
        raise ImageError(f"size_pix must be a positive odd integer, got {size_pix!r}")
    return int(size_pix)


def _pixel_centres(exposure: Exposure, ra: np.ndarray, dec: np.ndarray,
                   size: int) -> tuple[np.ndarray, np.ndarray]:
    """Nearest parent pixels ``(ix, iy)`` of the positions; refuse unmappable or off-image ones."""
    try:
        x, y = exposure.wcs.all_world2pix(ra, dec, 0)
    except NoConvergence as exc:
        raise ImageError(f"ra_deg, dec_deg: some positions do not map to a pixel of this "
                         f"exposure ({exc})") from exc
    bad = ~(np.isfinite(x) & np.isfinite(y))
    if bad.any():
        i = int(np.argmax(bad))
        raise ImageError(f"ra_deg[{i}], dec_deg[{i}] = ({ra[i]}, {dec[i]}) does not map to a "
                         "pixel of this exposure")
    ix = np.floor(x + 0.5).astype(np.int64)
    iy = np.floor(y + 0.5).astype(np.int64)
    ny, nx = exposure.shape
    h = size // 2
    off = (ix + h < 0) | (iy + h < 0) | (ix - h >= nx) | (iy - h >= ny)
    if off.any():
        i = int(np.argmax(off))
        raise ImageError(f"a {size}-pixel cutout at pixel ({ix[i]}, {iy[i]}) (position {i}) "
                         "lies wholly off the image")
    return ix, iy


def _wcslib_value(value: float) -> str:
    """A CRPIX value as astropy's ``WCS.to_header`` has WCSLIB write it (``%20.14G``, ``.0``
    appended to integers); checked against WCSLIB on each exposure by :class:`_StampWriter`."""
    text = f"{value:20.14G}"
    return text if re.search("[.eE]", text) else text[2:] + ".0"


def _crpix_card(key: str, value: float) -> bytes:
    text = _wcslib_value(value)
    nc = 47 - max(0, len(text) - 20)
    return f"{key:<8.8}= {text:<20} / {_CRPIX_COMMENT:<{nc}.{nc}}".encode("ascii")


@lru_cache(maxsize=4096)
def _card(key: str, value: float, comment: str) -> bytes:
    """One 80-character header card exactly as astropy formats it."""
    return fits.Card(key, value, comment).image.encode("ascii")


def _card_offsets(header: bytes, keys: tuple[str, ...]) -> list[int]:
    found: dict[str, int] = {}
    for at in range(0, len(header), _CARD):
        key = header[at:at + 8].decode("ascii").rstrip()
        if key in keys and key not in found:
            found[key] = at
    return [found[k] for k in keys]


def _patch(template: bytes, offsets: list[int], cards: list[bytes]) -> bytes:
    out = bytearray(template)
    for at, card in zip(offsets, cards, strict=True):
        out[at:at + _CARD] = card
    return bytes(out)


def _hdu_spans(blob: bytes, data_nbytes: list[int]) -> list[tuple[bytes, bytes]]:
    """Split a FITS file into (header, padded data) bytes, given each HDU's data size."""
    out, at = [], 0
    for nbytes in data_nbytes:
        start = at
        while not any(blob[i:i + 8] == b"END     " for i in range(at, at + _BLOCK, _CARD)):
            at += _BLOCK
        at += _BLOCK
        end = at + nbytes + (-nbytes % _BLOCK)
        out.append((blob[start:at], blob[at:end]))
        at = end
    return out


def _data_bytes(arr: np.ndarray) -> bytes:
    raw = arr.tobytes()
    return raw + b"\0" * (-len(raw) % _BLOCK)


def _cut(plane: np.ndarray, x0: int, y0: int, size: int, fill: float, dtype: str) -> np.ndarray:
    """``plane[y0:y0+size, x0:x0+size]`` as ``dtype``, the part off the plane set to ``fill``."""
    ny, nx = plane.shape
    if x0 >= 0 and y0 >= 0 and x0 + size <= nx and y0 + size <= ny:
        return plane[y0:y0 + size, x0:x0 + size].astype(dtype)
    out = np.full((size, size), fill, dtype=dtype)
    xa, xb, ya, yb = max(x0, 0), min(x0 + size, nx), max(y0, 0), min(y0 + size, ny)
    out[ya - y0:yb - y0, xa - x0:xb - x0] = plane[ya:yb, xa:xb]
    return out


class _StampWriter:
    """FITS stamps of one exposure at one size: header templates written once by astropy.

    Why by hand: astropy's ``Cutout2D``, WCS copy and HDU writer cost ~20 ms per small file,
    while the FITS layout is fixed and simple (80-character cards in 2,880-byte blocks,
    big-endian pixels zero-padded to a block). astropy writes every header once here; a stamp
    then only replaces the cards that depend on the position, with the card text astropy and
    WCSLIB would write, and appends its pixels.
    """

    def __init__(self, exposure: Exposure, size: int, include_variance: bool,
                 include_mask: bool, include_psf: bool) -> None:
        self.exposure, self.size = exposure, size
        self.include_variance, self.include_mask = include_variance, include_mask
        wcs = exposure.wcs
        self.crpix = [float(v) for v in wcs.wcs.crpix]
        whdr = wcs.to_header(relax=True)
        primary = info_to_header(exposure.info)
        primary["CUTRA"] = (0.0, _CUTRA_COMMENT)
        primary["CUTDEC"] = (0.0, _CUTRA_COMMENT)
        primary["LTV1"] = (0.0, _LTV_COMMENT[0])
        primary["LTV2"] = (0.0, _LTV_COMMENT[1])
        planes = [("IMAGE", np.float32)]
        planes += [("VARIANCE", np.float32)] if include_variance else []
        planes += [("MASK", np.int16), ("MASK", np.int32)] if include_mask else []
        hdus = [fits.PrimaryHDU(header=primary)]
        hdus += [fits.ImageHDU(np.zeros((size, size), dt), header=whdr, name=name)
                 for name, dt in planes]
        if include_psf:
            hdus.append(fits.ImageHDU(np.asarray(exposure.psf, dtype=np.float32), name="PSF"))
        buf = io.BytesIO()
        fits.HDUList(hdus).writeto(buf)
        spans = _hdu_spans(buf.getvalue(), [0 if h.data is None else h.data.nbytes for h in hdus])
        headers = [hdr for hdr, _ in spans]
        self.primary = headers[0]
        self.primary_at = _card_offsets(self.primary, ("CUTRA", "CUTDEC", "LTV1", "LTV2"))
        self.planes = headers[1:1 + len(planes)]
        self.planes_at = [_card_offsets(h, ("CRPIX1", "CRPIX2")) for h in self.planes]
        self.psf = b"".join(spans[-1]) if include_psf else b""
        # Guard against a WCSLIB that formats CRPIX otherwise: then ask a WCS copy per stamp.
        cards = [self.planes[0][at:at + _CARD] for at in self.planes_at[0]]
        self.wcs_copy = None
        if cards != [_crpix_card("CRPIX1", self.crpix[0]), _crpix_card("CRPIX2", self.crpix[1])]:
            self.wcs_copy = wcs.deepcopy()

    def crpix_cards(self, x0: int, y0: int) -> list[bytes]:
        """``CRPIX1/2`` cards of a stamp whose pixel (0, 0) is the parent's ``(x0, y0)``."""
        c1, c2 = self.crpix[0] - x0, self.crpix[1] - y0
        if self.wcs_copy is None:
            return [_crpix_card("CRPIX1", c1), _crpix_card("CRPIX2", c2)]
        self.wcs_copy.wcs.crpix = [c1, c2]
        hdr = self.wcs_copy.to_header(relax=True)
        return [hdr.cards[k].image.encode("ascii") for k in ("CRPIX1", "CRPIX2")]

    def stamp(self, ra: float, dec: float, ix: int, iy: int) -> bytes:
        """The FITS bytes of the stamp centred on parent pixel ``(ix, iy)``."""
        exp, size, h = self.exposure, self.size, self.size // 2
        x0, y0 = ix - h, iy - h
        parts = [_patch(self.primary, self.primary_at, [
            _card("CUTRA", ra, _CUTRA_COMMENT), _card("CUTDEC", dec, _CUTRA_COMMENT),
            _card("LTV1", float(-x0), _LTV_COMMENT[0]),
            _card("LTV2", float(-y0), _LTV_COMMENT[1])])]
        crpix = self.crpix_cards(x0, y0)
        parts += [_patch(self.planes[0], self.planes_at[0], crpix),
                  _data_bytes(_cut(exp.image, x0, y0, size, np.nan, ">f4"))]
        k = 1
        if self.include_variance:
            parts += [_patch(self.planes[k], self.planes_at[k], crpix),
                      _data_bytes(_cut(exp.variance, x0, y0, size, np.nan, ">f4"))]
            k += 1
        if self.include_mask:
            mask = _cut(exp.mask, x0, y0, size, int(MaskBit.NO_DATA), "=i4")
            small = mask.size == 0 or (mask.min() >= 0 and mask.max() < 2**15)
            k += 0 if small else 1
            parts += [_patch(self.planes[k], self.planes_at[k], crpix),
                      _data_bytes(mask.astype(">i2" if small else ">i4"))]
        parts.append(self.psf)
        return b"".join(parts)


def cutouts_fits(exposure: Exposure, ra_deg: np.ndarray, dec_deg: np.ndarray, *,
                 size_pix: int | None = None, include_variance: bool = True,
                 include_mask: bool = True, include_psf: bool = True) -> list[bytes]:
    """FITS postage stamps of one exposure centred on the pixels nearest many sky positions.

    Parameters
    ----------
    exposure : Exposure
        The parent image with variance, mask, PSF, WCS and metadata.
    ra_deg, dec_deg : array_like, shape (n,)
        ICRS positions, degrees.
    size_pix : int, optional
        Odd side, pixels. Default: :func:`cutout_size_pix` of the PSF's FWHM.
    include_variance, include_mask, include_psf : bool, optional
        Which planes besides ``IMAGE`` to write.

    Returns
    -------
    list of bytes, length n
        The FITS file of each position (see the module notes for its layout).

    Raises
    ------
    ImageError
        Bad size, positions not 1-D of one length, a non-finite position or one the WCS cannot
        map, or a cutout that would lie wholly off the image (naming the first such position).

    Notes
    -----
    Each file reads back (astropy) to the same HDUs, header cards, pixel values and dtypes as
    astropy's ``Cutout2D`` and HDU writer give; see :class:`_StampWriter` for how.
    """
    try:
        ra = np.asarray(ra_deg, dtype=np.float64)
        dec = np.asarray(dec_deg, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ImageError(f"ra_deg, dec_deg must be arrays of numbers: {exc}") from exc
    if ra.ndim != 1 or ra.shape != dec.shape:
        raise ImageError(f"ra_deg, dec_deg must be 1-D of one length, got shapes {ra.shape} "
                         f"and {dec.shape}")
    bad = ~(np.isfinite(ra) & np.isfinite(dec) & (np.abs(dec) <= 90))
    if bad.any():
        i = int(np.argmax(bad))
        raise ImageError(f"ra_deg[{i}], dec_deg[{i}] = {ra[i]!r}, {dec[i]!r} is not a sky position")
    size = _check_size(exposure, size_pix)
    if ra.size == 0:
        return []
    ix, iy = _pixel_centres(exposure, ra, dec, size)
    writer = _StampWriter(exposure, size, include_variance, include_mask, include_psf)
    return [writer.stamp(r, d, x, y)
            for r, d, x, y in zip(ra.tolist(), dec.tolist(), ix.tolist(), iy.tolist(), strict=True)]


def cutout_fits(exposure: Exposure, ra_deg: float, dec_deg: float, *, size_pix: int | None = None,
                include_variance: bool = True, include_mask: bool = True,
                include_psf: bool = True) -> bytes:
    """FITS postage stamp of an exposure centred on the pixel nearest a sky position.

    The one-position form of :func:`cutouts_fits` (same bytes); prefer that for many positions
    of one exposure, which writes the header templates once.

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
    try:
        ra, dec = float(ra_deg), float(dec_deg)
    except (TypeError, ValueError) as exc:
        raise ImageError(f"ra_deg, dec_deg = {ra_deg!r}, {dec_deg!r} is not a sky "
                         "position") from exc
    return cutouts_fits(exposure, [ra], [dec], size_pix=size_pix,
                        include_variance=include_variance, include_mask=include_mask,
                        include_psf=include_psf)[0]


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

"""Exposures: the multi-extension FITS images of the upload contract.

An exposure file has a primary header with the visit metadata and four image extensions:
``IMAGE`` (float32, nJy, with the celestial WCS), ``VARIANCE`` (float32, nJy²), ``MASK`` (int32,
bits of :class:`~alertprod.formats.mask.MaskBit`) and ``PSF`` (odd-sized, sums to 1). A
midpoint stated in another time scale than TAI (``TIMESYS``) is converted to TAI on reading
(:mod:`alertprod.formats.time_scale`); files are always written in TAI.
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from astropy.io import fits
from astropy.wcs import WCS

from alertprod.errors import ContractError
from alertprod.formats.time_scale import DEFAULT_TIME_SCALE, mjd_to_tai, time_scale_from_header

__all__ = ["RUBIN_SITE", "Exposure", "ExposureInfo", "ExposureMeta", "exposure_meta", "read_exposure",
           "read_exposure_info", "write_exposure", "info_from_header", "info_to_header"]

#: Rubin Observatory (Cerro Pachón): longitude (deg, east), latitude (deg), height (m).
RUBIN_SITE = (-70.749417, -30.244639, 2663.0)

_BANDS = ("u", "g", "r", "i", "z", "y")


@dataclass(frozen=True)
class ExposureInfo:
    """Metadata of one visit on one detector.

    Attributes
    ----------
    visit, detector : int
        Visit and detector identifiers.
    band : str
        One of ``u g r i z y``.
    mjd_mid_tai : float
        TAI MJD of the exposure midpoint.
    exptime_s : float
        Exposure time in seconds.
    obs_lon_deg, obs_lat_deg, obs_height_m : float
        Geodetic location of the observatory (east longitude).
    header_time_scale : str
        The time scale the header stated ``MJD-MID`` in (``TIMESYS``, upper case; ``TAI`` when
        absent). ``mjd_mid_tai`` is already converted from it; provenance only, so it takes no
        part in comparisons.
    """

    visit: int
    detector: int
    band: str
    mjd_mid_tai: float
    exptime_s: float
    obs_lon_deg: float = RUBIN_SITE[0]
    obs_lat_deg: float = RUBIN_SITE[1]
    obs_height_m: float = RUBIN_SITE[2]
    header_time_scale: str = field(default=DEFAULT_TIME_SCALE, compare=False)


@dataclass
class Exposure:
    """An image with its variance, mask, PSF, WCS and metadata.

    Attributes
    ----------
    image : ndarray, shape (ny, nx), float32
        Pixel values in nJy.
    variance : ndarray, shape (ny, nx), float32
        Per-pixel variance in nJy².
    mask : ndarray, shape (ny, nx), int32
        :class:`~alertprod.formats.mask.MaskBit` bits.
    psf : ndarray, shape (k, k), k odd
        PSF image sampled on the pixel grid, summing to 1, centred on pixel ``(k//2, k//2)``.
    wcs : astropy.wcs.WCS
        Celestial WCS of ``image`` (0-based pixel convention in astropy calls).
    info : ExposureInfo
        Visit metadata.
    header : dict
        Extra primary-header cards carried through unchanged.
    """

    image: np.ndarray
    variance: np.ndarray
    mask: np.ndarray
    psf: np.ndarray
    wcs: WCS
    info: ExposureInfo
    header: dict[str, Any] = field(default_factory=dict)

    @property
    def shape(self) -> tuple[int, int]:
        """``(ny, nx)`` of the image."""
        return self.image.shape  # type: ignore[return-value]


def info_to_header(info: ExposureInfo, hdr: fits.Header | None = None) -> fits.Header:
    """Write :class:`ExposureInfo` into FITS primary-header cards (``MJD-MID`` in TAI)."""
    hdr = fits.Header() if hdr is None else hdr
    hdr["VISIT"] = (int(info.visit), "visit identifier")
    hdr["DETECTOR"] = (int(info.detector), "detector identifier")
    hdr["BAND"] = (info.band, "filter band")
    hdr["MJD-MID"] = (float(info.mjd_mid_tai), "[d] TAI MJD of exposure midpoint")
    hdr["TIMESYS"] = ("TAI", "time scale of MJD-MID")
    hdr["EXPTIME"] = (float(info.exptime_s), "[s] exposure time")
    hdr["OBSGEO-L"] = (float(info.obs_lon_deg), "[deg] observatory east longitude")
    hdr["OBSGEO-B"] = (float(info.obs_lat_deg), "[deg] observatory latitude")
    hdr["OBSGEO-H"] = (float(info.obs_height_m), "[m] observatory height")
    return hdr


def info_from_header(hdr: fits.Header, *, what: str = "file") -> ExposureInfo:
    """Read :class:`ExposureInfo` from FITS primary-header cards.

    ``MJD-MID`` is converted to TAI from the scale ``TIMESYS`` states (TAI when absent; see
    :mod:`alertprod.formats.time_scale`); the stated scale is kept in
    :attr:`ExposureInfo.header_time_scale`.

    Raises
    ------
    ContractError
        ``missing_header`` or ``bad_header`` naming the keyword; ``bad_time_scale`` when
        ``TIMESYS`` names a scale that cannot be converted to TAI.
    """
    for key in ("VISIT", "DETECTOR", "BAND", "MJD-MID", "EXPTIME"):
        if key not in hdr:
            raise ContractError("missing_header", f"{what}: primary header lacks {key}")
    for key in ("VISIT", "DETECTOR"):
        if not _is_int(hdr[key]):
            raise ContractError("bad_header", f"{what}: {key} must be an integer, is {hdr[key]!r}")
    for key in ("MJD-MID", "EXPTIME", "OBSGEO-L", "OBSGEO-B", "OBSGEO-H"):
        if key in hdr and not _is_number(hdr[key]):
            raise ContractError("bad_header", f"{what}: {key} must be a number, is {hdr[key]!r}")
    if not isinstance(hdr["BAND"], str):
        raise ContractError("bad_header", f"{what}: BAND must be a string, is {hdr['BAND']!r}")
    try:
        visit, detector = int(hdr["VISIT"]), int(hdr["DETECTOR"])
        mjd, exptime = float(hdr["MJD-MID"]), float(hdr["EXPTIME"])
        lon = float(hdr.get("OBSGEO-L", RUBIN_SITE[0]))
        lat = float(hdr.get("OBSGEO-B", RUBIN_SITE[1]))
        height = float(hdr.get("OBSGEO-H", RUBIN_SITE[2]))
    except (TypeError, ValueError) as exc:
        raise ContractError("bad_header", f"{what}: {exc}") from exc
    band = str(hdr["BAND"]).strip()
    if band not in _BANDS:
        raise ContractError("bad_header", f"{what}: BAND {band!r} is not one of {_BANDS}")
    scale = time_scale_from_header(hdr.get("TIMESYS"), what=what)
    if not (np.isfinite(mjd) and 40000.0 < mjd < 100000.0):
        raise ContractError("bad_header", f"{what}: MJD-MID {mjd!r} is not a plausible MJD")
    if not (np.isfinite(exptime) and exptime > 0):
        raise ContractError("bad_header", f"{what}: EXPTIME {exptime!r} must be positive")
    if not (-180 <= lon <= 360 and -90 <= lat <= 90 and np.isfinite(height)):
        raise ContractError("bad_header", f"{what}: OBSGEO-L/B/H out of range")
    mjd_tai = mjd_to_tai(mjd, scale, obs_lon_deg=lon, obs_lat_deg=lat, obs_height_m=height)
    return ExposureInfo(visit, detector, band, mjd_tai, exptime, lon, lat, height, scale)


def _is_int(value: Any) -> bool:
    return isinstance(value, int | np.integer) and not isinstance(value, bool | np.bool_)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float | np.integer | np.floating) and not isinstance(value, bool | np.bool_)


def write_exposure(exp: Exposure) -> bytes:
    """Serialise an exposure to multi-extension FITS bytes (docs/formats.md)."""
    primary = fits.PrimaryHDU(header=info_to_header(exp.info))
    for k, v in exp.header.items():
        if k not in primary.header:
            primary.header[k] = v
    whdr = exp.wcs.to_header(relax=True)
    hdus = [
        primary,
        fits.ImageHDU(np.asarray(exp.image, dtype=np.float32), header=whdr, name="IMAGE"),
        fits.ImageHDU(np.asarray(exp.variance, dtype=np.float32), header=whdr, name="VARIANCE"),
        fits.ImageHDU(np.asarray(exp.mask, dtype=np.int32), header=whdr, name="MASK"),
        fits.ImageHDU(np.asarray(exp.psf, dtype=np.float32), name="PSF"),
    ]
    buf = io.BytesIO()
    fits.HDUList(hdus).writeto(buf)
    return buf.getvalue()


def _open(data: bytes, what: str) -> fits.HDUList:
    try:
        return fits.open(io.BytesIO(data), memmap=False, lazy_load_hdus=False)
    except Exception as exc:  # astropy raises OSError/ValueError/TypeError variously
        raise ContractError("not_fits", f"{what} is not a readable FITS file: {exc}") from exc


def read_exposure_info(data: bytes, *, what: str = "image") -> ExposureInfo:
    """Read only the primary-header metadata of exposure FITS bytes."""
    with _open(data, what) as hdul:
        return info_from_header(hdul[0].header, what=what)


def read_exposure(data: bytes, *, what: str = "image") -> Exposure:
    """Parse exposure FITS bytes into an :class:`Exposure`.

    Raises
    ------
    ContractError
        ``not_fits``, ``missing_extension``, ``bad_image``, ``bad_psf``, ``missing_header``,
        ``bad_header``, ``bad_time_scale`` or ``bad_wcs`` with a message naming what is wrong.
    """
    with _open(data, what) as hdul:
        meta = exposure_meta(hdul, what=what)
        image = np.asarray(hdul["IMAGE"].data, dtype=np.float32)
        variance = np.asarray(hdul["VARIANCE"].data, dtype=np.float32)
        mask = np.asarray(hdul["MASK"].data, dtype=np.int32)
        if image.shape != meta.shape or variance.shape != image.shape or mask.shape != image.shape:
            raise ContractError("bad_image", f"{what}: IMAGE/VARIANCE/MASK shapes differ or are not 2-D")
    return Exposure(image, variance, mask, meta.psf, meta.wcs, meta.info, meta.header)


@dataclass(frozen=True)
class ExposureMeta:
    """Everything of an exposure file but its pixel planes (see :func:`exposure_meta`)."""

    info: ExposureInfo
    psf: np.ndarray
    wcs: WCS
    header: dict[str, Any]
    shape: tuple[int, int]


def exposure_meta(hdul: fits.HDUList, *, what: str = "image") -> ExposureMeta:
    """Check an opened exposure file's headers and PSF without reading its pixel planes.

    Plane shapes come from the headers (``NAXISn``, or ``ZNAXISn`` of tile-compressed
    planes), so this reads only headers and the small ``PSF`` plane.

    Raises
    ------
    ContractError
        As :func:`read_exposure`.
    """
    info = info_from_header(hdul[0].header, what=what)
    names = [h.name for h in hdul]
    for ext in ("IMAGE", "VARIANCE", "MASK", "PSF"):
        if ext not in names:
            raise ContractError("missing_extension", f"{what}: no {ext} extension")
        if names.count(ext) > 1:
            raise ContractError("duplicate_extension", f"{what}: {names.count(ext)} {ext} extensions")
    shapes = [tuple(hdul[n].shape) for n in ("IMAGE", "VARIANCE", "MASK")]
    if len(shapes[0]) != 2 or shapes[1] != shapes[0] or shapes[2] != shapes[0] or min(shapes[0]) < 1:
        raise ContractError("bad_image", f"{what}: IMAGE/VARIANCE/MASK shapes differ or are not 2-D")
    _check_pixel_types(hdul, what)
    psf = _checked_psf(hdul["PSF"], what)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # FITSFixedWarning and astropy.wcs's other notes
        try:
            wcs = WCS(hdul["IMAGE"].header)
            celestial = wcs.has_celestial
        except Exception as exc:
            raise ContractError("bad_wcs", f"{what}: {exc}") from exc
    if not celestial:
        raise ContractError("bad_wcs", f"{what}: IMAGE header has no celestial WCS")
    extra = {k: v for k, v in hdul[0].header.items()
             if k not in ("SIMPLE", "BITPIX", "NAXIS", "EXTEND", "COMMENT", "HISTORY", "")}
    return ExposureMeta(info, psf, wcs.celestial, extra, (int(shapes[0][0]), int(shapes[0][1])))


def _bitpix(hdu) -> int:
    """``BITPIX`` of a plane's pixels (``ZBITPIX`` for a tile-compressed one)."""
    h = hdu.header
    return int(h.get("ZBITPIX", h.get("BITPIX", 0))) if h.get("ZIMAGE", False) else int(h.get("BITPIX", 0))


def _check_pixel_types(hdul: fits.HDUList, what: str) -> None:
    """IMAGE and VARIANCE hold floating-point pixels, MASK integers (from the headers only)."""
    for name in ("IMAGE", "VARIANCE"):
        if _bitpix(hdul[name]) not in (-32, -64):
            raise ContractError("bad_image", f"{what}: {name} pixels must be floating point, BITPIX "
                                             f"is {_bitpix(hdul[name])}")
    mask = hdul["MASK"]
    if _bitpix(mask) not in (8, 16, 32, 64) or "BSCALE" in mask.header and mask.header["BSCALE"] != 1:
        raise ContractError("bad_image", f"{what}: MASK pixels must be integer bits, BITPIX is "
                                         f"{_bitpix(mask)}")


def _checked_psf(hdu, what: str) -> np.ndarray:
    """The PSF plane: square, odd-sized, finite, summing to 1 (±10⁻³), centred (±0.5 px)."""
    try:
        psf = np.asarray(hdu.data, dtype=np.float64)
    except Exception as exc:
        raise ContractError("bad_psf", f"{what}: the PSF plane cannot be read: {exc}") from exc
    if psf.ndim != 2 or psf.shape[0] != psf.shape[1] or psf.shape[0] % 2 == 0:
        raise ContractError("bad_psf", f"{what}: PSF shape {psf.shape} is not square and odd")
    if not np.all(np.isfinite(psf)) or abs(psf.sum() - 1.0) > 1e-3:
        raise ContractError("bad_psf", f"{what}: PSF sums to {psf.sum():.6g}, not 1")
    k = psf.shape[0]
    offsets = np.arange(k) - k // 2
    cx, cy = float((psf.sum(axis=0) * offsets).sum()), float((psf.sum(axis=1) * offsets).sum())
    if max(abs(cx), abs(cy)) > 0.5:
        raise ContractError("bad_psf", f"{what}: PSF centroid ({cx:.2f}, {cy:.2f}) px is off its "
                                       f"central pixel")
    return psf

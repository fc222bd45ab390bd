"""Forced PSF photometry: the optimal PSF-weighted flux at given positions, many at once.

At each position the PSF model ``P`` is the exposure's PSF shifted to the sub-pixel position
(:func:`alertprod.imaging.psf.psf_stamps`, sinc interpolation) on the k × k stamp centred on the
nearest pixel. With data ``d`` and per-pixel variance ``σ²``, the maximum-likelihood flux of a
point source of known position and shape under Gaussian noise, and its variance, are

    F = Σ(P·d/σ²) / Σ(P²/σ²),    Var(F) = 1 / Σ(P²/σ²),    χ² = Σ((d − F·P)²/σ²)

(unbiased, and its variance reaches the Cramér–Rao bound). Pixels that are masked unusable,
NaN, of non-positive variance, or off the image get zero weight and are reported in
:class:`ForcedFlag`; a position whose centre is off the image, or whose stamp holds no usable
pixel, gets a NaN flux and a flag, never a silent wrong number.

The computation is vectorised over positions in chunks (stamps gathered with fancy indexing,
PSF models from one batched matrix product), with no Python loop over sources.
"""

from __future__ import annotations

import enum
from typing import NamedTuple

import numpy as np

from alertprod.errors import ImageError
from alertprod.formats.exposure import Exposure
from alertprod.formats.mask import UNUSABLE
from alertprod.imaging.psf import psf_stamps, validate_psf

__all__ = [
    "ForcedFlag",
    "ForcedPhotometryResult",
    "forced_psf_photometry",
    "forced_photometry_exposure",
]

#: Positions measured per batch: bounds memory to ~10 arrays of chunk × k² float64 (~35 MB at k=21).
_CHUNK = 1024


class ForcedFlag(enum.IntFlag):
    """Bits of :attr:`ForcedPhotometryResult.flags`. 0 means a clean measurement."""

    OFF_IMAGE = 1 << 0  #: centre off the image: flux NaN
    EDGE = 1 << 1  #: stamp partly off the image (those pixels get zero weight)
    MASKED = 1 << 2  #: some stamp pixels carry unusable mask bits (zero weight)
    NO_DATA = 1 << 3  #: no usable pixel under the PSF: flux NaN
    NAN_PIXELS = 1 << 4  #: some stamp pixels are NaN/inf or have variance ≤ 0 (zero weight)


class ForcedPhotometryResult(NamedTuple):
    """Forced PSF measurements, one entry per requested position; arrays of shape (n,).

    Attributes
    ----------
    flux : ndarray, float64
        PSF flux, image units (nJy for contract images); NaN when not measurable.
    flux_err : ndarray, float64
        1-σ uncertainty of ``flux``, same units.
    chi2 : ndarray, float64
        χ² of the one-parameter fit over the usable stamp pixels (``npix - 1`` degrees of
        freedom).
    npix : ndarray, int64
        Usable pixels in the stamp.
    flags : ndarray, int64
        :class:`ForcedFlag` bits.
    x, y : ndarray, float64
        0-based pixel positions measured at.
    """

    flux: np.ndarray
    flux_err: np.ndarray
    chi2: np.ndarray
    npix: np.ndarray
    flags: np.ndarray
    x: np.ndarray
    y: np.ndarray


def _check_positions(x_pix: np.ndarray, y_pix: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    x = np.atleast_1d(np.asarray(x_pix, dtype=np.float64))
    y = np.atleast_1d(np.asarray(y_pix, dtype=np.float64))
    if x.ndim != 1 or x.shape != y.shape:
        raise ImageError(f"x_pix and y_pix must be 1-D of equal length, got {x.shape} and {y.shape}")
    if not (np.all(np.isfinite(x)) and np.all(np.isfinite(y))):
        raise ImageError("x_pix and y_pix must be finite")
    return x, y


def _check_planes(image: np.ndarray, variance: np.ndarray, mask: np.ndarray | None
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    image = np.asarray(image)
    variance = np.asarray(variance)
    if image.ndim != 2 or image.dtype.kind not in "fiu":
        raise ImageError(f"image must be a 2-D numeric array, got shape {image.shape}")
    if variance.shape != image.shape:
        raise ImageError(f"variance shape {variance.shape} differs from image shape {image.shape}")
    if mask is not None:
        mask = np.asarray(mask)
        if mask.shape != image.shape or mask.dtype.kind not in "iu":
            raise ImageError(f"mask must be an integer array of shape {image.shape}, "
                             f"got {mask.dtype} {mask.shape}")
    return image, variance, mask


def forced_psf_photometry(image: np.ndarray, variance: np.ndarray, mask: np.ndarray | None,
                          psf: np.ndarray, x_pix: np.ndarray, y_pix: np.ndarray, *,
                          unusable_mask: int = int(UNUSABLE),
                          chunk_size: int = _CHUNK) -> ForcedPhotometryResult:
    """Measure PSF fluxes at fixed positions on one image.

    Parameters
    ----------
    image : ndarray, shape (ny, nx)
        Pixel values (nJy for contract images).
    variance : ndarray, shape (ny, nx)
        Per-pixel variance, image units squared.
    mask : ndarray of int, shape (ny, nx), or None
        :class:`~alertprod.formats.mask.MaskBit` bits; ``None`` for no mask.
    psf : ndarray, shape (k, k)
        The image's PSF (odd, normalised; checked with
        :func:`~alertprod.imaging.psf.validate_psf`). The stamp fitted is k × k.
    x_pix, y_pix : array_like, shape (n,)
        0-based pixel positions (pixel centres at integers), finite.
    unusable_mask : int, optional
        Mask bits that give a pixel zero weight (default: bad, saturated, cosmic ray, no data).
    chunk_size : int, optional
        Positions per batch (memory ≈ 10 × chunk_size × k² × 8 bytes).

    Returns
    -------
    ForcedPhotometryResult
        Arrays of shape (n,), in the order of the positions.

    Raises
    ------
    PsfError
        The PSF is not a valid PSF image.
    ImageError
        Shapes disagree or positions are not finite.
    """
    image, variance, mask = _check_planes(image, variance, mask)
    psf = validate_psf(psf)
    x, y = _check_positions(x_pix, y_pix)
    if int(chunk_size) < 1:
        raise ImageError(f"chunk_size must be positive, got {chunk_size!r}")
    n = x.size
    flux = np.full(n, np.nan)
    flux_err = np.full(n, np.nan)
    chi2 = np.full(n, np.nan)
    npix = np.zeros(n, dtype=np.int64)
    flags = np.zeros(n, dtype=np.int64)

    ny, nx = image.shape
    on = (x >= -0.5) & (x < nx - 0.5) & (y >= -0.5) & (y < ny - 0.5)
    flags[~on] |= ForcedFlag.OFF_IMAGE
    todo = np.flatnonzero(on)
    # Measure in raster order of the stamp centres: consecutive stamps then share image rows
    # in cache instead of each paying ~2k cache misses per plane (random access to a large image).
    todo = todo[np.argsort(np.floor(y[todo] + 0.5) * nx + np.floor(x[todo] + 0.5), kind="stable")]
    gather = _Gatherer(image, variance, mask, psf.shape[0])
    for lo in range(0, todo.size, int(chunk_size)):
        sel = todo[lo:lo + int(chunk_size)]
        out = _measure_chunk(gather, psf, x[sel], y[sel], int(unusable_mask))
        flux[sel], flux_err[sel], chi2[sel], npix[sel], flags[sel] = out
    return ForcedPhotometryResult(flux, flux_err, chi2, npix, flags, x, y)


class _Gatherer:
    """Collects the k × k stamps of the image planes around pixel centres, shape (c, k²).

    Stamps wholly inside the image are read through a sliding-window view (one fancy-index
    copy, no index arithmetic); the few that cross the edge go through clipped flat indices
    and come back with an ``inside`` mask.
    """

    def __init__(self, image: np.ndarray, variance: np.ndarray, mask: np.ndarray | None, k: int):
        self.k, self.h = k, k // 2
        self.shape = image.shape
        self.planes = [p for p in (image, variance, mask) if p is not None]
        ny, nx = image.shape
        self.windows = ([np.lib.stride_tricks.sliding_window_view(p, (k, k)) for p in self.planes]
                        if ny >= k and nx >= k else None)

    def gather(self, ix: np.ndarray, iy: np.ndarray) -> tuple[list[np.ndarray], np.ndarray, np.ndarray]:
        """Stamps of every plane, the on-image pixel mask and the per-stamp edge flag."""
        ny, nx = self.shape
        c, k, h = ix.size, self.k, self.h
        edge = (ix < h) | (iy < h) | (ix >= nx - h) | (iy >= ny - h)
        inside = np.ones((c, k * k), dtype=bool)
        if not edge.any():
            return [w[iy - h, ix - h].reshape(c, k * k) for w in self.windows], inside, edge
        stamps = [np.empty((c, k * k), dtype=p.dtype) for p in self.planes]
        mid = ~edge
        if mid.any():
            for dst, w in zip(stamps, self.windows, strict=True):
                dst[mid] = w[iy[mid] - h, ix[mid] - h].reshape(-1, k * k)
        off = np.arange(k) - h
        rows, cols = iy[edge, None] + off, ix[edge, None] + off
        inside[edge] = (((rows >= 0) & (rows < ny))[:, :, None]
                        & ((cols >= 0) & (cols < nx))[:, None, :]).reshape(-1, k * k)
        idx = (np.clip(rows, 0, ny - 1)[:, :, None] * nx
               + np.clip(cols, 0, nx - 1)[:, None, :]).reshape(-1, k * k)
        for dst, p in zip(stamps, self.planes, strict=True):
            dst[edge] = p.reshape(-1)[idx]
        return stamps, inside, edge


def _measure_chunk(gather: _Gatherer, psf: np.ndarray, x: np.ndarray, y: np.ndarray,
                   unusable_mask: int) -> tuple[np.ndarray, ...]:
    """Measure one batch of positions whose centres are on the image."""
    c, k = x.size, gather.k
    ix = np.floor(x + 0.5).astype(np.int64)
    iy = np.floor(y + 0.5).astype(np.int64)
    stamps, inside, edge = gather.gather(ix, iy)
    # The pixel arithmetic runs in float32 (the contract's pixel type): half the memory traffic
    # of float64. Sums of k² float32 terms keep ~1e-6 relative precision, far below the noise,
    # and χ² is summed from per-pixel residuals so bright sources lose no precision to it.
    f32 = np.float32
    d = stamps[0].astype(f32, copy=False)
    with np.errstate(divide="ignore", invalid="ignore"):
        w = np.reciprocal(stamps[1], dtype=f32)
    model = psf_stamps(psf, x - ix, y - iy, validate=False, dtype=f32).reshape(c, k * k)
    a = np.einsum("ij,ij,ij->i", model, w, d)  # Σ P d / σ²
    # Cheap per-stamp screens (a NaN/inf pixel or a variance ≤ 0 shows in min(w) or in Σ P d/σ²
    # and Σ w); only stamps that fail one take the pixel-by-pixel path.
    with np.errstate(invalid="ignore"):
        clean = (w.min(axis=1) > 0) & np.isfinite(a) & np.isfinite(w.sum(axis=1)) & ~edge
    if len(stamps) > 2:
        clean &= (np.bitwise_or.reduce(stamps[2], axis=1) & unusable_mask) == 0
    flags = np.where(edge, int(ForcedFlag.EDGE), 0).astype(np.int64)
    npix = np.full(c, k * k, dtype=np.int64)
    bad = np.flatnonzero(~clean)
    if bad.size:
        db, vb, inb = d[bad], stamps[1][bad], inside[bad]
        finite = np.isfinite(db) & np.isfinite(vb) & (vb > 0)
        nan_pix = ~finite & inb
        usable = finite & inb
        flags[bad[nan_pix.any(axis=1)]] |= ForcedFlag.NAN_PIXELS
        if len(stamps) > 2:
            masked = ((stamps[2][bad] & unusable_mask) != 0) & inb
            usable &= ~masked
            flags[bad[masked.any(axis=1)]] |= ForcedFlag.MASKED
        w[bad] = np.where(usable, w[bad], 0)
        d[bad] = np.where(usable, db, 0)
        a[bad] = np.einsum("ij,ij,ij->i", model[bad], w[bad], d[bad])
        npix[bad] = usable.sum(axis=1)
    b = np.einsum("ij,ij,ij->i", model, model, w).astype(np.float64)  # Σ P² / σ²
    a = a.astype(np.float64)
    ok = b > 0
    flags[~ok] |= ForcedFlag.NO_DATA
    with np.errstate(divide="ignore", invalid="ignore"):
        flux = np.where(ok, a / b, np.nan)
        flux_err = np.where(ok, 1.0 / np.sqrt(b), np.nan)
    resid = d - flux.astype(f32)[:, None] * model
    chi2 = np.where(ok, np.einsum("ij,ij,ij->i", w, resid, resid), np.nan)
    return flux, flux_err, chi2, npix, flags


def forced_photometry_exposure(exposure: Exposure, ra_deg: np.ndarray, dec_deg: np.ndarray, *,
                               unusable_mask: int = int(UNUSABLE)) -> ForcedPhotometryResult:
    """Forced PSF photometry at sky positions on an exposure.

    Sky positions go through the exposure's WCS (0-based pixels, distortion included); a
    position the WCS cannot map is reported ``OFF_IMAGE`` with NaN ``x``/``y``.

    Parameters
    ----------
    exposure : Exposure
        Image, variance, mask, PSF and WCS.
    ra_deg, dec_deg : array_like, shape (n,)
        ICRS coordinates, degrees, finite.
    unusable_mask : int, optional
        As :func:`forced_psf_photometry`.

    Returns
    -------
    ForcedPhotometryResult
        Fluxes in the image's units (nJy).
    """
    ra = np.atleast_1d(np.asarray(ra_deg, dtype=np.float64))
    dec = np.atleast_1d(np.asarray(dec_deg, dtype=np.float64))
    if ra.ndim != 1 or ra.shape != dec.shape:
        raise ImageError(f"ra_deg and dec_deg must be 1-D of equal length, got {ra.shape}, {dec.shape}")
    if not (np.all(np.isfinite(ra)) and np.all(np.isfinite(dec))):
        raise ImageError("ra_deg and dec_deg must be finite")
    if ra.size == 0:
        x = y = np.zeros(0)
    else:
        with np.errstate(invalid="ignore"):
            x, y = exposure.wcs.all_world2pix(ra, dec, 0, quiet=True)
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    mapped = np.isfinite(x) & np.isfinite(y)
    # Unmappable positions are measured far off the image, which flags them OFF_IMAGE.
    res = forced_psf_photometry(exposure.image, exposure.variance, exposure.mask, exposure.psf,
                                np.where(mapped, x, -1e9), np.where(mapped, y, -1e9),
                                unusable_mask=unusable_mask)
    return res._replace(x=x, y=y)

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
PSF models from the sinc taps through the PSF's singular value decomposition, see
:class:`_ShiftedPsf`), with no Python loop over sources. When the stamps together cover more
pixels than the image holds, the weights 1/σ² and a summed-area table of unusable pixels are
computed once for the whole image instead of per stamp; both ways give the same numbers.
"""

from __future__ import annotations

import enum
from typing import NamedTuple

import numpy as np

from alertprod.errors import ImageError
from alertprod.formats.exposure import Exposure
from alertprod.formats.mask import UNUSABLE
from alertprod.imaging._checks import check_pixel_positions as _check_positions
from alertprod.imaging.psf import validate_psf

__all__ = [
    "ForcedFlag",
    "ForcedPhotometryResult",
    "forced_psf_photometry",
    "forced_photometry_exposure",
]

#: Positions measured per batch: bounds memory to ~8 arrays of chunk × k² float32 (~15 MB at k=21).
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


def _check_sky_positions(ra_deg: np.ndarray, dec_deg: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """ICRS positions as 1-D float64 arrays of equal length, finite (ImageError otherwise)."""
    ra = np.atleast_1d(np.asarray(ra_deg, dtype=np.float64))
    dec = np.atleast_1d(np.asarray(dec_deg, dtype=np.float64))
    if ra.ndim != 1 or ra.shape != dec.shape:
        raise ImageError(f"ra_deg and dec_deg must be 1-D of equal length, got {ra.shape}, {dec.shape}")
    if not (np.all(np.isfinite(ra)) and np.all(np.isfinite(dec))):
        raise ImageError("ra_deg and dec_deg must be finite")
    return ra, dec


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
        Positions per batch (memory ≈ 8 × chunk_size × k² × 4 bytes).

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
    k = psf.shape[0]
    # Dense case (the stamps together cover more pixels than the image holds): one pass over
    # the image computes the weights 1/σ² and a summed-area table of unusable pixels, so each
    # stamp needs no reciprocal and no screening pass. Otherwise stamps are screened one by one.
    dense = todo.size * k * k >= image.size
    if dense:
        data = np.asarray(image, dtype=np.float32)
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            weight = np.reciprocal(variance, dtype=np.float32)
            bad = ~(np.isfinite(data) & np.isfinite(weight) & (weight > 0))
        if mask is not None:
            bad |= (mask & int(unusable_mask)) != 0
        counts = _BadCounts(bad, k) if bad.any() else None
        planes = [data, weight]
    else:
        counts, planes = None, [image, variance]
    gather = _Gatherer(planes + ([] if mask is None else [mask]), k)
    shifted = _ShiftedPsf(psf)
    for lo in range(0, todo.size, int(chunk_size)):
        sel = todo[lo:lo + int(chunk_size)]
        out = _measure_chunk(gather, shifted, dense, counts, x[sel], y[sel], int(unusable_mask))
        flux[sel], flux_err[sel], chi2[sel], npix[sel], flags[sel] = out
    return ForcedPhotometryResult(flux, flux_err, chi2, npix, flags, x, y)


class _ShiftedPsf:
    """Renders the sinc-shifted PSF for many sub-pixel offsets: ``P = Wy · psf · Wxᵀ``.

    The same separable sinc interpolation as :func:`alertprod.imaging.psf.psf_stamps`, computed
    through the PSF's singular value decomposition ``psf = Σ_ρ σ_ρ u_ρ v_ρᵀ``, truncated where the
    dropped tail is below 1e-8 of ‖psf‖ (far below float32 rounding, so the model is unchanged):
    ``P = (Wy U) (Wx V)ᵀ``. Written by hand because no library renders a batch of shifted
    images this way: both factors come from the 2k − 1 sinc taps by one matrix product each
    (no k × k shift matrix is built), and the batched product costs k²r instead of k³
    multiply-adds per stamp (r = 9 for a Moffat of FWHM 3.5 px on 21 × 21, 1 for a Gaussian).
    """

    def __init__(self, psf: np.ndarray):
        k = psf.shape[0]
        u, s, vt = np.linalg.svd(psf.astype(np.float64))
        tail = np.sqrt(np.cumsum((s ** 2)[::-1])[::-1])  # tail[r] = ‖Σ_{ρ≥r} σ_ρ u_ρ v_ρᵀ‖
        r = max(1, int(np.count_nonzero(tail > 1e-8 * tail[0])))
        us, v = u[:, :r] * s[:r], vt[:r].T
        # W[j, m] = sinc(j - m - d) = taps[j - m + k - 1]: K[q, j, ρ] = f[j - q + k - 1, ρ].
        q, j = np.arange(2 * k - 1)[:, None], np.arange(k)[None, :]
        m = j - q + k - 1
        ok = ((m >= 0) & (m < k))[:, :, None]
        mc = np.clip(m, 0, k - 1)
        self.ky = np.where(ok, us[mc], 0.0).astype(np.float32).reshape(2 * k - 1, k * r)
        self.kx = np.where(ok, v[mc], 0.0).transpose(0, 2, 1).astype(np.float32).reshape(2 * k - 1, r * k)
        self.k, self.r = k, r
        self.tau = np.arange(-(k - 1), k).astype(np.float32)
        self.sign = (np.where(self.tau % 2 == 0, -1.0, 1.0) / np.pi).astype(np.float32)

    def _taps(self, d: np.ndarray) -> np.ndarray:
        """``sinc(q - (k - 1) - d)`` for q = 0 … 2k − 2, shape (n, 2k − 1), float32."""
        # sin(π(τ - d)) = -(-1)^τ sin(πd) for integer τ: one sine per shift, not one per tap.
        # In float32 (|d| ≤ 0.5): ~1e-7 relative, the model's own rounding.
        taps = np.multiply(np.sin(np.pi * d).astype(np.float32)[:, None], self.sign)
        with np.errstate(divide="ignore", invalid="ignore"):
            np.divide(taps, self.tau - d.astype(np.float32)[:, None], out=taps)
        whole = np.flatnonzero(d == np.rint(d))
        if whole.size:  # integer shift: a unit impulse at τ = d
            taps[whole] = self.tau == d[whole, None]
        return taps

    def __call__(self, dx: np.ndarray, dy: np.ndarray) -> np.ndarray:
        """Model stamps for offsets ``dx``, ``dy`` (pixels), shape (n, k²), float32."""
        n, k, r = dx.size, self.k, self.r
        taps = self._taps(np.concatenate([dy, dx]))
        a = (taps[:n] @ self.ky).reshape(n, k, r)
        bt = (taps[n:] @ self.kx).reshape(n, r, k)
        return np.matmul(a, bt).reshape(n, k * k)


class _Gatherer:
    """Collects the k × k stamps of the image planes around pixel centres, shape (c, k²).

    Stamps wholly inside the image are read through a sliding-window view (one fancy-index
    copy, no index arithmetic); the few that cross the edge go through clipped flat indices
    and come back with an ``inside`` mask.
    """

    def __init__(self, planes: list[np.ndarray], k: int):
        self.k, self.h = k, k // 2
        self.shape = planes[0].shape
        self.planes = planes
        ny, nx = self.shape
        self.windows = ([np.lib.stride_tricks.sliding_window_view(p, (k, k)) for p in planes]
                        if ny >= k and nx >= k else None)

    def edge(self, ix: np.ndarray, iy: np.ndarray) -> np.ndarray:
        """Whether each stamp crosses the image edge."""
        ny, nx = self.shape
        h = self.h
        return (ix < h) | (iy < h) | (ix >= nx - h) | (iy >= ny - h)

    def gather(self, ix: np.ndarray, iy: np.ndarray, edge: np.ndarray, planes: list[int]
               ) -> tuple[list[np.ndarray], np.ndarray | None]:
        """Stamps of the chosen planes and the on-image pixel mask (None: all on the image)."""
        ny, nx = self.shape
        c, k, h = ix.size, self.k, self.h
        if self.windows is not None:
            # Every stamp through the window view (edge ones clipped inside, overwritten below).
            wy, wx = iy - h, ix - h
            if edge.any():
                wy, wx = np.minimum(np.maximum(wy, 0), ny - k), np.minimum(np.maximum(wx, 0), nx - k)
            stamps = [self.windows[i][wy, wx].reshape(c, k * k) for i in planes]
            if not edge.any():
                return stamps, None
        else:
            stamps = [np.empty((c, k * k), dtype=self.planes[i].dtype) for i in planes]
        inside = np.ones((c, k * k), dtype=bool)
        off = np.arange(k) - h
        rows, cols = iy[edge, None] + off, ix[edge, None] + off
        inside[edge] = (((rows >= 0) & (rows < ny))[:, :, None]
                        & ((cols >= 0) & (cols < nx))[:, None, :]).reshape(-1, k * k)
        idx = (np.clip(rows, 0, ny - 1)[:, :, None] * nx
               + np.clip(cols, 0, nx - 1)[:, None, :]).reshape(-1, k * k)
        for dst, i in zip(stamps, planes, strict=True):
            dst[edge] = self.planes[i].reshape(-1)[idx]
        return stamps, inside


class _BadCounts:
    """Unusable pixels per k × k stamp from a summed-area table: four look-ups per stamp."""

    def __init__(self, bad: np.ndarray, k: int):
        self.h = k // 2
        sat = np.zeros((bad.shape[0] + 1, bad.shape[1] + 1), dtype=np.int32)
        np.cumsum(bad, axis=0, dtype=np.int32, out=sat[1:, 1:])
        np.cumsum(sat[1:, 1:], axis=1, out=sat[1:, 1:])
        self.sat = sat

    def count(self, ix: np.ndarray, iy: np.ndarray) -> np.ndarray:
        """Unusable pixels in the stamps centred on ``(iy, ix)`` (interior stamps only)."""
        s, h = self.sat, self.h
        y0, y1, x0, x1 = iy - h, iy + h + 1, ix - h, ix + h + 1
        return s[y1, x1] - s[y0, x1] - s[y1, x0] + s[y0, x0]


def _rowdot(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.einsum("ij,ij->i", a, b)


def _sums(model: np.ndarray, d: np.ndarray, w: np.ndarray) -> tuple[np.ndarray, ...]:
    """Σ P d w, Σ P² w, Σ d² w per stamp (float32 in, float64 out)."""
    wd = w * d
    a = _rowdot(model, wd)
    dd = _rowdot(wd, d)
    wp = np.multiply(w, model, out=wd)  # reuses wd's memory: one temporary, not two
    b = _rowdot(model, wp)
    return a.astype(np.float64), b.astype(np.float64), dd.astype(np.float64)


def _measure_chunk(gather: _Gatherer, shifted: _ShiftedPsf, dense: bool, counts: _BadCounts | None,
                   x: np.ndarray, y: np.ndarray, unusable_mask: int) -> tuple[np.ndarray, ...]:
    """Measure one batch of positions whose centres are on the image.

    ``dense``: the gathered planes are float32 data and weights 1/σ², and ``counts`` (None if
    every pixel is usable) screens the stamps; otherwise data and variance, screened per stamp.
    """
    c, k = x.size, gather.k
    ix = np.floor(x + 0.5).astype(np.int64)
    iy = np.floor(y + 0.5).astype(np.int64)
    edge = gather.edge(ix, iy)
    has_mask = len(gather.planes) > 2
    gather_mask = has_mask and not dense
    stamps, inside = gather.gather(ix, iy, edge, [0, 1, 2] if gather_mask else [0, 1])
    # The pixel arithmetic runs in float32 (the contract's pixel type): half the memory traffic
    # of float64. Sums of k² float32 terms keep ~1e-6 relative precision, far below the noise.
    f32 = np.float32
    d = stamps[0].astype(f32, copy=False)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        w = stamps[1] if dense else np.reciprocal(stamps[1], dtype=f32)
        model = shifted(x - ix, y - iy)
        a, b, dd = _sums(model, d, w)
        clean = ~edge
        if dense:
            if counts is not None:
                inner = np.flatnonzero(clean)
                clean[inner] = counts.count(ix[inner], iy[inner]) == 0
        else:
            # Cheap per-stamp screens: a NaN/inf pixel or a variance ≤ 0 shows in min(w) or in
            # the sums; only stamps that fail one take the pixel-by-pixel path.
            clean &= (w.min(axis=1) > 0) & np.isfinite(a) & np.isfinite(b) & np.isfinite(dd)
            if gather_mask:
                clean &= (np.bitwise_or.reduce(stamps[2], axis=1) & unusable_mask) == 0
    flags = np.where(edge, int(ForcedFlag.EDGE), 0).astype(np.int64)
    npix = np.full(c, k * k, dtype=np.int64)
    bad = np.flatnonzero(~clean)
    if bad.size:
        db, wb = d[bad], w[bad]
        inb = inside[bad] if inside is not None else np.ones(db.shape, dtype=bool)
        with np.errstate(invalid="ignore"):
            # w = 1/σ² is finite and positive exactly when σ² is (up to float32 overflow).
            finite = np.isfinite(db) & np.isfinite(wb) & (wb > 0)
        nan_pix = ~finite & inb
        usable = finite & inb
        flags[bad[nan_pix.any(axis=1)]] |= ForcedFlag.NAN_PIXELS
        if has_mask and (gather_mask or counts is not None):  # else no pixel is unusable
            mb = (stamps[2][bad] if gather_mask
                  else gather.gather(ix[bad], iy[bad], edge[bad], [2])[0][0])
            masked = ((mb & unusable_mask) != 0) & inb
            usable &= ~masked
            flags[bad[masked.any(axis=1)]] |= ForcedFlag.MASKED
        w[bad] = wb = np.where(usable, wb, 0)
        d[bad] = db = np.where(usable, db, 0)
        a[bad], b[bad], dd[bad] = _sums(model[bad], db, wb)
        npix[bad] = usable.sum(axis=1)
    ok = b > 0
    flags[~ok] |= ForcedFlag.NO_DATA
    with np.errstate(divide="ignore", invalid="ignore"):
        flux = np.where(ok, a / b, np.nan)
        flux_err = np.where(ok, 1.0 / np.sqrt(b), np.nan)
        # χ² = Σ w d² − F Σ w P d. Where the fitted part is most of Σ w d² (bright sources) the
        # difference would lose float32 precision, so it is summed from per-pixel residuals there.
        chi2 = np.where(ok, dd - flux * a, np.nan)
    exact = np.flatnonzero(ok & ~(chi2 > 0.125 * dd))
    if exact.size:
        resid = d[exact] - flux[exact].astype(f32)[:, None] * model[exact]
        chi2[exact] = _rowdot(w[exact] * resid, resid)
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
    ra, dec = _check_sky_positions(ra_deg, dec_deg)
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

"""PSF models on the pixel grid: rendering, validation, sub-pixel shifts and point-source stamps.

A PSF here is what the upload contract carries in an exposure's ``PSF`` extension: a square,
odd-sized image sampled on the pixel grid, summing to 1, centred on its central pixel
``(k // 2, k // 2)``. Pixel values are *pixel-integrated* (the flux falling in each pixel), not
the profile sampled at pixel centres.

Sub-pixel shifts use separable **sinc (Whittaker–Shannon) interpolation** of the stamp taken as
zero outside it, i.e. a Fourier shift of the stamp zero-padded to infinity. Why this and not the
usual alternatives: a pixel-integrated PSF of FWHM ≳ 2.5 px is band-limited to ~1e-4, so sinc
interpolation is exact to that level and leaves the PSF flux unbiased (< 3e-5 at FWHM ≥ 3 px);
Lanczos-3 and Lanczos-5 windows damp the high frequencies and broaden the shifted PSF, biasing
the fitted flux by 0.1–0.6 % (0.1–0.6 σ at S/N 100, see docs/photometry.md); an FFT shift of the
finite stamp wraps the wings around its edges. The shift is separable, so rendering n stamps of
k × k costs two matrix products of about k³ multiply-adds each per stamp (:func:`psf_stamps`),
cheap enough for forced photometry of ~10⁵ positions per second. Below FWHM ≈ 2 px the sampled
PSF is aliased and no interpolation recovers it exactly.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
from scipy import ndimage, special

from alertprod.errors import ImageError, PsfError

__all__ = [
    "PsfCentroid",
    "gaussian_psf",
    "moffat_psf",
    "validate_psf",
    "shift_psf",
    "psf_stamps",
    "add_point_sources",
    "psf_fwhm_pix",
    "psf_effective_area_pix",
    "psf_centroid",
    "sinc_shift_matrices",
]

_FWHM_PER_SIGMA = 2.0 * math.sqrt(2.0 * math.log(2.0))
#: Fraction of the flux a default-sized PSF stamp must hold.
_FLUX_COVERAGE = 0.995
#: Gauss–Legendre nodes per pixel and axis used to integrate Moffat profiles over pixels.
_MOFFAT_NODES = 4


class PsfCentroid(NamedTuple):
    """First moments of a PSF image, 0-based pixel coordinates of the PSF array."""

    x_pix: float
    y_pix: float


def _check_fwhm(fwhm_pix: float) -> float:
    f = float(fwhm_pix)
    if not (np.isfinite(f) and f > 0):
        raise PsfError(f"fwhm_pix must be a positive finite number of pixels, got {fwhm_pix!r}")
    return f


def _check_size(size_pix: int | None, default: int) -> int:
    if size_pix is None:
        return default
    s = int(size_pix)
    if s != size_pix or s < 1 or s % 2 == 0:
        raise PsfError(f"size_pix must be a positive odd integer, got {size_pix!r}")
    return s


def _odd_size(radius_pix: float) -> int:
    """Smallest odd size whose half-width (``size // 2 + 0.5``) reaches ``radius_pix``."""
    half = max(1, math.ceil(radius_pix - 0.5))
    return 2 * half + 1


def gaussian_psf(fwhm_pix: float, *, size_pix: int | None = None, dx_pix: float = 0.0,
                 dy_pix: float = 0.0) -> np.ndarray:
    """Pixel-integrated circular Gaussian PSF.

    Each pixel holds the exact integral of the Gaussian over its area (a product of ``erf``
    differences: the profile is separable), then the stamp is normalised to sum 1.

    Parameters
    ----------
    fwhm_pix : float
        Full width at half maximum of the Gaussian profile before pixel integration, pixels.
    size_pix : int, optional
        Odd side of the stamp. Default: the smallest odd size holding ≥ 99.5 % of the flux.
    dx_pix, dy_pix : float, optional
        Offset of the profile centre from the central pixel's centre, pixels (used to render
        a source exactly at a sub-pixel position, e.g. to test :func:`shift_psf`).

    Returns
    -------
    ndarray, shape (k, k), float64
        The PSF, summing to 1.
    """
    sigma = _check_fwhm(fwhm_pix) / _FWHM_PER_SIGMA
    # The square stamp of half-width r holds erf(r / (σ√2))² of the flux.
    r = math.sqrt(2.0) * sigma * special.erfinv(math.sqrt(_FLUX_COVERAGE))
    k = _check_size(size_pix, _odd_size(r))
    h = k // 2
    edges = np.arange(-h - 0.5, h + 1.0, 1.0)

    def axis(d: float) -> np.ndarray:
        return np.diff(special.erf((edges - d) / (sigma * math.sqrt(2.0)))) * 0.5

    psf = np.outer(axis(float(dy_pix)), axis(float(dx_pix)))
    return psf / psf.sum()


def moffat_psf(fwhm_pix: float, *, beta: float = 3.5, size_pix: int | None = None,
               dx_pix: float = 0.0, dy_pix: float = 0.0) -> np.ndarray:
    """Pixel-integrated circular Moffat PSF, ``(1 + r²/α²)^-β``.

    The profile is integrated over each pixel by 4 × 4-node Gauss–Legendre quadrature (no
    closed form exists for the pixel integral of a Moffat), then normalised to sum 1.

    Parameters
    ----------
    fwhm_pix : float
        Full width at half maximum of the profile, pixels.
    beta : float, optional
        Moffat index, > 1 (3.5 is the customary model of atmospheric seeing).
    size_pix : int, optional
        Odd side of the stamp. Default: the smallest odd size whose inscribed circle holds
        ≥ 99.5 % of the (infinite) profile's flux.
    dx_pix, dy_pix : float, optional
        Offset of the profile centre from the central pixel's centre, pixels.

    Returns
    -------
    ndarray, shape (k, k), float64
        The PSF, summing to 1.
    """
    fwhm = _check_fwhm(fwhm_pix)
    if not (np.isfinite(beta) and beta > 1.0):
        raise PsfError(f"beta must be > 1 for a finite Moffat flux, got {beta!r}")
    alpha = fwhm / (2.0 * math.sqrt(2.0 ** (1.0 / beta) - 1.0))
    # Flux inside radius r: 1 - (1 + r²/α²)^(1-β); the square stamp contains that circle.
    r = alpha * math.sqrt((1.0 - _FLUX_COVERAGE) ** (1.0 / (1.0 - beta)) - 1.0)
    k = _check_size(size_pix, _odd_size(r))
    # Gauss–Legendre nodes per pixel axis: exact for polynomials of degree < 2·nodes, so far
    # more accurate than the same number of equally spaced sub-samples on a smooth profile.
    nodes, weights = np.polynomial.legendre.leggauss(_MOFFAT_NODES)
    centres = np.arange(k) - k // 2
    sub = (centres[:, None] + 0.5 * nodes[None, :]).ravel()  # (k * nodes,)
    wgt = np.tile(0.5 * weights, k)
    yy = (sub - float(dy_pix))[:, None]
    xx = (sub - float(dx_pix))[None, :]
    fine = (1.0 + (xx * xx + yy * yy) / alpha**2) ** (-beta) * wgt[:, None] * wgt[None, :]
    psf = fine.reshape(k, _MOFFAT_NODES, k, _MOFFAT_NODES).sum(axis=(1, 3))
    return psf / psf.sum()


def validate_psf(psf: np.ndarray, *, name: str = "psf") -> np.ndarray:
    """Check that an array is a usable PSF image and return it as float64.

    Parameters
    ----------
    psf : array_like, shape (k, k)
        Candidate PSF: square, odd-sized, finite, summing to 1 within 1e-3.
    name : str, optional
        Argument name used in error messages.

    Returns
    -------
    ndarray, shape (k, k), float64

    Raises
    ------
    PsfError
        Naming what is wrong: dimensions, shape, non-finite values, a non-positive total
        or a total other than 1.
    """
    try:
        arr = np.asarray(psf, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise PsfError(f"{name} is not a numeric array: {exc}") from exc
    if arr.ndim != 2:
        raise PsfError(f"{name} must be 2-D, has {arr.ndim} dimensions")
    if arr.shape[0] != arr.shape[1] or arr.shape[0] % 2 == 0:
        raise PsfError(f"{name} shape {arr.shape} is not square and odd-sized")
    if not np.all(np.isfinite(arr)):
        raise PsfError(f"{name} holds non-finite values")
    total = float(arr.sum())
    if total <= 0:
        raise PsfError(f"{name} has a non-positive total {total:.6g}")
    if abs(total - 1.0) > 1e-3:
        raise PsfError(f"{name} sums to {total:.6g}, not 1 (within 1e-3)")
    return arr


def _sinc_taps(shift_pix: np.ndarray, k: int) -> np.ndarray:
    """``v[s, q] = sinc(q - (k - 1) - shift_pix[s])`` for ``q = 0 … 2k - 2``, shape (n, 2k - 1)."""
    d = np.asarray(shift_pix, dtype=np.float64)
    tau = np.arange(-(k - 1), k)
    # sin(π(τ - d)) = -(-1)^τ sin(πd) for integer τ: one sine per shift, not one per tap.
    den = np.pi * (tau[None, :] - d[:, None])
    num = np.sin(np.pi * d)[:, None] * np.where(tau % 2 == 0, -1.0, 1.0)[None, :]
    return np.divide(num, den, out=np.ones_like(den), where=den != 0)


def sinc_shift_matrices(shift_pix: np.ndarray, size_pix: int) -> np.ndarray:
    """Matrices that shift a sampled 1-D profile by sub-pixel amounts (sinc interpolation).

    ``W[s] @ f`` is the band-limited (Whittaker–Shannon) interpolant of the samples ``f`` of
    length ``size_pix``, taken as zero outside, evaluated at ``i - shift_pix[s]`` for every
    output pixel ``i``: ``W[s, i, m] = sinc(i - m - shift_pix[s])``.

    Parameters
    ----------
    shift_pix : ndarray, shape (n,)
        Shifts, pixels.
    size_pix : int
        Length ``k`` of the profile.

    Returns
    -------
    ndarray, shape (n, k, k), float64
        Toeplitz shift matrices.
    """
    k = int(size_pix)
    win = np.lib.stride_tricks.sliding_window_view(_sinc_taps(shift_pix, k), k, axis=1)
    return np.ascontiguousarray(win[:, :, ::-1])  # W[s, i, m] = v[s, i + (k - 1 - m)]


def _hankel(shift_pix: np.ndarray, k: int, dtype: type = np.float64) -> np.ndarray:
    """``H[s, a, b] = sinc(a + b - (k - 1) - shift_pix[s])``, shape (n, k, k), C-contiguous."""
    return np.ascontiguousarray(
        np.lib.stride_tricks.sliding_window_view(_sinc_taps(shift_pix, k), k, axis=1), dtype=dtype)


def _psf_stamps_unchecked(psf: np.ndarray, dx_pix: np.ndarray, dy_pix: np.ndarray,
                          dtype: type = np.float64) -> np.ndarray:
    """:func:`psf_stamps` without input checks, C-contiguous (n, k, k)."""
    k, n = psf.shape[0], dx_pix.size
    flip = np.ascontiguousarray(psf[::-1, ::-1], dtype=dtype)
    # stamp[j, i] = Σ_{r,m} sinc(j - r - dy) psf[r, m] sinc(i - m - dx). With the symmetric
    # Hankel matrices H[a, b] = sinc(a + b - (k-1) - d), a = k-1-r and b = k-1-m (a flipped
    # psf): stamp = Hy @ flip @ Hx. The first product is one matrix product for all stamps,
    # the second a batched product of k × k matrices.
    u = (_hankel(dy_pix, k, dtype).reshape(n * k, k) @ flip).reshape(n, k, k)
    return np.matmul(u, _hankel(dx_pix, k, dtype))


def psf_stamps(psf: np.ndarray, dx_pix: np.ndarray, dy_pix: np.ndarray, *,
               validate: bool = True, dtype: type = np.float64) -> np.ndarray:
    """Render the PSF shifted by many sub-pixel offsets at once.

    Stamp ``s`` is ``Wy[s] @ psf @ Wx[s].T`` with the sinc shift matrices of
    :func:`sinc_shift_matrices` (separable sinc interpolation, see the module notes),
    computed as one matrix product for all stamps followed by a batched product of
    (k, k) matrices: about 2k³ multiply-adds per stamp, no Python loop.

    Parameters
    ----------
    psf : ndarray, shape (k, k)
        The PSF image (see :func:`validate_psf`).
    dx_pix, dy_pix : array_like, shape (n,)
        Offsets of the source from the central pixel's centre, pixels, along x (columns)
        and y (rows); typically in ``[-0.5, 0.5]``.
    validate : bool, optional
        Check ``psf`` with :func:`validate_psf` (callers that already did pass ``False``).
    dtype : numpy float type, optional
        Precision of the computation and result (float32 halves time and memory traffic;
        its rounding, ~1e-7 of the peak, is far below any interpolation error).

    Returns
    -------
    ndarray, shape (n, k, k)
        Shifted PSF stamps; each sums to 1 less what the shift moved past the stamp edge.
    """
    psf = validate_psf(psf) if validate else np.asarray(psf, dtype=np.float64)
    dx = np.atleast_1d(np.asarray(dx_pix, dtype=np.float64))
    dy = np.atleast_1d(np.asarray(dy_pix, dtype=np.float64))
    if dx.ndim != 1 or dx.shape != dy.shape:
        raise ImageError(f"dx_pix and dy_pix must be 1-D of equal length, got {dx.shape}, {dy.shape}")
    if not (np.all(np.isfinite(dx)) and np.all(np.isfinite(dy))):
        raise ImageError("dx_pix and dy_pix must be finite")
    k = psf.shape[0]
    if dx.size == 0:
        return np.zeros((0, k, k), dtype=dtype)
    return _psf_stamps_unchecked(psf, dx, dy, dtype)


def shift_psf(psf: np.ndarray, dx_pix: float, dy_pix: float) -> np.ndarray:
    """Shift a PSF image by a sub-pixel offset (sinc interpolation, see the module notes).

    Parameters
    ----------
    psf : ndarray, shape (k, k)
        The PSF image.
    dx_pix, dy_pix : float
        Shift along x (columns) and y (rows), pixels.

    Returns
    -------
    ndarray, shape (k, k), float64
        The shifted PSF, same size; not renormalised (flux moved past the edge is lost).
    """
    return psf_stamps(psf, [dx_pix], [dy_pix])[0]


def add_point_sources(image: np.ndarray, psf: np.ndarray, x_pix: np.ndarray, y_pix: np.ndarray,
                      flux: np.ndarray, *, chunk_size: int = 4096) -> np.ndarray:
    """Add point sources at sub-pixel positions into an image, in place.

    Parameters
    ----------
    image : ndarray, shape (ny, nx), float
        Image to add into (modified in place); fluxes are in its units.
    psf : ndarray, shape (k, k)
        The PSF.
    x_pix, y_pix : array_like, shape (n,)
        0-based pixel positions (pixel centres at integers). Parts of stamps falling off the
        image are dropped; sources anywhere are accepted.
    flux : array_like, shape (n,) or scalar
        Total flux of each source, image units.
    chunk_size : int, optional
        Sources rendered per batch (bounds memory).

    Returns
    -------
    ndarray
        ``image`` itself.
    """
    psf = validate_psf(psf)
    if not isinstance(image, np.ndarray) or image.ndim != 2 or image.dtype.kind != "f":
        raise ImageError("image must be a 2-D floating-point numpy array")
    x = np.atleast_1d(np.asarray(x_pix, dtype=np.float64))
    y = np.atleast_1d(np.asarray(y_pix, dtype=np.float64))
    f = np.broadcast_to(np.asarray(flux, dtype=np.float64), x.shape)
    if x.ndim != 1 or y.shape != x.shape:
        raise ImageError(f"x_pix and y_pix must be 1-D of equal length, got {x.shape}, {y.shape}")
    if not (np.all(np.isfinite(x)) and np.all(np.isfinite(y)) and np.all(np.isfinite(f))):
        raise ImageError("x_pix, y_pix and flux must be finite")
    ny, nx = image.shape
    k = psf.shape[0]
    off = np.arange(k) - k // 2
    flat = image.reshape(-1)  # a view for contiguous images; otherwise fall back below
    work = flat if np.shares_memory(flat, image) else image.ravel().copy()
    for lo in range(0, x.size, chunk_size):
        sl = slice(lo, lo + chunk_size)
        ix, iy = np.rint(x[sl]).astype(np.int64), np.rint(y[sl]).astype(np.int64)
        stamps = psf_stamps(psf, x[sl] - ix, y[sl] - iy, validate=False)
        stamps *= f[sl, None, None]
        rows = iy[:, None] + off
        cols = ix[:, None] + off
        inside = ((rows >= 0) & (rows < ny))[:, :, None] & ((cols >= 0) & (cols < nx))[:, None, :]
        idx = rows[:, :, None] * nx + cols[:, None, :]
        np.add.at(work, idx[inside], stamps[inside].astype(image.dtype, copy=False))
    if work is not flat:
        image[...] = work.reshape(ny, nx)
    return image


def psf_effective_area_pix(psf: np.ndarray) -> float:
    """Effective area ``1 / Σ p²`` of a PSF, pixels (the noise-equivalent area).

    For sky-dominated noise of variance σ² per pixel, the optimal PSF flux has variance
    ``σ² · area``; a Gaussian of FWHM f has area ≈ 4π (f / 2.3548)².
    """
    p = validate_psf(psf)
    return float(1.0 / np.sum(p * p))


def psf_centroid(psf: np.ndarray) -> PsfCentroid:
    """First moments of the PSF, 0-based pixel coordinates of the array.

    A PSF obeying the contract has its centroid at ``(k // 2, k // 2)``.
    """
    p = validate_psf(psf)
    idx = np.arange(p.shape[0], dtype=np.float64)
    total = p.sum()
    return PsfCentroid(float(p.sum(axis=0) @ idx / total), float(p.sum(axis=1) @ idx / total))


def psf_fwhm_pix(psf: np.ndarray, *, upsample: int = 8) -> float:
    """Full width at half maximum of the PSF image as the pixels show it, pixels.

    The PSF is upsampled by cubic-spline interpolation; the FWHM is the diameter of the disc
    whose area equals that of the region above half the peak. This measures the
    pixel-convolved profile, so for :func:`gaussian_psf` of FWHM ``f`` it returns about
    ``sqrt(f² + 2.3548² / 12)``.

    Parameters
    ----------
    psf : ndarray, shape (k, k)
        The PSF.
    upsample : int, optional
        Interpolation factor.

    Returns
    -------
    float
        FWHM, pixels.
    """
    p = validate_psf(psf)
    fine = ndimage.zoom(p, upsample, order=3, grid_mode=True, mode="grid-constant")
    area_fine = np.count_nonzero(fine >= 0.5 * fine.max())
    return float(2.0 * math.sqrt(area_fine / upsample**2 / math.pi))

"""Proper image subtraction (ZOGY: Zackay, Ofek & Gal-Yam 2016, ApJ 830, 27) on FFTs.

The science image N (PSF ``P_n``, flux zero point ``F_n = 1``: it is in nJy) and a template R
already resampled onto the science pixel grid (PSF ``P_r``, zero point ``F_r``, the *flux
scale*: template pixel values per science nJy) combine in Fourier space into the proper
difference

    D̂ = (F_r P̂_r N̂ − F_n P̂_n R̂) / (F_D √(σ_n² F_r² |P̂_r|² + σ_r² F_n² |P̂_n|²)),
    F_D = F_r F_n / √(σ_n² F_r² + σ_r² F_n²),

whose PSF is ``P̂_D = F_r F_n P̂_r P̂_n / (F_D √(…))`` (sum 1). Dividing by ``F_D`` puts D in nJy
at the science scale: a point source of science flux f appears in D as ``f · P_D``. σ_n², σ_r²
are the medians of the two variance planes. D = ``k_n ⊗ N − k_r ⊗ R`` with two compact kernels,
so its per-pixel variance is propagated exactly for independent input pixels as
``V_D = k_n² ⊗ V_n + k_r² ⊗ V_r`` — which includes the source (Poisson) noise of bright stars
that the variance planes carry (ZOGY's variance-correction term, eq. 28-29). The score image is
ZOGY's ``S_corr = S / √V_S`` with ``S = D ⋆ P_D`` and ``V_S`` propagated the same way; it is the
PSF-matched-filter S/N of a point source at each pixel.

Every convolution runs on one zero-padded real FFT grid (``scipy.fft`` with ``workers``,
float32/complex64): the padding is at least the kernels' half-width, so nothing wraps around.
The kernels themselves are computed on a small grid (a few PSF widths) in float64.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import scipy.fft as sfft
from scipy import ndimage

from alertprod.errors import ImageError
from alertprod.formats.exposure import Exposure
from alertprod.formats.mask import MaskBit
from alertprod.imaging.psf import validate_psf

__all__ = ["SubtractionResult", "ZogyKernels", "zogy_subtract", "zogy_kernels", "estimate_flux_scale"]

#: Mask bits of the inputs that make no sense on a difference image and are not carried over.
_DROPPED_BITS = int(MaskBit.DETECTED | MaskBit.DETECTED_NEGATIVE)


class SubtractionResult(NamedTuple):
    """What :func:`zogy_subtract` returns.

    Attributes
    ----------
    difference : Exposure
        D in nJy at the science photometric scale, on the science grid and WCS, with its
        propagated variance (nJy²), the union of the two masks (plus ``NO_DATA`` where either
        input had no data, ``EDGE`` within a kernel half-width of those pixels and of the
        border) and the difference-image PSF ``P_D`` (odd-sized, sum 1).
    score : ndarray, shape (ny, nx), float32
        ZOGY's ``S_corr``: point-source detection S/N at each pixel (0 on ``NO_DATA``).
    flux_scale : float
        ``F_r / F_n`` used: template pixel value per science nJy.
    """

    difference: Exposure
    score: np.ndarray
    flux_scale: float


class ZogyKernels(NamedTuple):
    """Real-space ZOGY kernels on a small grid, each of shape (K, K) centred on ``(K//2, K//2)``.

    Attributes
    ----------
    k_n, k_r : ndarray
        ``D = k_n ⊗ N − k_r ⊗ R`` (D in science nJy).
    psf_d : ndarray, shape (k, k), k odd
        PSF of D, sum 1.
    f_d : float
        ZOGY's ``F_D`` (flux zero point of the un-normalised D).
    """

    k_n: np.ndarray
    k_r: np.ndarray
    psf_d: np.ndarray
    f_d: float


def _embed_centred(stamp: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Place an odd, centred stamp on a grid with its centre at pixel (0, 0) (FFT convention)."""
    out = np.zeros(shape, dtype=stamp.dtype)
    h = stamp.shape[0] // 2
    for (dst_r, src_r) in ((slice(0, h + 1), slice(h, None)), (slice(-h, None), slice(0, h))):
        for (dst_c, src_c) in ((slice(0, h + 1), slice(h, None)), (slice(-h, None), slice(0, h))):
            out[dst_r, dst_c] = stamp[src_r, src_c]
    return out


def zogy_kernels(psf_n: np.ndarray, psf_r: np.ndarray, sigma_n: float, sigma_r: float,
                 flux_scale: float, *, size_pix: int | None = None) -> ZogyKernels:
    """ZOGY convolution kernels and difference PSF for given PSFs and noise levels.

    Parameters
    ----------
    psf_n, psf_r : ndarray, shape (k, k), k odd
        Science and template PSFs (sum 1).
    sigma_n, sigma_r : float
        Per-pixel noise standard deviations of science (nJy) and template (template units).
    flux_scale : float
        ``F_r / F_n``.
    size_pix : int, optional
        Odd size of the kernel grid; default four times the larger PSF, at least 33.

    Returns
    -------
    ZogyKernels
    """
    kmax = max(psf_n.shape[0], psf_r.shape[0])
    size = int(size_pix) if size_pix is not None else max(33, 4 * kmax + 1)
    size += 1 - size % 2
    shape = (size, size)
    pn = np.fft.rfft2(_embed_centred(psf_n, shape))
    pr = np.fft.rfft2(_embed_centred(psf_r, shape))
    fn, fr = 1.0, float(flux_scale)
    denom = np.sqrt(sigma_n**2 * fr**2 * np.abs(pr) ** 2 + sigma_r**2 * fn**2 * np.abs(pn) ** 2)
    # both PSF transforms can underflow together far beyond the band limit: the kernels are 0 there
    denom = np.where(denom > 1e-300, denom, np.inf)
    f_d = fr * fn / np.sqrt(sigma_n**2 * fr**2 + sigma_r**2 * fn**2)
    kn_hat = fr * pr / (f_d * denom)
    kr_hat = fn * pn / (f_d * denom)
    pd_hat = fr * fn * pr * pn / (f_d * denom)

    def real(hat: np.ndarray) -> np.ndarray:
        return np.fft.fftshift(np.fft.irfft2(hat, s=shape))

    c = size // 2
    h = kmax // 2
    psf_d = real(pd_hat)[c - h:c + h + 1, c - h:c + h + 1]
    psf_d = psf_d / psf_d.sum()
    return ZogyKernels(real(kn_hat), real(kr_hat), psf_d, float(f_d))


def _median_variance(variance: np.ndarray, good: np.ndarray, name: str) -> float:
    v = variance[good]
    if v.size == 0:
        raise ImageError(f"{name} has no pixel with finite, positive variance")
    med = float(np.median(v[:: max(1, v.size // 1_000_000)]))  # a 1-Mpix subsample is plenty
    if not (np.isfinite(med) and med > 0):
        raise ImageError(f"{name}.variance median {med!r} must be finite and positive")
    return med


def _check_exposure(exp: Exposure, name: str) -> None:
    if not isinstance(exp, Exposure):
        raise ImageError(f"{name} must be an Exposure, got {type(exp).__name__}")
    if exp.image.ndim != 2 or exp.variance.shape != exp.image.shape or exp.mask.shape != exp.image.shape:
        raise ImageError(f"{name}: image, variance and mask must be 2-D of one shape")
    validate_psf(exp.psf, name=f"{name}.psf")


def estimate_flux_scale(science: Exposure, template: Exposure, *, min_snr: float = 50.0,
                        max_stars: int = 200, radius_fwhm: float = 3.0) -> float:
    """Template-to-science flux ratio ``F_r / F_n`` from bright stars seen in both images.

    Stars are the brightest local maxima of the science image (unmasked, away from the
    border); their fluxes are summed in the same circular aperture (radius ``radius_fwhm``
    times the wider PSF's FWHM) in both images, so PSF differences cancel, and the scale is
    the median of the per-star ratios among those with aperture S/N ≥ ``min_snr`` in both.

    Parameters
    ----------
    science, template : Exposure
        On the same pixel grid, background-subtracted.
    min_snr : float, optional
        Minimum aperture S/N of a star in each image.
    max_stars : int, optional
        At most this many of the brightest peaks are measured.
    radius_fwhm : float, optional
        Aperture radius in units of the wider PSF's FWHM.

    Returns
    -------
    float
        The ratio, or 1.0 (both images in nJy) when fewer than 3 stars qualify.
    """
    _check_exposure(science, "science")
    _check_exposure(template, "template")
    n_img, r_img = science.image, template.image
    if n_img.shape != r_img.shape:
        raise ImageError(f"template shape {r_img.shape} differs from science shape {n_img.shape}")
    # FWHM from the PSF's peak: for a Gaussian, FWHM² = 4 ln2 / (π · peak)
    peak = min(float(science.psf.max()), float(template.psf.max()))
    fwhm = float(np.sqrt(4 * np.log(2) / (np.pi * peak)))
    r = max(2.0, radius_fwhm * fwhm)
    h = int(np.ceil(r))
    unusable = int(MaskBit.BAD | MaskBit.SAT | MaskBit.CR | MaskBit.NO_DATA | MaskBit.EDGE)
    # candidates: pixels far above the sky noise (a bright star's peak holds ~1/FWHM² of its
    # flux), then local maxima among them; filtering the whole CCD would cost seconds
    sig = np.sqrt(float(np.nanmedian(science.variance[::7, ::7])))
    with np.errstate(invalid="ignore"):
        cand = n_img > 0.5 * min_snr * sig * np.sqrt(np.pi) / fwhm  # NaN compares False
    cand[:h + 1, :] = cand[-h - 1:, :] = False
    cand[:, :h + 1] = cand[:, -h - 1:] = False
    ys, xs = np.nonzero(cand)
    if ys.size == 0 or ys.size > 200_000:
        return 1.0
    off = np.arange(-h, h + 1)
    rows = ys[:, None, None] + off[None, :, None]
    cols = xs[:, None, None] + off[None, None, :]
    win = np.nan_to_num(n_img[rows, cols], nan=np.inf)
    keep = n_img[ys, xs] >= win.reshape(ys.size, -1).max(axis=1)
    ys, xs = ys[keep], xs[keep]
    order = np.argsort(n_img[ys, xs])[::-1][:max_stars]
    ys, xs = ys[order], xs[order]
    disc = (off[:, None] ** 2 + off[None, :] ** 2) <= r * r
    rows = ys[:, None, None] + off[None, :, None]
    cols = xs[:, None, None] + off[None, None, :]
    bad = (~np.isfinite(n_img[rows, cols]) | ~np.isfinite(r_img[rows, cols])
           | (((science.mask[rows, cols] | template.mask[rows, cols]) & unusable) != 0))
    ok = ~bad.any(axis=(1, 2), where=disc)

    def ap(img: np.ndarray, var: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        f = (np.nan_to_num(img[rows, cols]) * disc).sum(axis=(1, 2))
        v = (np.nan_to_num(var[rows, cols]) * disc).sum(axis=(1, 2))
        return f, np.sqrt(np.abs(v))

    fn, en = ap(science.image, science.variance)
    fr, er = ap(template.image, template.variance)
    use = ok & (fn > min_snr * en) & (np.abs(fr) > min_snr * er) & np.isfinite(fr / fn)
    if use.sum() < 3:
        return 1.0
    return float(np.median(fr[use] / fn[use]))


def _prepare(exp: Exposure, name: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """Image and variance as float32 with invalid pixels filled; the filled-pixel map; σ²."""
    img = np.asarray(exp.image, dtype=np.float32)
    var = np.asarray(exp.variance, dtype=np.float32)
    filled = ~np.isfinite(img) | ~np.isfinite(var) | (var <= 0) | ((exp.mask & int(MaskBit.NO_DATA)) != 0)
    sig2 = _median_variance(var, ~filled, name)
    if filled.any():
        img = np.where(filled, np.float32(0.0), img)  # inputs are background-subtracted: 0 is sky
        var = np.where(filled, np.float32(sig2), var)
    return img, var, filled, sig2


def _fast_shape(shape: tuple[int, int], pad: int) -> tuple[int, int]:
    return (sfft.next_fast_len(shape[0] + pad, real=True), sfft.next_fast_len(shape[1] + pad, real=True))


def zogy_subtract(science: Exposure, template: Exposure, *, flux_scale: float | None = None,
                  workers: int = 2, compute_score: bool = True,
                  kernel_size_pix: int | None = None) -> SubtractionResult:
    """Subtract a template from a science exposure with ZOGY (module docstring has the equations).

    Parameters
    ----------
    science : Exposure
        The science exposure, nJy, background-subtracted, shape (ny, nx).
    template : Exposure
        The template on the science pixel grid (see
        :func:`alertprod.imaging.resample.resample_exposure`), same shape, background-subtracted.
    flux_scale : float, optional
        ``F_r / F_n`` (template pixel value per science nJy); estimated with
        :func:`estimate_flux_scale` when not given.
    workers : int, optional
        Threads of the FFTs.
    compute_score : bool, optional
        Also compute ``S_corr`` (two more inverse FFTs); otherwise ``score`` is D / √V_D.
    kernel_size_pix : int, optional
        Size of the kernel grid (see :func:`zogy_kernels`).

    Returns
    -------
    SubtractionResult

    Raises
    ------
    ImageError
        Mismatched shapes, a non-positive or non-finite ``flux_scale``, or an input with no
        usable pixel; ``PsfError`` for an invalid PSF.
    """
    _check_exposure(science, "science")
    _check_exposure(template, "template")
    if template.shape != science.shape:
        raise ImageError(f"template shape {template.shape} differs from science shape "
                         f"{science.shape}: resample it first (resample_exposure)")
    if flux_scale is None:
        flux_scale = estimate_flux_scale(science, template)
    fr = float(flux_scale)
    if not (np.isfinite(fr) and fr > 0):
        raise ImageError(f"flux_scale must be finite and positive, got {flux_scale!r}")
    n_img, n_var, n_fill, sn2 = _prepare(science, "science")
    r_img, r_var, r_fill, sr2 = _prepare(template, "template")
    kern = zogy_kernels(science.psf, template.psf, np.sqrt(sn2), np.sqrt(sr2), fr,
                        size_pix=kernel_size_pix)
    ny, nx = science.shape
    ksize = kern.k_n.shape[0]
    full = _fast_shape((ny, nx), ksize // 2 + kern.psf_d.shape[0])

    def fwd(a: np.ndarray) -> np.ndarray:
        return sfft.rfft2(a, s=full, workers=workers)

    def fwd_kernel(k: np.ndarray) -> np.ndarray:
        return fwd(_embed_centred(k.astype(np.float32), full))

    def inv(a: np.ndarray) -> np.ndarray:
        return sfft.irfft2(a, s=full, workers=workers)[:ny, :nx]

    kn_hat, kr_hat = fwd_kernel(kern.k_n), fwd_kernel(kern.k_r)
    d_hat = fwd(n_img) * kn_hat
    d_hat -= fwd(r_img) * kr_hat
    del kn_hat, kr_hat
    diff = inv(d_hat)
    vn_hat, vr_hat = fwd(n_var), fwd(r_var)
    var_hat = vn_hat * fwd_kernel(kern.k_n**2)
    var_hat += vr_hat * fwd_kernel(kern.k_r**2)
    var_d = inv(var_hat)
    if compute_score:
        # S = D ⋆ P_D: correlation, i.e. the product with conj(P̂_D); its kernels are k ⊗ flip(P_D)
        pd_flip = kern.psf_d[::-1, ::-1]
        sn_k = ndimage.convolve(kern.k_n, pd_flip, mode="constant")
        sr_k = ndimage.convolve(kern.k_r, pd_flip, mode="constant")
        d_hat *= np.conj(fwd_kernel(kern.psf_d))
        s_img = inv(d_hat)
        del d_hat
        var_hat = vn_hat * fwd_kernel(sn_k**2)
        var_hat += vr_hat * fwd_kernel(sr_k**2)
        var_s = inv(var_hat)
        score = s_img / np.sqrt(np.maximum(var_s, 1e-30))
    else:
        del d_hat
        score = diff / np.sqrt(np.maximum(var_d, 1e-30))
    del var_hat, vn_hat, vr_hat

    filled = n_fill | r_fill
    mask = (np.asarray(science.mask, dtype=np.int32) | np.asarray(template.mask, dtype=np.int32)) & ~_DROPPED_BITS
    half = kern.psf_d.shape[0] // 2
    edge = np.zeros((ny, nx), dtype=bool)
    edge[:half, :] = edge[-half:, :] = True
    edge[:, :half] = edge[:, -half:] = True
    if filled.any():
        edge |= ndimage.maximum_filter(filled.view(np.uint8), size=2 * half + 1).astype(bool)
        mask[filled] |= int(MaskBit.NO_DATA)
        diff[filled] = 0.0
        score[filled] = 0.0
        var_d[filled] = np.float32(1.0 / kern.f_d**2)
    mask[edge & ~filled] |= int(MaskBit.EDGE)
    var_d = np.maximum(var_d, np.float32(1e-12 / kern.f_d**2))  # FFT round-off can dip below 0
    difference = Exposure(diff.astype(np.float32, copy=False), var_d.astype(np.float32, copy=False),
                          mask, kern.psf_d, science.wcs, science.info, dict(science.header))
    return SubtractionResult(difference, score.astype(np.float32, copy=False), fr)

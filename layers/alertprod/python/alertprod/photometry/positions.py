"""Where to measure a DiaObject on an image: its position refined on that image when bright there.

A DiaObject's position is the mean of its difference-image detections. For a source that
changes little against a bright steady flux (a variable star, a star behind a bogus detection)
those detections are faint, so the mean can sit 0.1–0.3″ from the source; forced photometry
of the *science* image at that position then loses flux: for a PSF of Gaussian width σ an
offset δ costs a fraction ≈ δ²/(4σ²) of the flux — 4 % for δ = 0.1″ in 0.6″ seeing, i.e.
4σ at S/N 100 (docs/photometry.md, "Where scienceFlux is measured").

:func:`refine_positions` fits the position of a point source on the image itself, starting
from the given position, for the objects that are bright there, and keeps the given position
for the others. The rule:

- the object's forced PSF S/N on the image at the given position is at least ``min_snr``
  (default 5): there the image knows the position better than a few faint difference-image
  detections do. Fitting the position on the same pixels raises the flux by σ_F²/F on average
  (the two position parameters absorb noise: +0.1σ at S/N 10, +0.03σ at S/N 30, +0.01σ at
  S/N 100 — measured in tests/unit/photometry/test_positions.py), which
  :func:`fitted_position_flux` takes off; far below S/N 5 a fit would follow the noise;
- or that S/N is at least ``min_snr / 2`` and the fit finds at least ``min_snr`` at the fitted
  position: the given position's offset from the source lowers the S/N measured there
  (by ~45 % at 0.36″ in 0.7″ seeing);
- the fit converges within ``max_iter`` Gauss–Newton steps to a positive flux on the image;
- the fitted position lies within ``max_shift_arcsec`` (default 1″, the association radius) of
  the given one: a source farther away would have been another object.

Why 5 and not 10 (the first version): whether a row is refined depends on its own noise and
on the offset, and rows left at an offset position lose ~δ²/(4σ²) of their flux. With 10, a
source of S/N 12 under a DiaObject 0.35″ away in 0.65″ seeing measured S/N < 10 there, stayed
put and lost ~40 % of its flux (5σ): such rows made the scienceFlux pulls at S/N 10–30 too wide
(docs/photometry.md). With 5 the rows left at an offset lose at most a few σ of a faint flux.

The fit is the maximum-likelihood point source ``d ≈ F·P(x, y)`` under the pixels' Gaussian
noise, with the image's PSF shifted by the same sinc interpolation as forced photometry
(:mod:`alertprod.photometry.forced`), linearised in the position (Gauss–Newton on ``F``,
``F·δx``, ``F·δy``). It is written here with numpy, vectorised over all objects (batched 3 × 3
normal equations, exact derivatives of the sinc-shifted PSF), because the library fits
(photutils ``PSFPhotometry``, one ``scipy.optimize`` call per source) loop over sources in
Python at a few hundred sources per second (docs/photometry.md), while a CCD holds thousands of
DiaObjects within the alert budget; this one refines ~2 × 10⁴ objects per second on one core.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from alertprod.errors import ImageError
from alertprod.formats.exposure import Exposure
from alertprod.formats.mask import UNUSABLE
from alertprod.imaging.psf import validate_psf
from alertprod.photometry.forced import (
    _check_planes,
    _check_positions,
    _check_sky_positions,
    _Gatherer,
    _ShiftedPsf,
    forced_photometry_exposure,
)

__all__ = ["PsfPositionFit", "RefinedPositions", "fit_psf_positions", "fitted_position_flux",
           "refine_positions"]

#: Largest position step of one Gauss–Newton iteration (pixels): keeps a poor start from
#: jumping past the source.
_MAX_STEP_PIX = 1.0


class _ShiftedPsfWithGradient(_ShiftedPsf):
    """:class:`~alertprod.photometry.forced._ShiftedPsf` plus the model's exact derivatives."""

    def _taps_and_slopes(self, d: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``sinc(u)`` and ``∂/∂d sinc(u) = (sinc(u) - cos(πu)) / u``, ``u = τ - d``, float32.

        Computed in float64: near u = 0 the slope is a difference of two numbers close to 1.
        """
        sign = self.sign.astype(np.float64)
        u = self.tau.astype(np.float64) - d[:, None]
        with np.errstate(divide="ignore", invalid="ignore"):
            taps = np.where(u == 0, 1.0, np.sin(np.pi * d)[:, None] * sign / u)
            cos = np.cos(np.pi * d)[:, None] * (-np.pi * sign)  # cos(πu) = (-1)^τ cos(πd)
            slopes = np.where(u == 0, 0.0, (taps - cos) / u)
        return taps.astype(np.float32), slopes.astype(np.float32)

    def with_gradient(self, dx: np.ndarray, dy: np.ndarray) -> np.ndarray:
        """Model stamps and their derivatives along x and y, shape (n, 3, k²), float32.

        The derivatives are exact: the products of the sinc taps' derivatives.
        """
        n, k, r = dx.size, self.k, self.r
        taps, slopes = self._taps_and_slopes(np.concatenate([dy, dx]).astype(np.float64))
        a, da = ((t[:n] @ self.ky).reshape(n, k, r) for t in (taps, slopes))
        bt, dbt = ((t[n:] @ self.kx).reshape(n, r, k) for t in (taps, slopes))
        out = np.empty((n, 3, k * k), dtype=np.float32)
        out[:, 0] = np.matmul(a, bt).reshape(n, k * k)
        out[:, 1] = np.matmul(a, dbt).reshape(n, k * k)
        out[:, 2] = np.matmul(da, bt).reshape(n, k * k)
        return out


class PsfPositionFit(NamedTuple):
    """Point-source fits on one image, arrays of shape (n,).

    Attributes
    ----------
    x, y : ndarray, float64
        Fitted 0-based pixel positions (the start where the fit failed).
    flux : ndarray, float64
        Fitted flux, image units; NaN where the fit failed.
    x_err, y_err : ndarray, float64
        1-σ position uncertainties from the fit's covariance, pixels (NaN where failed).
    converged : ndarray, bool
        The last step moved less than the tolerance, with a positive flux, on the image.
    n_iter : ndarray, int64
        Gauss–Newton steps taken.
    """

    x: np.ndarray
    y: np.ndarray
    flux: np.ndarray
    x_err: np.ndarray
    y_err: np.ndarray
    converged: np.ndarray
    n_iter: np.ndarray


class RefinedPositions(NamedTuple):
    """Where to measure each object on an image, arrays of shape (n,).

    Attributes
    ----------
    ra_deg, dec_deg : ndarray, float64
        The refined position where ``refined``, else the given one (ICRS, degrees).
    refined : ndarray, bool
        Whether the position was refined (see the module's rule).
    snr : ndarray, float64
        Forced PSF S/N on the image at the given position (NaN off the image).
    shift_arcsec : ndarray, float64
        Distance from the given to the fitted position (NaN where no fit was tried); a fit
        farther than the limit is reported here but not used.
    """

    ra_deg: np.ndarray
    dec_deg: np.ndarray
    refined: np.ndarray
    snr: np.ndarray
    shift_arcsec: np.ndarray


def _gauss_newton_step(gather: _Gatherer, shifted: _ShiftedPsfWithGradient, x: np.ndarray, y: np.ndarray,
                       has_mask: bool, unusable_mask: int) -> tuple[np.ndarray, ...]:
    """One linearised fit ``d ≈ F·P + (F·δx)·∂P/∂x + (F·δy)·∂P/∂y`` per position.

    Returns the flux, the steps δx and δy (clipped to ``_MAX_STEP_PIX``), their 1-σ errors, and
    whether the fit is usable (finite, non-singular, positive flux); arrays of shape (c,).
    """
    ix, iy = np.floor(x + 0.5).astype(np.int64), np.floor(y + 0.5).astype(np.int64)
    edge = gather.edge(ix, iy)
    stamps, inside = gather.gather(ix, iy, edge, [0, 1, 2] if has_mask else [0, 1])
    d = stamps[0].astype(np.float32)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        w = np.reciprocal(stamps[1], dtype=np.float32)
    usable = np.isfinite(d) & np.isfinite(w) & (w > 0)
    if inside is not None:
        usable &= inside
    if has_mask:
        usable &= (stamps[2] & unusable_mask) == 0
    w = np.where(usable, w, np.float32(0))
    d = np.where(usable, d, np.float32(0))
    # (c, 3, k²): the model and its exact x, y derivatives; float32 sums as forced photometry
    jac = shifted.with_gradient(x - ix, y - iy)
    wj = jac * w[:, None, :]
    normal = (wj @ jac.transpose(0, 2, 1)).astype(np.float64)
    rhs = (wj @ d[:, :, None])[:, :, 0].astype(np.float64)
    ok = np.isfinite(normal).all(axis=(1, 2)) & (np.linalg.det(normal) > 0)
    cov = np.full((x.size, 3, 3), np.nan)
    if ok.any():
        cov[ok] = np.linalg.inv(normal[ok])
    sol = np.einsum("cij,cj->ci", cov, rhs)
    f = sol[:, 0]
    good = ok & np.isfinite(f) & (f > 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        step_x = np.clip(sol[:, 1] / f, -_MAX_STEP_PIX, _MAX_STEP_PIX)
        step_y = np.clip(sol[:, 2] / f, -_MAX_STEP_PIX, _MAX_STEP_PIX)
        # σ(δx) ≈ σ(F·δx)/F near the solution, where δx → 0
        ex, ey = np.sqrt(cov[:, 1, 1]) / f, np.sqrt(cov[:, 2, 2]) / f
    return f, step_x, step_y, ex, ey, good


def fit_psf_positions(image: np.ndarray, variance: np.ndarray, mask: np.ndarray | None,
                      psf: np.ndarray, x_pix: np.ndarray, y_pix: np.ndarray, *,
                      max_iter: int = 10, tol_pix: float = 1e-3,
                      unusable_mask: int = int(UNUSABLE)) -> PsfPositionFit:
    """Fit the position and flux of a point source near each start position (vectorised).

    Parameters
    ----------
    image : ndarray, shape (ny, nx)
        Pixel values (background-subtracted).
    variance : ndarray, shape (ny, nx)
        Per-pixel variance.
    mask : ndarray of int, shape (ny, nx), or None
        Mask bits; pixels with ``unusable_mask`` bits get zero weight.
    psf : ndarray, shape (k, k)
        The image's PSF (checked with :func:`~alertprod.imaging.psf.validate_psf`); the fit
        uses the k × k stamp around the current position.
    x_pix, y_pix : array_like, shape (n,)
        Start positions, 0-based pixels, finite.
    max_iter : int, optional
        Most Gauss–Newton steps.
    tol_pix : float, optional
        Converged when a step moves less than this along both axes, pixels.
    unusable_mask : int, optional
        As :func:`~alertprod.photometry.forced.forced_psf_photometry`.

    Returns
    -------
    PsfPositionFit

    Raises
    ------
    ImageError
        Shapes disagree, positions are not finite, or ``max_iter``/``tol_pix`` not positive.
    PsfError
        The PSF is not a valid PSF image.
    """
    image, variance, mask = _check_planes(image, variance, mask)
    psf = validate_psf(psf)
    x0, y0 = _check_positions(x_pix, y_pix)
    if int(max_iter) < 1 or not tol_pix > 0:
        raise ImageError(f"max_iter and tol_pix must be positive, got {max_iter!r}, {tol_pix!r}")
    n = x0.size
    x, y = x0.copy(), y0.copy()
    flux, x_err, y_err = np.full(n, np.nan), np.full(n, np.nan), np.full(n, np.nan)
    converged, failed = np.zeros(n, dtype=bool), np.zeros(n, dtype=bool)
    n_iter = np.zeros(n, dtype=np.int64)
    ny, nx = image.shape
    gather = _Gatherer([image, variance] + ([] if mask is None else [mask]), psf.shape[0])
    shifted = _ShiftedPsfWithGradient(psf)
    active = np.flatnonzero((x > -0.5) & (x < nx - 0.5) & (y > -0.5) & (y < ny - 0.5))
    for _ in range(int(max_iter)):
        if active.size == 0:
            break
        f, sx, sy, ex, ey, good = _gauss_newton_step(gather, shifted, x[active], y[active],
                                                     mask is not None, int(unusable_mask))
        n_iter[active] += 1
        failed[active[~good]] = True
        g = active[good]
        x[g] += sx[good]
        y[g] += sy[good]
        flux[g], x_err[g], y_err[g] = f[good], ex[good], ey[good]
        done = good & (np.abs(sx) < tol_pix) & (np.abs(sy) < tol_pix)
        converged[active[done]] = True
        failed[g[(x[g] <= -0.5) | (x[g] >= nx - 0.5) | (y[g] <= -0.5) | (y[g] >= ny - 0.5)]] = True
        active = active[good & ~done]
        active = active[~failed[active]]
    converged &= ~failed
    bad = ~converged
    x[bad], y[bad] = x0[bad], y0[bad]
    flux[bad] = x_err[bad] = y_err[bad] = np.nan
    return PsfPositionFit(x, y, flux, x_err, y_err, converged, n_iter)


def _separation_arcsec(ra1, dec1, ra2, dec2) -> np.ndarray:
    """Great-circle distance (haversine), arcsec, vectorised."""
    r1, d1, r2, d2 = (np.deg2rad(np.asarray(v, dtype=np.float64)) for v in (ra1, dec1, ra2, dec2))
    hav = np.sin((d2 - d1) / 2) ** 2 + np.cos(d1) * np.cos(d2) * np.sin((r2 - r1) / 2) ** 2
    return np.rad2deg(2 * np.arcsin(np.sqrt(np.clip(hav, 0.0, 1.0)))) * 3600.0


def refine_positions(exposure: Exposure, ra_deg: np.ndarray, dec_deg: np.ndarray, *,
                     min_snr: float = 5.0, max_shift_arcsec: float = 1.0,
                     max_iter: int = 10, unusable_mask: int = int(UNUSABLE)) -> RefinedPositions:
    """Positions to measure objects at on an image: refined there where they are bright.

    Parameters
    ----------
    exposure : Exposure
        The image to refine on (image, variance, mask, PSF, WCS).
    ra_deg, dec_deg : array_like, shape (n,)
        The objects' positions (ICRS, degrees), finite.
    min_snr : float, keyword-only
        Refine objects whose forced PSF S/N on the image at the given position is at least
        this, or at least half of it there and this much at the fitted position.
    max_shift_arcsec : float, keyword-only
        Keep the given position when the fit lands farther than this (arcsec).
    max_iter : int, keyword-only
        Most Gauss–Newton steps per fit.
    unusable_mask : int, keyword-only
        Mask bits that give a pixel zero weight.

    Returns
    -------
    RefinedPositions
        In the order of the inputs.

    Raises
    ------
    ImageError
        Coordinates not 1-D of equal length or not finite, or a non-positive limit.
    """
    ra, dec = _check_sky_positions(ra_deg, dec_deg)
    if not (min_snr > 0 and max_shift_arcsec > 0):
        raise ImageError(f"min_snr and max_shift_arcsec must be positive, got {min_snr!r}, "
                         f"{max_shift_arcsec!r}")
    n = ra.size
    out_ra, out_dec = ra.copy(), dec.copy()
    refined = np.zeros(n, dtype=bool)
    snr = np.full(n, np.nan)
    shift = np.full(n, np.nan)
    if n == 0:
        return RefinedPositions(out_ra, out_dec, refined, snr, shift)
    start = forced_photometry_exposure(exposure, ra, dec, unusable_mask=unusable_mask)
    mapped = np.isfinite(start.x) & np.isfinite(start.y)
    with np.errstate(divide="ignore", invalid="ignore"):
        snr = start.flux / start.flux_err
    fit = dict(max_shift_arcsec=max_shift_arcsec, max_iter=max_iter, unusable_mask=unusable_mask)
    bright = np.flatnonzero(mapped & (snr >= float(min_snr)))
    _fit_and_keep(exposure, start, bright, out_ra, out_dec, refined, shift, **fit)
    # second chance: an offset from the source lowers the S/N measured at the given position;
    # a fit that finds S/N ≥ min_snr where it lands is kept too
    near = np.flatnonzero(mapped & (snr >= 0.5 * float(min_snr)) & (snr < float(min_snr)))
    _fit_and_keep(exposure, start, near, out_ra, out_dec, refined, shift, min_fitted_snr=min_snr,
                  **fit)
    return RefinedPositions(out_ra, out_dec, refined, snr, shift)


def _fit_and_keep(exposure: Exposure, start, cand: np.ndarray, out_ra: np.ndarray,
                  out_dec: np.ndarray, refined: np.ndarray, shift: np.ndarray, *,
                  max_shift_arcsec: float, max_iter: int, unusable_mask: int,
                  min_fitted_snr: float | None = None) -> None:
    """Fit the objects ``cand`` from their forced-photometry start and keep, in place, the
    converged fits within ``max_shift_arcsec`` (and with forced S/N ≥ ``min_fitted_snr`` at
    the fitted position, if given)."""
    if cand.size == 0:
        return
    fit = fit_psf_positions(exposure.image, exposure.variance, exposure.mask, exposure.psf,
                            start.x[cand], start.y[cand], max_iter=max_iter,
                            unusable_mask=unusable_mask)
    conv = np.flatnonzero(fit.converged)
    if conv.size == 0:
        return
    rr, dd = exposure.wcs.all_pix2world(fit.x[conv], fit.y[conv], 0)
    rr, dd = np.asarray(rr, dtype=np.float64) % 360.0, np.asarray(dd, dtype=np.float64)
    idx = cand[conv]
    shift[idx] = _separation_arcsec(out_ra[idx], out_dec[idx], rr, dd)
    use = np.isfinite(shift[idx]) & (shift[idx] <= float(max_shift_arcsec))
    if min_fitted_snr is not None:
        at = forced_photometry_exposure(exposure, rr, dd, unusable_mask=unusable_mask)
        with np.errstate(divide="ignore", invalid="ignore"):
            use &= at.flux / at.flux_err >= float(min_fitted_snr)
    out_ra[idx[use]], out_dec[idx[use]] = rr[use], dd[use]
    refined[idx[use]] = True


def fitted_position_flux(flux: np.ndarray, flux_err: np.ndarray) -> np.ndarray:
    """A PSF flux measured at a position fitted on the same pixels, less its noise gain.

    Maximising the PSF fit over the two position parameters raises the flux by σ_F²/F on
    average (to first order in 1/SNR: the expected rise of the matched filter's maximum, the
    trace of the position Fisher matrix times its inverse over 2F). Subtracting it leaves the
    flux unbiased at every S/N the refinement is used at.

    Parameters
    ----------
    flux, flux_err : ndarray, shape (n,)
        Forced PSF flux and its error at the refined positions (same units).

    Returns
    -------
    ndarray, shape (n,)
        ``flux - flux_err² / flux`` where ``flux > 0``, else ``flux``.
    """
    f = np.asarray(flux, dtype=np.float64)
    e = np.asarray(flux_err, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(f > 0, f - e**2 / f, f)

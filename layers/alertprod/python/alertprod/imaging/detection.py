"""Detection and measurement of DiaSources on a difference image.

Detection is the PSF matched filter: with weights ``w = 1/V`` (0 on unusable pixels),
``S/N = (D w ⋆ P) / √(w ⋆ P²)`` — the forced PSF flux over its error at every pixel. Each
connected region above ``threshold_sigma`` (positive, and separately negative) yields one peak,
so close peaks merge; a positive and a negative peak closer than ``dipole_max_sep_fwhm`` FWHM
(mutual nearest neighbours) merge into one dipole source at their midpoint.

Measurements per source, named as the Rubin APDB ``DiaSource`` table spells them:

- ``x``, ``y``: the matched-filter peak refined by a three-point Gaussian fit in x and in y
  (exact for a Gaussian PSF); ``xErr``/``yErr`` the Cramér–Rao bound ``√V / (|f| √Σ(∂P/∂x)²)``;
  ``ra``/``dec`` and their errors through the local WCS Jacobian;
- ``psfFlux`` (weighted linear PSF fit at the centroid, Σ P d/V / Σ P²/V), ``psfChi2``,
  ``psfNdata``; ``scienceFlux`` the same on the science image; ``apFlux`` in a 12-pixel aperture;
- adaptive (Gaussian-weighted, iterated) second moments of the source and of the PSF
  (``ixx``… and ``ixxPSF``…, arcsec², in the (RA cos Dec, Dec) frame);
- ``trailLength``/``trailAngle``: a hint from the moments beyond the PSF's — a segment of length
  L adds L²/12 along its direction, so ``L = √(12 λ_max(M − M_PSF))``, reported when L exceeds
  the PSF FWHM and λ_max exceeds three times the moments' noise ``4 σ_PSF²/snr`` (0 otherwise);
  adaptive moments overestimate long trails by up to ~25 %;
- ``pixelFlags_*`` from the mask: footprint = PSF-sized box around the centroid plus the
  detection region; ``…Center`` = the 3 × 3 pixels around the centroid;
- ``reliability``: a heuristic real/bogus score in [0, 1], the product of an S/N term
  ``1 − exp(−(snr/6)²)``, a shape term penalising sources narrower than the PSF (cosmic rays,
  hot pixels) ``exp(−½ (ln(T/T_PSF)/0.3)²)`` for ``T < T_PSF`` (T the moments' trace), 0.2 for a
  dipole and 0.1 when a bad, saturated, cosmic-ray or no-data pixel lies at the centre;
- dipoles: ``dipoleMeanFlux``/``dipoleFluxDiff`` from PSF fits at the two lobe peaks,
  ``dipoleLength``/``dipoleAngle`` (negative → positive lobe) from the peaks' separation, which
  exceeds the true shift when the lobes overlap (no dipole model is fitted).

The pixel-level sums (aperture, moments, PSF fit) are written here with numpy because they are
vectorised over all sources at once, which photutils (a per-source loop) is not.
"""

from __future__ import annotations

import numpy as np
import scipy.fft as sfft
from astropy.coordinates import SkyCoord
from astropy.table import Table
from scipy import ndimage, signal
from scipy.spatial import cKDTree

from alertprod.errors import ImageError
from alertprod.formats.exposure import Exposure
from alertprod.formats.mask import UNUSABLE, MaskBit
from alertprod.imaging.psf import psf_stamps, validate_psf

__all__ = ["DIASOURCE_COLUMNS", "detect_dia_sources", "snr_map"]

_F4, _F8, _I8, _B = np.float32, np.float64, np.int64, np.bool_
#: Output columns (name, dtype) in order, as apdb.yaml's DiaSource declares them.
DIASOURCE_COLUMNS: list[tuple[str, type]] = [
    ("diaSourceId", _I8), ("visit", _I8), ("detector", np.int16), ("band", "U1"),
    ("midpointMjdTai", _F8), ("exposureTime", _F4), ("ra", _F8), ("dec", _F8), ("raErr", _F4),
    ("decErr", _F4), ("ra_dec_Cov", _F4), ("x", _F4), ("y", _F4), ("xErr", _F4), ("yErr", _F4),
    ("centroid_flag", _B), ("snr", _F4), ("isNegative", _B), ("psfFlux", _F4), ("psfFluxErr", _F4),
    ("psfChi2", _F4), ("psfNdata", np.int32), ("psfFlux_flag", _B), ("psfFlux_flag_edge", _B),
    ("psfFlux_flag_noGoodPixels", _B), ("apFlux", _F4), ("apFluxErr", _F4), ("apFlux_flag", _B),
    ("apFlux_flag_apertureTruncated", _B), ("scienceFlux", _F4), ("scienceFluxErr", _F4),
    ("forced_PsfFlux_flag", _B), ("forced_PsfFlux_flag_edge", _B),
    ("forced_PsfFlux_flag_noGoodPixels", _B), ("ixx", _F4), ("iyy", _F4), ("ixy", _F4),
    ("ixxPSF", _F4), ("iyyPSF", _F4), ("ixyPSF", _F4), ("shape_flag", _B), ("trailLength", _F4),
    ("trailAngle", _F4), ("isDipole", _B), ("dipoleFitAttempted", _B), ("dipoleMeanFlux", _F4),
    ("dipoleFluxDiff", _F4), ("dipoleLength", _F4), ("dipoleAngle", _F4), ("reliability", _F4),
    ("bboxSize", np.int32), ("pixelFlags", _B),
] + [(f"pixelFlags_{n}", _B) for n in (
    "bad", "cr", "crCenter", "edge", "nodata", "nodataCenter", "interpolated", "interpolatedCenter",
    "offimage", "saturated", "saturatedCenter", "suspect", "suspectCenter")]
#: Extra columns (not in apdb.yaml; Rubin's alert schema v5–v7 name) when a snap difference is given.
SNAPDIFF_COLUMNS: list[tuple[str, type]] = [("snapDiffFlux", _F4), ("snapDiffFluxErr", _F4)]
_FLAG_BITS = {"bad": MaskBit.BAD, "cr": MaskBit.CR, "edge": MaskBit.EDGE, "nodata": MaskBit.NO_DATA,
              "interpolated": MaskBit.INTRP, "saturated": MaskBit.SAT, "suspect": MaskBit.SUSPECT}
_CENTER_BAD = int(MaskBit.BAD | MaskBit.SAT | MaskBit.CR | MaskBit.NO_DATA)


def _weights(exp: Exposure) -> np.ndarray:
    v = np.asarray(exp.variance, dtype=np.float64)
    ok = np.isfinite(exp.image) & np.isfinite(v) & (v > 0) & ((exp.mask & int(UNUSABLE)) == 0)
    return np.where(ok, 1.0 / np.where(ok, v, 1.0), 0.0)


def snr_map(exposure: Exposure, *, workers: int = 2) -> tuple[np.ndarray, np.ndarray]:
    """Matched-filter maps of a PSF source at every pixel.

    Returns
    -------
    snr : ndarray, shape (ny, nx), float64
        ``(D w ⋆ P) / √(w ⋆ P²)`` (0 where no usable pixel contributes).
    num : ndarray, shape (ny, nx), float64
        The numerator ``D w ⋆ P`` (peaks at the maximum-likelihood position).
    """
    w = _weights(exposure).astype(np.float32)  # float32 FFTs: half the time, ample precision
    d = np.where(w > 0, exposure.image, np.float32(0.0)) * w
    p = np.asarray(exposure.psf, dtype=np.float32)[::-1, ::-1]
    with sfft.set_workers(workers):
        num = signal.fftconvolve(d, p, mode="same")
        den = signal.fftconvolve(w, p * p, mode="same")
    good = den > 1e-6 * np.median(den[w > 0]) if (w > 0).any() else np.zeros(w.shape, bool)
    snr = np.where(good, num / np.sqrt(np.where(good, den, 1.0)), 0.0)
    return snr.astype(np.float64), num.astype(np.float64)


def _peaks(snr: np.ndarray, thr: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One peak per connected region above ``thr``: (y, x, label image)."""
    lab, n = ndimage.label(snr >= thr)
    if n == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64), lab
    pos = np.array(ndimage.maximum_position(snr, lab, np.arange(1, n + 1)), dtype=np.int64)
    return pos[:, 0], pos[:, 1], lab


def _refine(num: np.ndarray, iy: np.ndarray, ix: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Three-point Gaussian (log-parabola) sub-pixel peak in x and y; falls back to a parabola."""
    ny, nx = num.shape
    cy, cx = np.clip(iy, 1, ny - 2), np.clip(ix, 1, nx - 2)
    out, flag = [], np.zeros(iy.size, bool)
    for a, b in (((cy, cx - 1), (cy, cx + 1)), ((cy - 1, cx), (cy + 1, cx))):
        lo, c, hi = num[a], num[cy, cx], num[b]
        with np.errstate(all="ignore"):
            pos_ok = (lo > 0) & (c > 0) & (hi > 0)
            llo, lc, lhi = (np.log(np.where(pos_ok, t, 1.0)) for t in (lo, c, hi))
            g = 0.5 * (llo - lhi) / (llo - 2 * lc + lhi)
            p = 0.5 * (lo - hi) / (lo - 2 * c + hi)
        d = np.where(pos_ok & np.isfinite(g), g, p)
        bad = ~np.isfinite(d) | (np.abs(d) > 1)
        flag |= bad
        out.append(np.where(bad, 0.0, d))
    return cx + out[0], cy + out[1], flag


def _windows(arr: np.ndarray, iy: np.ndarray, ix: np.ndarray, h: int, fill=0) -> np.ndarray:
    """(n, 2h+1, 2h+1) windows of ``arr`` centred on integer pixels, ``fill`` off the image."""
    padded = np.pad(arr, h, constant_values=fill)
    off = np.arange(2 * h + 1)
    return padded[(iy[:, None, None] + off[None, :, None]), (ix[:, None, None] + off[None, None, :])]


def _forced(exp: Exposure, x: np.ndarray, y: np.ndarray, w_img: np.ndarray | None = None) -> dict:
    """Weighted linear PSF fit at fixed positions (vectorised)."""
    psf = validate_psf(exp.psf)
    h = psf.shape[0] // 2
    w_img = _weights(exp) if w_img is None else w_img
    ix, iy = np.rint(x).astype(np.int64), np.rint(y).astype(np.int64)
    p = psf_stamps(psf, x - ix, y - iy, validate=False)
    d = _windows(np.nan_to_num(np.asarray(exp.image, dtype=np.float64)), iy, ix, h)
    w = _windows(w_img, iy, ix, h)
    inside = _windows(np.ones(exp.shape, bool), iy, ix, h, fill=False)
    a = (p * p * w).sum(axis=(1, 2))
    with np.errstate(all="ignore"):
        f = np.where(a > 0, (p * d * w).sum(axis=(1, 2)) / a, np.nan)
        err = np.where(a > 0, 1.0 / np.sqrt(a), np.nan)
    chi2 = (((d - np.nan_to_num(f)[:, None, None] * p) ** 2) * w).sum(axis=(1, 2))
    nodata = ~(a > 0)
    edge = ~inside.all(axis=(1, 2))
    return {"flux": f, "err": err, "chi2": chi2, "ndata": (w > 0).sum(axis=(1, 2)),
            "edge": edge, "nogood": nodata, "flag": nodata | edge}


def _aperture(exp: Exposure, x: np.ndarray, y: np.ndarray, r: float) -> dict:
    """Circular-aperture sums with 5 × 5 sub-pixel sampling of the aperture edge."""
    h = int(np.ceil(r)) + 1
    ix, iy = np.rint(x).astype(np.int64), np.rint(y).astype(np.int64)
    sub = (np.arange(5) + 0.5) / 5 - 0.5
    off = np.arange(-h, h + 1)
    gx = (off[None, :, None] - (x - ix)[:, None, None] + sub[None, None, :])  # (n, 2h+1, 5)
    gy = (off[None, :, None] - (y - iy)[:, None, None] + sub[None, None, :])
    inside = (gy[:, :, None, :, None] ** 2 + gx[:, None, :, None, :] ** 2) <= r * r
    frac = inside.mean(axis=(3, 4))
    d = _windows(np.nan_to_num(np.asarray(exp.image, np.float64)), iy, ix, h)
    v = _windows(np.nan_to_num(np.asarray(exp.variance, np.float64)), iy, ix, h)
    usable = _windows(_weights(exp) > 0, iy, ix, h, fill=False)
    onimg = _windows(np.ones(exp.shape, bool), iy, ix, h, fill=False)
    used = frac > 0
    wf = frac * usable
    return {"flux": (wf * d).sum(axis=(1, 2)), "err": np.sqrt((wf * wf * v).sum(axis=(1, 2))),
            "flag": (used & ~usable).any(axis=(1, 2)), "truncated": (used & ~onimg).any(axis=(1, 2))}


def _adaptive_moments(stamps: np.ndarray, dx: np.ndarray, dy: np.ndarray, m0: np.ndarray,
                      n_iter: int = 30) -> tuple[np.ndarray, np.ndarray]:
    """Adaptive second moments (Bernstein & Jarvis 2002) of (n, s, s) stamps, fixed centres.

    Returns (n, 3) moments ``(mxx, myy, mxy)`` in pixel² and a failure flag.
    """
    n, s, _ = stamps.shape
    c = np.arange(s) - s // 2
    rx = c[None, None, :] - dx[:, None, None]
    ry = c[None, :, None] - dy[:, None, None]
    m = np.tile(np.asarray(m0, float), (n, 1))
    fail = np.zeros(n, bool)
    lim = (s / 2.0) ** 2
    for _ in range(n_iter):
        det = m[:, 0] * m[:, 1] - m[:, 2] ** 2
        ixx, iyy, ixy = m[:, 1] / det, m[:, 0] / det, -m[:, 2] / det
        q = ixx[:, None, None] * rx**2 + iyy[:, None, None] * ry**2 + 2 * ixy[:, None, None] * rx * ry
        wd = np.exp(-0.5 * q) * stamps
        i0 = wd.sum(axis=(1, 2))
        fail |= ~(i0 > 0)
        i0 = np.where(i0 > 0, i0, 1.0)
        new = 2.0 * np.stack([(wd * rx**2).sum(axis=(1, 2)), (wd * ry**2).sum(axis=(1, 2)),
                              (wd * rx * ry).sum(axis=(1, 2))], axis=1) / i0[:, None]
        new[:, :2] = np.clip(new[:, :2], 0.1, lim)
        new[:, 2] = np.clip(new[:, 2], -0.95 * np.sqrt(new[:, 0] * new[:, 1]), 0.95 * np.sqrt(new[:, 0] * new[:, 1]))
        m = np.where(fail[:, None], m, new)
    return m, fail


def _jacobians(wcs, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """(n, 2, 2) d(RA cos Dec, Dec)/d(x, y) in degrees per pixel, by central differences."""
    pts = [(x + 0.5, y), (x - 0.5, y), (x, y + 0.5), (x, y - 0.5)]
    ra, dec = wcs.all_pix2world(np.concatenate([p[0] for p in pts]), np.concatenate([p[1] for p in pts]), 0)
    ra, dec = ra.reshape(4, -1), dec.reshape(4, -1)
    cosd = np.cos(np.radians(dec.mean(axis=0)))
    dra = lambda a, b: ((ra[a] - ra[b] + 180.0) % 360.0 - 180.0) * cosd  # noqa: E731
    return np.stack([np.stack([dra(0, 1), dra(2, 3)], -1), np.stack([dec[0] - dec[1], dec[2] - dec[3]], -1)], 1)


def _moments_sky(m: np.ndarray, jac: np.ndarray) -> np.ndarray:
    """Pixel² moments (n, 3) → arcsec² (n, 3) via J M Jᵀ."""
    mm = np.stack([np.stack([m[:, 0], m[:, 2]], -1), np.stack([m[:, 2], m[:, 1]], -1)], 1)
    s = jac @ mm @ np.transpose(jac, (0, 2, 1)) * 3600.0**2
    return np.stack([s[:, 0, 0], s[:, 1, 1], s[:, 0, 1]], 1)


def _position_angle(wcs, x0, y0, x1, y1) -> np.ndarray:
    """Position angle (deg, east of north, folded into [0, 180)) of the segment p0 → p1."""
    a = SkyCoord(*wcs.all_pix2world(x0, y0, 0), unit="deg")
    b = SkyCoord(*wcs.all_pix2world(x1, y1, 0), unit="deg")
    return np.mod(a.position_angle(b).deg, 180.0)


def _blank(with_snap: bool, n: int) -> dict:
    """Every output column, length ``n``: NaN for floats, 0/False/'' otherwise."""
    cols = DIASOURCE_COLUMNS + (SNAPDIFF_COLUMNS if with_snap else [])
    return {name: np.full(n, np.nan, dt) if np.dtype(dt).kind == "f" else np.zeros(n, dt)
            for name, dt in cols}


def _check(exp: Exposure | None, name: str, shape: tuple[int, int] | None) -> None:
    if exp is None:
        return
    if not isinstance(exp, Exposure):
        raise ImageError(f"{name} must be an Exposure, got {type(exp).__name__}")
    if exp.image.ndim != 2 or exp.variance.shape != exp.image.shape or exp.mask.shape != exp.image.shape:
        raise ImageError(f"{name}: image, variance and mask must be 2-D of one shape")
    if shape is not None and exp.shape != shape:
        raise ImageError(f"{name} shape {exp.shape} differs from the difference image's {shape}")
    validate_psf(exp.psf, name=f"{name}.psf")


def detect_dia_sources(difference: Exposure, *, threshold_sigma: float = 5.0,
                       science: Exposure | None = None, snapdiff: Exposure | None = None,
                       id_start: int = 0, ap_radius_pix: float = 12.0,
                       dipole_max_sep_fwhm: float = 2.5, workers: int = 2) -> Table:
    """Detect positive, negative and dipole sources on a difference image and measure them.

    Parameters
    ----------
    difference : Exposure
        Difference image D (nJy) with its variance, mask and PSF (e.g. from ``zogy_subtract``).
    threshold_sigma : float, optional
        Detection threshold on the matched-filter S/N.
    science : Exposure, optional
        Science exposure on the same grid: ``scienceFlux``/``scienceFluxErr`` are measured on it.
    snapdiff : Exposure, optional
        Difference of the two snaps on the same grid: adds ``snapDiffFlux``/``snapDiffFluxErr``.
    id_start : int, optional
        ``diaSourceId`` of the first row; rows are numbered consecutively.
    ap_radius_pix : float, optional
        Radius of ``apFlux``, pixels (Rubin: 12).
    dipole_max_sep_fwhm : float, optional
        Largest lobe separation of a dipole, in PSF FWHMs.
    workers : int, optional
        FFT threads of the matched filter.

    Returns
    -------
    astropy.table.Table
        One row per source, columns :data:`DIASOURCE_COLUMNS` (apdb.yaml names and types), plus
        :data:`SNAPDIFF_COLUMNS` when ``snapdiff`` is given; empty with all columns when nothing
        is detected.
    """
    _check(difference, "difference", None)
    _check(science, "science", difference.shape)
    _check(snapdiff, "snapdiff", difference.shape)
    thr = float(threshold_sigma)
    if not (np.isfinite(thr) and thr > 0):
        raise ImageError(f"threshold_sigma must be positive, got {threshold_sigma!r}")
    if int(id_start) < 0:
        raise ImageError(f"id_start must be non-negative, got {id_start!r}")
    psf = validate_psf(difference.psf, name="difference.psf")
    fwhm = float(np.sqrt(4 * np.log(2) / (np.pi * psf.max())))  # exact for a Gaussian
    snr, num = snr_map(difference, workers=workers)
    py, px, plab = _peaks(snr, thr)
    ny_, nx_, nlab = _peaks(-snr, thr)
    xp, yp, fp = _refine(num, py, px)
    xn, yn, fn = _refine(-num, ny_, nx_)
    # dipoles: mutual-nearest positive/negative peak pairs closer than the separation limit
    pair_p, pair_n = np.zeros(0, np.int64), np.zeros(0, np.int64)
    if xp.size and xn.size:
        dmax = dipole_max_sep_fwhm * fwhm
        d_pn, i_pn = cKDTree(np.c_[xn, yn]).query(np.c_[xp, yp])
        _, i_np = cKDTree(np.c_[xp, yp]).query(np.c_[xn, yn])
        mutual = (d_pn <= dmax) & (i_np[i_pn] == np.arange(xp.size))
        pair_p, pair_n = np.nonzero(mutual)[0], i_pn[mutual]
    single_p = np.setdiff1d(np.arange(xp.size), pair_p)
    single_n = np.setdiff1d(np.arange(xn.size), pair_n)
    x = np.concatenate([xp[single_p], xn[single_n], 0.5 * (xp[pair_p] + xn[pair_n])])
    y = np.concatenate([yp[single_p], yn[single_n], 0.5 * (yp[pair_p] + yn[pair_n])])
    n = x.size
    cols = _blank(snapdiff is not None, n)
    if n == 0:
        return _table(cols)
    neg = np.r_[np.zeros(single_p.size, bool), np.ones(single_n.size, bool), np.zeros(pair_p.size, bool)]
    dip = np.r_[np.zeros(single_p.size + single_n.size, bool), np.ones(pair_p.size, bool)]
    cflag = np.r_[fp[single_p], fn[single_n], fp[pair_p] | fn[pair_n]]
    pk_snr = np.r_[snr[py[single_p], px[single_p]], -snr[ny_[single_n], nx_[single_n]],
                   np.maximum(snr[py[pair_p], px[pair_p]], -snr[ny_[pair_n], nx_[pair_n]])]
    w_img = _weights(difference)
    phot = _forced(difference, x, y, w_img)
    ap = _aperture(difference, x, y, float(ap_radius_pix))
    # dipole lobes: their fluxes, separation and orientation
    lobe_p = _forced(difference, xp[pair_p], yp[pair_p], w_img)["flux"]
    lobe_n = _forced(difference, xn[pair_n], yn[pair_n], w_img)["flux"]
    # centroid errors (Cramér-Rao) from the PSF gradient and the local variance
    gy_, gx_ = np.gradient(psf)
    ix, iy = np.clip(np.rint(x).astype(np.int64), 0, difference.shape[1] - 1), \
        np.clip(np.rint(y).astype(np.int64), 0, difference.shape[0] - 1)
    vloc = np.where(w_img[iy, ix] > 0, 1.0 / np.where(w_img[iy, ix] > 0, w_img[iy, ix], 1.0),
                    np.nanmedian(difference.variance))
    fabs = np.abs(np.nan_to_num(phot["flux"]))
    fabs[dip] = 0.5 * (np.abs(lobe_p) + np.abs(lobe_n))
    with np.errstate(divide="ignore"):
        x_err = np.minimum(np.sqrt(vloc / (gx_**2).sum()) / fabs, 10.0)
        y_err = np.minimum(np.sqrt(vloc / (gy_**2).sum()) / fabs, 10.0)
    wcs = difference.wcs
    ra, dec = wcs.all_pix2world(x, y, 0)
    jac = _jacobians(wcs, x, y)
    cov = jac @ (np.eye(2)[None] * np.stack([x_err**2, y_err**2], 1)[:, :, None]) @ np.transpose(jac, (0, 2, 1))
    # shapes: adaptive moments of the (sign-corrected) source and of the PSF
    hs = max(psf.shape[0] // 2, int(np.ceil(4 * fwhm)))
    stamps = _windows(np.where(w_img > 0, np.nan_to_num(difference.image), 0.0), iy, ix, hs)
    stamps = np.where(neg[:, None, None], -stamps, stamps)
    s_psf = fwhm**2 / (8 * np.log(2))
    m_psf, _ = _adaptive_moments(np.pad(psf, hs - psf.shape[0] // 2)[None], np.zeros(1), np.zeros(1),
                                 np.array([s_psf, s_psf, 0.0]))
    m_src, sfail = _adaptive_moments(stamps, x - ix, y - iy, m_psf[0])
    sfail |= dip
    sky_src, sky_psf = _moments_sky(m_src, jac), _moments_sky(np.repeat(m_psf, n, 0), jac)
    dm = m_src - m_psf
    tr, dd = dm[:, 0] + dm[:, 1], np.sqrt(0.25 * (dm[:, 0] - dm[:, 1]) ** 2 + dm[:, 2] ** 2)
    lam = 0.5 * tr + dd
    length_pix = np.sqrt(12.0 * np.clip(lam, 0, None))
    # moment noise: σ(λ) ≈ 4 σ_PSF² / snr; a trail must stand 3σ above it and exceed the FWHM
    trailed = (length_pix > fwhm) & (lam > 12.0 * s_psf / np.maximum(pk_snr, 1e-3)) & ~sfail
    theta = 0.5 * np.arctan2(2 * dm[:, 2], dm[:, 0] - dm[:, 1])
    ux, uy = np.cos(theta), np.sin(theta)
    scale = np.sqrt(np.abs(np.linalg.det(jac))) * 3600.0  # arcsec per pixel
    t_angle = _position_angle(wcs, x - ux, y - uy, x + ux, y + uy)
    # pixel flags: footprint = PSF box ∪ detection region; centre = 3 × 3
    mask = np.asarray(difference.mask, dtype=np.int32)
    box = np.bitwise_or.reduce(_windows(mask, iy, ix, psf.shape[0] // 2).reshape(n, -1), axis=1)
    centre = np.bitwise_or.reduce(_windows(mask, iy, ix, 1).reshape(n, -1), axis=1)
    region, bbox = _region_masks(mask, plab, nlab, py, px, ny_, nx_, single_p, single_n, pair_p, pair_n)
    foot = box | region
    offimage = (x < -0.5) | (y < -0.5) | (x > difference.shape[1] - 0.5) | (y > difference.shape[0] - 0.5)
    info = difference.info
    cols.update({
        "diaSourceId": int(id_start) + np.arange(n, dtype=np.int64), "visit": np.full(n, info.visit),
        "detector": np.full(n, info.detector), "band": np.full(n, info.band),
        "midpointMjdTai": np.full(n, info.mjd_mid_tai), "exposureTime": np.full(n, info.exptime_s),
        "ra": ra, "dec": dec, "raErr": np.sqrt(cov[:, 0, 0]), "decErr": np.sqrt(cov[:, 1, 1]),
        "ra_dec_Cov": cov[:, 0, 1], "x": x, "y": y, "xErr": x_err, "yErr": y_err,
        "centroid_flag": cflag, "snr": pk_snr, "isNegative": neg, "psfFlux": phot["flux"],
        "psfFluxErr": phot["err"], "psfChi2": phot["chi2"], "psfNdata": phot["ndata"],
        "psfFlux_flag": phot["flag"], "psfFlux_flag_edge": phot["edge"],
        "psfFlux_flag_noGoodPixels": phot["nogood"], "apFlux": ap["flux"], "apFluxErr": ap["err"],
        "apFlux_flag": ap["flag"] | ap["truncated"], "apFlux_flag_apertureTruncated": ap["truncated"],
        "ixx": sky_src[:, 0], "iyy": sky_src[:, 1], "ixy": sky_src[:, 2], "ixxPSF": sky_psf[:, 0],
        "iyyPSF": sky_psf[:, 1], "ixyPSF": sky_psf[:, 2], "shape_flag": sfail,
        "trailLength": np.where(trailed, length_pix * scale, 0.0),
        "trailAngle": np.where(trailed, t_angle, np.nan), "isDipole": dip, "dipoleFitAttempted": dip,
        "bboxSize": bbox, "pixelFlags": np.zeros(n, bool), "pixelFlags_offimage": offimage,
    })
    nan = np.full(n, np.nan)
    for key, val in (("dipoleMeanFlux", 0.5 * (np.abs(lobe_p) + np.abs(lobe_n))),
                     ("dipoleFluxDiff", np.abs(lobe_p) - np.abs(lobe_n)),
                     ("dipoleLength", np.hypot(xp[pair_p] - xn[pair_n], yp[pair_p] - yn[pair_n]) * scale[dip]),
                     ("dipoleAngle", _position_angle(wcs, xn[pair_n], yn[pair_n], xp[pair_p], yp[pair_p]))):
        cols[key] = nan.copy()
        cols[key][dip] = val
    for name, bit in _FLAG_BITS.items():
        cols[f"pixelFlags_{name}"] = (foot & int(bit)) != 0
        if f"pixelFlags_{name}Center" in cols:
            cols[f"pixelFlags_{name}Center"] = (centre & int(bit)) != 0
    cols["pixelFlags_edge"] |= offimage
    for key, exp in (("science", science), ("snapDiff", snapdiff)):
        if exp is None:
            continue
        sp = _forced(exp, x, y)
        cols[f"{key}Flux"], cols[f"{key}FluxErr"] = sp["flux"], sp["err"]
        if key == "science":
            cols["forced_PsfFlux_flag"], cols["forced_PsfFlux_flag_edge"] = sp["flag"], sp["edge"]
            cols["forced_PsfFlux_flag_noGoodPixels"] = sp["nogood"]
    t_src, t_psf = m_src[:, 0] + m_src[:, 1], m_psf[0, 0] + m_psf[0, 1]
    r_shape = np.where(t_src < t_psf, np.exp(-0.5 * (np.log(t_src / t_psf) / 0.3) ** 2), 1.0)
    r_shape = np.where(sfail & ~dip, 0.5, r_shape)
    cols["reliability"] = ((1 - np.exp(-((pk_snr / 6.0) ** 2))) * r_shape * np.where(dip, 0.2, 1.0)
                           * np.where((centre & _CENTER_BAD) != 0, 0.1, 1.0))
    return _table(cols)


def _region_masks(mask, plab, nlab, py, px, ny_, nx_, single_p, single_n, pair_p, pair_n):
    """Mask OR and bounding-box size over each source's detection region(s)."""
    def per_label(lab):
        nl = int(lab.max())
        acc = np.zeros(nl + 1, np.int32)
        sel = lab > 0
        np.bitwise_or.at(acc, lab[sel], mask[sel])
        sl = ndimage.find_objects(lab)
        size = np.array([0] + [max(s[0].stop - s[0].start, s[1].stop - s[1].start) for s in sl], np.int32)
        return acc, size
    acc_p, size_p = per_label(plab)
    acc_n, size_n = per_label(nlab)
    lp, ln = plab[py, px], nlab[ny_, nx_]
    region = np.r_[acc_p[lp[single_p]], acc_n[ln[single_n]], acc_p[lp[pair_p]] | acc_n[ln[pair_n]]]
    bbox = np.r_[size_p[lp[single_p]], size_n[ln[single_n]],
                 np.maximum(size_p[lp[pair_p]], size_n[ln[pair_n]])]
    return region, bbox


def _table(cols: dict) -> Table:
    names = [c for c, _ in DIASOURCE_COLUMNS + SNAPDIFF_COLUMNS if c in cols]
    dtypes = dict(DIASOURCE_COLUMNS + SNAPDIFF_COLUMNS)
    return Table([np.asarray(cols[c]).astype(dtypes[c]) for c in names], names=names)

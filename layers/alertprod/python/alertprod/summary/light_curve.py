"""Grouped light-curve statistics: the diaCalculation plugin formulas, vectorised over groups.

A group is one (object, band) light curve. Input rows are sorted once by (group, time) and
every statistic is a ``np.ufunc.reduceat`` over contiguous groups, so thousands of objects cost
a handful of array passes instead of a Python loop per object.
"""

from __future__ import annotations

import numpy as np

__all__ = ["group_starts", "weighted_mean", "band_statistics", "STETSON_ITERATIONS"]

#: Iterations and tolerance of the Stetson robust mean (as in Rubin's ``_stetson_mean``).
STETSON_ITERATIONS = 20
_STETSON_TOL = 1e-6
_PERCENTILES = (5, 25, 50, 75, 95)


def group_starts(sorted_keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """First index and key of each run of equal keys in a sorted array."""
    if len(sorted_keys) == 0:
        return np.empty(0, dtype=np.int64), np.empty(0, dtype=np.int64)
    starts = np.flatnonzero(np.r_[True, sorted_keys[1:] != sorted_keys[:-1]])
    return starts, sorted_keys[starts]


def weighted_mean(flux: np.ndarray, err: np.ndarray,
                  starts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Σ(f/σ²)/Σ(1/σ²) and √(1/Σσ⁻²) per group of contiguous rows starting at ``starts``."""
    w = 1.0 / err**2
    sw = np.add.reduceat(w, starts)
    return np.add.reduceat(w * flux, starts) / sw, np.sqrt(1.0 / sw)


def _sorted_quantile(values: np.ndarray, starts: np.ndarray, counts: np.ndarray,
                     q: float) -> np.ndarray:
    """``np.percentile(..., q)`` (linear interpolation) of groups sorted ascending."""
    pos = q / 100.0 * (counts - 1)
    lo = np.floor(pos).astype(np.int64)
    hi = np.minimum(lo + 1, counts - 1)
    frac = pos - lo
    a, b = values[starts + lo], values[starts + hi]
    return a + frac * (b - a)


def _stetson_j(flux, err, w, gi, starts, counts, mean0):
    """Stetson J with Rubin's iteratively down-weighted mean (α = β = 2), groups with n ≥ 2."""
    n = counts.astype(float)
    with np.errstate(divide="ignore", invalid="ignore"):
        nf = np.sqrt(n / (n - 1))
    mean = mean0.copy()
    active = counts >= 2
    for _ in range(STETSON_ITERATIONS):
        if not active.any():
            break
        with np.errstate(invalid="ignore"):
            chi = np.abs(nf[gi] * (flux - mean[gi]) / err)
        wi = np.where(active[gi], w / (1.0 + (chi / 2.0) ** 2), w)
        tmp = np.add.reduceat(wi * flux, starts) / np.add.reduceat(wi, starts)
        diff = np.abs(tmp - mean)
        mean = np.where(active, tmp, mean)
        with np.errstate(divide="ignore", invalid="ignore"):
            active &= ~((diff / tmp < _STETSON_TOL) & (diff < _STETSON_TOL))
    with np.errstate(invalid="ignore"):
        delta = nf[gi] * (flux - mean[gi]) / err
        p = delta**2 - 1.0
        j = np.add.reduceat(np.sign(p) * np.sqrt(np.abs(p)), starts) / n
    return np.where(counts >= 2, j, np.nan)


def band_statistics(key: np.ndarray, n_keys: int, time_mjd: np.ndarray, flux: np.ndarray,
                    err: np.ndarray, *, valid: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """All per-light-curve ``psfFlux`` statistics of the Rubin diaCalculation plugins.

    Parameters
    ----------
    key : ndarray of int, shape (n,)
        Group (object × band) of each measurement, in ``[0, n_keys)``.
    n_keys : int
        Number of groups in the output.
    time_mjd, flux, err : ndarray, shape (n,)
        TAI MJD, flux and its 1σ error (nJy).
    valid : ndarray of bool, shape (n,), keyword-only, optional
        Rows to consider; rows with non-finite flux/error or error ≤ 0 are always dropped.

    Returns
    -------
    dict of str to ndarray, each shape (n_keys,)
        ``psfFluxMean``, ``psfFluxMeanErr``, ``psfFluxSigma``, ``psfFluxNdata`` (int64),
        ``psfFluxMin``, ``psfFluxMax``, ``psfFluxMaxSlope`` (nJy/day), ``psfFluxErrMean``,
        ``psfFluxChi2``, ``psfFluxLinearSlope`` (nJy/day), ``psfFluxLinearIntercept`` (nJy at
        MJD 0), ``psfFluxStetsonJ``, ``psfFluxSkew``, ``psfFluxMAD``, ``psfFluxPercentileNN``.
        NaN where a group has too few valid points (1 for means, min/max; 2 for sigma, slopes,
        linear fit, Stetson J; 3 for skew); ``psfFluxNdata`` 0 for empty groups.
    """
    ok = np.isfinite(flux) & np.isfinite(err) & (err > 0) & np.isfinite(time_mjd)
    if valid is not None:
        ok &= valid
    order = np.lexsort((time_mjd[ok], key[ok]))
    k, t, f, e = key[ok][order], time_mjd[ok][order], flux[ok][order], err[ok][order]
    starts, gkeys = group_starts(k)
    names = ["psfFluxMean", "psfFluxMeanErr", "psfFluxSigma", "psfFluxMin", "psfFluxMax",
             "psfFluxMaxSlope", "psfFluxErrMean", "psfFluxChi2", "psfFluxLinearSlope",
             "psfFluxLinearIntercept", "psfFluxStetsonJ", "psfFluxSkew", "psfFluxMAD"]
    names += [f"psfFluxPercentile{q:02d}" for q in _PERCENTILES]
    out = {name: np.full(n_keys, np.nan) for name in names}
    out["psfFluxNdata"] = np.zeros(n_keys, dtype=np.int64)
    if len(starts) == 0:
        return out
    counts = np.diff(np.r_[starts, len(k)])
    n = counts.astype(float)
    gi = np.repeat(np.arange(len(starts)), counts)
    res: dict[str, np.ndarray] = {"psfFluxNdata": counts.astype(np.int64)}

    w = 1.0 / e**2
    mean, mean_err = weighted_mean(f, e, starts)
    res["psfFluxMean"], res["psfFluxMeanErr"] = mean, mean_err
    res["psfFluxErrMean"] = np.add.reduceat(e, starts) / n
    res["psfFluxMin"] = np.minimum.reduceat(f, starts)
    res["psfFluxMax"] = np.maximum.reduceat(f, starts)
    res["psfFluxChi2"] = np.add.reduceat(w * (f - mean[gi]) ** 2, starts)

    # Unweighted moments (np.std(ddof=1), scipy.stats.skew(bias=False)).
    umean = np.add.reduceat(f, starts) / n
    dev = f - umean[gi]
    m2 = np.add.reduceat(dev**2, starts)
    m3 = np.add.reduceat(dev**3, starts) / n
    with np.errstate(divide="ignore", invalid="ignore"):
        res["psfFluxSigma"] = np.where(counts >= 2, np.sqrt(m2 / (n - 1)), np.nan)
        g1 = m3 / (m2 / n) ** 1.5
        skew = g1 * np.sqrt(n * (n - 1)) / (n - 2)
    res["psfFluxSkew"] = np.where((counts >= 3) & (m2 > 0), skew, np.nan)

    # Max slope between consecutive points in time; pairs at equal times are skipped.
    slope = np.full(len(f), -np.inf)
    same = np.r_[False, gi[1:] == gi[:-1]]
    dt = np.r_[0.0, np.diff(t)]
    good = same & (dt > 0)
    slope[good] = np.diff(f, prepend=f[0])[good] / dt[good]
    max_slope = np.maximum.reduceat(slope, starts)
    res["psfFluxMaxSlope"] = np.where(np.isfinite(max_slope), max_slope, np.nan)

    # Weighted least squares f = a + b t (Rubin: lstsq of [t/σ, 1/σ] against f/σ), with times
    # centred on their weighted mean so MJD² does not swamp the normal equations.
    sw = np.add.reduceat(w, starts)
    tmean = np.add.reduceat(w * t, starts) / sw
    tc = t - tmean[gi]
    stt = np.add.reduceat(w * tc * tc, starts)
    with np.errstate(divide="ignore", invalid="ignore"):
        lin = np.add.reduceat(w * tc * f, starts) / stt
    fit = (counts >= 2) & (stt > 0)
    res["psfFluxLinearSlope"] = np.where(fit, lin, np.nan)
    res["psfFluxLinearIntercept"] = np.where(fit, mean - lin * tmean, np.nan)

    res["psfFluxStetsonJ"] = _stetson_j(f, e, w, gi, starts, counts, mean)

    # Percentiles and MAD (astropy median_absolute_deviation, unscaled) on value-sorted groups.
    fs = f[np.lexsort((f, gi))]
    for q in _PERCENTILES:
        res[f"psfFluxPercentile{q:02d}"] = _sorted_quantile(fs, starts, counts, q)
    absdev = np.abs(fs - res["psfFluxPercentile50"][gi])
    res["psfFluxMAD"] = _sorted_quantile(absdev[np.lexsort((absdev, gi))], starts, counts, 50)

    for name, values in res.items():
        out[name][gkeys] = values
    return out

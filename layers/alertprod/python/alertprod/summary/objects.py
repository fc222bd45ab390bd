"""DiaObject summary columns recomputed from DiaSource histories (Rubin diaCalculation formulas).

For every ``diaObjectId`` in the input this computes the APDB DiaObject columns that DiaSources
determine — position, ``nDiaSources``, first/last DiaSource times and, per band, the
``psfFlux*``, ``scienceFlux*`` and (from forced sources) ``fpFlux*`` statistics — plus the
extended light-curve features of Rubin's meas_base/ap_association ``diaCalculation`` plugins
that the current ``apdb.yaml`` no longer stores (``psfFluxChi2``, linear fit, Stetson J, skew,
percentiles, MAD; see :data:`EXTENDED_BAND_STATISTICS`).

All statistics are vectorised over objects and bands: rows are sorted once by
(object, band, time) and reduced with ``np.*.reduceat``; only the Stetson mean iterates, over
all groups at once. Formulas and conventions are listed in docs/association.md.
"""

from __future__ import annotations

import numpy as np
from astropy.table import Table

from alertprod.errors import CatalogError
from alertprod.summary.light_curve import band_statistics, group_starts, weighted_mean

__all__ = ["BANDS", "SCHEMA_BAND_STATISTICS", "EXTENDED_BAND_STATISTICS", "summarize_objects"]

#: Bands in Rubin order.
BANDS = ("u", "g", "r", "i", "z", "y")

#: Per-band DiaObject columns of ``apdb.yaml`` computed here (column ``{band}_{name}``).
SCHEMA_BAND_STATISTICS = ("psfFluxMean", "psfFluxMeanErr", "psfFluxSigma", "psfFluxNdata",
                          "psfFluxMin", "psfFluxMax", "psfFluxMaxSlope", "psfFluxErrMean",
                          "scienceFluxMean", "scienceFluxMeanErr", "fpFluxMean",
                          "fpFluxMeanErr")

#: Per-band diaCalculation features outside the current ``apdb.yaml`` (Rubin's earlier names).
EXTENDED_BAND_STATISTICS = ("psfFluxChi2", "psfFluxLinearSlope", "psfFluxLinearIntercept",
                            "psfFluxStetsonJ", "psfFluxSkew", "psfFluxMAD",
                            "psfFluxPercentile05", "psfFluxPercentile25", "psfFluxPercentile50",
                            "psfFluxPercentile75", "psfFluxPercentile95")

_REQUIRED = ("diaObjectId", "ra", "dec", "midpointMjdTai", "band", "psfFlux", "psfFluxErr")


def _float(table: Table, name: str) -> np.ndarray:
    col = table[name]
    values = np.ma.filled(col, np.nan) if np.ma.isMaskedArray(col) else np.asarray(col)
    return np.asarray(values, dtype=float)


def _band_index(table: Table) -> np.ndarray:
    """Index of each row's band in :data:`BANDS`, −1 for anything else."""
    col = table["band"]
    bands = np.asarray(np.ma.filled(col, "") if np.ma.isMaskedArray(col) else col).astype(str)
    out = np.full(len(bands), -1, dtype=np.int64)
    for k, b in enumerate(BANDS):
        out[bands == b] = k
    return out


def _mean_positions(obj: np.ndarray, n_obj: int, table: Table) -> dict[str, np.ndarray]:
    """Inverse-covariance weighted mean position per object on its tangent plane.

    Sources with finite positive ``raErr``/``decErr`` are weighted by their inverse covariance
    (with ``ra_dec_Cov`` when present); the mean's covariance is ``(Σ C⁻¹)⁻¹``. An object none
    of whose sources has usable errors gets the unweighted spherical mean and NaN errors.
    """
    from alertprod.association.geometry import local_frames, tangent_offsets_arcsec, unit_vectors

    ra, dec = _float(table, "ra"), _float(table, "dec")
    xyz = unit_vectors(ra, dec)
    centre = np.zeros((n_obj, 3))
    np.add.at(centre, obj, xyz)
    centre /= np.linalg.norm(centre, axis=1, keepdims=True)
    c_ra = np.rad2deg(np.arctan2(centre[:, 1], centre[:, 0])) % 360.0
    c_dec = np.rad2deg(np.arcsin(np.clip(centre[:, 2], -1.0, 1.0)))
    east, north = local_frames(c_ra, c_dec)
    x, y = tangent_offsets_arcsec(centre[obj], east[obj], north[obj], xyz)
    has = {n: n in table.colnames for n in ("raErr", "decErr", "ra_dec_Cov")}
    sx = _float(table, "raErr") * 3600 if has["raErr"] else np.full(len(ra), np.nan)
    sy = _float(table, "decErr") * 3600 if has["decErr"] else np.full(len(ra), np.nan)
    cxy = np.nan_to_num(_float(table, "ra_dec_Cov") * 3600**2) if has["ra_dec_Cov"] else 0 * sx
    ok = np.isfinite(sx) & (sx > 0) & np.isfinite(sy) & (sy > 0)
    det = np.where(ok, sx**2 * sy**2 - cxy**2, 1.0)
    ok &= det > 0
    # Inverse covariance (a b; b d) of each usable source, zero weight otherwise.
    a = np.where(ok, sy**2 / det, 0.0)
    d = np.where(ok, sx**2 / det, 0.0)
    b = np.where(ok, -cxy / det, 0.0)
    sums = np.zeros((n_obj, 5))
    np.add.at(sums, obj, np.column_stack([a, b, d, np.nan_to_num(a * x + b * y),
                                          np.nan_to_num(b * x + d * y)]))
    sa, sb, sd, rx, ry = sums.T
    sdet = sa * sd - sb * sb
    weighted = sdet > 0
    with np.errstate(divide="ignore", invalid="ignore"):
        mx = np.where(weighted, (sd * rx - sb * ry) / sdet, 0.0)
        my = np.where(weighted, (sa * ry - sb * rx) / sdet, 0.0)
        var_x, var_y, cov = sd / sdet, sa / sdet, -sb / sdet
    # Back from the tangent plane (arcsec) to the sphere.
    p = centre + (mx[:, None] * east + my[:, None] * north) / (180 / np.pi * 3600)
    p /= np.linalg.norm(p, axis=1, keepdims=True)
    nan = np.full(n_obj, np.nan)
    return {"ra": np.rad2deg(np.arctan2(p[:, 1], p[:, 0])) % 360.0,
            "dec": np.rad2deg(np.arcsin(np.clip(p[:, 2], -1.0, 1.0))),
            "raErr": np.where(weighted, np.sqrt(var_x) / 3600, nan),
            "decErr": np.where(weighted, np.sqrt(var_y) / 3600, nan),
            "ra_dec_Cov": np.where(weighted, cov / 3600**2, nan)}


def summarize_objects(dia_sources: Table, *, forced_sources: Table | None = None,
                      extended: bool = True) -> Table:
    """Summary columns of every DiaObject that appears in ``dia_sources``.

    Parameters
    ----------
    dia_sources : astropy.table.Table
        The full DiaSource history of each object to summarise (as read back from the Level 1
        database, 12 months in practice) including this visit's new sources. Required:
        ``diaObjectId``, ``ra``, ``dec`` (deg), ``midpointMjdTai``, ``band``, ``psfFlux``,
        ``psfFluxErr`` (nJy); optional ``raErr``, ``decErr`` (deg), ``ra_dec_Cov`` (deg²),
        ``scienceFlux``, ``scienceFluxErr`` (nJy).
    forced_sources : astropy.table.Table, keyword-only, optional
        DiaForcedSources (``diaObjectId``, ``band``, ``psfFlux``, ``psfFluxErr``): used only for
        ``{band}_fpFluxMean``/``MeanErr``; never mixed into the ``psfFlux*`` statistics.
    extended : bool, keyword-only
        Also emit :data:`EXTENDED_BAND_STATISTICS`.

    Returns
    -------
    astropy.table.Table
        One row per ``diaObjectId`` (ascending): ``diaObjectId``, ``ra``, ``dec``, ``raErr``,
        ``decErr``, ``ra_dec_Cov``, ``nDiaSources``, ``firstDiaSourceMjdTai``,
        ``lastDiaSourceMjdTai`` and ``{band}_{statistic}`` for every band of :data:`BANDS`.
        A statistic without enough valid measurements is NaN; ``Ndata`` is then 0.

    Notes
    -----
    A flux measurement is valid when flux and error are finite and the error is > 0; the
    per-band statistics use valid measurements only, ``nDiaSources`` counts every source.
    """
    for col in _REQUIRED:
        if col not in dia_sources.colnames:
            raise CatalogError(f"dia_sources lacks column {col!r}")
    ids_all = np.asarray(dia_sources["diaObjectId"], dtype=np.int64)
    ids, obj = np.unique(ids_all, return_inverse=True)
    n_obj = len(ids)
    out = Table({"diaObjectId": ids})
    if n_obj:
        out.update(_mean_positions(obj, n_obj, dia_sources))
    else:
        for col in ("ra", "dec", "raErr", "decErr", "ra_dec_Cov"):
            out[col] = np.empty(0)
    t = _float(dia_sources, "midpointMjdTai")
    out["nDiaSources"] = np.bincount(obj, minlength=n_obj).astype(np.int64)
    first, last = np.full(n_obj, np.inf), np.full(n_obj, -np.inf)
    np.minimum.at(first, obj, np.where(np.isfinite(t), t, np.inf))
    np.maximum.at(last, obj, np.where(np.isfinite(t), t, -np.inf))
    out["firstDiaSourceMjdTai"] = np.where(np.isfinite(first), first, np.nan)
    out["lastDiaSourceMjdTai"] = np.where(np.isfinite(last), last, np.nan)

    band = _band_index(dia_sources)
    key = obj * len(BANDS) + band
    n_keys = n_obj * len(BANDS)
    stats = band_statistics(key, n_keys, t, _float(dia_sources, "psfFlux"),
                            _float(dia_sources, "psfFluxErr"), valid=band >= 0)
    if "scienceFlux" in dia_sources.colnames and "scienceFluxErr" in dia_sources.colnames:
        stats["scienceFluxMean"], stats["scienceFluxMeanErr"] = _grouped_weighted_mean(
            key, n_keys, _float(dia_sources, "scienceFlux"),
            _float(dia_sources, "scienceFluxErr"), band >= 0)
    if forced_sources is not None:
        for col in ("diaObjectId", "band", "psfFlux", "psfFluxErr"):
            if col not in forced_sources.colnames:
                raise CatalogError(f"forced_sources lacks column {col!r}")
        f_ids = np.asarray(forced_sources["diaObjectId"], dtype=np.int64)
        pos = np.clip(np.searchsorted(ids, f_ids), 0, max(n_obj - 1, 0))
        known = (n_obj > 0) & (ids[pos] == f_ids) if n_obj else np.zeros(len(f_ids), bool)
        f_band = _band_index(forced_sources)
        f_key = pos * len(BANDS) + f_band
        stats["fpFluxMean"], stats["fpFluxMeanErr"] = _grouped_weighted_mean(
            f_key, n_keys, _float(forced_sources, "psfFlux"), _float(forced_sources, "psfFluxErr"),
            known & (f_band >= 0))
    names = SCHEMA_BAND_STATISTICS + (EXTENDED_BAND_STATISTICS if extended else ())
    for k, b in enumerate(BANDS):
        for name in names:
            if name in stats:
                column = stats[name].reshape(n_obj, len(BANDS))[:, k]
            elif name.endswith("Ndata"):
                column = np.zeros(n_obj, dtype=np.int64)
            else:
                column = np.full(n_obj, np.nan)
            out[f"{b}_{name}"] = column
    return out


def _grouped_weighted_mean(key: np.ndarray, n_keys: int, flux: np.ndarray, err: np.ndarray,
                           use: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Inverse-variance weighted mean and its error per key (NaN where no valid point)."""
    ok = use & np.isfinite(flux) & np.isfinite(err) & (err > 0)
    order = np.argsort(key[ok], kind="stable")
    k, f, e = key[ok][order], flux[ok][order], err[ok][order]
    starts, group_keys = group_starts(k)
    mean, mean_err = np.full(n_keys, np.nan), np.full(n_keys, np.nan)
    if len(starts):
        m, me = weighted_mean(f, e, starts)
        mean[group_keys], mean_err[group_keys] = m, me
    return mean, mean_err

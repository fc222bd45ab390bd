"""DiaObject summaries against a row-by-row reference and hand-checkable light curves."""

import warnings

import numpy as np
import pytest
from astropy.stats import median_absolute_deviation
from astropy.table import Table
from scipy.stats import skew

from alertprod.errors import CatalogError
from alertprod.summary import BANDS, summarize_objects


def _reference_stetson_mean(values, errors, mean, alpha=2.0, beta=2.0, n_iter=20, tol=1e-6):
    n_factor = np.sqrt(len(values) / (len(values) - 1))
    inv_var = 1 / errors**2
    for _ in range(n_iter):
        chi = np.fabs(n_factor * (values - mean) / errors)
        tmp = np.average(values, weights=inv_var / (1 + (chi / alpha) ** beta))
        diff = np.fabs(tmp - mean)
        mean = tmp
        if diff / mean < tol and diff < tol:
            break
    return mean


def _reference(f, e, t):
    """Straightforward per-light-curve formulas (Rubin diaCalculation plugins)."""
    out = {"psfFluxNdata": len(f)}
    if len(f) == 0:
        return out
    w = 1 / e**2
    mean = np.sum(w * f) / np.sum(w)
    out.update(psfFluxMean=mean, psfFluxMeanErr=np.sqrt(1 / np.sum(w)), psfFluxMin=f.min(),
               psfFluxMax=f.max(), psfFluxErrMean=e.mean(),
               psfFluxChi2=np.sum(((f - mean) / e) ** 2),
               psfFluxMAD=median_absolute_deviation(f),
               **{f"psfFluxPercentile{q:02d}": np.percentile(f, q) for q in (5, 25, 50, 75, 95)})
    if len(f) >= 2:
        o = np.argsort(t)
        out["psfFluxSigma"] = np.std(f, ddof=1)
        out["psfFluxMaxSlope"] = np.max(np.diff(f[o]) / np.diff(t[o]))
        a = np.column_stack([t / e, 1 / e])
        (slope, icpt), *_ = np.linalg.lstsq(a, f / e, rcond=None)
        out["psfFluxLinearSlope"], out["psfFluxLinearIntercept"] = slope, icpt
        sm = _reference_stetson_mean(f, e, mean)
        p = (np.sqrt(len(f) / (len(f) - 1)) * (f - sm) / e) ** 2 - 1
        out["psfFluxStetsonJ"] = np.mean(np.sign(p) * np.sqrt(np.fabs(p)))
    if len(f) >= 3:
        out["psfFluxSkew"] = skew(f, bias=False)
    return out


def _random_histories(seed, n_obj=40):
    rng = np.random.default_rng(seed)
    rows = []
    for oid in rng.choice(10**9, n_obj, replace=False) + 1:
        n = int(rng.integers(1, 12))
        ra0, dec0 = rng.uniform(0, 360), rng.uniform(-80, 80)
        for _ in range(n):
            err = rng.uniform(5, 50)
            rows.append((oid, ra0 + rng.normal(0, 2e-5), dec0 + rng.normal(0, 2e-5),
                         rng.uniform(0.5, 3) * 1e-5, rng.uniform(0.5, 3) * 1e-5,
                         60000 + rng.uniform(0, 365), BANDS[rng.integers(0, 3)],
                         rng.normal(500, 200), err, rng.normal(2000, 100), rng.uniform(10, 20)))
    names = ["diaObjectId", "ra", "dec", "raErr", "decErr", "midpointMjdTai", "band", "psfFlux",
             "psfFluxErr", "scienceFlux", "scienceFluxErr"]
    return Table(rows=rows, names=names)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_summaries_match_row_by_row_reference(seed):
    src = _random_histories(seed)
    out = summarize_objects(src)
    assert list(out["diaObjectId"]) == sorted(set(src["diaObjectId"]))
    for row in out:
        mine = src[src["diaObjectId"] == row["diaObjectId"]]
        assert row["nDiaSources"] == len(mine)
        assert row["firstDiaSourceMjdTai"] == mine["midpointMjdTai"].min()
        assert row["lastDiaSourceMjdTai"] == mine["midpointMjdTai"].max()
        for band in BANDS:
            sel = mine[mine["band"] == band]
            ref = _reference(np.asarray(sel["psfFlux"]), np.asarray(sel["psfFluxErr"]),
                             np.asarray(sel["midpointMjdTai"]))
            for name in ("psfFluxMean", "psfFluxMeanErr", "psfFluxSigma", "psfFluxNdata",
                         "psfFluxMin", "psfFluxMax", "psfFluxMaxSlope", "psfFluxErrMean",
                         "psfFluxChi2", "psfFluxLinearSlope", "psfFluxLinearIntercept",
                         "psfFluxStetsonJ", "psfFluxSkew", "psfFluxMAD",
                         "psfFluxPercentile05", "psfFluxPercentile50", "psfFluxPercentile95"):
                got = row[f"{band}_{name}"]
                if name in ref:
                    assert got == pytest.approx(ref[name], rel=1e-6, abs=1e-9), (band, name)
                else:
                    assert np.isnan(got), (band, name)
            if len(sel):
                w = 1 / np.asarray(sel["scienceFluxErr"]) ** 2
                assert row[f"{band}_scienceFluxMean"] == pytest.approx(
                    np.sum(w * sel["scienceFlux"]) / np.sum(w), rel=1e-9)
                assert row[f"{band}_scienceFluxMeanErr"] == pytest.approx(np.sqrt(1 / w.sum()))


def test_two_points_give_known_slope_and_stetson_j():
    src = Table({"diaObjectId": [7, 7], "ra": [10.0, 10.0], "dec": [0.0, 0.0],
                 "midpointMjdTai": [60001.0, 60000.0], "band": ["g", "g"],
                 "psfFlux": [300.0, 100.0], "psfFluxErr": [10.0, 10.0]})
    row = summarize_objects(src)[0]
    assert row["g_psfFluxMaxSlope"] == pytest.approx(200.0)   # (300 − 100) nJy / 1 day
    assert row["g_psfFluxLinearSlope"] == pytest.approx(200.0)
    assert row["g_psfFluxLinearIntercept"] == pytest.approx(300.0 - 200.0 * 60001.0)
    # Symmetric pair: Stetson mean 200, δ = √2·100/10, J = √(δ² − 1) = √199.
    assert row["g_psfFluxStetsonJ"] == pytest.approx(np.sqrt(199.0))
    assert row["g_psfFluxMean"] == pytest.approx(200.0)
    assert row["g_psfFluxMeanErr"] == pytest.approx(10 / np.sqrt(2))
    assert row["g_psfFluxSigma"] == pytest.approx(np.sqrt(2) * 100)
    assert row["g_psfFluxChi2"] == pytest.approx(200.0)
    assert np.isnan(row["g_psfFluxSkew"])


def test_missing_bands_and_nan_fluxes_give_nan_and_zero_ndata():
    src = Table({"diaObjectId": [3, 3, 3], "ra": [1.0] * 3, "dec": [2.0] * 3,
                 "midpointMjdTai": [60000.0, 60001.0, 60002.0], "band": ["r", "r", "i"],
                 "psfFlux": [np.nan, 50.0, 20.0], "psfFluxErr": [5.0, 5.0, 0.0]})
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        row = summarize_objects(src)[0]
    assert row["nDiaSources"] == 3
    assert row["r_psfFluxNdata"] == 1 and row["r_psfFluxMean"] == 50.0
    assert np.isnan(row["r_psfFluxSigma"]) and np.isnan(row["r_psfFluxMaxSlope"])
    for band in ("u", "g", "i", "z", "y"):      # i: its only error is 0, so invalid
        assert row[f"{band}_psfFluxNdata"] == 0
        assert np.isnan(row[f"{band}_psfFluxMean"]) and np.isnan(row[f"{band}_psfFluxMax"])
    assert np.isnan(row["r_scienceFluxMean"]) and np.isnan(row["r_fpFluxMean"])


def test_forced_fluxes_enter_fp_columns_only():
    src = Table({"diaObjectId": [5], "ra": [1.0], "dec": [2.0], "midpointMjdTai": [60000.0],
                 "band": ["z"], "psfFlux": [100.0], "psfFluxErr": [10.0]})
    forced = Table({"diaObjectId": [5, 5, 99], "band": ["z", "z", "z"],
                    "psfFlux": [10.0, 30.0, 1e6], "psfFluxErr": [10.0, 10.0, 1.0]})
    row = summarize_objects(src, forced_sources=forced)[0]
    assert row["z_fpFluxMean"] == pytest.approx(20.0)
    assert row["z_fpFluxMeanErr"] == pytest.approx(10 / np.sqrt(2))
    assert row["z_psfFluxMean"] == 100.0 and row["z_psfFluxNdata"] == 1


def test_mean_position_is_inverse_variance_weighted_across_ra_zero():
    arcsec = 1 / 3600
    src = Table({"diaObjectId": [1, 1], "ra": [359.9999, 0.0001], "dec": [0.0, 0.0],
                 "raErr": [0.1 * arcsec, 0.2 * arcsec], "decErr": [0.1 * arcsec, 0.1 * arcsec],
                 "midpointMjdTai": [60000.0, 60001.0], "band": ["g", "g"],
                 "psfFlux": [1.0, 1.0], "psfFluxErr": [1.0, 1.0]})
    row = summarize_objects(src)[0]
    # weights 4:1 in RA → mean at −0.0001 + 0.0002/5 = −0.00006 ≡ 359.99994
    assert row["ra"] == pytest.approx(359.99994, abs=1e-9)
    assert row["raErr"] == pytest.approx(np.sqrt(1 / (100 + 25)) * arcsec, rel=1e-6)
    assert row["decErr"] == pytest.approx(0.1 / np.sqrt(2) * arcsec, rel=1e-6)
    assert row["ra_dec_Cov"] == pytest.approx(0.0, abs=1e-20)
    src.remove_columns(["raErr", "decErr"])
    row = summarize_objects(src)[0]
    assert row["ra"] == pytest.approx(0.0, abs=1e-9) or row["ra"] == pytest.approx(360.0)
    assert np.isnan(row["raErr"])


def test_summary_columns_exist_in_apdb_schema():
    import importlib.resources

    import yaml

    text = (importlib.resources.files("lsst.sdm.schemas") / "apdb.yaml").read_text()
    dia_object = next(t for t in yaml.safe_load(text)["tables"] if t["name"] == "DiaObject")
    schema = {c["name"] for c in dia_object["columns"]}
    src = _random_histories(5, n_obj=3)
    out = summarize_objects(src, extended=False)
    assert set(out.colnames) <= schema
    # every schema column a DiaSource history determines is produced
    not_ours = {"validityStartMjdTai", "validityEndMjdTai"}
    assert schema - not_ours == set(out.colnames)


def test_missing_column_is_named():
    with pytest.raises(CatalogError, match="psfFluxErr"):
        summarize_objects(Table({"diaObjectId": [1], "ra": [0.0], "dec": [0.0],
                                 "midpointMjdTai": [1.0], "band": ["g"], "psfFlux": [1.0]}))

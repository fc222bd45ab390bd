"""How many asteroid detections miss their SSObject because the orbit is uncertain, per U.

A population like the simulator's (main belt at 1.2-2.2 au, near-Earth objects at 0.05-0.25 au)
is placed in a field; ``mpcorb.dat`` is written as the simulator writes it — osculating elements
of the true motion some days before, with the orbit error of each U (``sky.orbit_errors``),
through MPCORB.DAT's printed precision — and the pipeline predicts the positions at a pair of
visits, from the file as it is (two-body) and after its nightly n-body refresh. The table
(``pytest -s``) is the one in docs/solar-system.md, "Orbit uncertainty and the match radius".
"""

from __future__ import annotations

import numpy as np
import pytest
from astropy.coordinates import angular_separation

from alertprod.formats import RUBIN_SITE
from alertprod.orbits import (
    OrbitCatalog,
    orbit_through,
    osculating_elements_at,
    predict_positions_many,
    read_mpcorb,
    write_mpcorb,
)
from alertprod.orbits.uncertainty import (
    match_radius_arcsec,
    orbit_reference_mjd,
    uncertainty_parameter,
)
from alertprod.sky.orbit_errors import apply_orbit_errors, mpcorb_epoch_mjd_tt, stale_catalog
from alertprod.sky.perturbed import true_positions

SITE = dict(obs_lon_deg=RUBIN_SITE[0], obs_lat_deg=RUBIN_SITE[1], obs_height_m=RUBIN_SITE[2])
START = 60958.1
N_MAIN_BELT, N_NEO = 150, 30


def _sep(eph, truth) -> np.ndarray:
    sep = np.rad2deg(angular_separation(*np.deg2rad([eph.ra_deg, eph.dec_deg, truth.ra_deg,
                                                     truth.dec_deg]))) * 3600
    return np.where(np.isfinite(sep), sep, np.inf)


@pytest.fixture(scope="module")
def failures() -> dict:
    """{(offset_days, U): {"two_body", "refreshed", "radius_miss", "radius"}: arrays (visits, objects)}."""
    rng = np.random.default_rng(5)
    t_ref = START + 0.05
    true = OrbitCatalog.concatenate([
        orbit_through(rng.uniform(8, 12, N_MAIN_BELT), rng.uniform(2, 6, N_MAIN_BELT), t_ref,
                      geocentric_distance_au=rng.uniform(1.2, 2.2, N_MAIN_BELT), rng=rng, **SITE),
        orbit_through(rng.uniform(8, 12, N_NEO), rng.uniform(2, 6, N_NEO), t_ref,
                      geocentric_distance_au=rng.uniform(0.05, 0.25, N_NEO), rng=rng, kind="neo",
                      first_index=N_MAIN_BELT, **SITE)])
    mjd = t_ref + np.array([-0.01, 0.0, 0.01, 0.021])  # two LSST-like pairs of visits
    truth = true_positions(true, mjd, **SITE)
    out = {}
    for offset in (30.0, 150.0):
        exact = stale_catalog(true, mpcorb_epoch_mjd_tt(START, offset))
        for u in range(10):
            cat, _, _ = apply_orbit_errors(exact, np.full(len(exact), u), np.random.default_rng([7, u]))
            cat = read_mpcorb(write_mpcorb(cat))
            refreshed = predict_positions_many(osculating_elements_at(cat, float(np.round(t_ref))),
                                               mjd, **SITE)
            radius = match_radius_arcsec(uncertainty_parameter(cat)[None, :],
                                         mjd[:, None] - orbit_reference_mjd(cat)[None, :],
                                         r_au=np.nan_to_num(refreshed.r_au, nan=1.0),
                                         delta_au=np.nan_to_num(refreshed.delta_au, nan=1.0))
            miss = _sep(refreshed, truth)
            out[offset, u] = {"two_body": _sep(predict_positions_many(cat, mjd, **SITE), truth),
                              "refreshed": miss, "radius_miss": miss > radius, "radius": radius}
    print("\n| days since the elements | U | > 1″, two-body MB / NEO | > 1″, refreshed MB / NEO "
          "| > radius, refreshed MB / NEO | radius MB / NEO (median ″) |")
    print("|---|---|---|---|---|---|")
    mb = np.arange(N_MAIN_BELT + N_NEO) < N_MAIN_BELT
    for (offset, u), f in out.items():
        pct = [100 * np.mean(x[:, m]) for x in (f["two_body"] > 1, f["refreshed"] > 1, f["radius_miss"])
               for m in (mb, ~mb)]
        print(f"| {offset:.0f} | {u} | {pct[0]:.0f} / {pct[1]:.0f} % | {pct[2]:.0f} / {pct[3]:.0f} % | "
              f"{pct[4]:.1f} / {pct[5]:.0f} % | {np.median(f['radius'][:, mb]):.2f} / "
              f"{np.median(f['radius'][:, ~mb]):.1f} |")
    return out


def _fraction(failures, offset, u, key, main_belt=True) -> float:
    mask = np.arange(N_MAIN_BELT + N_NEO) < N_MAIN_BELT
    values = failures[offset, u][key]
    values = values > 1.0 if values.dtype != bool else values
    return float(np.mean(values[:, mask if main_belt else ~mask]))


def test_stale_elements_miss_main_belt_asteroids_at_every_u_until_refreshed(failures):
    assert _fraction(failures, 150.0, 0, "two_body") == 1.0
    assert _fraction(failures, 30.0, 0, "two_body") == 0.0
    for offset in (30.0, 150.0):
        assert _fraction(failures, offset, 0, "refreshed") == 0.0
        assert _fraction(failures, offset, 1, "refreshed") == 0.0


def test_uncertain_orbits_miss_the_1_arcsec_radius_even_after_the_refresh(failures):
    assert _fraction(failures, 150.0, 3, "refreshed") > 0.4
    assert _fraction(failures, 30.0, 4, "refreshed") > 0.4
    for u in range(5, 10):
        assert _fraction(failures, 150.0, u, "refreshed") > 0.95


def test_the_u_radius_recovers_main_belt_orbits_up_to_u3_at_five_months(failures):
    for u in range(4):
        assert _fraction(failures, 150.0, u, "radius_miss") <= 0.02
        assert _fraction(failures, 30.0, u, "radius_miss") == 0.0
    # well-known orbits keep 1": the radius only grows where the orbit is uncertain
    assert np.median(failures[150.0, 0]["radius"][:, :N_MAIN_BELT]) < 1.05
    assert np.all(failures[150.0, 9]["radius"] == 10.0)

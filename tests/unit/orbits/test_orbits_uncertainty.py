"""Orbit uncertainty: U's runoff bands, the along-track error it implies, the match radius."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from alertprod.errors import OrbitError
from alertprod.orbits import read_mpcorb
from alertprod.orbits.uncertainty import (
    BASE_RADIUS_ARCSEC,
    CAP_RADIUS_ARCSEC,
    DECADE_DAYS,
    along_track_sigma_arcsec,
    match_radius_arcsec,
    orbit_reference_mjd,
    runoff_arcsec_per_decade,
    uncertainty_parameter,
)

# Published MPCORB.DAT record (MPC, epoch 2025 Nov. 21.0 TT), verbatim: U 0, last obs 2026-01-03.
CERES = ("00001    3.34  0.15 K25BL 231.53974   73.29974   80.24964   10.58789  0.0795764  "
         "0.21429712   2.7656157  0 MPO980521  7297 126 1801-2026 0.83 M-v 30k Veres      "
         "4000      (1) Ceres              20260103")


def _mpc_u(runoff: np.ndarray) -> np.ndarray:
    """The MPC's own rule: U = INT(ln RUNOFF / (ln 648000 / 9)) + 1, clipped to 0-9."""
    return np.clip(np.floor(np.log(runoff) / (np.log(648000.0) / 9.0)).astype(int) + 1, 0, 9)


def test_runoff_bands_are_the_mpcs_u_definition():
    u = np.arange(10)
    lower, upper = runoff_arcsec_per_decade(u, edge="lower"), runoff_arcsec_per_decade(u)
    assert upper[0] == pytest.approx(1.0) and upper[9] == pytest.approx(648000.0)
    assert np.allclose(upper[:-1], lower[1:]) and np.all(np.diff(upper) > 0)
    inside = np.sqrt(lower * upper)  # the middle of each band, geometrically
    assert np.array_equal(_mpc_u(inside[1:]), u[1:])
    assert _mpc_u(np.array([0.5]))[0] == 0


def test_along_track_error_grows_linearly_from_the_orbits_determination():
    assert along_track_sigma_arcsec(3, 0.0) == 0.0
    ten_years = along_track_sigma_arcsec(np.arange(10), DECADE_DAYS)
    assert np.allclose(ten_years, runoff_arcsec_per_decade(np.arange(10)))
    assert along_track_sigma_arcsec(2, -150.0) == pytest.approx(along_track_sigma_arcsec(2, 150.0))
    assert along_track_sigma_arcsec(2, 300.0) == pytest.approx(2 * along_track_sigma_arcsec(2, 150.0))


def test_sky_error_is_the_orbit_displacement_seen_from_the_observer():
    helio = along_track_sigma_arcsec(4, 150.0)
    # main belt at opposition: r/Δ = 2.5/1.5; a near-Earth object 0.05 au away: 20 times its angle
    assert along_track_sigma_arcsec(4, 150.0, r_au=2.5, delta_au=1.5) == pytest.approx(helio * 2.5 / 1.5)
    assert along_track_sigma_arcsec(4, 150.0, r_au=1.0, delta_au=0.05) == pytest.approx(helio * 20.0)
    # an eccentric orbit at perihelion moves faster than a circular one: v/n = a sqrt(2a/r - 1)
    ecc = along_track_sigma_arcsec(4, 150.0, r_au=1.0, delta_au=1.0, a_au=2.0)
    assert ecc == pytest.approx(helio * 2.0 * np.sqrt(3.0))


def test_well_known_orbits_keep_the_1_arcsec_radius():
    # U 0 at five months, main belt at opposition: 3-sigma of 0.07" adds nothing that matters
    r = match_radius_arcsec(0, 150.0, r_au=2.5, delta_au=1.5)
    assert BASE_RADIUS_ARCSEC <= r < 1.03
    assert match_radius_arcsec(5, 0.0, r_au=2.5, delta_au=1.5) == BASE_RADIUS_ARCSEC


def test_radius_grows_with_u_and_time_and_stops_at_the_cap():
    u = np.arange(10)[:, None]
    dt = np.array([10.0, 30.0, 150.0, 365.0])[None, :]
    r = match_radius_arcsec(u, dt, r_au=2.5, delta_au=1.5)
    assert r.shape == (10, 4)
    assert np.all(np.diff(r, axis=0) >= 0) and np.all(np.diff(r, axis=1) >= 0)
    assert np.all((r >= BASE_RADIUS_ARCSEC) & (r <= CAP_RADIUS_ARCSEC))
    assert r[9, 0] == CAP_RADIUS_ARCSEC and r[0, 0] == pytest.approx(1.0, abs=1e-3)
    # U 2 after five months: 3 x 0.8" x 1.67 = 4"
    assert r[2, 2] == pytest.approx(np.hypot(1.0, 3 * 19.6 * 150 / DECADE_DAYS * 2.5 / 1.5), rel=0.01)
    assert match_radius_arcsec(6, 150.0, cap_arcsec=30.0) == 30.0


@pytest.mark.parametrize("kwargs, match", [
    (dict(u=10, dt_days=1.0), "u"),
    (dict(u=-1, dt_days=1.0), "u"),
    (dict(u=2.5, dt_days=1.0), "u"),
    (dict(u=np.nan, dt_days=1.0), "u"),
    (dict(u="3", dt_days=1.0), "u"),
    (dict(u=2, dt_days=1.0, r_au=1.0), "r_au"),
    (dict(u=2, dt_days=1.0, r_au=1.0, delta_au=0.0), "positive"),
    (dict(u=2, dt_days=1.0, cap_arcsec=0.5), "cap"),
    (dict(u=2, dt_days=1.0, n_sigma=-1.0), "n_sigma"),
])
def test_bad_arguments_are_refused_naming_them(kwargs, match):
    with pytest.raises(OrbitError, match=match):
        match_radius_arcsec(**kwargs)


def test_u_and_last_observation_come_from_the_mpcorb_columns():
    cat = read_mpcorb(CERES + "\n")
    assert uncertainty_parameter(cat).tolist() == [0]
    assert orbit_reference_mjd(cat).tolist() == [61043.0]  # 2026-01-03
    for info, u in (("  5 MPO1", 5), ("  E MPO1", 9), ("", 9), ("  ", 9)):
        assert uncertainty_parameter(dataclasses.replace(cat, mpc_info=np.array([info]))).tolist() == [u]
    no_obs = dataclasses.replace(cat, last_obs=np.array([""]))
    assert orbit_reference_mjd(no_obs).tolist() == [cat.epoch_mjd[0]]
    bad_date = dataclasses.replace(cat, last_obs=np.array(["20261399"]))
    assert orbit_reference_mjd(bad_date).tolist() == [cat.epoch_mjd[0]]


def test_a_refreshed_catalog_keeps_growing_its_uncertainty_from_the_observations():
    from alertprod.orbits import osculating_elements_at

    cat = read_mpcorb(CERES + "\n")
    fresh = osculating_elements_at(cat, 61060.0)
    assert fresh.epoch_mjd[0] == 61060.0
    assert orbit_reference_mjd(fresh).tolist() == [61043.0]
    assert uncertainty_parameter(fresh).tolist() == [0]


def test_prediction_uncertainty_keeps_the_base_radius_for_blank_u_and_widens_for_stated_u():
    from alertprod.orbits.uncertainty import prediction_uncertainty, u_is_stated

    cat = read_mpcorb(CERES + "\n")
    rows = [dataclasses.replace(cat, mpc_info=np.array([info])) for info in
            ("  0 MPO1", "  2 MPO1", "  E MPO1", "", "  ")]
    both = type(cat).concatenate(rows)
    assert u_is_stated(both).tolist() == [True, True, True, False, False]
    t = 61043.0 + 150.0  # five months after the last observation
    unc = prediction_uncertainty(both, t, np.full(5, 2.8), np.full(5, 1.8), base_arcsec=1.0)
    assert unc.u.tolist() == [0, 2, 9, -1, -1]
    assert unc.radius_arcsec[0] == pytest.approx(1.0, abs=0.05)
    assert 2.0 < unc.radius_arcsec[1] < 10.0
    assert unc.radius_arcsec[2] == 10.0  # a letter: the cap
    assert unc.radius_arcsec[3:].tolist() == [1.0, 1.0] and unc.sigma_arcsec[3:].tolist() == [0, 0]
    with pytest.raises(OrbitError, match="r_au, delta_au"):
        prediction_uncertainty(both, t, np.ones(4), np.ones(5))

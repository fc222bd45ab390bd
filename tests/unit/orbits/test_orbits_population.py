"""Synthetic orbits through chosen fields: the simulator's asteroids land where they were put."""

import astropy.units as u
import numpy as np
import pytest
from astropy.coordinates import SkyCoord

from alertprod.errors import OrbitError
from alertprod.orbits import (
    orbit_through,
    predict_positions,
    predict_positions_many,
    provisional_designations,
    read_mpcorb,
    write_mpcorb,
)

RUBIN = {"obs_lon_deg": -70.749417, "obs_lat_deg": -30.244639, "obs_height_m": 2663.0}
T0_TAI = 61000.3


def _sep_arcsec(ra1, dec1, ra2, dec2):
    return SkyCoord(ra1 * u.deg, dec1 * u.deg).separation(SkyCoord(ra2 * u.deg, dec2 * u.deg)).arcsec


@pytest.mark.parametrize("kind", ["main-belt", "neo"])
def test_constructed_orbit_is_at_the_requested_position_within_0p01_arcsec(kind):
    rng = np.random.default_rng(21)
    n = 50
    ra = rng.uniform(0, 360, n)
    dec = rng.uniform(-80, 80, n)
    delta = rng.uniform(0.05, 3.0, n)
    cat = orbit_through(ra, dec, T0_TAI, geocentric_distance_au=delta, rng=rng, kind=kind,
                        v_mag=21.0, **RUBIN)
    assert len(cat) == n and np.all(cat.e < 1.0) and np.all(cat.a > 0.0)
    np.testing.assert_allclose(cat.epoch_mjd, T0_TAI + 32.184 / 86400, atol=2e-8)  # TT
    eph = predict_positions(cat, T0_TAI, **RUBIN)
    assert np.max(_sep_arcsec(ra, dec, eph.ra_deg, eph.dec_deg)) < 0.01
    np.testing.assert_allclose(eph.delta_au, delta, rtol=1e-9)
    np.testing.assert_allclose(eph.v_mag, 21.0, atol=1e-9)


def test_main_belt_velocities_give_main_belt_like_orbits_at_opposition():
    rng = np.random.default_rng(22)
    # Opposition in late November: the anti-Sun direction is near RA 60°, Dec +20°.
    cat = orbit_through(np.full(200, 59.0), np.full(200, 20.0), T0_TAI,
                        geocentric_distance_au=1.6, rng=rng, **RUBIN)
    assert np.median(cat.e) < 0.15
    assert np.median(cat.i) < 15.0
    assert 2.0 < np.median(cat.a) < 3.5
    eph = predict_positions(cat, T0_TAI, **RUBIN)
    # Main-belt asteroids near opposition move retrograde at ~0.2-0.3 deg/day.
    assert np.median(eph.ra_rate_deg_per_day) < -0.1


def test_requested_sky_rate_is_reproduced():
    rng = np.random.default_rng(23)
    rates = np.array([0.05, 0.25, 1.0, 3.0])
    cat = orbit_through(np.array([10.0, 100.0, 200.0, 300.0]), np.array([-5.0, 20.0, -40.0, 5.0]),
                        T0_TAI, geocentric_distance_au=np.array([2.0, 1.0, 0.3, 0.05]),
                        rate_deg_per_day=rates, rng=rng, kind="neo", **RUBIN)
    eph = predict_positions(cat, T0_TAI, **RUBIN)
    np.testing.assert_allclose(np.hypot(eph.ra_rate_deg_per_day, eph.dec_rate_deg_per_day),
                               rates, rtol=1e-6)


def test_orbit_written_to_mpcorb_still_predicts_the_position_within_the_association_radius():
    rng = np.random.default_rng(24)
    ra, dec = rng.uniform(0, 360, 30), rng.uniform(-60, 30, 30)
    cat = orbit_through(ra, dec, T0_TAI, geocentric_distance_au=rng.uniform(0.5, 2.5, 30),
                        rng=rng, **RUBIN)
    back = read_mpcorb(write_mpcorb(cat, header=True))
    assert list(back.packed_designation) == list(cat.packed_designation)
    eph = predict_positions_many(back, np.array([T0_TAI, T0_TAI + 1.0]), **RUBIN)
    exact = predict_positions(cat, T0_TAI + 1.0, **RUBIN)
    # Written precision (1e-5 deg angles, 1e-7 au) costs < 0.2″, far below the 1″ radius.
    assert np.max(_sep_arcsec(ra, dec, eph.ra_deg[0], eph.dec_deg[0])) < 0.2
    assert np.max(_sep_arcsec(exact.ra_deg, exact.dec_deg, eph.ra_deg[1], eph.dec_deg[1])) < 0.2


def test_designations_are_unique_packed_provisional_of_the_half_month():
    names = provisional_designations(T0_TAI, 60, first_index=10)
    assert len(set(names)) == 60
    assert names[0] == "K25W00L"  # 2025 Nov 21 is in half-month W; index 10 is letter L
    assert names[15] == "K25W01A"  # every 25 letters the cycle count goes up
    more = provisional_designations(T0_TAI, 5, first_index=70)
    assert not set(more) & set(names)


def test_invalid_inputs_are_refused_naming_the_argument():
    rng = np.random.default_rng(25)
    with pytest.raises(OrbitError, match="geocentric_distance_au"):
        orbit_through(10.0, 0.0, T0_TAI, geocentric_distance_au=-1.0, rng=rng, **RUBIN)
    with pytest.raises(OrbitError, match="kind"):
        orbit_through(10.0, 0.0, T0_TAI, geocentric_distance_au=1.0, rng=rng, kind="comet",
                      **RUBIN)
    with pytest.raises(OrbitError, match="rate_deg_per_day"):
        orbit_through(10.0, 0.0, T0_TAI, geocentric_distance_au=1.0, rng=rng,
                      rate_deg_per_day=50.0, **RUBIN)

"""Topocentric light-time-corrected ephemerides, checked against astropy's planetary ephemeris."""

import astropy.units as u
import numpy as np
import pytest
from astropy.coordinates import (
    EarthLocation,
    SkyCoord,
    get_body,
    get_body_barycentric,
    get_body_barycentric_posvel,
    solar_system_ephemeris,
)
from astropy.time import Time

from alertprod.orbits import (
    OrbitCatalog,
    StateVector,
    elements_to_state,
    orbit_through,
    predict_positions,
    predict_positions_many,
    read_mpcorb,
    select_near,
    state_to_elements,
)
from alertprod.orbits.ephemeris import hg_magnitude, observer_states
from alertprod.orbits.kepler import (
    SPEED_OF_LIGHT_AU_PER_DAY,
    ecliptic_to_equatorial,
    equatorial_to_ecliptic,
)

RUBIN = {"obs_lon_deg": -70.749417, "obs_lat_deg": -30.244639, "obs_height_m": 2663.0}
MAUNA_KEA = {"obs_lon_deg": -155.4681, "obs_lat_deg": 19.8206, "obs_height_m": 4205.0}
T0_TAI = 61000.0
EROS = ("00433   10.38  0.15 K25BL 310.55432  178.92978  304.27008   10.82847  0.2228360  "
        "0.55977529   1.4581210  0 E2025-YE5 16519  59 1893-2025 0.52 M-v 3Ek MPCORBFIT  "
        "1804    (433) Eros               20251222")


def _sep_arcsec(ra1, dec1, ra2, dec2):
    return SkyCoord(ra1 * u.deg, dec1 * u.deg).separation(SkyCoord(ra2 * u.deg, dec2 * u.deg)).arcsec


def _radec(vec):
    return (np.rad2deg(np.arctan2(vec[..., 1], vec[..., 0])) % 360.0,
            np.rad2deg(np.arctan2(vec[..., 2], np.hypot(vec[..., 0], vec[..., 1]))))


@pytest.fixture(scope="module")
def mars_catalog():
    """Mars's osculating heliocentric elements at T0, from astropy's builtin ephemeris."""
    t = Time(T0_TAI, format="mjd", scale="tai").tdb
    with solar_system_ephemeris.set("builtin"):
        mp, mv = get_body_barycentric_posvel("mars", t)
        sp, sv = get_body_barycentric_posvel("sun", t)
    pos = equatorial_to_ecliptic((mp.xyz - sp.xyz).to_value(u.au))[None]
    vel = equatorial_to_ecliptic((mv.xyz - sv.xyz).to_value(u.au / u.day))[None]
    elements = state_to_elements(StateVector(pos, vel), t.mjd)
    return OrbitCatalog.from_elements(elements, ["K25W00A"], h=-1.5)


def _astropy_astrometric_mars(mjd_tai, site):
    """Reference: astropy's Mars at t − τ seen from the site at t, light time iterated."""
    observer = observer_states(np.array([mjd_tai]), **site).observer_pos_au[0]
    t = Time(mjd_tai, format="mjd", scale="tai")
    tau = 0.0
    with solar_system_ephemeris.set("builtin"):
        for _ in range(4):
            rho = get_body_barycentric("mars", t - tau * u.day).xyz.to_value(u.au) - observer
            tau = np.linalg.norm(rho) / SPEED_OF_LIGHT_AU_PER_DAY
    return rho


def test_mars_elements_reproduce_astropy_mars_over_sixty_days(mars_catalog):
    offsets = np.array([-30.0, -10.0, 0.0, 10.0, 30.0])
    eph = predict_positions_many(mars_catalog, T0_TAI + offsets, **RUBIN)
    assert eph.ra_deg.shape == (5, 1)
    for k, dt in enumerate(offsets):
        rho = _astropy_astrometric_mars(T0_TAI + dt, RUBIN)
        ra, dec = _radec(rho)
        sep = _sep_arcsec(ra, dec, eph.ra_deg[k, 0], eph.dec_deg[k, 0])
        # Same frame and light time: milli-arcseconds at the epoch; planetary perturbations
        # that a two-body orbit ignores grow to ~1.5″ after a month.
        assert sep < (0.005 if dt == 0 else 2.0), (dt, sep)
        assert eph.delta_au[k, 0] == pytest.approx(np.linalg.norm(rho), rel=1e-5)


def test_mars_agrees_with_astropy_get_body_to_annual_aberration(mars_catalog):
    """Independent check: astropy's apparent GCRS Mars differs only by aberration (~20″)."""
    location = EarthLocation.from_geodetic(RUBIN["obs_lon_deg"] * u.deg,
                                           RUBIN["obs_lat_deg"] * u.deg,
                                           RUBIN["obs_height_m"] * u.m)
    eph = predict_positions(mars_catalog, T0_TAI, **RUBIN)
    with solar_system_ephemeris.set("builtin"):
        apparent = get_body("mars", Time(T0_TAI, format="mjd", scale="tai"), location)
    sep = _sep_arcsec(apparent.ra.deg, apparent.dec.deg, eph.ra_deg[0], eph.dec_deg[0])
    assert 5.0 < sep < 30.0


def test_position_is_the_geometric_position_at_t_minus_light_time(mars_catalog):
    eph = predict_positions(mars_catalog, T0_TAI, **RUBIN)
    states = observer_states(np.array([T0_TAI]), **RUBIN)
    tau = eph.delta_au[0] / SPEED_OF_LIGHT_AU_PER_DAY
    t = Time(T0_TAI, format="mjd", scale="tai").tdb
    with solar_system_ephemeris.set("builtin"):
        sun_then = get_body_barycentric("sun", t - tau * u.day).xyz.to_value(u.au)
        sun_now = get_body_barycentric("sun", t).xyz.to_value(u.au)
    observer = states.observer_pos_au[0]
    mjd_tdb = states.mjd_tdb[0]
    helio_then = ecliptic_to_equatorial(
        elements_to_state(mars_catalog.elements, mjd_tdb - tau).pos_au[0])
    helio_now = ecliptic_to_equatorial(elements_to_state(mars_catalog.elements, mjd_tdb).pos_au[0])
    ra, dec = _radec(sun_then + helio_then - observer)
    assert _sep_arcsec(ra, dec, eph.ra_deg[0], eph.dec_deg[0]) < 1e-3
    ra_geo, dec_geo = _radec(sun_now + helio_now - observer)
    # Without the correction the position would be off by (relative motion) × τ: ≫ 1″ for Mars.
    assert _sep_arcsec(ra_geo, dec_geo, eph.ra_deg[0], eph.dec_deg[0]) > 5.0


def test_topocentric_parallax_of_a_near_earth_object_at_0p01_au():
    rng = np.random.default_rng(11)
    neo = orbit_through(40.0, 10.0, T0_TAI, geocentric_distance_au=0.01, rng=rng, kind="neo",
                        **RUBIN)
    at_rubin = predict_positions(neo, T0_TAI, **RUBIN)
    at_mauna_kea = predict_positions(neo, T0_TAI, **MAUNA_KEA)
    t = Time(T0_TAI, format="mjd", scale="tai")
    sites = [EarthLocation.from_geodetic(s["obs_lon_deg"] * u.deg, s["obs_lat_deg"] * u.deg,
                                         s["obs_height_m"] * u.m) for s in (RUBIN, MAUNA_KEA)]
    gcrs = [s.get_gcrs_posvel(t)[0].xyz.to_value(u.au) for s in sites]
    baseline = gcrs[1] - gcrs[0]
    u_hat = np.array([np.cos(np.deg2rad(10.0)) * np.cos(np.deg2rad(40.0)),
                      np.cos(np.deg2rad(10.0)) * np.sin(np.deg2rad(40.0)), np.sin(np.deg2rad(10.0))])
    perpendicular = np.linalg.norm(baseline - baseline.dot(u_hat) * u_hat)
    expected_arcsec = np.rad2deg(perpendicular / 0.01) * 3600
    observed = _sep_arcsec(at_rubin.ra_deg[0], at_rubin.dec_deg[0],
                           at_mauna_kea.ra_deg[0], at_mauna_kea.dec_deg[0])
    assert expected_arcsec > 300.0  # thousands of km over 0.01 au: several arcminutes
    assert observed == pytest.approx(expected_arcsec, rel=0.01)


def test_rates_match_finite_differences_of_positions():
    eros = read_mpcorb(EROS)
    h = 1e-3
    eph = predict_positions_many(eros, np.array([T0_TAI - h, T0_TAI, T0_TAI + h]), **RUBIN)
    dra = ((eph.ra_deg[2, 0] - eph.ra_deg[0, 0] + 180) % 360 - 180) / (2 * h)
    ddec = (eph.dec_deg[2, 0] - eph.dec_deg[0, 0]) / (2 * h)
    assert eph.ra_rate_deg_per_day[1, 0] == pytest.approx(
        dra * np.cos(np.deg2rad(eph.dec_deg[1, 0])), rel=1e-3)
    assert eph.dec_rate_deg_per_day[1, 0] == pytest.approx(ddec, rel=1e-3)


def test_many_epochs_equal_single_epoch_predictions():
    eros = read_mpcorb(EROS)
    two = OrbitCatalog.concatenate([eros, eros])
    epochs = np.array([T0_TAI - 20.3, T0_TAI + 0.1, T0_TAI + 45.7])
    many = predict_positions_many(two, epochs, **RUBIN, max_rows=2)  # one epoch per chunk
    for k, mjd in enumerate(epochs):
        one = predict_positions(two, mjd, **RUBIN)
        for name in ("ra_deg", "dec_deg", "delta_au", "v_mag", "ra_rate_deg_per_day"):
            np.testing.assert_allclose(getattr(many, name)[k], getattr(one, name), rtol=1e-12)
    assert many.mjd_tai[:, 0].tolist() == epochs.tolist()
    assert np.all(many.ss_object_id == eros.ss_object_ids[0])


def test_unbound_orbit_is_flagged_nan_without_spoiling_the_others():
    cat = OrbitCatalog.concatenate([read_mpcorb(EROS), read_mpcorb(EROS)])
    cat.e[1] = 1.2
    eph = predict_positions(cat, T0_TAI, **RUBIN)
    assert np.isfinite(eph.ra_deg[0]) and np.isnan(eph.ra_deg[1]) and np.isnan(eph.v_mag[1])


def test_select_near_finds_objects_in_a_field_across_ra_zero():
    eros = read_mpcorb(EROS)
    eph = predict_positions(OrbitCatalog.concatenate([eros] * 3), T0_TAI, **RUBIN)
    eph = eph._replace(ra_deg=np.array([359.9, 0.15, 10.0]), dec_deg=np.array([0.0, 0.0, 0.0]))
    mask = select_near(eph, 0.0, 0.0, 0.2)
    assert mask.tolist() == [True, True, False]
    assert eph.select(mask).ra_deg.tolist() == [359.9, 0.15]


def test_hg_magnitude_at_zero_phase_is_h_plus_distance_modulus():
    assert hg_magnitude(10.0, 0.15, 2.0, 1.0, 0.0) == pytest.approx(10.0 + 5 * np.log10(2.0))
    # Fainter with phase: the opposition surge.
    assert hg_magnitude(10.0, 0.15, 2.0, 1.0, 20.0) > hg_magnitude(10.0, 0.15, 2.0, 1.0, 5.0)

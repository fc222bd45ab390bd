"""Two-body mechanics: Kepler's equation, elements ↔ state vectors, propagation, frames."""

import numpy as np
import pytest

from alertprod.errors import OrbitError
from alertprod.orbits.kepler import (
    GM_SUN_AU3_PER_DAY2,
    Elements,
    StateVector,
    ecliptic_to_equatorial,
    elements_to_state,
    equatorial_to_ecliptic,
    propagate,
    solve_kepler,
    state_to_elements,
)


def _random_elements(rng, n, e_max=0.95):
    return Elements(a_au=rng.uniform(0.5, 40.0, n), e=rng.uniform(0.0, e_max, n),
                    i_deg=rng.uniform(0.5, 170.0, n), node_deg=rng.uniform(0, 360, n),
                    argperi_deg=rng.uniform(0, 360, n), mean_anomaly_deg=rng.uniform(0, 360, n),
                    epoch_mjd=np.full(n, 61000.0))


def _angle_diff_deg(a, b):
    return np.abs((np.asarray(a) - np.asarray(b) + 180.0) % 360.0 - 180.0)


def test_kepler_equation_residual_below_1e12_up_to_e_0p99():
    rng = np.random.default_rng(1)
    m = rng.uniform(-10 * np.pi, 10 * np.pi, 200_000)
    e = np.concatenate([rng.uniform(0.0, 0.99, 199_990), np.full(10, 0.99)])
    m[:10] = [0.0, 1e-9, -1e-9, np.pi, -np.pi, 1e-3, 2 * np.pi, 3.0, 0.5, 6.0]
    big_e = solve_kepler(m, e)
    m_reduced = np.remainder(m + np.pi, 2 * np.pi) - np.pi
    residual = big_e - e * np.sin(big_e) - m_reduced
    assert np.max(np.abs(residual)) < 1e-12


def test_kepler_rejects_unbound_eccentricity():
    with pytest.raises(OrbitError, match="e:"):
        solve_kepler(np.array([1.0]), np.array([1.0]))


def test_elements_state_elements_round_trip():
    rng = np.random.default_rng(2)
    el = _random_elements(rng, 2000)
    state = elements_to_state(el)
    back = state_to_elements(state, el.epoch_mjd)
    np.testing.assert_allclose(back.a_au, el.a_au, rtol=1e-10)
    np.testing.assert_allclose(back.e, el.e, atol=1e-10)
    np.testing.assert_allclose(back.i_deg, el.i_deg, atol=1e-8)
    assert np.max(_angle_diff_deg(back.node_deg, el.node_deg)) < 1e-8
    # Perihelion and mean anomaly are ill-defined as e → 0; their sum (the mean longitude
    # from the node) is always defined.
    well = el.e > 1e-3
    assert np.max(_angle_diff_deg(back.argperi_deg[well], el.argperi_deg[well])) < 1e-6
    assert np.max(_angle_diff_deg(back.argperi_deg + back.mean_anomaly_deg,
                                  el.argperi_deg + el.mean_anomaly_deg)) < 1e-7


def test_circular_orbit_speed_is_sqrt_gm_over_r():
    n = 50
    rng = np.random.default_rng(3)
    a = rng.uniform(0.3, 50.0, n)
    el = Elements(a, np.zeros(n), rng.uniform(0, 90, n), rng.uniform(0, 360, n),
                  rng.uniform(0, 360, n), rng.uniform(0, 360, n), np.zeros(n))
    state = elements_to_state(el, np.array([0.0, 123.4])[:, None])
    r = np.linalg.norm(state.pos_au, axis=-1)
    speed = np.linalg.norm(state.vel_au_per_day, axis=-1)
    np.testing.assert_allclose(r, np.broadcast_to(a, r.shape), rtol=1e-12)
    np.testing.assert_allclose(speed, np.sqrt(GM_SUN_AU3_PER_DAY2 / r), rtol=1e-12)
    # Velocity perpendicular to the radius on a circular orbit.
    cos = np.einsum("...k,...k->...", state.pos_au, state.vel_au_per_day) / (r * speed)
    assert np.max(np.abs(cos)) < 1e-12


def test_earth_like_orbit_returns_after_one_sidereal_year():
    el = Elements(np.array([1.0]), np.array([0.0167]), np.array([0.0]), np.array([0.0]),
                  np.array([102.9]), np.array([10.0]), np.array([61000.0]))
    period_days = 2 * np.pi / 0.01720209895
    start = elements_to_state(el, 61000.0).pos_au
    after = elements_to_state(el, 61000.0 + period_days).pos_au
    np.testing.assert_allclose(after, start, atol=1e-12)
    assert period_days == pytest.approx(365.2568983, abs=1e-6)


def test_propagate_moves_only_the_mean_anomaly_consistently():
    rng = np.random.default_rng(4)
    el = _random_elements(rng, 100)
    moved = propagate(el, 61234.5)
    np.testing.assert_allclose(elements_to_state(moved, 61300.0).pos_au,
                               elements_to_state(el, 61300.0).pos_au, atol=1e-11)


def test_state_to_elements_rejects_hyperbolic_state():
    state = StateVector(np.array([[1.0, 0.0, 0.0]]), np.array([[0.0, 0.03, 0.0]]))
    with pytest.raises(OrbitError, match="unbound"):
        state_to_elements(state, 61000.0)


def test_ecliptic_pole_is_at_obliquity_from_the_celestial_pole():
    pole = ecliptic_to_equatorial(np.array([0.0, 0.0, 1.0]))
    assert np.rad2deg(np.arccos(pole[2])) * 3600 == pytest.approx(84381.448, abs=1e-6)
    # The ecliptic pole lies at RA 18h.
    assert np.rad2deg(np.arctan2(pole[1], pole[0])) % 360 == pytest.approx(270.0)
    v = np.random.default_rng(5).normal(size=(10, 3))
    np.testing.assert_allclose(equatorial_to_ecliptic(ecliptic_to_equatorial(v)), v, atol=1e-15)

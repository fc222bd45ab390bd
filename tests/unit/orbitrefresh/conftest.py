"""Fixtures of the orbit-refresh tests: orbits whose elements are 150 days old, a night, truth.

The base catalogs hold MPC-style elements at a whole TT day 150 days before the night (what
MPCORB.DAT gives for months), written to MPCORB.DAT text and read back, as a deployment loads
them. "Truth" is the n-body prediction from those same elements
(:func:`alertprod.orbits.predict_positions_nbody`, ≤ 0.035″ from JPL Horizons over 470 days).
"""

from __future__ import annotations

import numpy as np
import pytest
from astropy.coordinates import angular_separation
from refresh_orbits import BASE_EPOCH, NIGHT, SITE

from alertprod.orbits import (
    OrbitCatalog,
    orbit_through,
    osculating_elements_at,
    predict_positions_nbody,
    read_mpcorb,
    write_mpcorb,
)


def _aged(catalog: OrbitCatalog) -> str:
    """MPCORB.DAT text of the orbits moved (n-body) to the base epoch."""
    return write_mpcorb(osculating_elements_at(catalog, BASE_EPOCH), header=True)


@pytest.fixture(scope="session")
def main_belt_text() -> str:
    """MPCORB.DAT of 24 main-belt asteroids 1.2–2.6 au away during the night, elements 150 d old."""
    rng = np.random.default_rng(11)
    n = 24
    now = orbit_through(rng.uniform(0, 360, n), rng.uniform(-40, 30, n), NIGHT + 1.2,
                        geocentric_distance_au=rng.uniform(1.2, 2.6, n), kind="main-belt",
                        rng=rng, **SITE)
    return _aged(now)


@pytest.fixture(scope="session")
def approacher_text() -> str:
    """MPCORB.DAT of one NEO that passes 0.01 au from the observatory during the night
    (at N + 1.1), elements 150 days old, and of a main-belt object beside it."""
    rng = np.random.default_rng(5)
    neo = orbit_through(200.0, -20.0, NIGHT + 1.1, geocentric_distance_au=0.01, kind="neo",
                        rng=rng, **SITE)
    mb = orbit_through(201.0, -21.0, NIGHT + 1.1, geocentric_distance_au=1.8, kind="main-belt",
                       rng=rng, first_index=1, **SITE)
    return _aged(OrbitCatalog.concatenate([neo, mb]))


@pytest.fixture(scope="session")
def truth():
    """``truth(catalog, mjd_tai)``: n-body positions (Ephemeris, shape (m, n))."""

    def predict(catalog: OrbitCatalog, mjd_tai):
        return predict_positions_nbody(catalog, np.atleast_1d(mjd_tai), **SITE)

    return predict


@pytest.fixture(scope="session")
def separation():
    """``separation(a, b)``: separation (″) of the positions of two Ephemeris (same shape)."""

    def arcsec(a, b) -> np.ndarray:
        rad = [np.deg2rad(np.asarray(x, float)) for x in (a.ra_deg, a.dec_deg, b.ra_deg, b.dec_deg)]
        return np.rad2deg(angular_separation(*rad)) * 3600.0

    return arcsec


@pytest.fixture(scope="session")
def base_catalogs(main_belt_text, approacher_text):
    """The two base catalogs as read back from their text."""
    return read_mpcorb(main_belt_text), read_mpcorb(approacher_text)

"""A CCD's asteroid matching with the nightly orbit refresh, and without it.

The asteroid's MPC elements are 150 days old; its DiaSource sits where it truly is (the
n-body prediction from those elements). Predicted two-body from the base elements it is
arcseconds away and the 1″ association misses it (a new DiaObject is made of it); with the
night's refreshed catalog it is matched.
"""

from __future__ import annotations

import numpy as np
import pytest
from astropy.coordinates import angular_separation

from alertprod.formats import RUBIN_SITE
from alertprod.orbitrefresh import night_of, run_refresh_inline
from alertprod.orbits import (
    osculating_elements_at,
    predict_positions,
    predict_positions_nbody,
    read_mpcorb,
    write_mpcorb,
)

pytestmark = pytest.mark.unit

T1 = 60000.10  # the visit of the ``asteroid`` fixture
SITE = {"obs_lon_deg": RUBIN_SITE[0], "obs_lat_deg": RUBIN_SITE[1], "obs_height_m": RUBIN_SITE[2]}


@pytest.fixture(scope="module")
def aged(asteroid):
    """MPCORB.DAT of the asteroid with elements 150 days before ``T1``, and where it is at T1."""
    text = write_mpcorb(osculating_elements_at(asteroid, float(np.round(T1)) - 150.0), header=True)
    truth = predict_positions_nbody(read_mpcorb(text), T1, **SITE)
    return text, (float(truth.ra_deg[0, 0]), float(truth.dec_deg[0, 0]))


def test_stale_elements_miss_the_asteroid_by_arcseconds(aged):
    text, (ra, dec) = aged
    two_body = predict_positions(read_mpcorb(text), T1, **SITE)
    off = np.rad2deg(angular_separation(*np.deg2rad([two_body.ra_deg[0], two_body.dec_deg[0],
                                                      ra, dec]))) * 3600
    assert off > 1.5


@pytest.mark.parametrize("refreshed", [False, True])
def test_asteroid_is_matched_only_with_the_nights_refresh(sky, new_deployment, aged, refreshed):
    text, (ra, dec) = aged
    deployment = new_deployment()
    pipeline = deployment.pipeline()
    pipeline.load_orbits(text.encode())
    if refreshed:  # what the 12:00 UTC schedule did before the night
        report = run_refresh_inline(deployment.level1.apdb, deployment.archive,
                                    night_mjd=night_of(T1))
        assert report.status == "refreshed" and report.orbits == 1
    result = pipeline.process_ccd(deployment.validated(sky.upload(1, 0, T1,
                                                                  [(ra, dec, 5000.0, True)])))
    night = night_of(T1)
    if refreshed:
        assert result.counts["ssoMatches"] == 1 and result.counts["newDiaObjects"] == 0
        assert not any(w.startswith("orbit_refresh") for w in result.warnings)
    else:
        assert result.counts["ssoMatches"] == 0 and result.counts["newDiaObjects"] == 1
        assert f"orbit_refresh_missing:{night}" in result.warnings

"""The refresh's science: orbits integrated to the night, and the rule for close approachers.

Elements 150 days old (conftest) predict main-belt asteroids arcseconds off; refreshed to the
night, two-body predictions hold to ≪ 0.05″ over the whole night. An Earth-approacher passing
0.01 au from the observatory during the night is flagged by the NEO rule and, integrated to
each exposure, is predicted within 0.05″ too; two-body from the night's elements alone would
miss it by arcseconds.
"""

from __future__ import annotations

import numpy as np
import pytest
from refresh_orbits import NIGHT, NIGHT_TIMES, SITE

from alertprod.errors import OrbitError
from alertprod.orbitrefresh import (
    DRIFT_LIMIT_ARCSEC,
    elements_at_exposure,
    night_drift_arcsec,
    refresh_elements,
)
from alertprod.orbitrefresh.nights import night_epoch_mjd_tt
from alertprod.orbits import predict_positions, predict_positions_many

pytestmark = pytest.mark.unit


def _two_body(catalog, times):
    return predict_positions_many(catalog, times, **SITE)


def test_main_belt_prediction_150_days_out_is_within_0p05_arcsec_with_the_refresh(
        base_catalogs, truth, separation):
    base, _ = base_catalogs
    refreshed = refresh_elements(base, NIGHT)
    true = truth(base, NIGHT_TIMES)
    with_refresh = separation(_two_body(refreshed.catalog, NIGHT_TIMES), true)
    without = separation(_two_body(base, NIGHT_TIMES), true)
    print(f"\nmain belt, 150 d: two-body from the night's elements max {with_refresh.max():.2e}″, "
          f"from the base elements median {np.median(without):.2f}″ max {without.max():.2f}″")
    assert with_refresh.max() < 0.05
    assert with_refresh.max() < 0.001  # in fact: the night's edges are half a day from the epoch
    assert np.median(without) > 1.0 and without.max() > 3.0  # arcseconds without it
    assert not refreshed.close_approach.any()
    assert np.all(refreshed.drift_arcsec < DRIFT_LIMIT_ARCSEC / 10)


def test_earth_approacher_at_0p01_au_is_flagged_and_integrated_to_each_exposure(
        base_catalogs, truth, separation):
    _, base = base_catalogs
    refreshed = refresh_elements(base, NIGHT)
    assert list(refreshed.close_approach) == [True, False]
    true = truth(base, NIGHT_TIMES)
    assert true.delta_au[:, 0].min() < 0.0102  # it does pass ~0.01 au from the observatory
    two_body = separation(_two_body(refreshed.catalog, NIGHT_TIMES), true)
    assert two_body[:, 0].max() > 1.0  # the night's elements alone: arcseconds off
    assert two_body[:, 1].max() < 0.001  # its main-belt neighbour is fine
    for k, t in enumerate(NIGHT_TIMES):
        at = elements_at_exposure(refreshed.catalog, refreshed.close_approach, t)
        got = predict_positions(at, t, **SITE)
        off = separation(got, type(got)(*(np.asarray(f)[k] for f in true)))
        assert off.max() < 0.05, (t, off)
        assert at.epoch_mjd[1] == refreshed.catalog.epoch_mjd[1]  # the others are left alone


def test_measured_drift_grows_as_the_approach_gets_closer(base_catalogs):
    _, base = base_catalogs
    epoch = night_epoch_mjd_tt(NIGHT)
    refreshed = refresh_elements(base, NIGHT)
    drift = night_drift_arcsec(refreshed.catalog, epoch)
    assert drift[0] > 1.0 and drift[1] < 1e-3
    narrow = night_drift_arcsec(refreshed.catalog, epoch, half_window_days=0.05)
    assert narrow[0] < drift[0] / 10  # (t − epoch)²: an hour from the epoch is much better


def test_unintegrable_orbits_give_nan_not_failure(base_catalogs):
    base, _ = base_catalogs
    broken = base[:3]
    broken.e[1] = 1.5  # hyperbolic: not an MPCORB orbit we propagate
    refreshed = refresh_elements(broken, NIGHT)
    assert np.isnan(refreshed.catalog.a[1]) and np.isnan(refreshed.drift_arcsec[1])
    assert not refreshed.close_approach[1] and np.all(np.isfinite(refreshed.catalog.a[[0, 2]]))


def test_empty_catalog_and_bad_limit(base_catalogs):
    base, _ = base_catalogs
    assert len(refresh_elements(base[:0], NIGHT).catalog) == 0
    with pytest.raises(OrbitError, match="drift_limit_arcsec"):
        refresh_elements(base, NIGHT, drift_limit_arcsec=0.0)


def test_exposure_elements_leave_the_catalog_untouched_without_close_approachers(base_catalogs):
    base, _ = base_catalogs
    assert elements_at_exposure(base, np.zeros(len(base), bool), NIGHT + 1.2) is base

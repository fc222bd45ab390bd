"""Per-target association radii (``matchRadiusArcsec``): the SSObject step's extension of 1″."""

from __future__ import annotations

import numpy as np
import pytest
from astropy.table import Table

from alertprod.association import associate_solar_system
from alertprod.errors import CatalogError

pytestmark = pytest.mark.unit

ARCSEC = 1 / 3600


def _sources(ra, dec) -> Table:
    n = len(ra)
    return Table({"ra": np.asarray(ra, float), "dec": np.asarray(dec, float),
                  "raErr": np.full(n, 0.05 * ARCSEC), "decErr": np.full(n, 0.05 * ARCSEC)})


def test_each_prediction_keeps_to_its_own_radius_when_another_is_wide():
    # Object 1 (radius 1″) and object 2 (radius 10″) 60″ apart; a source 3″ from each.
    dec0 = -10.0
    predicted = Table({"ssObjectId": np.array([1, 2], np.int64), "ra": [30.0, 30.0],
                       "dec": [dec0, dec0 + 60 * ARCSEC], "matchRadiusArcsec": [1.0, 10.0]})
    sources = _sources([30.0, 30.0], [dec0 + 3 * ARCSEC, dec0 + 63 * ARCSEC])
    match = associate_solar_system(sources, predicted, max_dist_arcsec=1.0)
    assert match.ss_object_id.tolist() == [0, 2]
    assert match.distance_arcsec[1] == pytest.approx(3.0, abs=1e-6)


def test_without_the_column_every_prediction_takes_the_default_radius():
    predicted = Table({"ssObjectId": np.array([2], np.int64), "ra": [30.0], "dec": [-10.0]})
    sources = _sources([30.0], [-10.0 + 3 * ARCSEC])
    assert associate_solar_system(sources, predicted, max_dist_arcsec=1.0).ss_object_id.tolist() == [0]
    assert associate_solar_system(sources, predicted, max_dist_arcsec=4.0).ss_object_id.tolist() == [2]


@pytest.mark.parametrize("bad", [0.0, -1.0, np.nan, np.inf])
def test_an_unusable_radius_is_refused_naming_the_column(bad):
    predicted = Table({"ssObjectId": np.array([2], np.int64), "ra": [30.0], "dec": [-10.0],
                       "matchRadiusArcsec": [bad]})
    with pytest.raises(CatalogError, match="matchRadiusArcsec"):
        associate_solar_system(_sources([30.0], [-10.0]), predicted, max_dist_arcsec=1.0)

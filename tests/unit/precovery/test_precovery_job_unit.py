"""One unit of a precovery-service job measured from the cache, or re-created from the archive."""

from __future__ import annotations

import numpy as np
import pytest

from alertprod.aws import MemoryBlobStore
from alertprod.precovery.job_plan import JobUnit
from alertprod.precovery.job_unit import measure_job_unit

pytestmark = pytest.mark.unit

def _unit(source, ra, dec):
    return JobUnit(42, 3, "r", 60500.2, source, (0, 1, 2), tuple(ra), tuple(dec))


@pytest.mark.parametrize("source", ["cache", "archive"])
def test_a_unit_measures_each_covered_position_at_its_true_flux(stores, true_fluxes, source):
    images, archive, ra, dec = stores
    rows = measure_job_unit(_unit(source, ra, dec), images=images, archive=archive,
                            processed_mjd_tai=60600.0).rows
    assert list(rows["target"]) == [0, 1, 2] and list(rows["visit"]) == [42] * 3
    pulls = (np.asarray(rows["psfFlux"]) - true_fluxes) / np.asarray(rows["psfFluxErr"])
    assert np.all(np.abs(pulls) < 4), pulls
    assert bool(np.all(rows["recreated"])) == (source == "archive")


def test_cached_and_recreated_measurements_agree(stores):
    images, archive, ra, dec = stores
    cached = measure_job_unit(_unit("cache", ra, dec), images=images, archive=archive,
                              processed_mjd_tai=60600.0).rows
    recreated = measure_job_unit(_unit("archive", ra, dec), images=images, archive=archive,
                                 processed_mjd_tai=60600.0).rows
    diff = np.asarray(cached["psfFlux"]) - np.asarray(recreated["psfFlux"])
    assert np.all(np.abs(diff) < 2.5 * np.asarray(cached["psfFluxErr"]))


def test_an_expired_cached_difference_falls_back_to_the_archive(stores):
    images, archive, ra, dec = stores
    empty = MemoryBlobStore()
    rows = measure_job_unit(_unit("cache", ra, dec), images=empty, archive=archive,
                            processed_mjd_tai=60600.0).rows
    assert len(rows) == 3 and np.all(rows["recreated"])


@pytest.mark.parametrize("source", ["cache", "archive"])
def test_clean_positions_are_ok_with_flags_zero_and_their_template_named(stores, source):
    images, archive, ra, dec = stores
    rows = measure_job_unit(_unit(source, ra, dec), images=images, archive=archive,
                            processed_mjd_tai=60600.0).rows
    assert list(rows["status"]) == ["ok"] * 3 and list(rows["flags"]) == [0] * 3
    assert set(rows["template"]) == {"cache:template" if source == "cache" else "archive:template"}


def test_a_planned_position_the_ccd_does_not_hold_gets_an_off_image_row(stores):
    images, archive, ra, dec = stores
    far_ra, far_dec = np.r_[ra[:2], ra[0] + 1.0], np.r_[dec[:2], dec[0]]  # 1° away: off the CCD
    rows = measure_job_unit(_unit("cache", far_ra, far_dec), images=images, archive=archive,
                            processed_mjd_tai=60600.0).rows
    assert list(rows["status"]) == ["ok", "ok", "off_image"]
    assert np.isnan(rows["psfFlux"][2]) and rows["ra"][2] == pytest.approx(far_ra[2])

"""The orbit catalog parsed once per container (``alertprod.pipeline.orbit_cache``)."""

from __future__ import annotations

import numpy as np
import pytest

from alertprod.apdb import MemoryApdb
from alertprod.aws import MemoryBlobStore
from alertprod.formats import RUBIN_SITE
from alertprod.orbitrefresh import night_of, run_refresh_inline
from alertprod.orbits import OrbitCatalog, orbit_through, write_mpcorb
from alertprod.pipeline.orbit_cache import OrbitCache

pytestmark = pytest.mark.unit

SITE = {"obs_lon_deg": RUBIN_SITE[0], "obs_lat_deg": RUBIN_SITE[1], "obs_height_m": RUBIN_SITE[2]}


class CountingApdb(MemoryApdb):
    """The memory APDB, counting how often a whole orbit catalog (base / a night's) is fetched."""

    def __init__(self, store=None, *, metrics=None):
        super().__init__(store, metrics=metrics)
        self.catalog_reads = 0
        self.night_reads = 0

    def get_orbit_catalog(self, *, night_mjd=None) -> bytes:
        if night_mjd is None:
            self.catalog_reads += 1
        else:
            self.night_reads += 1
        return super().get_orbit_catalog(night_mjd=night_mjd)


@pytest.fixture(scope="module")
def two_catalogs(asteroid):
    """MPCORB texts of one asteroid, and of it and a second one."""
    other = orbit_through(151.0, 3.0, 60000.1, geocentric_distance_au=2.5,
                          rng=np.random.default_rng(2), first_index=1, **SITE)
    one = write_mpcorb(asteroid)
    return one, one + write_mpcorb(other)


def test_catalog_is_reread_only_when_its_version_changes(two_catalogs):
    one, two = two_catalogs
    apdb = CountingApdb()
    cache = OrbitCache(apdb)
    apdb.store_orbit_catalog(one)
    first = cache.get()
    assert len(first) == 1 and cache.get() is first and cache.get() is first
    assert apdb.catalog_reads == 1
    apdb.store_orbit_catalog(two)  # e.g. loaded by another container
    second = cache.get()
    assert len(second) == 2 and apdb.catalog_reads == 2
    assert cache.get() is second and apdb.catalog_reads == 2
    apdb.store_orbit_catalog(two)  # the same text again: the same version
    assert cache.get() is second and apdb.catalog_reads == 2


def test_invalidated_cache_reads_the_catalog_again(two_catalogs):
    apdb = CountingApdb()
    cache = OrbitCache(apdb)
    apdb.store_orbit_catalog(two_catalogs[0])
    cache.get()
    cache.invalidate()
    assert len(cache.get()) == 1 and apdb.catalog_reads == 2


def test_without_a_catalog_there_are_no_orbits_and_no_mpc_rows():
    apdb = CountingApdb()
    cache = OrbitCache(apdb)
    assert cache.get() is None and apdb.catalog_reads == 0
    assert cache.mpc_orbit_rows(np.array([0, 42], np.int64)) == {}


def test_mpc_orbit_rows_are_given_for_known_asteroids_only(two_catalogs, asteroid):
    apdb = CountingApdb()
    apdb.store_orbit_catalog(two_catalogs[1])
    cache = OrbitCache(apdb)
    catalog = cache.get()
    known = int(asteroid.ss_object_ids[0])
    rows = cache.mpc_orbit_rows(np.array([0, known, known, 12345], np.int64))
    assert list(rows) == [known] and known in set(int(i) for i in catalog.ss_object_ids)
    assert rows[known]["packed_primary_provisional_designation"] == \
        str(asteroid.packed_designation[0])


# -- the night's refreshed catalog ---------------------------------------------------------------
T_NIGHT = 60000.10  # the asteroid fixture's visit: night 59999
NIGHT = night_of(T_NIGHT)


@pytest.fixture(scope="module")
def refreshed(two_catalogs):
    """An APDB holding two orbits and the night's refresh of them, and its staging area."""
    apdb = CountingApdb()
    apdb.store_orbit_catalog(two_catalogs[1])
    staging = MemoryBlobStore()
    assert run_refresh_inline(apdb, staging, night_mjd=NIGHT).status == "refreshed"
    return apdb, staging


def test_exposures_of_a_refreshed_night_get_its_elements(refreshed):
    apdb, _ = refreshed
    cache = OrbitCache(apdb)
    warnings: list[str] = []
    base = cache.get()
    night = cache.get(T_NIGHT, warnings=warnings)
    assert warnings == [] and list(night.ss_object_ids) == list(base.ss_object_ids)
    assert np.all(night.epoch_mjd == NIGHT + 1.0)
    assert not np.array_equal(night.a, base.a)  # osculating elements, not MPCORB's rounded ones
    assert list(night.designation) == list(base.designation)
    reads = apdb.night_reads
    assert cache.get(T_NIGHT + 0.1) is night and apdb.night_reads == reads  # parsed once
    # mpc_orbits rows are the MPC's own (base) elements
    rows = cache.mpc_orbit_rows(base.ss_object_ids)
    assert {r["epoch_mjd"] for r in rows.values()} == set(base.epoch_mjd.tolist())


def test_a_night_without_refresh_falls_back_to_the_base_elements_with_a_warning(refreshed):
    apdb, _ = refreshed
    cache = OrbitCache(apdb)
    warnings: list[str] = []
    assert cache.get(T_NIGHT + 1.0, warnings=warnings) is cache.get()
    assert warnings == [f"orbit_refresh_missing:{NIGHT + 1}"]


def test_a_night_refreshed_from_an_older_base_catalog_is_not_used(two_catalogs):
    apdb = CountingApdb()
    apdb.store_orbit_catalog(two_catalogs[1])
    run_refresh_inline(apdb, MemoryBlobStore(), night_mjd=NIGHT)
    apdb.store_orbit_catalog(two_catalogs[0])  # a new upload, not refreshed yet
    cache = OrbitCache(apdb)
    warnings: list[str] = []
    catalog = cache.get(T_NIGHT, warnings=warnings)
    assert len(catalog) == 1 and warnings == [f"orbit_refresh_stale:{NIGHT}"]


def test_close_approachers_are_integrated_to_each_exposure(asteroid):
    """A near-Earth object 0.01 au away: its elements osculate at each exposure's time."""
    neo = orbit_through(200.0, -20.0, T_NIGHT, geocentric_distance_au=0.01, kind="neo",
                        rng=np.random.default_rng(5), first_index=7, **SITE)
    apdb = CountingApdb()
    apdb.store_orbit_catalog(write_mpcorb(OrbitCatalog.concatenate([asteroid, neo])))
    report = run_refresh_inline(apdb, MemoryBlobStore(), night_mjd=NIGHT)
    assert report.close_approachers == 1
    cache = OrbitCache(apdb)
    first = cache.get(T_NIGHT)
    assert cache.get(T_NIGHT) is first  # the same exposure: integrated once
    later = cache.get(T_NIGHT + 0.05)
    tt = 32.184 / 86400
    assert first.epoch_mjd[1] == pytest.approx(T_NIGHT + tt, abs=1e-9)
    assert later.epoch_mjd[1] == pytest.approx(T_NIGHT + 0.05 + tt, abs=1e-9)
    assert first.epoch_mjd[0] == later.epoch_mjd[0] == NIGHT + 1.0  # the main-belt one stays

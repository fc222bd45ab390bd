"""The orbit catalog parsed once per container (``alertprod.pipeline.orbit_cache``)."""

from __future__ import annotations

import numpy as np
import pytest

from alertprod.apdb import MemoryApdb
from alertprod.formats import RUBIN_SITE
from alertprod.orbits import orbit_through, write_mpcorb
from alertprod.pipeline.orbit_cache import OrbitCache

pytestmark = pytest.mark.unit

SITE = {"obs_lon_deg": RUBIN_SITE[0], "obs_lat_deg": RUBIN_SITE[1], "obs_height_m": RUBIN_SITE[2]}


class CountingApdb(MemoryApdb):
    """The memory APDB, counting how often the whole orbit catalog is fetched."""

    def __init__(self, store=None, *, metrics=None):
        super().__init__(store, metrics=metrics)
        self.catalog_reads = 0

    def get_orbit_catalog(self) -> bytes:
        self.catalog_reads += 1
        return super().get_orbit_catalog()


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

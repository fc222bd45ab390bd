"""The contract on items that grow: each holds what the survey puts in it, past 400 KB.

Mixed into :class:`contract.apdb_contract.ApdbContract` (see there for the fixture API). Each
case writes just more than one DynamoDB item of the former layout held (the embedded stack
and the in-memory backend refuse an item over 400 KB, as AWS does) and reads it all back once.
"""

from __future__ import annotations

import numpy as np
from contract._data import DEC, RA, create_objects, no_objects, ss_objects, ss_sources
from contract.coordination_contract import Level1Contract

from alertprod.apdb import CcdWrites
from alertprod.apdb.testing import make_forced, make_sources

__all__ = ["ItemSizesContract", "DEEP_DRILLING_SOURCES", "item_bytes"]

#: DiaSources of one object in one 30-day bucket: 40 a night, 1,200 rows of ~380 bytes
#: (456 KB, beyond the one item of the former layout).
DEEP_DRILLING_SOURCES = 1200
_BUCKET_START = 60000.0  # an MJD where a 30-day history bucket begins (60000 = 2000 x 30)


#: A deep-drilling field's corner, inside one image-index pixel (a 36″ square).
_FIELD = np.array([[-1, -1], [1, -1], [1, 1], [-1, 1]]) * 0.005 + [53.125, -28.1]


def item_bytes(entries) -> int:
    """Bytes of entries as one item of the former layout would hold them (names and values)."""
    return sum(len(str(e).encode()) for e in entries)


def deep_drilling_sources(oid: int) -> object:
    """DEEP_DRILLING_SOURCES DiaSources of one object spread over one history bucket."""
    n = DEEP_DRILLING_SOURCES
    rows = make_sources(np.full(n, oid), np.full(n, RA), np.full(n, DEC), 7, 1, _BUCKET_START,
                        first_id=10**9)
    rows["midpointMjdTai"] = _BUCKET_START + 0.01 + np.arange(n) * (29.9 / n)
    return rows


def history_writes(rows) -> CcdWrites:
    """A CCD's writes carrying only these DiaSources (no versions, no forced rows)."""
    none = make_forced(np.zeros(0, np.int64), np.zeros(0), np.zeros(0), 7, 1, _BUCKET_START)
    return CcdWrites(7, 1, _BUCKET_START, rows, none, no_objects())


class ItemSizesContract(Level1Contract):
    """What the Level 1 database holds of a deep-drilling cadence, however long it lasts."""

    def test_deep_drilling_month_of_one_object_is_stored_and_read_whole(self, level1):
        apdb = level1.apdb
        oid = int(create_objects(apdb, 1)["diaObjectId"][0])
        rows = deep_drilling_sources(oid)
        chunks = np.array_split(np.arange(len(rows)), 4)
        for chunk in chunks:
            apdb.store_ccd(history_writes(rows[chunk]), lease=None)
        apdb.store_ccd(history_writes(rows[chunks[1]]), lease=None)  # redelivered
        got = apdb.get_dia_sources([oid], _BUCKET_START + 30.0)
        got = got[got["diaSourceId"] >= 10**9]  # without the object's first source
        assert list(got["diaSourceId"]) == list(rows["diaSourceId"])
        assert np.array_equal(got["midpointMjdTai"], rows["midpointMjdTai"])
        exported = apdb.export()["DiaSource"]
        assert np.sum(exported["diaObjectId"] == oid) == len(rows) + 1  # with its first source

    def test_image_index_of_a_deep_drilling_month_holds_every_exposure(self, level1):
        """115 exposures of one field in one 30-day bucket with entries of ~4.2 KB (long kind
        names, so that 460 KB of index takes few requests; ~2,000 real ones of 0.2 KB)."""
        apdb = level1.apdb
        kinds = ["science", "difference-" + "k" * 4000]
        n = 115
        for k in range(n):
            apdb.index_exposure(1000 + k, 42, "r", 60000.05 + k * 0.25, _FIELD, kinds)
        apdb.index_exposure(1000 + 7, 42, "r", 60000.05 + 7 * 0.25, _FIELD, ["science"])
        found = apdb.find_exposures(53.125, -28.1, 60000.0, 60030.0)
        assert list(found["visit"]) == list(range(1000, 1000 + n))
        assert found["kinds"][7] == "science"  # the re-indexed entry, once, newest
        assert item_bytes(found["kinds"]) > 440_000

    def test_observations_of_an_asteroid_watched_for_years_are_all_counted(self, level1):
        """12,500 observations of one SSObject (35 B each: 437 KB of set)."""
        apdb = level1.apdb
        apdb.store_ss_objects(ss_objects([77], ["2010 AB123"]))
        n = 12_500
        times = 60000.012345678901 + np.arange(n) * 0.3
        sources = ss_sources([77] * n, ["gr"[k % 2] for k in range(n)], times, first_id=10**15)
        for chunk in np.array_split(np.arange(n), 25):
            assert apdb.record_ss_observations(sources[chunk]) == 1
        assert apdb.record_ss_observations(sources[:500]) == 1  # redelivered: counts nothing
        row = apdb.get_ss_objects([77])[0]
        assert (row["nObs"], row["g_nObs"], row["r_nObs"]) == (n, n // 2, n // 2)
        assert row["arc"] == np.float32(times[-1] - times[0])
        entries = [f"{i}:{b}:{t!r}" for i, b, t in zip(sources["diaSourceId"], sources["band"],
                                                      times.tolist(), strict=True)]
        assert item_bytes(entries) > 420_000

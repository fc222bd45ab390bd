"""Watchlists (positions with per-entry radii) and watchmaps (MOC regions), the language's extensions."""

from __future__ import annotations

import astropy.units as u
import numpy as np
import pytest
from astropy.coordinates import SkyCoord
from astropy.table import Table

from alertprod.errors import FilterError
from alertprod.filtering import AlertBatch, Watchlist, Watchmap, compile_filter
from alertprod.filtering.watch import MAX_WATCHLIST_ENTRIES

pytestmark = pytest.mark.unit


def _batch(ra, dec):
    return AlertBatch.from_records([{"diaSourceId": k, "diaSource": {"ra": r, "dec": d}}
                                    for k, (r, d) in enumerate(zip(ra, dec, strict=True))])


def _offset(ra, dec, arcsec):
    """A position ``arcsec`` north of (ra, dec)."""
    return ra, dec + arcsec / 3600.0


def test_each_watchlist_entry_has_its_own_radius():
    wl = Watchlist([10.0, 20.0], [0.0, 0.0], [1.0, 10.0])
    ra, dec = zip(_offset(10.0, 0.0, 5.0), _offset(20.0, 0.0, 5.0), _offset(20.0, 0.0, 11.0), strict=True)
    compiled = compile_filter("in_watchlist('mine')", watchlists={"mine": wl})
    assert compiled.evaluate(_batch(ra, dec)).tolist() == [False, True, False]


def test_watchlist_matches_astropy_search_around_sky():
    rng = np.random.default_rng(7)
    m = 100_000
    ra_w, dec_w = rng.uniform(0, 360, m), np.degrees(np.arcsin(rng.uniform(-1, 1, m)))
    radius = rng.uniform(1, 30, m)
    wl = Watchlist(ra_w, dec_w, radius)
    # alerts: half near entries (inside or outside their radius), half anywhere
    pick = rng.integers(0, m, 1000)
    offsets = radius[pick] * rng.choice([0.5, 1.5], 1000)
    ra_a = np.concatenate([ra_w[pick], rng.uniform(0, 360, 1000)])
    dec_a = np.concatenate([dec_w[pick] + offsets / 3600.0, rng.uniform(-89, 89, 1000)])
    dec_a = np.clip(dec_a, -90, 90)
    got = wl.contains(ra_a, dec_a)
    alerts, entries = SkyCoord(ra_a, dec_a, unit="deg"), SkyCoord(ra_w, dec_w, unit="deg")
    j, i, sep, _ = alerts.search_around_sky(entries, 30.001 * u.arcsec)  # j: entries, i: alerts
    expected = np.zeros(len(ra_a), bool)
    inside = sep.to_value(u.arcsec) <= radius[j]
    expected[i[inside]] = True
    assert np.array_equal(got, expected)
    assert 400 < got.sum() < 1200


def test_watchlist_reads_csv_and_votable(tmp_path):
    csv = tmp_path / "list.csv"
    csv.write_text("name,ra,dec,radius\nSN 2026a,10.0,-5.0,2.0\nAT 2026b,200.0,30.0,5\n")
    table = Table({"RA": [10.0, 200.0], "DEC": [-5.0, 30.0], "name": ["a", "b"]})
    vot = tmp_path / "list.xml"
    table.write(vot, format="votable")
    for path, radius in ((csv, [2.0, 5.0]), (vot, [1.0, 1.0])):
        wl = Watchlist.read(path)
        assert len(wl) == 2 and wl.radius_arcsec.tolist() == radius
        assert wl.contains([10.0, 10.0], [-5.0, -4.0]).tolist() == [True, False]
    with pytest.raises(ValueError, match="ra and dec"):
        Watchlist.from_table(Table({"x": [1.0]}))


def test_watchlist_refuses_bad_entries_and_more_than_a_million():
    with pytest.raises(ValueError, match="radius"):
        Watchlist([1.0], [1.0], [0.0])
    with pytest.raises(ValueError, match="dec"):
        Watchlist([1.0], [91.0], [1.0])
    n = MAX_WATCHLIST_ENTRIES + 1
    with pytest.raises(ValueError, match="at most"):
        Watchlist(np.zeros(n), np.zeros(n), 1.0)


def test_watchmap_is_a_moc_region(tmp_path):
    wm = Watchmap.from_cone(359.5, 0.0, 1.0)
    batch = _batch([0.4, 358.4, 359.5, 180.0], [0.0, 0.0, 0.9, 0.0])
    compiled = compile_filter("in_watchmap('field') AND diaSource.ra IS NOT NULL", watchlists={"field": wm})
    assert compiled.evaluate(batch).tolist() == [True, False, True, False]
    path = tmp_path / "field.fits"
    wm.moc.save(str(path), format="fits")
    assert Watchmap.read(path).contains([0.4, 180.0], [0.0, 0.0]).tolist() == [True, False]


def test_unknown_or_mismatched_watch_names_are_refused():
    wl, wm = Watchlist([1.0], [1.0], 1.0), Watchmap.from_cone(1.0, 1.0, 1.0)
    with pytest.raises(FilterError) as info:
        compile_filter("in_watchlist('other')", watchlists={"mine": wl})
    assert info.value.token == "'other'" and "mine" in info.value.message
    with pytest.raises(FilterError):
        compile_filter("in_watchlist('map')", watchlists={"map": wm})
    with pytest.raises(ValueError):
        compile_filter("TRUE", watchlists={"bad name!": wl})


def test_one_watchlist_is_queried_once_per_batch_whatever_the_number_of_filters():
    calls = []

    class Counting(Watchlist):
        def match(self, batch):
            calls.append(1)
            return super().match(batch)

    wl = Counting([1.0], [1.0], 1.0)
    batch = _batch([1.0, 2.0], [1.0, 2.0])
    for k in range(5):
        compile_filter(f"in_watchlist('w') AND diaSource.ra > {k}", watchlists={"w": wl}).evaluate(batch)
    assert len(calls) == 1

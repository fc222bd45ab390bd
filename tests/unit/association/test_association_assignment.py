"""Association science cases: contention, optimality, radius, wrap-around, poles, solar system."""

from itertools import permutations

import numpy as np
import pytest
from astropy.table import Table

from alertprod.association import (
    UNASSOCIATED_ID,
    assign_one_to_one,
    associate,
    associate_solar_system,
    associate_sources,
    find_candidates,
    select_in_region,
)
from alertprod.association.geometry import unit_vectors
from alertprod.errors import CatalogError

ARCSEC = 1.0 / 3600.0


def _sources(ra, dec, err_arcsec=0.05):
    n = len(ra)
    return Table({"ra": np.asarray(ra, float), "dec": np.asarray(dec, float),
                  "raErr": np.full(n, err_arcsec * ARCSEC), "decErr": np.full(n, err_arcsec * ARCSEC)})


def _objects(ra, dec, ids=None, err_arcsec=0.05):
    t = _sources(ra, dec, err_arcsec)
    t["diaObjectId"] = np.arange(1, len(ra) + 1, dtype=np.int64) if ids is None else ids
    return t


def _greedy(si, oi, dist):
    used_s, used_o, pairs = set(), set(), {}
    for k in np.argsort(dist, kind="stable"):
        if si[k] not in used_s and oi[k] not in used_o:
            used_s.add(si[k])
            used_o.add(oi[k])
            pairs[si[k]] = oi[k]
    return pairs


def test_nearest_is_not_always_best_one_to_one():
    # Two sources and two objects on the equator; separations in arcsec:
    # A-X 0.1, A-Y 0.5, B-X 0.3, B-Y 0.9. Greedy nearest-first takes A-X then B-Y
    # (Σd² = 0.82″²); the optimum is A-Y, B-X (Σd² = 0.34″²).
    src = _sources([0.0, 0.4 * ARCSEC], [0.0, 0.0])  # A at 0, B at +0.4″
    obj = _objects([0.1 * ARCSEC, -0.5 * ARCSEC], [0.0, 0.0], ids=np.array([10, 20]))
    res = associate(src, obj, max_dist_arcsec=1.0)
    # B-Y is -0.5 - 0.4 = 0.9″, B-X is 0.3″: check our geometry matches the story
    np.testing.assert_allclose(res.distance_arcsec, [0.5, 0.3], atol=1e-9)
    assert res.dia_object_id.tolist() == [20, 10]
    cand = find_candidates(unit_vectors(src["ra"], src["dec"]), unit_vectors(obj["ra"], obj["dec"]),
                           max_dist_arcsec=1.0)
    greedy = _greedy(cand.source_index, cand.object_index, cand.distance_arcsec)
    assert greedy == {0: 0, 1: 1}
    greedy_d2 = sum(cand.distance_arcsec[(cand.source_index == s) & (cand.object_index == o)][0] ** 2
                    for s, o in greedy.items())
    assert np.sum(res.distance_arcsec**2) < greedy_d2 - 0.4


def test_optimal_assignment_associates_more_than_greedy():
    # B is nearest to X; greedy gives X to B and leaves A (whose only candidate is X) alone,
    # although B could have taken Y: the optimum associates both.
    src = _sources([0.0, 0.5 * ARCSEC], [0.0, 0.0])
    obj = _objects([0.45 * ARCSEC, 1.3 * ARCSEC], [0.0, 0.0])
    res = associate(src, obj, max_dist_arcsec=1.0)
    assert res.matched.all()
    assert res.dia_object_id.tolist() == [1, 2]


def test_contention_leaves_extra_source_unassociated():
    src = _sources([0.0, 0.6 * ARCSEC], [10.0, 10.0])
    obj = _objects([0.2 * ARCSEC], [10.0], ids=np.array([77]))
    res = associate(src, obj)
    assert res.matched.tolist() == [True, False]
    assert res.dia_object_id.tolist() == [77, UNASSOCIATED_ID]
    assert res.object_index.tolist() == [0, -1]
    assert np.isnan(res.distance_arcsec[1]) and np.isnan(res.score[1])


def test_ra_wraparound_at_zero():
    src = _sources([359.9999 + 0.0, 0.00005], [0.0, -30.0])
    obj = _objects([0.00005, 359.99998], [0.0, -30.0])
    res = associate(src, obj)
    assert res.dia_object_id.tolist() == [1, 2]
    np.testing.assert_allclose(res.distance_arcsec[0], 0.00015 * 3600, rtol=1e-6)
    np.testing.assert_allclose(res.distance_arcsec[1],
                               0.00007 * 3600 * np.cos(np.deg2rad(30.0)), rtol=1e-4)


def test_near_pole():
    # Two objects 0.5″ from the pole on opposite sides (RA 0 and 180): a source 0.1″ from the
    # pole at RA 0 is 0.4″ from the first and 0.6″ from the second despite RA differences.
    d = 90.0 - 0.5 * ARCSEC
    obj = _objects([180.0, 0.0], [d, d])
    src = _sources([0.0, 95.0], [90.0 - 0.1 * ARCSEC, 90.0 - 0.45 * ARCSEC])
    res = associate(src, obj)
    assert res.dia_object_id.tolist() == [2, 1] or res.dia_object_id[0] == 2
    np.testing.assert_allclose(res.distance_arcsec[0], 0.4, atol=1e-6)
    # A source's error ellipse is in its own (east, north) frame and must be rotated into the
    # object's. Object exactly at the pole (RA 0), source 0.3″ away at RA 90: the offset lies
    # along the object's east axis but along the source's Dec axis. A source with a small Dec
    # error must therefore score worse than one with a small RA error.
    obj2 = _objects([0.0], [90.0])
    s = Table({"ra": [90.0], "dec": [90.0 - 0.3 * ARCSEC],
               "raErr": [1.0 * ARCSEC], "decErr": [0.02 * ARCSEC]})
    small_dec_err = associate(s, obj2).score[0]
    s["raErr"], s["decErr"] = [0.02 * ARCSEC], [1.0 * ARCSEC]
    small_ra_err = associate(s, obj2).score[0]
    s_east, s_north = small_ra_err, small_dec_err
    assert s_east < s_north


def test_beyond_radius_never_associates():
    rng = np.random.default_rng(3)
    obj = _objects([10.0], [-5.0])
    # Sources just outside 1″ in random directions, with huge errors that would make them
    # likely under the Gaussian score: still never associated.
    theta = rng.uniform(0, 2 * np.pi, 50)
    r = 1.0 + rng.uniform(1e-4, 0.5, 50)
    ra = 10.0 + r * np.cos(theta) * ARCSEC / np.cos(np.deg2rad(-5.0))
    dec = -5.0 + r * np.sin(theta) * ARCSEC
    res = associate(_sources(ra, dec, err_arcsec=5.0), obj, max_dist_arcsec=1.0)
    assert not res.matched.any()
    # ... and just inside is associated.
    inside = associate(_sources([10.0 + 0.999 * ARCSEC / np.cos(np.deg2rad(5.0))], [-5.0]), obj)
    assert inside.matched.all()


def _brute_force(n_s, n_o, si, oi, cost):
    """Best (count, −total cost) over all one-to-one assignments by enumeration."""
    c = np.full((n_s, n_o), np.inf)
    c[si, oi] = cost
    best = (-1, 0.0)
    slots = list(range(n_o)) + [-1] * n_s
    for perm in set(permutations(slots, n_s)):
        pairs = [(s, o) for s, o in enumerate(perm) if o >= 0]
        if any(not np.isfinite(c[s, o]) for s, o in pairs):
            continue
        val = (len(pairs), -sum(c[s, o] for s, o in pairs))
        if val[0] > best[0] or (val[0] == best[0] and val[1] > best[1] + 1e-9):
            best = val
    return best


@pytest.mark.parametrize("seed", range(40))
def test_assignment_equals_brute_force_optimum(seed):
    rng = np.random.default_rng(seed)
    n_s, n_o = int(rng.integers(1, 5)), int(rng.integers(1, 5))
    mask = rng.random((n_s, n_o)) < 0.6
    si, oi = np.nonzero(mask)
    cost = rng.normal(0, 5, len(si))
    got = assign_one_to_one(n_s, n_o, si, oi, cost)
    used = got[got >= 0]
    assert len(np.unique(used)) == len(used)
    lookup = {(s, o): c for s, o, c in zip(si, oi, cost, strict=True)}
    assert all((s, o) in lookup for s, o in enumerate(got) if o >= 0)
    total = sum(lookup[(s, o)] for s, o in enumerate(got) if o >= 0)
    count, neg_cost = _brute_force(n_s, n_o, si, oi, cost)
    assert (got >= 0).sum() == count
    assert total == pytest.approx(-neg_cost, abs=1e-9)


def test_random_field_matches_dense_linear_sum_assignment():
    from scipy.optimize import linear_sum_assignment

    rng = np.random.default_rng(11)
    n_s, n_o = 60, 80
    ra_o, dec_o = rng.uniform(0, 20 * ARCSEC, n_o), rng.uniform(0, 20 * ARCSEC, n_o)
    ra_s, dec_s = rng.uniform(0, 20 * ARCSEC, n_s), rng.uniform(0, 20 * ARCSEC, n_s)
    src, obj = _sources(ra_s, dec_s, 0.3), _objects(ra_o, dec_o, err_arcsec=0.2)
    res = associate(src, obj, max_dist_arcsec=2.0)
    # Dense reference: same lexicographic objective, big cost for non-candidates.
    from alertprod.association import pair_scores, positions_from_table
    ps, po = positions_from_table(src, what="s"), positions_from_table(obj, what="o")
    si, oi = np.meshgrid(np.arange(n_s), np.arange(n_o), indexing="ij")
    dist, nll = pair_scores(ps, po, si.ravel(), oi.ravel())
    w = np.where(dist <= 2.0, nll - nll.min() + 1, np.inf).reshape(n_s, n_o)
    big = np.nansum(np.where(np.isfinite(w), w, 0)) + 1
    dense = np.hstack([np.where(np.isfinite(w), w, 1e30), np.full((n_s, n_s), 1e30)])
    dense[np.arange(n_s), n_o + np.arange(n_s)] = big
    r, c = linear_sum_assignment(dense)
    ref = np.where(c < n_o, c, -1)
    assert (ref >= 0).sum() == res.matched.sum()
    ref_total = w[np.arange(n_s)[ref >= 0], ref[ref >= 0]].sum()
    got_total = w[np.arange(n_s)[res.matched], res.object_index[res.matched]].sum()
    assert got_total == pytest.approx(ref_total, rel=1e-12)


def test_new_objects_with_unknown_errors_use_the_floor():
    src = _sources([0.0], [0.0])
    obj = Table({"diaObjectId": [5], "ra": [0.3 * ARCSEC], "dec": [0.0],
                 "raErr": [np.nan], "decErr": [0.0]})
    res = associate(src, obj)
    assert res.matched[0] and np.isfinite(res.score[0])


def test_solar_system_claims_source_before_dia_objects():
    # Source 0 sits on both an asteroid prediction and a DiaObject: the asteroid takes it and
    # the DiaObject goes to source 1, which would otherwise have lost the contention.
    src = _sources([0.0, 0.4 * ARCSEC, 0.0], [0.0, 0.0, 0.01])
    obj = _objects([0.05 * ARCSEC], [0.0], ids=np.array([900]))
    pred = Table({"ssObjectId": np.array([4242, 5151]), "ra": [0.02 * ARCSEC, 50.0],
                  "dec": [0.0, 0.0]})
    alone = associate(src, obj)
    assert alone.dia_object_id.tolist() == [900, 0, 0]
    both = associate_sources(src, obj, pred)
    assert both.solar_system.ss_object_id.tolist() == [4242, 0, 0]
    assert both.dia.dia_object_id.tolist() == [0, 900, 0]
    assert both.new_object.tolist() == [False, False, True]


def test_solar_system_accepts_ephemeris_named_tuple():
    from typing import NamedTuple

    class Ephemeris(NamedTuple):
        ss_object_id: np.ndarray
        ra_deg: np.ndarray
        dec_deg: np.ndarray
        delta_au: np.ndarray

    eph = Ephemeris(np.array([7]), np.array([359.99999]), np.array([1.0]), np.array([1.2]))
    res = associate_solar_system(_sources([0.000005], [1.0]), eph)
    assert res.ss_object_id.tolist() == [7]
    np.testing.assert_allclose(res.distance_arcsec, 0.015 * 3600 / 1000 * np.cos(np.deg2rad(1)),
                               rtol=1e-4)
    with pytest.raises(CatalogError, match="predicted"):
        associate_solar_system(_sources([0.0], [0.0]), object())


def test_missing_columns_are_named():
    with pytest.raises(CatalogError, match="diaObjectId"):
        associate(_sources([0.0], [0.0]), _sources([0.0], [0.0]))
    with pytest.raises(CatalogError, match="raErr"):
        associate(Table({"ra": [0.0], "dec": [0.0]}), _objects([0.0], [0.0]))


def test_padded_footprint_keeps_objects_within_margin():
    # A 0.1° square straddling RA 0, objects just inside/outside a 20″ margin.
    c = np.array([[359.95, -0.05], [0.05, -0.05], [0.05, 0.05], [359.95, 0.05]])
    t = Table({"ra": [0.0, 0.05 + 19 * ARCSEC, 0.05 + 21 * ARCSEC, 359.95 - 10 * ARCSEC, 180.0],
               "dec": [0.0, 0.0, 0.0, 0.05 + 5 * ARCSEC, 0.0]})
    kept = select_in_region(t, c, margin_arcsec=20.0)
    assert list(kept["ra"]) == [t["ra"][0], t["ra"][1], t["ra"][3]]
    assert len(select_in_region(t, c[::-1], margin_arcsec=0.0)) == 1

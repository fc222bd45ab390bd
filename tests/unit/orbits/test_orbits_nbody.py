"""Perturbed orbits against JPL Horizons: 27 objects from Atiras to TNOs, up to 470 days out.

The reference is tests/data/horizons/ (see its README): Horizons osculating elements of each
object at one epoch, and Horizons astrometric positions from Rubin (X05) and CTIO (W84) over
one or two 60-day arcs. Every prediction is made from those elements alone, through the n-body
path and, beside it, the two-body path; the table of both errors is printed (``pytest -s``) and
is the one in docs/solar-system.md, "Error budget".
"""

from __future__ import annotations

from pathlib import Path

import astropy.units as u
import numpy as np
import pytest
from astropy.coordinates import EarthLocation, angular_separation
from astropy.table import Table, vstack
from astropy.time import Time

from alertprod.errors import OrbitError
from alertprod.orbits import (
    OrbitCatalog,
    predict_positions,
    predict_positions_many,
    read_mpcorb,
    write_mpcorb,
)
from alertprod.orbits.kepler import Elements
from alertprod.orbits.nbody import (
    OrbitStates,
    osculating_elements_at,
    predict_positions_nbody,
    propagate_states,
)

DATA = Path(__file__).parents[2] / "data" / "horizons"
#: MPC parallax constants: east longitude (deg), ρ cos φ′, ρ sin φ′ (Earth radii).
MPC_SITES = {"X05": (289.25058, 0.864981, -0.500958), "W84": (289.19358, 0.865572, -0.499793)}
EARTH_RADIUS_KM = 6378.137


def _site(code: str) -> dict[str, float]:
    """Geodetic keywords of ``predict_positions`` for an MPC observatory code."""
    lon, rho_cos, rho_sin = MPC_SITES[code]
    lam = np.deg2rad(lon)
    loc = EarthLocation.from_geocentric(EARTH_RADIUS_KM * rho_cos * np.cos(lam),
                                        EARTH_RADIUS_KM * rho_cos * np.sin(lam),
                                        EARTH_RADIUS_KM * rho_sin, unit=u.km)
    geo = loc.to_geodetic()
    return {"obs_lon_deg": float(geo.lon.deg), "obs_lat_deg": float(geo.lat.deg),
            "obs_height_m": float(geo.height.to_value(u.m))}


def _catalog(row) -> OrbitCatalog:
    elements = Elements(*(np.array([row[c]]) for c in (
        "a_au", "e", "i_deg", "node_deg", "argperi_deg", "mean_anomaly_deg", "epoch_mjd_tdb")))
    return OrbitCatalog.from_elements(elements, ["~0000"], designation=[row["designation"]])


def _sep_arcsec(ra1, dec1, ra2, dec2) -> np.ndarray:
    ra1, dec1, ra2, dec2 = (np.deg2rad(np.asarray(x, dtype=float)) for x in (ra1, dec1, ra2, dec2))
    return np.rad2deg(angular_separation(ra1, dec1, ra2, dec2)) * 3600.0


@pytest.fixture(scope="module")
def horizons() -> tuple[Table, Table]:
    return (Table.read(DATA / "elements.ecsv", format="ascii.ecsv"),
            Table.read(DATA / "ephemeris.ecsv", format="ascii.ecsv"))


@pytest.fixture(scope="module")
def errors(horizons) -> Table:
    """One row per Horizons position: |t − epoch| and the n-body and two-body errors (″).

    Each object is integrated once across all its epochs; the sites share that integration.
    """
    elements, eph = horizons
    out = []
    for row in elements:
        rows = eph[eph["designation"] == row["designation"]]
        cat = _catalog(row)
        t = Time(np.asarray(rows["mjd_utc"], dtype=float), format="mjd", scale="utc")
        mjd_tai, mjd_tdb = t.tai.mjd, (t.tdb.jd1 - 2400000.5) + t.tdb.jd2
        states = propagate_states(cat, mjd_tdb)
        nbody = np.empty(len(rows))
        two_body = np.empty(len(rows))
        for code in np.unique(rows["observatory_code"]):
            k = np.flatnonzero(rows["observatory_code"] == code)
            mine = OrbitStates(mjd_tdb[k], states.pos_au[k], states.vel_au_per_day[k])
            eph_n = predict_positions_nbody(cat, mjd_tai[k], states=mine, **_site(code))
            eph_2 = predict_positions_many(cat, mjd_tai[k], **_site(code))
            ra, dec = rows["ra_deg"][k], rows["dec_deg"][k]
            nbody[k] = _sep_arcsec(eph_n.ra_deg[:, 0], eph_n.dec_deg[:, 0], ra, dec)
            two_body[k] = _sep_arcsec(eph_2.ra_deg[:, 0], eph_2.dec_deg[:, 0], ra, dec)
        out.append(Table({"designation": rows["designation"],
                          "dynamical_class": [row["dynamical_class"]] * len(rows),
                          "dt_days": mjd_tdb - row["epoch_mjd_tdb"], "delta_au": rows["delta_au"],
                          "nbody_arcsec": nbody, "two_body_arcsec": two_body}))
    table = vstack(out)
    print("\nn-body and two-body predictions vs JPL Horizons (max over each object's rows)")
    print(f"{'object':<34}{'class':<24}{'max|dt| d':>10}{'two-body″':>11}{'n-body″':>10}")
    for name in dict.fromkeys(table["designation"]):
        sub = table[table["designation"] == name]
        print(f"{name:<34}{sub['dynamical_class'][0]:<24}{np.abs(sub['dt_days']).max():>10.0f}"
              f"{sub['two_body_arcsec'].max():>11.3f}{sub['nbody_arcsec'].max():>10.4f}")
    return table


def test_nbody_within_0p1_arcsec_of_horizons_for_every_object_and_epoch(errors):
    assert len(np.unique(errors["designation"])) == 27
    assert np.all(np.isfinite(errors["nbody_arcsec"]))
    within_a_year = np.abs(errors["dt_days"]) <= 366.0
    assert errors["nbody_arcsec"][within_a_year].max() < 0.1
    # The Amor arc 440-470 days out stays inside the same bound.
    assert errors["nbody_arcsec"].max() < 0.1
    assert np.median(errors["nbody_arcsec"]) < 0.005


def test_two_body_drifts_past_the_association_radius_where_nbody_does_not(errors):
    far = np.abs(errors["dt_days"]) > 100.0
    assert errors["two_body_arcsec"][far].max() > 10.0
    assert np.all(errors["nbody_arcsec"][far] < errors["two_body_arcsec"][far])


@pytest.mark.parametrize("dynamical_class", ["Atira", "Aten", "Apollo", "Amor", "Main Belt",
                                             "Jupiter Trojan", "Centaur",
                                             "Trans-Neptunian Object"])
def test_every_dynamical_class_is_covered_and_within_0p1_arcsec(errors, dynamical_class):
    rows = errors[errors["dynamical_class"] == dynamical_class]
    assert len(rows) >= 7
    assert rows["nbody_arcsec"].max() < 0.1


def test_earth_coorbital_2010_tk7_two_body_passes_1_arcsec_within_a_month(errors):
    rows = errors[errors["designation"] == "(2010 TK7)"]
    assert np.abs(rows["dt_days"]).max() <= 31.0
    assert rows["two_body_arcsec"].max() > 1.0
    assert rows["nbody_arcsec"].max() < 0.01


def test_both_paths_agree_with_horizons_at_the_elements_epoch(errors):
    at_epoch = np.abs(errors["dt_days"]) < 0.01
    assert at_epoch.sum() >= 20
    assert errors["two_body_arcsec"][at_epoch].max() < 0.01
    assert errors["nbody_arcsec"][at_epoch].max() < 0.01


def test_refreshed_elements_make_two_body_accurate_near_the_new_epoch(horizons):
    elements, eph = horizons
    row = elements[elements["designation"] == "1221 Amor (1932 EA1)"][0]
    rows = eph[(eph["designation"] == row["designation"]) & (eph["arc"] == "f5bef7f0")]
    visit = rows[3]
    mjd_tai = Time(visit["mjd_utc"], format="mjd", scale="utc").tai.mjd
    cat = _catalog(row)
    refreshed = osculating_elements_at(cat, round(mjd_tai))
    assert refreshed.epoch_mjd[0] == round(mjd_tai)
    assert refreshed.designation[0] == cat.designation[0]
    site = _site(str(visit["observatory_code"]))
    old = predict_positions(cat, mjd_tai, **site)
    new = predict_positions(refreshed, mjd_tai, **site)
    assert _sep_arcsec(old.ra_deg, old.dec_deg, visit["ra_deg"], visit["dec_deg"]) > 30.0
    assert _sep_arcsec(new.ra_deg, new.dec_deg, visit["ra_deg"], visit["dec_deg"]) < 0.05


def test_refreshed_catalog_is_written_to_mpcorb_on_its_whole_day_epoch():
    cat = _orbits(4)
    refreshed = osculating_elements_at(cat, 60030.0)
    back = read_mpcorb(write_mpcorb(refreshed))
    np.testing.assert_array_equal(back.epoch_mjd, 60030.0)
    np.testing.assert_allclose(back.a, refreshed.a, rtol=1e-7)
    np.testing.assert_allclose(back.mean_anomaly, refreshed.mean_anomaly, atol=1e-5)
    np.testing.assert_array_equal(back.packed_designation, cat.packed_designation)


def test_integration_runs_backward_and_forward_to_the_same_state():
    cat = _orbits(3)
    there = propagate_states(cat, np.array([cat.epoch_mjd[0] + 200.0]))
    moved = osculating_elements_at(cat, cat.epoch_mjd[0] + 200.0)
    back = propagate_states(moved, np.array([cat.epoch_mjd[0]]))
    start = propagate_states(cat, np.array([cat.epoch_mjd[0]]))
    np.testing.assert_allclose(back.pos_au, start.pos_au, atol=1e-10)
    assert there.pos_au.shape == (1, 3, 3)


def test_chunks_and_mixed_epochs_give_the_same_states():
    cat = _orbits(5)
    cat.epoch_mjd[3:] += 40.0
    epochs = np.array([60100.0, 59900.0, 60000.0])
    whole = propagate_states(cat, epochs)
    one_by_one = propagate_states(cat, epochs, chunk_size=1)
    np.testing.assert_allclose(one_by_one.pos_au, whole.pos_au, rtol=0.0, atol=1e-12)
    np.testing.assert_array_equal(whole.mjd_tdb, epochs)


def test_unbound_and_malformed_orbits_give_nan_beside_good_ones():
    cat = _orbits(3)
    cat.e[1] = 1.3
    states = propagate_states(cat, 60010.0)
    assert np.all(np.isnan(states.pos_au[0, 1]))
    assert np.all(np.isfinite(states.pos_au[0, [0, 2]]))
    eph = predict_positions_nbody(cat, 60010.0, obs_lon_deg=-70.7, obs_lat_deg=-30.2,
                                  obs_height_m=2663.0)
    assert np.isnan(eph.ra_deg[0, 1]) and np.all(np.isfinite(eph.ra_deg[0, [0, 2]]))
    refreshed = osculating_elements_at(cat, 60010.0)
    assert np.isnan(refreshed.a[1])
    assert np.isnan(predict_positions(refreshed, 60010.0, obs_lon_deg=-70.7, obs_lat_deg=-30.2,
                                      obs_height_m=2663.0).ra_deg[1])


@pytest.mark.parametrize(("call", "argument"), [
    (lambda c: propagate_states("not a catalog", 60000.0), "catalog"),
    (lambda c: propagate_states(c, [60000.0, np.nan]), "epochs_mjd_tdb"),
    (lambda c: propagate_states(c, 60000.0, chunk_size=0), "chunk_size"),
    (lambda c: osculating_elements_at(c, [60000.0, 60001.0]), "epoch_mjd_tt"),
    (lambda c: predict_positions_nbody(c, 60000.0, obs_lon_deg=0.0, obs_lat_deg=0.0,
                                       obs_height_m=0.0, states=propagate_states(c, 59000.0)),
     "states"),
])
def test_malformed_arguments_raise_orbit_error_naming_them(call, argument):
    with pytest.raises(OrbitError, match=argument):
        call(_orbits(2))


def _orbits(n: int) -> OrbitCatalog:
    rng = np.random.default_rng(7)
    elements = Elements(rng.uniform(1.2, 3.2, n), rng.uniform(0.05, 0.4, n),
                        rng.uniform(0, 30, n), rng.uniform(0, 360, n), rng.uniform(0, 360, n),
                        rng.uniform(0, 360, n), np.full(n, 60000.0))
    return OrbitCatalog.from_elements(elements, [f"~{k:04d}" for k in range(n)])

"""Benchmark: topocentric positions per second for 1e5 orbits at one epoch.

Peer: the astropy-only route for the same prediction — one ``SkyCoord`` per epoch built from
our barycentric vectors and transformed to the observer's topocentric GCRS. astropy has no
orbit propagation, so the peer can only take over the frame work; we time that part and our
whole prediction on the same inputs in the same run.
"""

import json
from pathlib import Path

import astropy.units as u
import numpy as np
import pytest
from astropy.coordinates import (
    GCRS,
    ICRS,
    CartesianRepresentation,
    EarthLocation,
    get_body_barycentric,
)
from astropy.time import Time

from alertprod.orbits import OrbitCatalog, predict_positions, predict_positions_many
from alertprod.orbits.kepler import Elements, ecliptic_to_equatorial, elements_to_state

N_OBJECTS = 100_000
RESULTS = Path(__file__).parent / "results" / "ephemeris.json"


def _main_belt(n: int, seed: int = 0) -> OrbitCatalog:
    rng = np.random.default_rng(seed)
    elements = Elements(rng.uniform(2.1, 3.3, n), rng.uniform(0, 0.3, n), rng.uniform(0, 30, n),
                        rng.uniform(0, 360, n), rng.uniform(0, 360, n), rng.uniform(0, 360, n),
                        np.full(n, 61000.0))
    names = np.array([f"~{k:04d}" for k in range(n)])  # fake packed numbers, unique
    return OrbitCatalog.from_elements(elements, names, h=16.0, designation=names)


@pytest.mark.bench
def test_bench_positions_per_second_for_1e5_objects(best_of, rubin_site):
    cat = _main_belt(N_OBJECTS)
    mjd = 61010.2
    predict_positions(cat[:10], mjd, **rubin_site)  # warm astropy caches (IERS tables, ephemeris)
    eph, ours_s, _ = best_of(lambda: predict_positions(cat, mjd, **rubin_site))
    assert np.all(np.isfinite(eph.ra_deg))

    # Peer: astropy frames on the same geometric barycentric positions (no light time).
    t = Time(mjd, format="mjd", scale="tai")
    location = EarthLocation.from_geodetic(rubin_site["obs_lon_deg"] * u.deg,
                                           rubin_site["obs_lat_deg"] * u.deg,
                                           rubin_site["obs_height_m"] * u.m)

    def peer():
        helio = ecliptic_to_equatorial(elements_to_state(cat.elements, t.tdb.mjd).pos_au)
        bary = helio + get_body_barycentric("sun", t).xyz.to_value(u.au)
        icrs = ICRS(CartesianRepresentation(bary.T * u.au))
        obsgeoloc, obsgeovel = location.get_gcrs_posvel(t)
        return icrs.transform_to(GCRS(obstime=t, obsgeoloc=obsgeoloc, obsgeovel=obsgeovel))

    gcrs, peer_s, _ = best_of(peer)
    # Epoch sweep for one object over 1,000 visits (precovery of a moving target).
    epochs = np.linspace(60700.0, 61065.0, 1000)
    many_s = best_of(lambda: predict_positions_many(cat[:1], epochs, **rubin_site)).wall_s

    figures = {
        "objects": N_OBJECTS,
        "ours_seconds": ours_s,
        "ours_positions_per_second": N_OBJECTS / ours_s,
        "astropy_frames_only_seconds": peer_s,
        "astropy_frames_only_positions_per_second": N_OBJECTS / peer_s,
        "ratio_ours_over_astropy_rate": peer_s / ours_s,
        "one_object_1000_epochs_seconds": many_s,
        "one_object_epochs_per_second": 1000 / many_s,
    }
    print("\nephemeris benchmark (1e5 main-belt orbits, one epoch, best of 3)")
    print(f"{'method':<52}{'seconds':>10}{'positions/s':>14}")
    print(f"{'alertprod predict_positions (light time, rates)':<52}{ours_s:>10.3f}"
          f"{N_OBJECTS / ours_s:>14.3g}")
    print(f"{'astropy ICRS->topocentric GCRS (frames only)':<52}{peer_s:>10.3f}"
          f"{N_OBJECTS / peer_s:>14.3g}")
    print(f"{'ratio (ours / astropy rate)':<52}{peer_s / ours_s:>10.2f}")
    print(f"{'predict_positions_many: 1 object x 1000 epochs':<52}{many_s:>10.3f}"
          f"{1000 / many_s:>14.3g}")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(figures, indent=2) + "\n")
    assert gcrs.shape == (N_OBJECTS,)

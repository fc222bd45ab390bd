"""Precovery-service targets: parsing, and where each kind is at each epoch."""

from __future__ import annotations

import numpy as np
import pytest
from astropy.table import Table
from astropy.time import Time

from alertprod.formats import RUBIN_SITE
from alertprod.orbits import predict_positions, read_mpcorb
from alertprod.precovery.targets import (
    MAX_BATCH_POSITIONS,
    TargetError,
    check_region_images,
    parse_target,
)
from alertprod.sky.proper_motion import hpm_positions

pytestmark = pytest.mark.unit

SITE = {"obs_lon_deg": RUBIN_SITE[0], "obs_lat_deg": RUBIN_SITE[1], "obs_height_m": RUBIN_SITE[2]}
CERES = ("00001    3.34  0.15 K25BL 231.53974   73.29974   80.24964   10.58789  0.0795764  "
         "0.21429712   2.7656157  0 MPO980521  7297 126 1801-2026 0.83 M-v 30k Veres      "
         "4000      (1) Ceres              20260103")


def _sep_mas(ra1, dec1, ra2, dec2):
    d_ra = (np.asarray(ra1) - ra2 + 180.0) % 360.0 - 180.0
    return np.hypot(d_ra * np.cos(np.deg2rad(dec2)), np.asarray(dec1) - dec2) * 3.6e6


def test_fixed_positions_stay_put_at_every_epoch():
    target = parse_target({"kind": "batch", "positions": [{"ra": 10.0, "dec": -5.0},
                                                           {"ra": 370.5, "dec": 89.0}]})
    ra, dec = target.positions_at([60000.0, 60100.0, 60200.0], **SITE)
    assert ra.shape == (2, 3) and target.n_positions == 2 and not target.moves
    assert ra[1].tolist() == [10.5] * 3 and dec[0].tolist() == [-5.0] * 3


def test_proper_motion_star_agrees_with_the_simulators_independent_parallax_factors():
    # 3″/yr and 300 mas of parallax: the extremes of the simulator's fast stars
    ref_mjd = 57388.0
    star = Table({"ra": [150.0], "dec": [-20.0], "pmra": [2100.0], "pmdec": [-2100.0],
                  "parallax": [300.0], "ref_epoch_mjd": [ref_mjd]})
    epoch = Time(ref_mjd, format="mjd", scale="tai").tcb.jyear
    target = parse_target({"kind": "proper_motion", "ra": 150.0, "dec": -20.0, "pmra": 2100.0,
                           "pmdec": -2100.0, "parallax": 300.0, "epoch": float(epoch)})
    mjd = np.array([60600.0, 60700.0, 60800.0, 60900.0])  # nine years on, through the seasons
    ra, dec = target.positions_at(mjd, **SITE)
    for k, t in enumerate(mjd):
        sra, sdec = hpm_positions(star, float(t))
        assert _sep_mas(ra[0, k], dec[0, k], sra[0], sdec[0]) < 10.0  # mas
    # and the parallax is there: without it the positions move by up to ~300 mas
    flat = parse_target({"kind": "proper_motion", "ra": 150.0, "dec": -20.0, "pmra": 2100.0,
                         "pmdec": -2100.0, "parallax": 1e-6, "epoch": float(epoch)})
    fra, fdec = flat.positions_at(mjd, **SITE)
    assert np.max(_sep_mas(ra[0], dec[0], fra[0], fdec[0])) > 150.0


def test_asteroid_by_designation_or_mpcorb_line_follows_its_orbit():
    catalog = read_mpcorb(CERES + "\n")
    lookup = {"00001": catalog}.get
    by_name = parse_target({"kind": "orbit", "designation": "(1)"}, orbit_lookup=lookup)
    by_line = parse_target({"kind": "orbit", "mpcorb": CERES})
    t = float(catalog.epoch_mjd[0])
    for target in (by_name, by_line):
        ra, dec = target.positions_at([t], **SITE)
        eph = predict_positions(catalog, t, **SITE)  # two-body is exact at the epoch
        assert _sep_mas(ra[0, 0], dec[0, 0], eph.ra_deg[0], eph.dec_deg[0]) < 10.0
        assert target.moves and target.n_positions == 1
    ra, dec = by_name.positions_at(t + np.array([-400.0, 0.0, 400.0]), **SITE)
    assert np.all(np.isfinite(ra)) and _sep_mas(ra[0, 0], dec[0, 0], ra[0, 2], dec[0, 2]) > 3.6e6


@pytest.mark.parametrize("doc, message", [
    (None, "JSON object"),
    ({"kind": "galaxy"}, "'kind' must be one of"),
    ({"kind": "position", "ra": 10.0}, "'dec' is required"),
    ({"kind": "position", "ra": "10", "dec": 0.0}, "must be a number"),
    ({"kind": "position", "ra": True, "dec": 0.0}, "must be a number"),
    ({"kind": "position", "ra": 10.0, "dec": 91.0}, "outside"),
    ({"kind": "position", "ra": float("nan"), "dec": 0.0}, "outside"),
    ({"kind": "position", "ra": 1.0, "dec": 0.0, "__class__": 1}, "unknown field"),
    ({"kind": "positions", "positions": []}, "non-empty list"),
    ({"kind": "batch", "positions": [{"ra": 1.0, "dec": 2.0, "x": 1}]}, "positions\\[0\\]"),
    ({"kind": "batch", "positions": [{"ra": 1.0, "dec": 2.0}] * (MAX_BATCH_POSITIONS + 1)},
     "at most"),
    ({"kind": "proper_motion", "ra": 1.0, "dec": 2.0, "pmra": 1e9, "pmdec": 0.0}, "pmra"),
    ({"kind": "orbit"}, "exactly one"),
    ({"kind": "orbit", "designation": "2099 ZZ99"}, "not in the loaded"),
    ({"kind": "orbit", "mpcorb": "not an orbit"}, "not a valid MPCORB"),
    ({"kind": "orbit", "mpcorb": CERES + "\n" + CERES}, "one MPCORB.DAT line"),
])
def test_malformed_targets_are_refused_naming_the_problem(doc, message):
    with pytest.raises(TargetError, match=message):
        parse_target(doc, orbit_lookup=lambda name: None)


def test_a_region_is_accepted_only_within_twenty_percent_more_images_than_its_centroid():
    centroid = set(range(10))
    assert check_region_images([set(range(10)), set(range(12))], centroid) == 12
    with pytest.raises(TargetError, match="needs 13 images.*10 of its centroid"):
        check_region_images([set(range(13))], centroid)

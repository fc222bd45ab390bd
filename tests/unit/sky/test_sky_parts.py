"""Pieces of the simulator: focal plane, astrometry, light curves, detector defects."""

from __future__ import annotations

import astropy.units as u
import numpy as np
import pytest
from astropy.coordinates import CartesianRepresentation, SkyCoord
from astropy.table import Table

from alertprod.errors import ConfigError
from alertprod.formats import MaskBit
from alertprod.sky import get_preset
from alertprod.sky.bogus import ArtifactList, add_cosmic_rays, saturate
from alertprod.sky.focal_plane import FocalPlane, Pointing
from alertprod.sky.proper_motion import earth_barycentric_au, hpm_positions
from alertprod.sky.transients import transient_flux
from alertprod.sky.variables import make_variables, variable_flux, variable_template_flux


def test_locate_inverts_every_ccd_wcs_and_gaps_belong_to_no_ccd():
    cfg = get_preset("night", n_ccd_x=3, n_ccd_y=3)
    fp = FocalPlane(cfg)
    p = Pointing(10.0, 4.0, 0.7)
    rng = np.random.default_rng(1)
    for det in range(fp.n_detectors):
        x, y = rng.uniform(0, cfg.ccd_nx_pix - 1, 50), rng.uniform(0, cfg.ccd_ny_pix - 1, 50)
        ra, dec = fp.wcs(p, det).all_pix2world(x, y, 0)
        where = fp.locate(p, ra, dec)
        assert np.all(where.detector == det)
        assert np.allclose(where.x, x, atol=1e-6) and np.allclose(where.y, y, atol=1e-6)
    # the middle of the gap right of CCD 0
    ra, dec = fp.wcs(p, 0).all_pix2world([cfg.ccd_nx_pix - 0.5 + cfg.gap_pix / 2], [100.0], 0)
    assert fp.locate(p, ra, dec).detector[0] == -1
    assert fp.neighbours(4) == {"left": 3, "right": 5, "down": 1, "up": 7}


def test_parallax_factors_match_the_geometric_shift_seen_from_the_earth():
    stars = Table({"ra": [40.0, 200.0], "dec": [-30.0, 60.0], "pmra": [0.0, 0.0], "pmdec": [0.0, 0.0],
                   "parallax": [500.0, 800.0], "ref_epoch_mjd": [60000.0, 60000.0]})
    mjd = 60100.3
    ra, dec = hpm_positions(stars, mjd)
    # exact geometry: the star at distance 1/parallax, seen from the Earth's barycentric position
    star = SkyCoord(stars["ra"] * u.deg, stars["dec"] * u.deg,
                    distance=(1000.0 / np.asarray(stars["parallax"])) * u.pc).cartesian
    earth = CartesianRepresentation(earth_barycentric_au(mjd) * u.au)
    seen = SkyCoord((star - earth).without_differentials(), representation_type="cartesian",
                    frame="icrs")
    sep = SkyCoord(ra * u.deg, dec * u.deg).separation(
        SkyCoord(seen.spherical.lon, seen.spherical.lat)).to_value(u.mas)
    assert np.all(sep < 0.5)  # first-order factors: error ~ parallax² ~ µas
    moved = SkyCoord(ra * u.deg, dec * u.deg).separation(SkyCoord(stars["ra"], stars["dec"], unit="deg"))
    assert np.all(moved.to_value(u.mas) > 100)


def test_proper_motion_moves_a_star_linearly_in_time():
    stars = Table({"ra": [10.0], "dec": [4.0], "pmra": [1000.0], "pmdec": [-500.0], "parallax": [0.0],
                   "ref_epoch_mjd": [57388.0]})
    ra, dec = hpm_positions(stars, 57388.0 + 4 * 365.25)
    dra, ddec = SkyCoord(10.0, 4.0, unit="deg").spherical_offsets_to(SkyCoord(ra, dec, unit="deg"))
    assert dra.to_value(u.mas)[0] == pytest.approx(4000.0, abs=0.5)
    assert ddec.to_value(u.mas)[0] == pytest.approx(-2000.0, abs=0.5)


def test_transient_is_absent_before_start_and_brightest_at_peak():
    t = Table({"t_start_mjd": [100.0], "t_peak_mjd": [103.0], "rise_mag_per_day": [0.5],
               "decline_mag_per_day": [0.1], "flux_r": [1000.0]})
    mjd = np.linspace(99.0, 110.0, 45)
    flux = np.array([transient_flux(t, m, "r")[0] for m in mjd])
    assert np.all(flux[mjd < 100.0] == 0.0)
    assert flux.max() <= 1000.0 and mjd[np.argmax(flux)] == pytest.approx(103.0, abs=0.3)
    assert transient_flux(t, 100.0, "r")[0] == pytest.approx(1000.0 * 10 ** (-0.4 * 1.5))


def test_variable_swings_around_its_template_flux():
    cfg = get_preset("tiny")
    v = make_variables(cfg, np.random.default_rng(2), n=6)
    mjd = cfg.start_mjd_tai + np.linspace(0, 5, 4001)
    flux = np.array([variable_flux(v, m, "g") for m in mjd])
    assert np.allclose(flux.mean(axis=0), variable_template_flux(v, "g"), rtol=0.02)
    assert np.all(flux.max(axis=0) > variable_template_flux(v, "g"))


def test_saturated_star_is_clipped_masked_and_bleeds_along_its_column():
    image = np.zeros((101, 41))
    image[50, 20] = 3e6
    image[49:52, 19:22] += 2e5
    mask = np.zeros(image.shape, dtype=np.int32)
    assert saturate(image, mask, 6e4) == 1
    sat = (mask & MaskBit.SAT) != 0
    assert image.max() == 6e4 and sat[49:52, 19:22].all()
    assert sat[:, 20].sum() > 10 and not sat[:, 10].any()


def test_bad_preset_and_config_values_are_refused():
    with pytest.raises(ConfigError, match="preset"):
        get_preset("huge")
    with pytest.raises(ConfigError, match="ccd_nx_pix"):
        get_preset("tiny", ccd_nx_pix=16)


@pytest.mark.parametrize("masked_fraction", [0.0, 1.0])
def test_found_cosmic_rays_are_interpolated_and_the_rest_left_as_residuals(masked_fraction):
    image = np.zeros((64, 64))
    mask = np.zeros(image.shape, dtype=np.int32)
    artifacts = ArtifactList()
    hits = add_cosmic_rays(image, mask, np.random.default_rng(5), 6.0, artifacts,
                           masked_fraction=masked_fraction)
    assert len(hits) > 0
    hit = np.zeros(image.shape, bool)
    for ys, xs, values, _ in hits:
        hit[ys, xs] = True
        assert np.all(values >= 500.0)  # the snap difference still sees every ray
    flagged = (mask & (MaskBit.CR | MaskBit.INTRP)) == (MaskBit.CR | MaskBit.INTRP)
    if masked_fraction == 1.0:  # found: flagged, and the pixels hold no ray
        assert np.array_equal(flagged, hit) and not image.any() and len(artifacts) == 0
    else:  # missed: in the image, unflagged, recorded as bogus
        assert not mask.any() and np.array_equal(image > 0, hit)
        assert len(artifacts) == len(hits) and set(artifacts.kind) == {"cr_residual"}

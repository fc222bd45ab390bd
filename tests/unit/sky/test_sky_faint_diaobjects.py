"""The ``dipole_star_mag_r`` and ``variable_mag_r`` options: DiaObjects for faint stars too.

By default misalignment dipoles displace stars of r 17–20.5 and variables are r 17–21, so
forced photometry rarely meets a steady source at science S/N 10–30; the options widen both
ranges (the scienceFlux pulls benchmark uses them) and leave every preset as it was.
"""

from __future__ import annotations

import numpy as np
import pytest

from alertprod.errors import ConfigError
from alertprod.imaging.psf import psf_effective_area_pix
from alertprod.sky import PRESETS, get_preset, load_truth, simulate_survey
from alertprod.sky.focal_plane import FocalPlane
from alertprod.sky.render import make_psf
from alertprod.sky.scene import build_scene
from alertprod.sky.survey import pointing_of, sky_sigma_njy
from alertprod.sky.variables import make_variables
from alertprod.sky.writer import build_survey

#: A CCD of the ``night`` preset with many stars and dipoles: each range is well sampled.
_CROWDED = dict(n_nights=1, visits_per_night=3, n_stars=4000, dipoles_per_ccd=60.0, n_asteroids=0,
                n_fast_asteroids=0)


def _dipole_star_mags(config, seed: int = 3) -> np.ndarray:
    """r magnitudes of the stars displaced by misalignment dipoles on every CCD of visit 0."""
    survey = build_survey(config, seed)
    row = survey.schedule[0]
    stars = survey.sky.rows("star")
    scale = config.pixel_scale_arcsec
    mags = []
    for det in range(config.n_detectors):
        wcs = FocalPlane(config).wcs(pointing_of(row), det)
        _, truth = build_scene(survey.sky, 0, row, wcs, (config.ccd_ny_pix, config.ccd_nx_pix), config,
                               np.random.default_rng([seed, int(row["visit"]), det]),
                               psf_neff_pix=psf_effective_area_pix(make_psf(1.0 / scale)),
                               sky_sigma_njy=sky_sigma_njy(str(row["band"]), scale), template_sigma_njy=1.0)
        x, y = wcs.all_world2pix(np.asarray(stars["ra"]), np.asarray(stars["dec"]), 0)
        for xd, yd in zip(truth.dipole_x, truth.dipole_y, strict=True):
            dist = np.hypot(x - xd, y - yd)
            assert dist.min() <= 0.6 + 1e-6  # the displaced star: 0.3–0.6 pixels away
            mags.append(float(stars["mag_r"][np.argmin(dist)]))
    return np.asarray(mags)


def test_every_preset_keeps_the_bright_dipole_stars_and_variables():
    for name, config in PRESETS.items():
        assert config.dipole_star_mag_r == (17.0, 20.5), name
        assert config.variable_mag_r == (17.0, 21.0), name


def test_default_dipoles_displace_only_stars_of_r_17_to_20p5():
    mags = _dipole_star_mags(get_preset("night", **_CROWDED))
    assert mags.size >= 150
    assert mags.min() > 17.0 and mags.max() < 20.5


def test_faint_dipole_option_displaces_stars_down_to_its_faint_limit():
    mags = _dipole_star_mags(get_preset("night", dipole_star_mag_r=(17.0, 22.5), **_CROWDED))
    assert mags.size >= 150
    assert mags.min() > 17.0 and mags.max() < 22.5
    assert np.mean(mags > 21.0) > 0.4  # star counts rise towards faint magnitudes


def test_variable_magnitudes_follow_the_option_and_the_default_draws_are_unchanged():
    default = make_variables(get_preset("tiny", n_variables=500), np.random.default_rng(5))
    again = make_variables(get_preset("tiny", n_variables=500, variable_mag_r=(17.0, 21.0)),
                           np.random.default_rng(5))
    faint = make_variables(get_preset("tiny", n_variables=500, variable_mag_r=(21.5, 23.5)),
                           np.random.default_rng(5))
    assert np.array_equal(default["mag_r"], again["mag_r"])
    assert default["mag_r"].min() >= 17.0 and default["mag_r"].max() < 21.0
    assert faint["mag_r"].min() >= 21.5 and faint["mag_r"].max() < 23.5
    # the same random numbers otherwise: positions and light-curve parameters stay
    for col in ("ra", "dec", "period_days", "amplitude_mag", "t0_mjd", "shape"):
        assert np.array_equal(default[col], faint[col]), col


def test_faint_variables_are_detected_so_they_get_diaobjects(tmp_path):
    config = get_preset("tiny", n_variables=40, variable_mag_r=(21.5, 23.0), n_transients=0,
                        n_asteroids=0, edge_transient=False)
    simulate_survey(tmp_path, config=config, seed=2, progress=False, n_workers=1)
    truth = load_truth(tmp_path)
    obj = truth.objects
    variables = np.asarray(obj["kind"]).astype(str) == "variable"
    assert np.all(np.asarray(obj["mag_r"])[variables] >= 21.5)
    detected = set(np.asarray(truth.diasources["truthId"]).tolist())
    faint_detected = [t for t in np.asarray(obj["truthId"])[variables].tolist() if t in detected]
    assert len(faint_detected) >= 5


@pytest.mark.parametrize("overrides", [
    dict(dipole_star_mag_r=(20.5, 17.0)),
    dict(dipole_star_mag_r=(17.0, 17.0)),
    dict(variable_mag_r=(5.0, 21.0)),
    dict(variable_mag_r=(17.0,)),
    dict(variable_mag_r="faint"),
])
def test_bad_magnitude_ranges_are_refused(overrides):
    name = next(iter(overrides))
    with pytest.raises(ConfigError, match=name):
        get_preset("tiny", **overrides)

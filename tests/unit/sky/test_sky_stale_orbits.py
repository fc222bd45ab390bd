"""An MPCORB.DAT months old, as the MPC publishes it: the ``tiny-stale-orbits`` survey and the
``mpcorb_epoch_offset_days`` / ``mpcorb_u_weights`` options."""

from __future__ import annotations

import numpy as np
import pytest
from astropy.coordinates import angular_separation

from alertprod.errors import ConfigError
from alertprod.formats import RUBIN_SITE, diasource_key, read_diasource_catalog
from alertprod.orbits import osculating_elements_at, predict_positions_many, read_mpcorb
from alertprod.orbits.uncertainty import orbit_reference_mjd, uncertainty_parameter
from alertprod.sky import get_preset, load_truth, simulate_survey
from alertprod.sky.writer import build_survey

SITE = dict(obs_lon_deg=RUBIN_SITE[0], obs_lat_deg=RUBIN_SITE[1], obs_height_m=RUBIN_SITE[2])


def _sep_arcsec(eph, ra, dec) -> np.ndarray:
    return np.rad2deg(angular_separation(*(np.deg2rad(np.asarray(x, dtype=float))
                                           for x in (eph.ra_deg, eph.dec_deg, ra, dec)))) * 3600


@pytest.fixture(scope="module")
def stale(tmp_path_factory):
    """The tiny-stale-orbits survey, rendered: (directory, truth, Survey)."""
    out = tmp_path_factory.mktemp("stale")
    simulate_survey(out, preset="tiny-stale-orbits", seed=3, progress=False)
    return out, load_truth(out), build_survey(get_preset("tiny-stale-orbits"), 3)


def test_mpcorb_elements_are_at_survey_start_minus_the_offset_on_a_whole_tt_day(stale):
    out, truth, _ = stale
    orbits = read_mpcorb((out / "mpcorb.dat").read_text())
    start = truth.survey["config"]["start_mjd_tai"]
    assert len(orbits) == 10
    assert np.all(orbits.epoch_mjd == round(start) - 150.0)
    assert truth.survey["mpcorb_epoch_mjd_tt"] == round(start) - 150.0
    assert np.all(orbit_reference_mjd(orbits) == round(start) - 150.0)  # last observation
    assert get_preset("night").mpcorb_epoch_offset_days == 150.0
    tiny = build_survey(get_preset("tiny"), 3)
    assert np.all(read_mpcorb(tiny.mpcorb_text).epoch_mjd == round(start))


def test_two_body_predictions_from_the_stale_mpcorb_miss_asteroids_by_arcseconds(stale):
    out, truth, survey = stale
    orbits = read_mpcorb((out / "mpcorb.dat").read_text())
    mjd = np.asarray(survey.schedule["mjd"])
    miss = _sep_arcsec(predict_positions_many(orbits, mjd, **SITE), survey.sky.asteroids["ra"],
                       survey.sky.asteroids["dec"])
    assert np.sum(miss.min(axis=0) > 1.0) >= 5  # main belt: ~3.5", near-Earth: minutes of arc
    # the pipeline's n-body refresh (REBOUND) recovers the true motion (DOP853) through the file,
    # to MPCORB.DAT's printed precision
    fresh = osculating_elements_at(orbits, float(np.round(mjd.mean())))
    refreshed = _sep_arcsec(predict_positions_many(fresh, mjd, **SITE), survey.sky.asteroids["ra"],
                            survey.sky.asteroids["dec"])
    main_belt = np.asarray(truth.objects["subkind"][truth.objects["kind"] == "asteroid"]) == "main_belt"
    assert refreshed[:, main_belt].max() < 0.15 and refreshed.max() < 1.0


def test_truth_and_detections_follow_the_perturbed_motion(stale):
    out, truth, survey = stale
    lc = truth.lightcurves[truth.lightcurves["kind"] == "asteroid"]
    ast = truth.objects[truth.objects["kind"] == "asteroid"]
    column = {int(t): k for k, t in enumerate(ast["truthId"])}
    visit_index = {int(v["visit"]): k for k, v in enumerate(truth.survey["visits"])}
    assert len(lc) >= 3
    for row in lc:
        j, k = visit_index[int(row["visit"])], column[int(row["truthId"])]
        assert row["ra"] == survey.sky.asteroids["ra"][j, k]
        assert row["dec"] == survey.sky.asteroids["dec"][j, k]
    detected = truth.diasources[np.isin(truth.diasources["truthId"], ast["truthId"])]
    assert len(detected) >= 2
    # the detections sit on the true (perturbed) positions, not on the stale file's
    orbits = read_mpcorb((out / "mpcorb.dat").read_text())
    for row in detected:
        cat = read_diasource_catalog((out / diasource_key(int(row["visit"]), int(row["detector"])))
                                     .read_bytes())
        src = cat.table[cat.table["diaSourceId"] == row["diaSourceId"]][0]
        j, k = visit_index[int(row["visit"])], column[int(row["truthId"])]
        true = np.rad2deg(angular_separation(*np.deg2rad([
            src["ra"], src["dec"], survey.sky.asteroids["ra"][j, k],
            survey.sky.asteroids["dec"][j, k]]))) * 3600
        predicted = _sep_arcsec(predict_positions_many(orbits[k], [cat.info.mjd_mid_tai], **SITE),
                                src["ra"], src["dec"])
        assert true < 0.3 and predicted.item() > 1.0


def test_same_seed_same_orbits_and_truth_other_seed_other_orbits():
    cfg = get_preset("tiny-stale-orbits", mpcorb_u_weights=(1, 1, 1, 1))
    a, b, c = build_survey(cfg, 5), build_survey(cfg, 5), build_survey(cfg, 6)
    assert a.mpcorb_text == b.mpcorb_text != c.mpcorb_text
    for key in ("ra", "dec", "flux"):
        assert np.array_equal(a.sky.asteroids[key], b.sky.asteroids[key])
    # U is drawn after everything else: the other objects are the survey's without U
    plain = build_survey(get_preset("tiny-stale-orbits"), 5)
    assert np.array_equal(plain.sky.objects["ra"], a.sky.objects["ra"])
    assert np.array_equal(plain.sky.asteroids["ra"], a.sky.asteroids["ra"])


def test_orbit_errors_carry_their_u_into_mpcorb_and_grow_with_it():
    cfg = get_preset("tiny-stale-orbits", n_asteroids=40, n_fast_asteroids=0,
                     mpcorb_u_weights=(1, 0, 0, 0, 0, 1))
    survey = build_survey(cfg, 2)
    orbits = read_mpcorb(survey.mpcorb_text)
    ast = survey.sky.objects[survey.sky.index["asteroid"]]
    u = np.asarray(ast["mpcorbU"])
    assert set(u.tolist()) == {0, 5}
    assert np.array_equal(uncertainty_parameter(orbits), u)
    assert [line[105] for line in survey.mpcorb_text.splitlines()] == [str(k) for k in u]
    runoff = np.asarray(ast["runoffArcsecPerDecade"])
    assert np.all(runoff[u == 0] < 1.0) and np.all((runoff[u == 5] >= 383) & (runoff[u == 5] < 1693))
    mjd = np.asarray(survey.schedule["mjd"])
    fresh = osculating_elements_at(orbits, float(np.round(mjd.mean())))
    miss = _sep_arcsec(predict_positions_many(fresh, mjd, **SITE), survey.sky.asteroids["ra"],
                       survey.sky.asteroids["dec"]).max(axis=0)
    assert np.all(miss[u == 0] < 0.3) and np.median(miss[u == 5]) > 5.0


@pytest.mark.parametrize("overrides, match", [
    (dict(mpcorb_epoch_offset_days=-1.0), "mpcorb_epoch_offset_days"),
    (dict(mpcorb_epoch_offset_days=float("nan")), "mpcorb_epoch_offset_days"),
    (dict(mpcorb_u_weights=(0.0, 0.0)), "mpcorb_u_weights"),
    (dict(mpcorb_u_weights=(1.0, -1.0)), "mpcorb_u_weights"),
    (dict(mpcorb_u_weights=(1.0,) * 11), "mpcorb_u_weights"),
])
def test_bad_orbit_options_are_refused(overrides, match):
    with pytest.raises(ConfigError, match=match):
        get_preset("tiny", **overrides)

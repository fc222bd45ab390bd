"""The science steps of one CCD as functions of tables (``alertprod.pipeline.steps``)."""

from __future__ import annotations

import numpy as np
import pytest
from astropy.table import Table

from alertprod.formats import RUBIN_SITE
from alertprod.ids import forced_source_ids
from alertprod.orbits import predict_positions
from alertprod.photometry.dia_forced import VisitImages
from alertprod.pipeline import steps

pytestmark = pytest.mark.unit

ARCSEC = 1 / 3600
T1 = 60000.10
SITE = {"obs_lon_deg": RUBIN_SITE[0], "obs_lat_deg": RUBIN_SITE[1], "obs_height_m": RUBIN_SITE[2]}


def _objects(ids, ra, dec) -> Table:
    return Table({"diaObjectId": np.asarray(ids, np.int64), "ra": np.asarray(ra, float),
                  "dec": np.asarray(dec, float)})


def _offset(ra, dec, east_arcsec=0.0, north_arcsec=0.0):
    return ra + east_arcsec * ARCSEC / np.cos(np.deg2rad(dec)), dec + north_arcsec * ARCSEC


@pytest.fixture
def ccd(sky, sky_sources, deployment):
    """A validated upload of detector 0 with four detected sources, and its sources prepared."""
    src = sky_sources(4, seed=3)
    upload = deployment.validated(sky.upload(7, 0, T1, src))
    return upload, steps.prepare_sources(upload.catalog, processed_mjd_tai=T1 + 0.01)


def test_prepared_sources_carry_visit_metadata_and_empty_association_columns(ccd):
    upload, sources = ccd
    assert len(sources) == 4
    assert np.all(sources["visit"] == 7) and sources["visit"].dtype == np.int64
    assert np.all(sources["detector"] == 0) and sources["detector"].dtype == np.int16
    assert list(sources["band"]) == ["r"] * 4
    assert np.all(sources["midpointMjdTai"] == upload.catalog.info.mjd_mid_tai)
    assert np.all(sources["timeProcessedMjdTai"] == T1 + 0.01)
    for col in ("diaObjectId", "ssObjectId"):
        assert sources[col].dtype == np.int64 and np.all(sources[col] == 0), col
    for col in ("psfNdata", "trailNdata", "dipoleNdata", "bboxSize"):  # required by the schema
        assert sources[col].dtype == np.int32 and np.all(sources[col] == 0), col
    np.testing.assert_array_equal(sources["diaSourceId"], upload.catalog.table["diaSourceId"])
    assert "diaObjectId" not in upload.catalog.table.colnames  # the upload is left alone


def test_source_near_known_object_joins_it_and_far_source_creates_object_with_its_own_id(ccd):
    _, sources = ccd
    ra, dec = np.asarray(sources["ra"]), np.asarray(sources["dec"])
    near = _offset(ra[0], dec[0], east_arcsec=0.3)  # source 0: 0.3″ from a known object
    far = _offset(ra[1], dec[1], north_arcsec=5.0)  # source 1: 5″ from the nearest one
    objects = _objects([111, 222], [near[0], far[0]], [near[1], far[1]])
    assoc = steps.associate_ccd(sources, objects, None, max_dist_arcsec=1.0)
    ids = np.asarray(sources["diaObjectId"])
    own = np.asarray(sources["diaSourceId"])
    assert ids[0] == 111
    assert ids[1] == own[1] and ids[1] != 222
    np.testing.assert_array_equal(ids[2:], own[2:])
    np.testing.assert_array_equal(assoc.new_object, [False, True, True, True])
    assert np.all(sources["ssObjectId"] == 0)


def test_known_asteroid_claims_its_source_before_dia_objects_within_one_arcsec(ccd):
    _, sources = ccd
    ra, dec = np.asarray(sources["ra"]), np.asarray(sources["dec"])
    # a DiaObject sits on sources 0 and 1; asteroid 7 is 0.5″ from source 0, asteroid 8 1.5″
    # from source 1
    objects = _objects([111, 222], ra[:2], dec[:2])
    a7 = _offset(ra[0], dec[0], east_arcsec=0.5)
    a8 = _offset(ra[1], dec[1], north_arcsec=1.5)
    predicted = Table({"ssObjectId": np.array([7, 8], np.int64), "ra": [a7[0], a8[0]],
                       "dec": [a7[1], a8[1]]})
    assoc = steps.associate_ccd(sources, objects, predicted, max_dist_arcsec=1.0)
    assert list(sources["ssObjectId"][:2]) == [7, 0]
    assert list(sources["diaObjectId"][:2]) == [0, 222]  # claimed: no DiaObject, not a new one
    np.testing.assert_array_equal(assoc.solar_system.matched, [True, False, False, False])
    assert not assoc.new_object[0] and not assoc.new_object[1]


def test_asteroid_predicted_inside_the_ccd_gives_its_source_an_ss_source_row(sky, sky_sources,
                                                                             deployment, asteroid):
    eph = predict_positions(asteroid, T1, **SITE)
    ra, dec = float(eph.ra_deg[0]), float(eph.dec_deg[0])
    ara, adec = _offset(ra, dec, east_arcsec=0.2)
    upload = deployment.validated(sky.upload(8, 0, T1, [(ara, adec, 5000.0, True),
                                                         *sky_sources(2, seed=4)]))
    sources = steps.prepare_sources(upload.catalog, processed_mjd_tai=T1)
    corners = upload.catalog.footprint_radec()
    predicted, ephem = steps.predict_solar_system(asteroid, upload.catalog.info, corners,
                                                  margin_arcsec=60.0)
    assert list(predicted["ssObjectId"]) == [int(asteroid.ss_object_ids[0])]
    assert predicted["ra"][0] == pytest.approx(ra, abs=1e-9)
    assoc = steps.associate_ccd(sources, _objects([], [], []), predicted, max_dist_arcsec=1.0)
    rows = steps.ss_source_rows(sources, assoc, ephem)
    claimed = int(sources["diaSourceId"][0])
    assert list(rows) == [claimed]
    assert rows[claimed]["ssObjectId"] == int(asteroid.ss_object_ids[0])
    assert rows[claimed]["ephOffset"] == pytest.approx(0.2, abs=0.01)  # arcsec
    # the detector beside it, a degree away, sees no asteroid at all
    far = corners + np.array([1.0, 0.0])
    assert steps.predict_solar_system(asteroid, upload.catalog.info, far,
                                      margin_arcsec=60.0) == (None, None)
    assert steps.predict_solar_system(None, upload.catalog.info, corners,
                                      margin_arcsec=60.0) == (None, None)


@pytest.fixture
def forced_scene(sky, deployment):
    """Known objects around detector 0 of one visit: detected, faint but undetected, off the CCD."""
    detected = sky.radec(0, 60.0, 60.0)
    faint = sky.radec(0, 140.0, 120.0)
    beyond = sky.radec(1, 40.0, 100.0)  # on the next CCD, inside the 20″ padded footprint
    outside_margin = sky.radec(0, 100.0, 250.0)  # 10″ above the CCD: in the margin only
    upload = deployment.validated(sky.upload(9, 0, T1, [(*detected, 6000.0, True),
                                                         (*faint, 2000.0, False)]))
    objects = _objects([11, 22, 33, 44], *zip(detected, faint, beyond, outside_margin, strict=True))
    info = upload.catalog.info
    diff = upload.image_files["difference"].read_all()
    sci = upload.image_files["science"].read_all()
    images = VisitImages(info.visit, info.detector, info.band, info.mjd_mid_tai, diff, sci)
    return upload, objects, images, diff


def test_forced_photometry_measures_only_known_objects_inside_the_ccd_not_detected(forced_scene):
    upload, objects, images, _ = forced_scene
    corners = upload.catalog.footprint_radec()
    rows = steps.forced_measurements(objects, np.array([11], np.int64), corners, images,
                                     processed_mjd_tai=T1 + 0.01)
    assert list(rows["diaObjectId"]) == [22]
    assert list(rows["diaForcedSourceId"]) == list(forced_source_ids(np.array([22]), 9, 0))
    assert int(rows["visit"][0]) == 9 and int(rows["detector"][0]) == 0
    assert rows["band"][0] == "r" and rows["midpointMjdTai"][0] == T1
    assert rows["isPrecovery"].dtype == bool and not rows["isPrecovery"][0]
    assert abs(rows["psfFlux"][0] - 2000.0) < 5 * rows["psfFluxErr"][0]
    assert np.isfinite(rows["scienceFlux"][0])
    assert np.isnan(rows["snapDiffFlux"][0]) and np.isnan(rows["snapDiffFluxErr"][0])


def test_snap_difference_flux_is_measured_only_when_a_snapdiff_image_is_given(forced_scene):
    upload, objects, images, diff = forced_scene
    corners = upload.catalog.footprint_radec()
    with_snaps = VisitImages(images.visit, images.detector, images.band, images.midpoint_mjd_tai,
                             images.difference, images.science, snapdiff=diff)
    rows = steps.forced_measurements(objects, np.array([11], np.int64), corners, with_snaps,
                                     processed_mjd_tai=T1)
    assert list(rows["diaObjectId"]) == [22]
    assert np.isfinite(rows["snapDiffFlux"][0]) and np.isfinite(rows["snapDiffFluxErr"][0])


def test_no_difference_image_or_no_known_object_means_no_forced_source(forced_scene):
    upload, objects, images, _ = forced_scene
    corners = upload.catalog.footprint_radec()
    detected = np.zeros(0, np.int64)
    assert len(steps.forced_measurements(objects, detected, corners, None,
                                         processed_mjd_tai=T1)) == 0
    none = steps.forced_measurements(objects[:0], detected, corners, images, processed_mjd_tai=T1)
    assert len(none) == 0 and "snapDiffFlux" in none.colnames


def _with_u(catalog, u_char: str, last_obs_mjd: float):
    """The catalog with column 106 (U) set to ``u_char`` and its last observation at a date."""
    import dataclasses
    import datetime

    day = datetime.date(1858, 11, 17) + datetime.timedelta(days=int(last_obs_mjd))
    return dataclasses.replace(catalog, mpc_info=np.array([f"  {u_char} MPO1"]),
                               last_obs=np.array([day.strftime("%Y%m%d")]))


@pytest.mark.parametrize("u_char, claimed", [("2", True), (" ", False), ("0", False)])
def test_uncertain_orbit_reaches_its_detection_beyond_one_arcsec_but_blank_u_keeps_the_rule(
        sky, sky_sources, deployment, asteroid, u_char, claimed):
    # U 2, last observed 150 days ago: σ ≈ 1.3″ along track, radius ≈ 4″; the detection is 3″
    # off the prediction. A blank U states nothing and keeps 1″; U 0 is well known.
    orbits = _with_u(asteroid, u_char, T1 - 150.0)
    eph = predict_positions(orbits, T1, **SITE)
    ara, adec = _offset(float(eph.ra_deg[0]), float(eph.dec_deg[0]), east_arcsec=3.0)
    upload = deployment.validated(sky.upload(8, 0, T1, [(ara, adec, 5000.0, True),
                                                         *sky_sources(2, seed=4)]))
    sources = steps.prepare_sources(upload.catalog, processed_mjd_tai=T1)
    predicted, _ = steps.predict_solar_system(orbits, upload.catalog.info,
                                              upload.catalog.footprint_radec(), margin_arcsec=60.0)
    radius = float(predicted["matchRadiusArcsec"][0])
    if u_char == "2":
        assert 3.5 < radius < 6.0
        assert predicted["raErr"][0] * 3600 == pytest.approx(predicted["decErr"][0] * 3600)
        assert 1.0 < predicted["raErr"][0] * 3600 < 2.0
    else:
        assert radius == pytest.approx(1.0, abs=0.05)
    assoc = steps.associate_ccd(sources, _objects([], [], []), predicted, max_dist_arcsec=1.0)
    assert bool(assoc.solar_system.matched[0]) == claimed
    assert bool(assoc.new_object[0]) == (not claimed)
    assert bool(sources["ssObjectId"][0] == int(orbits.ss_object_ids[0])) == claimed


def test_within_a_widened_radius_the_asteroid_takes_its_own_detection_not_a_nearer_stranger(
        sky, sky_sources, deployment, asteroid):
    # U 5 at 150 days: radius at the 10″ cap, σ ≈ 7″. A DiaSource 2.5″ from the prediction and
    # one 6″ away: both inside; the assignment is one-to-one, so the asteroid takes one of them
    # and the other source goes on to DiaObject association (here: a new DiaObject).
    orbits = _with_u(asteroid, "5", T1 - 150.0)
    eph = predict_positions(orbits, T1, **SITE)
    near = _offset(float(eph.ra_deg[0]), float(eph.dec_deg[0]), north_arcsec=2.5)
    other = _offset(float(eph.ra_deg[0]), float(eph.dec_deg[0]), east_arcsec=-6.0)
    upload = deployment.validated(sky.upload(8, 0, T1, [(*near, 5000.0, True),
                                                         (*other, 5000.0, True)]))
    sources = steps.prepare_sources(upload.catalog, processed_mjd_tai=T1)
    predicted, _ = steps.predict_solar_system(orbits, upload.catalog.info,
                                              upload.catalog.footprint_radec(), margin_arcsec=60.0)
    assert float(predicted["matchRadiusArcsec"][0]) == pytest.approx(10.0)
    assoc = steps.associate_ccd(sources, _objects([], [], []), predicted, max_dist_arcsec=1.0)
    np.testing.assert_array_equal(assoc.solar_system.matched, [True, False])
    np.testing.assert_array_equal(assoc.new_object, [False, True])

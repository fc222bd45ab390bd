"""What one CCD computes before writing (``alertprod.pipeline.compute``), on the in-memory APDB."""

from __future__ import annotations

import dataclasses
from types import SimpleNamespace

import numpy as np
import pytest

from alertprod.apdb import memory_level1
from alertprod.formats import RUBIN_SITE, BytesSource, ExposureFile, write_exposure
from alertprod.orbits import predict_positions, ss_object_rows, write_mpcorb
from alertprod.pipeline.compute import compute_ccd, read_images
from alertprod.pipeline.config import PipelineConfig
from alertprod.pipeline.orbit_cache import OrbitCache
from alertprod.pipeline.timing import StageTimer

pytestmark = pytest.mark.unit

T1, T2, T3 = 60000.10, 60000.11, 60000.12
SITE = {"obs_lon_deg": RUBIN_SITE[0], "obs_lat_deg": RUBIN_SITE[1], "obs_height_m": RUBIN_SITE[2]}


class HistoryRecorder:
    """An APDB that records which objects' history is read (every call reaches the real one)."""

    def __init__(self, apdb):
        self._apdb = apdb
        self.history_reads: list[list[int]] = []

    def __getattr__(self, name):
        return getattr(self._apdb, name)

    def get_dia_history(self, object_ids, visit_time_mjd_tai, *, months=12):
        self.history_reads.append(sorted(int(i) for i in object_ids))
        return self._apdb.get_dia_history(object_ids, visit_time_mjd_tai, months=months)


def _compute(apdb, upload, orbits=None):
    return compute_ccd(upload, apdb, orbits or OrbitCache(apdb), PipelineConfig(), StageTimer())


def _store(apdb, computed):
    apdb.store_ccd(computed.writes, lease=None)
    apdb.record_ss_observations(computed.writes.dia_sources)


def _moved(sources, *, undetected=(), east_arcsec=0.1, flux_factor=1.5):
    """The same objects a little later: moved east, brighter; some rendered but not detected."""
    return [(ra + east_arcsec / 3600, dec, (400.0 if i in undetected else f * flux_factor),
             i not in undetected) for i, (ra, dec, f, _) in enumerate(sources)]


@pytest.fixture(scope="module")
def night(sky, sky_sources, new_deployment):
    """Three visits of detector 0, each computed, then stored before the next.

    Visit 1: four new objects. Visit 2 (computed through a :class:`HistoryRecorder`): three of
    them seen again, the fourth faded below detection, one new source. Visit 3: the faded object
    bright again.
    """
    deployment = new_deployment()
    apdb = deployment.level1.apdb
    first = sky_sources(4, seed=11)
    c1 = _compute(apdb, deployment.validated(sky.upload(1, 0, T1, first)))
    _store(apdb, c1)
    second = _moved(first, undetected={3}) + [(*sky.radec(0, 30.0, 170.0), 5000.0, True)]
    up2 = deployment.validated(sky.upload(2, 0, T2, second))
    recorder = HistoryRecorder(apdb)
    c2 = _compute(recorder, up2)
    _store(apdb, c2)
    back = [(ra + 0.2 / 3600, dec, f, True) for ra, dec, f, _ in first[3:]]
    c3 = _compute(apdb, deployment.validated(sky.upload(3, 0, T3, back)))
    return SimpleNamespace(deployment=deployment, c1=c1, up2=up2, c2=c2, c3=c3,
                           history_reads=recorder.history_reads)


def test_first_visit_creates_one_object_and_one_alert_per_source(sky, sky_sources, deployment):
    apdb = deployment.level1.apdb
    up = deployment.validated(sky.upload(1, 0, T1, sky_sources(5, seed=10)))
    timer = StageTimer()
    c = compute_ccd(up, apdb, OrbitCache(apdb), PipelineConfig(), timer)
    assert c.counts == {"diaSources": 5, "newDiaObjects": 5, "updatedDiaObjects": 0, "ssoMatches": 0,
                        "forcedSources": 0, "alerts": 5, "objectsInFootprint": 0}
    ids = sorted(int(i) for i in up.catalog.table["diaSourceId"])
    assert [a.alert_id for a in c.alerts] == ids
    assert sorted(int(i) for i in c.writes.dia_objects["diaObjectId"]) == ids
    assert np.all(np.isnan(np.asarray(c.writes.dia_objects["prevValidityStartMjdTai"], float)))
    assert (c.writes.visit, c.writes.detector, c.writes.visit_time_mjd_tai) == (1, 0, T1)
    assert {"read_images", "associate", "forced", "alerts", "serialize"} <= set(timer.seconds)
    assert len(apdb.export()["DiaSource"]) == 0  # computing writes nothing


def test_second_visit_counts_updated_and_new_objects_forced_sources_and_alerts(night):
    assert night.c2.counts == {"diaSources": 4, "newDiaObjects": 1, "updatedDiaObjects": 3,
                               "ssoMatches": 0, "forcedSources": 1, "alerts": 4,
                               "objectsInFootprint": 4}
    assert len(night.c2.writes.dia_objects) == 4 and len(night.c2.writes.dia_forced_sources) == 1


def test_history_is_read_for_known_objects_detected_this_visit_only(night, sky):
    known = sorted(int(i) for i in night.c1.writes.dia_objects["diaObjectId"])
    faded = known[3]  # rendered in visit 2 but not detected: measured, not read back
    assert night.history_reads == [known[:3]]
    src = night.c2.writes.dia_sources
    is_new = ~np.isin(np.asarray(src["diaObjectId"]), known)
    assert is_new.sum() == 1  # the new source's object is named after the source
    np.testing.assert_array_equal(np.asarray(src["diaObjectId"])[is_new],
                                  np.asarray(src["diaSourceId"])[is_new])
    assert list(night.c2.writes.dia_forced_sources["diaObjectId"]) == [faded]

    # the next CCD sees some of these objects in its padded footprint but detects only a new one
    recorder = HistoryRecorder(night.deployment.level1.apdb)
    upload = night.deployment.validated(sky.upload(2, 1, T2, [(*sky.radec(1, 150.0, 100.0),
                                                                5000.0, True)]))
    c = _compute(recorder, upload)
    assert c.counts["objectsInFootprint"] > 0 and c.counts["newDiaObjects"] == 1
    assert recorder.history_reads == []


def test_alert_of_a_known_object_carries_its_earlier_source_and_a_new_object_none(night, decode):
    first_ids = {int(s["diaObjectId"]): int(s["diaSourceId"]) for s in night.c1.writes.dia_sources}
    for alert in decode(night.c2.alerts).values():
        obj = alert["diaObject"]
        prv = [s["diaSourceId"] for s in alert["prvDiaSources"]]
        if obj["diaObjectId"] in first_ids:
            assert prv == [first_ids[obj["diaObjectId"]]] and obj["nDiaSources"] == 2
        else:
            assert prv == [] and obj["nDiaSources"] == 1
        assert alert["cutoutDifference"] is not None and alert["cutoutTemplate"] is not None
        assert alert["cutoutScience"] is None


def test_forced_measurement_of_a_faded_object_travels_in_its_next_alert(night, decode):
    faded_id = int(night.c2.writes.dia_forced_sources["diaObjectId"][0])
    (alert,) = decode(night.c3.alerts).values()
    assert alert["diaObject"]["diaObjectId"] == faded_id
    assert [f["visit"] for f in alert["prvDiaForcedSources"]] == [2]
    assert [s["visit"] for s in alert["prvDiaSources"]] == [1]


def test_earlier_visit_computed_after_a_later_one_joins_its_objects_and_alerts_without_them(
        sky, sky_sources, new_deployment, decode):
    deployment = new_deployment()
    apdb = deployment.level1.apdb
    first = sky_sources(3, seed=12)
    later = _compute(apdb, deployment.validated(sky.upload(2, 0, T2, _moved(first))))
    _store(apdb, later)
    earlier = _compute(apdb, deployment.validated(sky.upload(1, 0, T1, first)))
    assert earlier.counts["newDiaObjects"] == 0 and earlier.counts["updatedDiaObjects"] == 3
    _store(apdb, earlier)
    for alert in decode(earlier.alerts).values():
        assert alert["prvDiaSources"] == []  # visit 2 is not history of visit 1
        assert alert["diaObject"]["nDiaSources"] == 2
    tables = apdb.export()
    assert len(tables["DiaObject"]) == 3 and len(tables["DiaObjectHistory"]) == 6
    assert np.all(np.asarray(tables["DiaObject"]["nDiaSources"]) == 2)
    hist = tables["DiaObjectHistory"]
    for oid in np.unique(np.asarray(hist["diaObjectId"])):
        versions = hist[np.asarray(hist["diaObjectId"]) == oid]
        versions.sort("validityStartMjdTai")
        ends = np.asarray(versions["validityEndMjdTai"], float)
        starts = np.asarray(versions["validityStartMjdTai"], float)
        assert np.isnan(ends[-1]) and ends[0] == starts[1]  # one open version, no gap


def test_asteroid_alert_carries_that_asteroids_earlier_dia_sources(sky, deployment, asteroid,
                                                                   decode):
    apdb = deployment.level1.apdb
    apdb.store_orbit_catalog(write_mpcorb(asteroid))
    apdb.store_ss_objects(ss_object_rows(asteroid))
    orbits = OrbitCache(apdb)
    static = sky.radec(0, 40.0, 40.0)
    ss_id = int(asteroid.ss_object_ids[0])
    alerts, first = {}, {}
    for visit, t in ((1, T1), (2, T2)):
        eph = predict_positions(asteroid, t, **SITE)
        src = [(float(eph.ra_deg[0]), float(eph.dec_deg[0]), 5000.0, True), (*static, 4000.0, True)]
        c = _compute(apdb, deployment.validated(sky.upload(visit, 0, t, src)), orbits)
        assert c.counts["ssoMatches"] == 1
        _store(apdb, c)
        alerts = decode(c.alerts)
        if visit == 1:
            first = {("ss" if a["ssSource"] else "obj"): i for i, a in alerts.items()}
    (ss_alert,) = [a for a in alerts.values() if a["ssSource"] is not None]
    (obj_alert,) = [a for a in alerts.values() if a["ssSource"] is None]
    assert ss_alert["diaObject"] is None and ss_alert["ssSource"]["ssObjectId"] == ss_id
    assert [s["diaSourceId"] for s in ss_alert["prvDiaSources"]] == [first["ss"]]
    assert ss_alert["mpc_orbits"]["packed_primary_provisional_designation"] == \
        str(asteroid.packed_designation[0])
    assert [s["diaSourceId"] for s in obj_alert["prvDiaSources"]] == [first["obj"]]


class _CutAfterOpening(BytesSource):
    """An image whose object is cut to half its length once opened."""

    def __init__(self, exposure):
        super().__init__(write_exposure(exposure), what="difference")
        self.opened = False

    def read_ranges(self, ranges):
        out = super().read_ranges(ranges)
        return [d[:len(d) // 2] for d in out] if self.opened else out


def test_unreadable_difference_image_is_a_warning_and_costs_only_forced_photometry_and_cutout(
        night, decode):
    apdb = memory_level1().apdb  # as it stood after visit 1
    _store(apdb, night.c1)
    up2 = night.up2
    source = _CutAfterOpening(up2.image_files["difference"].read_all())
    cut = ExposureFile.open(source, what="difference")
    source.opened = True  # cut short after validation opened it: its pixels cannot be read
    broken = dataclasses.replace(up2, image_files={**up2.image_files, "difference": cut},
                                 warnings=list(up2.warnings))
    exposures = read_images(dataclasses.replace(broken, warnings=[]))
    assert exposures["difference"] is None and exposures["science"] is not None
    c = _compute(apdb, broken)
    assert any(w.startswith("unreadable_image:difference:") for w in broken.warnings)
    assert c.counts["forcedSources"] == 0 and c.counts["objectsInFootprint"] == 4
    assert c.counts["alerts"] == 4
    for alert in decode(c.alerts).values():
        assert alert["cutoutDifference"] is None and alert["cutoutTemplate"] is not None

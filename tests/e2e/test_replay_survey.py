"""End to end: a simulated multi-night survey replayed through the embedded stack.

Checks the interface contract of ``alertprod replay`` (the export) and the daytime precovery
against the simulator's truth: every new DiaObject of a night gets one forced measurement per
cached difference image that covered it before discovery (truth footprints), none outside the
30-day cache, none twice after rerunning the day, with fluxes that agree with the true
pre-discovery fluxes within their errors.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from astropy.table import Table

from alertprod.alerts import read_alert_container
from alertprod.apdb import DynamoApdb
from alertprod.cli.demo_filters import DEMO_FILTERS, DemoFilters
from alertprod.filtering import AlertBatch, compile_filter
from alertprod.formats import MaskBit, image_key, read_exposure
from alertprod.pixelization import polygon_contains as contains
from alertprod.replay.runner import replay
from alertprod.sky import load_truth, simulate_survey

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

CACHE_DAYS = 30.0


@pytest.fixture(scope="module")
def replayed(tmp_path_factory):
    root = tmp_path_factory.mktemp("survey")
    survey, out = root / "survey", root / "export"
    simulate_survey(survey, preset="tiny", seed=3, progress=False)
    checks: dict = {}

    def rerun_last_precovery_day(stack):
        apdb = DynamoApdb(stack.clients.dynamodb, stack.resources.level1_table)
        checks["forced_before"] = len(apdb.export()["DiaForcedSource"])
        planner = [i for i in stack.invocations if i.function_id == "PrecoveryPlannerFunction"]
        checks["planner_runs"] = len(planner)
        checks["duplicate_responses_equal"] = True
        for inv in planner:
            # EventBridge delivers the same event twice: Powertools idempotency answers from the
            # first run's record, without planning again
            again = stack.invoke("PrecoveryPlannerFunction", inv.event)
            checks["duplicate_responses_equal"] &= again == inv.response
            # an operator reruns the day a minute later: a new plan, but the same rows
            rerun = dict(inv.event, time=inv.event["time"].replace(":00:00Z", ":01:00Z"), id="rerun")
            stack.invoke("PrecoveryPlannerFunction", rerun)
        stack.run_until_idle()
        checks["forced_after"] = len(apdb.export()["DiaForcedSource"])

    filters = DemoFilters()

    def before_export(stack):
        rerun_last_precovery_day(stack)
        checks["filters"] = filters.collect(stack)

    result = replay(survey, out, progress=False, before_export=before_export,
                    on_start=filters.register, parameter_overrides={"WebhookAllowPrivate": "1"})
    return survey, out, result, checks


def test_each_users_filter_receives_every_matching_alert_once_and_nothing_else(replayed):
    _, out, _, checks = replayed
    alerts = [a for path in sorted((out / "alerts").glob("*.avro")) for a in read_alert_container(
        path.read_bytes())]
    batch = AlertBatch.from_records(alerts)
    ids = np.array([a["diaSourceId"] for a in alerts])
    for user, name, expression, _kind in DEMO_FILTERS:
        got = checks["filters"][user]
        expected = set(ids[compile_filter(expression).evaluate(batch)].tolist())
        assert expected, f"{name}: the survey should give it something to match"
        assert set(got["alert_ids"]) == expected, name  # every match, nothing else
        assert got["unique_alerts"] == len(expected), name  # once each after dedup
        assert got["counters"]["matched"] == got["counters"]["delivered"] == len(expected), name
        assert got["counters"]["failed"] == 0 and got.get("bad_signatures", 0) == 0


def test_export_has_every_table_alert_and_quarantine_file(replayed):
    _, out, result, _ = replayed
    for name in ("DiaObject", "DiaObjectHistory", "DiaSource", "DiaForcedSource", "SSObject"):
        assert (out / f"{name}.fits").exists()
    sources = Table.read(out / "DiaSource.fits")
    alerts = sorted((out / "alerts").glob("*.avro"))
    assert len(alerts) == len(sources) == result.summary["diaSources"] > 0
    assert json.loads((out / "quarantine.json").read_text()) == []
    assert result.summary["ccdsProcessed"] == result.summary["ccds"]


def test_every_alert_decodes_with_the_rubin_package(replayed):
    from lsst.alert.packet import Schema

    _, out, _, _ = replayed
    import fastavro

    schema = Schema.from_file()
    n = 0
    for path in sorted((out / "alerts").glob("*.avro"))[:50]:
        with open(path, "rb") as f:
            for rec in fastavro.reader(f):
                packet = schema.serialize(rec)  # the Rubin serialiser accepts our records
                assert schema.deserialize(packet)["diaSourceId"] == rec["diaSourceId"]
                n += 1
    assert n > 0


def _precovery_rows(out):
    forced = Table.read(out / "DiaForcedSource.fits")
    if "isPrecovery" not in forced.colnames:
        return forced[:0]
    flag = forced["isPrecovery"]
    flag = flag.filled(False) if hasattr(flag, "filled") else flag
    return forced[np.asarray(flag, bool)]


def _has_data(survey, key, ra, dec) -> bool:
    """Whether the difference image of (visit, detector) has any data (not NO_DATA) under the PSF
    stamp at a position: forced photometry measures then, with the masked pixels weighted out."""
    path = survey / "images" / image_key(key[0], key[1], "difference")
    exp = read_exposure(path.read_bytes())
    x, y = exp.wcs.all_world2pix([[ra, dec]], 0)[0]
    ix, iy = int(round(x)), int(round(y))
    ny, nx = exp.shape
    if not (0 <= ix < nx and 0 <= iy < ny):
        return False
    h = exp.psf.shape[0] // 2  # the PSF stamp the forced measurement uses
    stamp = exp.mask[max(iy - h, 0):iy + h + 1, max(ix - h, 0):ix + h + 1]
    return bool(np.any((stamp & int(MaskBit.NO_DATA)) == 0))


def test_precovery_measures_each_new_object_on_every_cached_image_that_covered_it(replayed):
    survey, out, _, _ = replayed
    truth = load_truth(survey)
    objects = Table.read(out / "DiaObject.fits")
    pre = _precovery_rows(out)
    assert len(pre) > 0, "no precovery measurement at all"
    fp = truth.footprints
    fmjd = np.asarray(fp["mjd"], float)
    nights = np.unique(np.floor(fmjd - 0.5))  # days of the planner runs (noon after each night)
    checked = 0
    for obj in objects:
        first = float(obj["firstDiaSourceMjdTai"])
        night = np.floor(first - 0.5)
        if night == nights.min():  # first night: no earlier images
            continue
        planner_t = night + 1 + 15 / 24  # the schedule's 15:00 UTC after that night (≈ TAI)
        expected = set()
        for k in range(len(fp)):
            if not (planner_t - CACHE_DAYS <= fmjd[k] < first - 1e-9):
                continue
            corners = np.column_stack([np.asarray(fp["corner_ra"][k]), np.asarray(fp["corner_dec"][k])])
            key = (int(fp["visit"][k]), int(fp["detector"][k]))
            if contains(corners, float(obj["ra"]), float(obj["dec"])) and \
                    _has_data(survey, key, float(obj["ra"]), float(obj["dec"])):
                expected.add(key)
        mine = pre[np.asarray(pre["diaObjectId"], np.int64) == int(obj["diaObjectId"])]
        got = [(int(v), int(d)) for v, d in zip(mine["visit"], mine["detector"], strict=True)]
        assert len(got) == len(set(got)), "a precovery measurement was stored twice"
        assert set(got) == expected, f"object {obj['diaObjectId']}: {sorted(got)} != {sorted(expected)}"
        assert all(planner_t - CACHE_DAYS <= m < first for m in np.asarray(mine["midpointMjdTai"], float))
        checked += 1
    assert checked > 0


def test_rerunning_a_precovery_day_adds_nothing(replayed):
    _, _, _, checks = replayed
    assert checks["planner_runs"] >= 2
    assert checks["duplicate_responses_equal"]
    assert checks["forced_after"] == checks["forced_before"]


def test_precovered_fluxes_of_transients_agree_with_truth(replayed):
    survey, out, _, _ = replayed
    truth = load_truth(survey)
    pre = _precovery_rows(out)
    lc = truth.lightcurves
    kind = {int(t): str(k) for t, k in zip(truth.objects["truthId"], truth.objects["kind"], strict=True)}
    # a DiaObject's truth: the object behind its first DiaSource
    src = Table.read(out / "DiaSource.fits")
    d2t = {int(a): int(b) for a, b in zip(truth.diasources["diaSourceId"], truth.diasources["truthId"], strict=True)}
    obj_truth = {}
    for row in src[np.argsort(np.asarray(src["midpointMjdTai"]))]:
        obj_truth.setdefault(int(row["diaObjectId"]), d2t.get(int(row["diaSourceId"]), -1))
    pulls = []
    for row in pre:
        tid = obj_truth.get(int(row["diaObjectId"]), -1)
        if tid < 0 or kind.get(tid) not in ("transient", "variable"):
            continue
        m = (np.asarray(lc["truthId"]) == tid) & (np.asarray(lc["visit"]) == int(row["visit"])) & \
            (np.asarray(lc["detector"]) == int(row["detector"]))
        if not m.any():
            continue
        true_diff = float(np.asarray(lc["diffFlux"])[m][0])
        pulls.append((float(row["psfFlux"]) - true_diff) / float(row["psfFluxErr"]))
    assert len(pulls) >= 3, f"only {len(pulls)} pre-discovery epochs of simulated transients/variables"
    pulls = np.asarray(pulls)
    assert np.mean(np.abs(pulls) < 3) >= 0.9, f"pulls {np.round(pulls, 2)}"
    assert abs(np.median(pulls)) < 1.0


def test_objects_carry_precovery_summaries(replayed):
    _, out, _, _ = replayed
    pre = _precovery_rows(out)
    objects = Table.read(out / "DiaObject.fits")
    ids = set(np.asarray(pre["diaObjectId"], np.int64).tolist())
    refreshed = objects[np.isin(np.asarray(objects["diaObjectId"], np.int64), list(ids))]
    assert len(refreshed)
    fp_ndata = [np.isfinite(np.ma.filled(np.ma.asarray(refreshed[f"{b}_fpFluxMean"], float), np.nan))
                for b in "ugrizy"]
    fp_ndata = [bool(np.any(x)) for x in fp_ndata]
    assert any(fp_ndata), "precovery measurements did not reach the fpFlux summaries"


def test_later_alerts_carry_the_precovery_measurements(replayed):
    """Objects precovered after night N: their alerts of night N+1 list those measurements."""
    from alertprod.alerts.serialize import read_alert_container

    _, out, _, _ = replayed
    pre = _precovery_rows(out)
    pre_ids = {int(i) for i in pre["diaForcedSourceId"]}
    by_object = {}
    for row in pre:
        by_object.setdefault(int(row["diaObjectId"]), set()).add(int(row["diaForcedSourceId"]))
    carried = 0
    for path in sorted((out / "alerts").glob("*.avro")):
        for alert in read_alert_container(path.read_bytes()):
            obj = alert.get("diaObject")
            if obj is None or obj["diaObjectId"] not in by_object:
                continue
            forced = {f["diaForcedSourceId"] for f in alert["prvDiaForcedSources"] or []}
            mine = by_object[obj["diaObjectId"]]
            if forced & pre_ids:
                assert mine <= forced, "an alert carries some but not all of its precovery points"
                carried += 1
    assert carried > 0, "no later alert carried precovery measurements"


def test_asteroid_alerts_carry_that_asteroids_earlier_sources(replayed):
    import fastavro

    _, out, _, _ = replayed
    sources = Table.read(out / "DiaSource.fits")
    ss = np.asarray(np.ma.filled(np.ma.asarray(sources["ssObjectId"]), 0), np.int64)
    mid = np.asarray(sources["midpointMjdTai"], float)
    sid = np.asarray(sources["diaSourceId"], np.int64)
    checked = with_history = 0
    for path in sorted((out / "alerts").glob("*.avro")):
        with open(path, "rb") as f:
            for rec in fastavro.reader(f):
                oid = rec["diaSource"].get("ssObjectId")
                if not oid:
                    continue
                t = rec["diaSource"]["midpointMjdTai"]
                earlier = (ss == oid) & (mid < t) & (mid >= t - 360)
                expected = sorted(sid[earlier].tolist())
                got = sorted(r["diaSourceId"] for r in rec["prvDiaSources"] or [])
                assert got == expected, f"alert {rec['diaSourceId']} of asteroid {oid}"
                checked += 1
                with_history += bool(expected)
    assert checked > 0 and with_history > 0


def _null_as_nan(column) -> np.ndarray:
    return np.asarray(np.ma.filled(np.ma.asarray(column, float), np.nan))


def test_snap_difference_fluxes_follow_the_snapdiff_uploads(replayed):
    """``snapDiffFlux`` on every forced row (nightly and precovery) of a CCD-visit whose snapdiff
    was uploaded, null on the others; DiaSource rows carry the catalog's snap columns."""
    survey, out, _, _ = replayed
    forced = Table.read(out / "DiaForcedSource.fits")
    keys = [(int(v), int(d)) for v, d in zip(forced["visit"], forced["detector"], strict=True)]
    uploaded = {k: (survey / "images" / image_key(*k, "snapdiff")).exists() for k in set(keys)}
    snap = np.array([uploaded[k] for k in keys], bool)
    flux, err = _null_as_nan(forced["snapDiffFlux"]), _null_as_nan(forced["snapDiffFluxErr"])
    pre = np.asarray(np.ma.filled(np.ma.asarray(forced["isPrecovery"]), False), bool)
    assert np.any(snap & pre) and np.any(snap & ~pre) and np.any(~snap), \
        "the survey lacks nightly or precovery rows with and without a snap difference"
    assert np.all(np.isfinite(flux[snap]) & np.isfinite(err[snap]) & (err[snap] > 0))
    assert np.all(np.isnan(flux[~snap]) & np.isnan(err[~snap]))

    sources = Table.read(out / "DiaSource.fits")
    row_of = {int(i): k for k, i in enumerate(sources["diaSourceId"])}
    with_snap = 0
    for path in sorted((survey / "diasources").glob("*/*.fits")):
        catalog = Table.read(path, hdu=1)
        rows = [row_of[int(i)] for i in catalog["diaSourceId"]]
        for col in ("snapDiffFlux", "snapDiffFluxErr"):
            stored = _null_as_nan(sources[col])[rows]
            if col in catalog.colnames:
                expected = np.asarray(catalog[col], np.float32)
                assert np.array_equal(stored, expected, equal_nan=True), f"{path.name}: {col}"
            else:
                assert np.all(np.isnan(stored)), f"{path.name}: {col} without a catalog column"
        with_snap += "snapDiffFlux" in catalog.colnames
    assert with_snap > 0

"""``alertprod replay --image-cache-days 1``: the cache expires during the replay, the archive keeps all.

Two nights of the ``tiny`` survey replayed twice, with the default 30-day cache and with a
1-day cache. The nightly products (the Level 1 export and every alert) are the same; the
first night's cached images have expired by the end of the short-cache replay; every science
and template image is in the archive, tile-compressed, and found through the archive index.
(Two nights, because precovery on the cache alone cannot measure an epoch that has expired: a
new object of night 3 would lose its night-1 points until precovery re-creates difference
images from the archive.)
"""

from __future__ import annotations

import fastavro
import numpy as np
import pytest
from astropy.table import Table

from alertprod.apdb import DynamoApdb
from alertprod.archive import archive_key, find_archived_at, open_archived
from alertprod.aws import S3BlobStore
from alertprod.formats import read_exposure
from alertprod.replay.runner import replay
from alertprod.replay.survey_dir import scan_survey_dir
from alertprod.sky import simulate_survey
from alertprod.sky.presets import get_preset

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

TABLES = ("DiaObject", "DiaObjectHistory", "DiaSource", "DiaForcedSource", "SSObject")
#: When the function ran, on the stack's clock (which runs at wall speed between visits).
PROCESSING_TIME = "timeProcessedMjdTai"


@pytest.fixture(scope="module")
def replays(tmp_path_factory):
    root = tmp_path_factory.mktemp("cache")
    survey = root / "survey"
    config = get_preset("tiny", n_nights=2, visits_per_night=2, n_ccd_y=1)
    simulate_survey(survey, config=config, seed=5, progress=False)
    seen: dict = {}

    def look(stack):
        res = stack.resources
        seen["cache"] = sorted(S3BlobStore(stack.clients.s3, res.image_bucket).list("visits/"))
        archive = S3BlobStore(stack.clients.s3, res.archive_bucket)
        apdb = DynamoApdb(stack.clients.dynamodb, res.level1_table)
        seen["archived"], seen["found"] = {}, {}
        for visit in scan_survey_dir(survey)[0]:
            for ccd in visit.ccds:
                for kind in ("science", "template"):
                    if kind not in ccd.image_paths:
                        continue
                    exp = read_exposure(open_archived(archive, ccd.visit, ccd.detector, kind))
                    seen["archived"][(ccd.visit, ccd.detector, kind)] = (exp, ccd.image_paths[kind])
                    ra, dec = exp.wcs.all_pix2world([[40.0, 60.0]], 0)[0]
                    found = find_archived_at(apdb, ra, dec, visit.mjd_tai - 0.01, visit.mjd_tai + 0.01)
                    seen["found"][(ccd.visit, ccd.detector, kind)] = {
                        (int(v), int(d), str(k)) for v, d, k in zip(
                            found["visit"], found["detector"], found["kind"], strict=True)}
        seen["difference_archived"] = any("difference" in k for k in archive.list("archive/"))

    normal = replay(survey, root / "normal", progress=False)
    short = replay(survey, root / "short", progress=False, image_cache_days=1, before_export=look)
    return survey, root / "normal", root / "short", normal, short, seen


def _without_processing_time(value):
    if isinstance(value, dict):
        return {k: _without_processing_time(v) for k, v in value.items() if k != PROCESSING_TIME}
    if isinstance(value, list):
        return [_without_processing_time(v) for v in value]
    return value


def _alerts(out):
    records = []
    for path in sorted((out / "alerts").glob("*.avro")):
        with open(path, "rb") as f:
            records.extend(_without_processing_time(r) for r in fastavro.reader(f))
    return sorted(records, key=lambda r: r["diaSourceId"])


def _differences(a: Table, b: Table) -> list[str]:
    """Columns in which two exports differ, with the first differing rows' ids (empty: equal)."""
    if a.colnames != b.colnames or len(a) != len(b):
        return [f"columns or lengths differ: {len(a)} vs {len(b)} rows"]
    out = []
    ids = a[a.colnames[0]]
    for c in (c for c in a.colnames if c != PROCESSING_TIME):
        x, y = np.ma.asarray(a[c]), np.ma.asarray(b[c])
        mx, my = np.ma.getmaskarray(x), np.ma.getmaskarray(y)
        xv, yv = np.asarray(x.data), np.asarray(y.data)
        same = (xv == yv) | (np.isnan(xv) & np.isnan(yv)) if xv.dtype.kind == "f" else xv == yv
        bad = np.flatnonzero((mx != my) | (~mx & ~same))
        if bad.size:
            out.append(f"{c}: {bad.size} rows, first {a.colnames[0]} {ids[bad[:3]].tolist()}: "
                       f"{xv[bad[:3]].tolist()} vs {yv[bad[:3]].tolist()}")
    return out


def test_nightly_products_equal_those_of_a_normal_replay(replays):
    _, normal_out, short_out, normal, short, _ = replays
    for name in TABLES:
        diff = _differences(Table.read(normal_out / f"{name}.fits"), Table.read(short_out / f"{name}.fits"))
        assert diff == [], (name, diff)
    assert len(Table.read(short_out / "DiaSource.fits")) > 0
    normal_alerts, short_alerts = _alerts(normal_out), _alerts(short_out)
    assert len(normal_alerts) == len(short_alerts) > 0
    differing = [a["diaSourceId"] for a, b in zip(normal_alerts, short_alerts, strict=True) if a != b]
    assert differing == []
    assert normal.summary["precoverySources"] == short.summary["precoverySources"]


def test_first_night_images_expired_from_the_cache(replays):
    survey, *_, normal, short, seen = replays
    visits = scan_survey_dir(survey)[0]
    first_night = {v.visit for v in visits if int(v.mjd_tai) == int(visits[0].mjd_tai)}
    cached_visits = {int(k.split("/")[1]) for k in seen["cache"]}
    assert first_night and not first_night & cached_visits
    assert cached_visits  # the last night is still cached
    assert short.summary["imageArchive"]["imageCacheDays"] == 1
    assert short.summary["imageArchive"]["expiredCacheImages"] > 0
    assert normal.summary["imageArchive"]["expiredCacheImages"] == 0


def test_every_science_and_template_image_is_archived_and_indexed(replays):
    survey, *_, short, seen = replays
    n_images = sum(kind in ("science", "template") for v in scan_survey_dir(survey)[0]
                   for c in v.ccds for kind in c.image_paths)
    assert len(seen["archived"]) == n_images == short.summary["imageArchive"]["archivedImages"]
    assert not seen["difference_archived"]
    for key, (archived, path) in seen["archived"].items():
        original = read_exposure(path.read_bytes())
        assert archived.info == original.info and np.array_equal(archived.mask, original.mask)
        noise = np.sqrt(np.median(original.variance))
        assert np.max(np.abs(archived.image - original.image)) < noise, key
        assert key in seen["found"][key], key
    assert archive_key(*next(iter(seen["archived"]))).startswith("archive/visits/")


@pytest.fixture(scope="module")
def three_nights(tmp_path_factory):
    """Three nights through a 1-day cache; every truth object measured on every expired epoch
    through the re-creation call, from the archived science and template images."""
    from alertprod.photometry import measure_recreated
    from alertprod.sky import load_truth

    root = tmp_path_factory.mktemp("recreate")
    survey = root / "survey"
    config = get_preset("tiny", n_nights=3, visits_per_night=2, n_ccd_y=1)
    simulate_survey(survey, config=config, seed=11, progress=False)
    truth = load_truth(survey)
    seen: dict = {"rows": []}

    def measure_expired(stack):
        res = stack.resources
        cached = set(S3BlobStore(stack.clients.s3, res.image_bucket).list("visits/"))
        archive = S3BlobStore(stack.clients.s3, res.archive_bucket)
        lc = truth.lightcurves
        for visit in scan_survey_dir(survey)[0]:
            for ccd in visit.ccds:
                if f"visits/{ccd.visit:08d}/{ccd.detector:03d}/difference.fits" in cached:
                    continue  # still cached: measured on the uploaded difference instead
                sel = lc[(lc["visit"] == ccd.visit) & (lc["detector"] == ccd.detector)]
                seen.setdefault("expired", set()).add((ccd.visit, ccd.detector))
                if len(sel) == 0:
                    continue
                science = read_exposure(open_archived(archive, ccd.visit, ccd.detector, "science"))
                template = read_exposure(open_archived(archive, ccd.visit, ccd.detector, "template"))
                rows = measure_recreated(science, template, np.asarray(sel["ra"], float),
                                         np.asarray(sel["dec"], float), processed_mjd_tai=0.0)
                truth_of = np.asarray(sel["diffFlux"], float)[np.asarray(rows["diaObjectId"], int)]
                kind_of = np.asarray(sel["kind"]).astype(str)[np.asarray(rows["diaObjectId"], int)]
                seen["rows"].append(Table({"visit": rows["visit"], "psfFlux": rows["psfFlux"],
                                           "kind": kind_of,
                                           "psfFluxErr": rows["psfFluxErr"], "truth": truth_of,
                                           "recreated": rows["recreated"], "n_asked": [len(sel)] * len(rows)}))

    replay(survey, root / "short", progress=False, image_cache_days=1, before_export=measure_expired,
           export=False)
    return seen


def test_every_expired_epoch_is_remeasured_from_the_archive_and_agrees_with_truth(three_nights):
    from astropy.table import vstack

    assert len(three_nights.get("expired", ())) >= 8  # the first nights' CCDs left the cache
    rows = vstack(three_nights["rows"])
    assert len(rows) >= 20 and np.all(rows["recreated"])
    asked = sum(int(t["n_asked"][0]) for t in three_nights["rows"])
    assert len(rows) >= 0.9 * asked  # every truth object on the CCD measured (edges excepted)
    pulls = (np.asarray(rows["psfFlux"]) - np.asarray(rows["truth"])) / np.asarray(rows["psfFluxErr"])
    assert np.all(np.isfinite(pulls))
    # A high-proper-motion star is in the template at its old place: its truth difference flux
    # (0: the same star in both) is not what a PSF fit at its new place measures (a dipole's
    # lobe); every other kind is a point source whose difference flux the truth gives.
    point = np.asarray(rows["kind"]).astype(str) != "hpm_star"
    pulls = pulls[point]
    assert point.sum() >= 20
    assert abs(np.median(pulls)) < 0.5 and np.percentile(np.abs(pulls), 90) < 3.0

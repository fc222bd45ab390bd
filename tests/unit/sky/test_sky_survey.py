"""The tiny survey, end to end: layout, contract, detections against the truth."""

from __future__ import annotations

import argparse

import numpy as np
import pytest
from astropy.coordinates import SkyCoord
from astropy.io import fits

from alertprod.cli import simulate as simulate_cli
from alertprod.formats import RUBIN_SITE, MaskBit, read_diasource_catalog, read_exposure
from alertprod.orbits import predict_positions, read_mpcorb
from alertprod.sky import load_truth


@pytest.fixture(scope="module")
def survey(tmp_path_factory):
    out = tmp_path_factory.mktemp("tiny")
    parser = argparse.ArgumentParser()
    simulate_cli.register(parser.add_subparsers())
    args = parser.parse_args(["simulate", "--out", str(out), "--preset", "tiny", "--seed", "3",
                              "--no-progress"])
    assert args.func(args) == 0
    return out, load_truth(out)


@pytest.fixture(scope="module")
def catalogs(survey):
    """Every DiaSource catalog of the survey, parsed once: (path, DiaSourceCatalog)."""
    out, _ = survey
    return [(p, read_diasource_catalog(p.read_bytes())) for p in sorted((out / "diasources").glob("*/*.fits"))]


def _catalogs(out):
    return sorted((out / "diasources").glob("*/*.fits"))


def test_every_catalog_has_its_images_and_the_files_parse(survey, catalogs):
    out, truth = survey
    n_visits, n_detectors = len(truth.survey["visits"]), truth.survey["n_detectors"]
    assert len(catalogs) == len(truth.footprints) == n_visits * n_detectors == 12 * 4
    for k, (_, cat) in enumerate(catalogs):
        vdir = out / "images" / "visits" / f"{cat.info.visit:08d}" / f"{cat.info.detector:03d}"
        for kind in ("science", "difference", "template"):
            assert (vdir / f"{kind}.fits").is_file()
            if k % 5 == 0:  # parse a sample spread over visits and detectors
                exp = read_exposure((vdir / f"{kind}.fits").read_bytes())
                assert exp.info == cat.info
                assert exp.shape == (cat.detsize[1], cat.detsize[0])
    n_snap = len(list((out / "images").glob("visits/*/*/snapdiff.fits")))
    assert 0 < n_snap < len(catalogs)


def test_headers_follow_the_upload_contract(survey):
    out, _ = survey
    path = _catalogs(out)[0]
    hdr = fits.getheader(path, 0)
    for key in ("VISIT", "DETECTOR", "BAND", "MJD-MID", "EXPTIME", "OBSGEO-L", "OBSGEO-B", "OBSGEO-H",
                "DETSIZE1", "DETSIZE2", "CTYPE1", "CTYPE2", "CRVAL1", "CRPIX1"):
        assert key in hdr, key
    assert (hdr["OBSGEO-L"], hdr["OBSGEO-B"], hdr["OBSGEO-H"]) == pytest.approx(RUBIN_SITE)
    image = fits.open(str(path).replace("diasources", "images/visits").replace(".fits", "/science.fits"))
    assert [h.name for h in image][1:] == ["IMAGE", "VARIANCE", "MASK", "PSF"]
    assert image["IMAGE"].header["CTYPE1"] == "RA---TAN"
    assert image["PSF"].data.sum() == pytest.approx(1.0, abs=1e-5)


def test_dia_source_ids_are_unique_and_encode_visit_and_detector(survey, catalogs):
    _, truth = survey
    ids = []
    for _, cat in catalogs:
        block = (cat.info.visit * 1000 + cat.info.detector) * 100000
        i = np.asarray(cat.table["diaSourceId"])
        assert np.all((i >= block) & (i < block + 100000))
        ids.append(i)
    ids = np.concatenate(ids)
    assert ids.size == np.unique(ids).size == len(truth.diasources) > 50
    assert set(ids) == set(truth.diasources["diaSourceId"])


def test_masks_flag_bad_columns_edges_saturation_and_cosmic_rays(survey):
    out, _ = survey
    bits = 0
    for path in sorted((out / "images").glob("visits/*/*/science.fits"))[:8]:
        mask = read_exposure(path.read_bytes()).mask
        bits |= int(np.bitwise_or.reduce(mask.ravel()))
        assert np.all(mask[0, :] & MaskBit.EDGE)
        assert np.any(np.all(mask & MaskBit.BAD, axis=0))  # a whole bad column
    for bit in (MaskBit.BAD, MaskBit.EDGE, MaskBit.CR, MaskBit.SAT):
        assert bits & bit, bit.name
    templates = sorted((out / "images").glob("visits/*/*/template.fits"))
    assert any(read_exposure(p.read_bytes()).mask.max() & MaskBit.NO_DATA for p in templates)


def test_detects_90_percent_of_variables_and_transients_above_snr_6(survey):
    _, truth = survey
    lc, ds = truth.lightcurves, truth.diasources
    detected = set(zip(ds["truthId"].tolist(), ds["visit"].tolist(), ds["detector"].tolist(), strict=True))
    sel = (lc["expectedSnr"] > 6) & np.isin(lc["kind"], ["variable", "transient"])
    assert sel.sum() >= 20
    found = [(int(r["truthId"]), int(r["visit"]), int(r["detector"])) in detected for r in lc[sel]]
    assert np.mean(found) >= 0.9


def test_asteroids_from_mpcorb_match_their_detections_within_0p3_arcsec(survey, catalogs):
    out, truth = survey
    orbits = read_mpcorb((out / "mpcorb.dat").read_text())
    ast = truth.objects[truth.objects["kind"] == "asteroid"]
    assert len(orbits) == len(ast) >= 1
    assert set(orbits.ss_object_ids) == set(ast["ssObjectId"])
    ds = truth.diasources
    checked, visits_per_object = 0, {}
    for _, cat in catalogs:
        rows = ds[np.isin(ds["diaSourceId"], cat.table["diaSourceId"]) & np.isin(ds["truthId"], ast["truthId"])]
        if not len(rows):
            continue
        eph = predict_positions(orbits, cat.info.mjd_mid_tai, obs_lon_deg=cat.info.obs_lon_deg,
                                obs_lat_deg=cat.info.obs_lat_deg, obs_height_m=cat.info.obs_height_m)
        by_ss = dict(zip(eph.ss_object_id.tolist(), zip(eph.ra_deg, eph.dec_deg, strict=True), strict=True))
        for r in rows:
            ss = int(ast["ssObjectId"][ast["truthId"] == r["truthId"]][0])
            src = cat.table[cat.table["diaSourceId"] == r["diaSourceId"]][0]
            sep = SkyCoord(src["ra"], src["dec"], unit="deg").separation(
                SkyCoord(*by_ss[ss], unit="deg")).arcsec
            assert sep < 0.3
            checked += 1
            visits_per_object.setdefault(ss, set()).add(cat.info.visit)
    assert checked >= 2 and max(len(v) for v in visits_per_object.values()) >= 2


def test_footprints_contain_their_sources(survey, catalogs):
    _, truth = survey
    fp = truth.footprints
    for _, cat in catalogs:
        row = fp[(fp["visit"] == cat.info.visit) & (fp["detector"] == cat.info.detector)][0]
        corners = np.column_stack([row["corner_ra"], row["corner_dec"]])
        assert np.allclose(corners, cat.footprint_radec(), atol=1e-9)
        lc = truth.lightcurves[(truth.lightcurves["visit"] == cat.info.visit)
                               & (truth.lightcurves["detector"] == cat.info.detector)]
        for ra, dec in [*zip(cat.table["ra"], cat.table["dec"], strict=True),
                        *zip(lc["ra"], lc["dec"], strict=True)]:
            assert row["corner_ra"].min() - 1e-6 <= ra <= row["corner_ra"].max() + 1e-6
            assert row["corner_dec"].min() - 1e-6 <= dec <= row["corner_dec"].max() + 1e-6


def test_edge_transient_appears_at_a_shared_edge_then_on_the_neighbour(survey):
    _, truth = survey
    edge = truth.survey["edge_case"]
    tr = truth.objects[(truth.objects["kind"] == "transient") & (truth.objects["subkind"] == "edge")]
    assert len(tr) == 1
    tid = int(tr["truthId"][0])
    lc = truth.lightcurves[truth.lightcurves["truthId"] == tid]
    first = lc[(lc["visit"] == edge["visit_first"])]
    nxt = lc[(lc["visit"] == edge["visit_next"])]
    assert len(first) == len(nxt) == 1
    assert first["detector"][0] == edge["detector_first"] and nxt["detector"][0] == edge["detector_next"]
    nx = truth.survey["config"]["ccd_nx_pix"]
    assert nx - 1 - first["x"][0] <= 10.0
    assert first["flux"][0] > 0 and np.all(lc["flux"][lc["mjd"] < first["mjd"][0]] == 0)
    ds = truth.diasources
    assert np.any((ds["truthId"] == tid) & (ds["visit"] == edge["visit_next"]))


def test_precovery_transient_is_measurable_but_undetected_before_discovery(survey):
    _, truth = survey
    pre = truth.objects[truth.objects["subkind"] == "precovery"]
    assert len(pre) >= 1
    lc, ds = truth.lightcurves, truth.diasources
    found = False
    for tid in pre["truthId"]:
        rows = lc[lc["truthId"] == tid]
        faint = rows[(rows["expectedSnr"] > 1.5) & (rows["expectedSnr"] < 4.5)]
        bright = rows[rows["expectedSnr"] > 8]
        if len(faint) and len(bright) and faint["mjd"].max() < bright["mjd"].min():
            found = bool(np.any(ds["truthId"] == tid))
    assert found


def test_every_detection_is_labelled_real_or_bogus_kind(survey):
    _, truth = survey
    ds = truth.diasources
    real = ds["truthId"] > 0
    assert np.all(ds["bogusKind"][real] == "")
    assert set(ds["bogusKind"][~real]) <= {"cr_residual", "hot_pixel", "edge", "dipole",
                                           "static_residual", "noise"}
    assert set(ds["truthId"][real]) <= set(truth.objects["truthId"])
    assert real.sum() > 0.3 * len(ds)


def test_three_nights_some_objects_found_on_night_two_are_seen_again_on_night_three(survey):
    _, truth = survey
    night_of = {v["visit"]: v["night"] for v in truth.survey["visits"]}
    assert sorted(set(night_of.values())) == [0, 1, 2]
    ds = truth.diasources[truth.diasources["truthId"] > 0]
    nights = np.array([night_of[int(v)] for v in ds["visit"]])
    first = {}
    for tid, night in zip(ds["truthId"].tolist(), nights.tolist(), strict=True):
        first[tid] = min(first.get(tid, night), night)
    new_on_2 = {t for t, n in first.items() if n == 1}
    seen_on_3 = set(ds["truthId"][nights == 2].tolist())
    assert len(new_on_2 & seen_on_3) >= 1

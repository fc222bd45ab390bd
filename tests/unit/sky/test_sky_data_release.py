"""The simulator's data-release coadds: covering its survey, deeper, and consistent with its truth."""

from __future__ import annotations

import numpy as np
import pytest

from alertprod.archive import archive_key
from alertprod.archive.data_release import load_data_release, read_data_release_index
from alertprod.aws import MemoryBlobStore
from alertprod.formats import image_key, read_exposure
from alertprod.formats.compression import compress_exposure_bytes
from alertprod.precovery.job_plan import JobUnit
from alertprod.precovery.job_unit import measure_job_unit
from alertprod.sky import load_truth
from alertprod.sky.data_release import DR_DEPTH_FACTOR
from alertprod.sky.writer import simulate_survey

pytestmark = pytest.mark.unit


@pytest.fixture(scope="module")
def survey(tmp_path_factory):
    """The tiny survey with its coadds loaded into an archive beside its science and templates."""
    out = tmp_path_factory.mktemp("tiny-dr")
    simulate_survey(out, preset="tiny", seed=5, progress=False)
    truth = load_truth(out)
    archive = MemoryBlobStore()
    report = load_data_release(out / "dr_templates", archive)
    for row in truth.footprints:
        for kind in ("science", "template"):
            raw = (out / "images" / image_key(int(row["visit"]), int(row["detector"]), kind)).read_bytes()
            archive.put(archive_key(int(row["visit"]), int(row["detector"]), kind),
                        compress_exposure_bytes(raw))
    return out, truth, archive, report


def test_the_coadds_cover_every_footprint_in_its_band(survey):
    _, truth, archive, report = survey
    index = read_data_release_index(archive)
    assert report["bands"] == sorted({str(b) for b in truth.footprints["band"]})
    for row in truth.footprints:
        for ra, dec in zip(row["corner_ra"], row["corner_dec"], strict=True):
            assert index.covering(float(ra), float(dec), str(row["band"])) is not None


def test_the_coadds_are_deeper_than_the_nightly_templates(survey):
    out, truth, archive, _ = survey
    index = read_data_release_index(archive)
    row = truth.footprints[0]
    nightly = read_exposure((out / "images" / image_key(int(row["visit"]), int(row["detector"]),
                                                        "template")).read_bytes())
    entry = index.covering(float(row["corner_ra"][0]), float(row["corner_dec"][0]), str(row["band"]))
    coadd = read_exposure(archive.get(entry.key))
    ratio = np.median(coadd.variance) / np.median(nightly.variance)
    assert ratio == pytest.approx(1.0 / DR_DEPTH_FACTOR, rel=0.1)
    # and the pixels' scatter is what the variance plane says (robust σ of the background)
    pix = coadd.image[coadd.image < np.percentile(coadd.image, 60)]
    sigma = 1.4826 * np.median(np.abs(coadd.image - np.median(coadd.image)))
    assert pix.size and sigma == pytest.approx(np.sqrt(np.median(coadd.variance)), rel=0.15)


def test_variables_and_transients_against_the_coadd_agree_with_truth_with_smaller_errors(survey):
    _, truth, archive, _ = survey
    lc = truth.lightcurves[np.isin(np.asarray(truth.lightcurves["kind"]), ["variable", "transient"])]
    pulls = {"data_release": [], "nightly": []}
    errors = {"data_release": [], "nightly": []}
    keys = sorted({(int(v), int(d)) for v, d in zip(lc["visit"], lc["detector"], strict=True)})
    for visit, detector in keys:
        rows = lc[(lc["visit"] == visit) & (lc["detector"] == detector)]
        unit = JobUnit(visit, detector, str(rows["band"][0]), float(rows["mjd"][0]), "archive",
                       tuple(range(len(rows))), tuple(map(float, rows["ra"])),
                       tuple(map(float, rows["dec"])))
        for kind in pulls:
            got = measure_job_unit(unit, images=MemoryBlobStore(), archive=archive,
                                   processed_mjd_tai=61500.0, image_kind=kind).rows
            k = np.asarray(got["target"])
            # the survey's edge-crossing transient sits on the CCD's edge: its stamp is cut
            x, y = np.asarray(rows["x"])[k], np.asarray(rows["y"])[k]
            inner = (np.minimum(x, y) > 12) & (np.maximum(x, y) < 256 - 12)
            ok = np.isfinite(np.asarray(got["psfFlux"])) & inner
            expected = np.asarray(rows["diffFlux"])[k]
            err = np.asarray(got["psfFluxErr"])
            pulls[kind] += list(((np.asarray(got["psfFlux"]) - expected) / err)[ok])
            errors[kind] += list(err[ok])
            if kind == "data_release":
                assert all(str(t).startswith("data_release:DR1/") for t in got["template"])
    for kind, values in pulls.items():
        p = np.asarray(values)
        assert p.size >= 80
        assert abs(np.mean(p)) < 0.25 and 0.75 < np.std(p) < 1.3, (kind, np.mean(p), np.std(p))
    assert np.median(errors["data_release"]) < np.median(errors["nightly"])

"""Per-epoch flags and status of precovery light-curve rows, from the images' mask planes."""

from __future__ import annotations

import csv
import io
import json

import numpy as np
import pytest
from astropy.io.votable import parse_single_table
from synthetic import make_wcs

from alertprod.archive import archive_key
from alertprod.aws import MemoryBlobStore
from alertprod.errors import PrecoveryError
from alertprod.formats import Exposure, ExposureInfo, MaskBit, image_key, write_exposure
from alertprod.formats.compression import compress_exposure
from alertprod.imaging.psf import add_point_sources, gaussian_psf
from alertprod.precovery.flags import (
    QUALITY_BITS,
    PrecoveryFlag,
    footprint_flags,
    row_status,
    sky_to_pixels,
)
from alertprod.precovery.job_plan import JobUnit
from alertprod.precovery.job_unit import measure_job_unit
from alertprod.precovery.results import rows_from_records, to_csv, to_json, to_votable

pytestmark = pytest.mark.unit

N, SIGMA = 256, 20.0
#: Positions (x, y): a clean transient, a saturated star's core, one in a NO_DATA strip,
#: one off the CCD (planning thought it on).
CLEAN, SATURATED, STRIP, OFF = (70.2, 190.4), (70.3, 70.6), (195.1, 128.2), (-40.0, 128.0)
STRIP_X = (175, 215)  # columns without data on the science image (wider than the PSF stamp)


def _exposure(pixels, var, mask, psf, wcs, info):
    return Exposure(np.asarray(pixels, np.float32), var, mask, psf, wcs, info)


@pytest.fixture(scope="module")
def scene():
    """One CCD-visit, cached and archived: a transient, a saturated star, a dead strip."""
    rng = np.random.default_rng(12)
    wcs, psf = make_wcs(nx=N, ny=N), gaussian_psf(3.0, size_pix=21)
    info = ExposureInfo(7, 2, "g", 60400.3, 30.0)
    static = np.zeros((N, N))
    add_point_sources(static, psf, np.array([SATURATED[0]]), np.array([SATURATED[1]]),
                      np.array([3e6]))
    science_img = static.copy()
    add_point_sources(science_img, psf, np.array([CLEAN[0]]), np.array([CLEAN[1]]),
                      np.array([4000.0]))
    var = np.full((N, N), SIGMA**2, np.float32)
    sci_mask = np.zeros((N, N), np.int32)
    yy, xx = np.mgrid[:N, :N]
    sci_mask[(xx - SATURATED[0]) ** 2 + (yy - SATURATED[1]) ** 2 <= 2.5**2] |= int(MaskBit.SAT)
    sci_mask[:, STRIP_X[0]:STRIP_X[1]] |= int(MaskBit.NO_DATA)
    sci_mask[(xx - CLEAN[0]) ** 2 + (yy - CLEAN[1]) ** 2 <= 3**2] |= int(MaskBit.DETECTED)
    tmp_mask = np.zeros((N, N), np.int32)
    science = _exposure(science_img + rng.normal(0, SIGMA, (N, N)), var, sci_mask, psf, wcs, info)
    template = _exposure(static + rng.normal(0, SIGMA / 5, (N, N)), var / 25, tmp_mask, psf, wcs,
                         info)
    diff_var = var + np.float32((SIGMA / 5) ** 2)
    difference = _exposure(science.image - template.image, diff_var,
                           (sci_mask | tmp_mask) & ~int(MaskBit.DETECTED), psf, wcs, info)
    images, archive = MemoryBlobStore(), MemoryBlobStore()
    images.put(image_key(7, 2, "difference"), write_exposure(difference))
    images.put(image_key(7, 2, "science"), write_exposure(science))
    archive.put(archive_key(7, 2, "science"), compress_exposure(science))
    archive.put(archive_key(7, 2, "template"), compress_exposure(template))
    x, y = zip(CLEAN, SATURATED, STRIP, OFF, strict=True)
    ra, dec = wcs.all_pix2world(np.array(x), np.array(y), 0)
    return images, archive, science, np.asarray(ra), np.asarray(dec)


@pytest.fixture(scope="module", params=["cache", "archive"])
def measured(request, scene):
    images, archive, _, ra, dec = scene
    unit = JobUnit(7, 2, "g", 60400.3, request.param, (0, 1, 2, 3), tuple(ra), tuple(dec))
    return measure_job_unit(unit, images=images, archive=archive, processed_mjd_tai=60500.0).rows


def test_every_planned_position_gets_a_row_saying_what_happened(measured):
    assert list(measured["target"]) == [0, 1, 2, 3]
    assert list(measured["status"]) == ["ok", "flagged", "no_data", "off_image"]


def test_a_clean_position_is_ok_with_flags_zero(measured):
    clean = measured[0]
    assert clean["flags"] == 0 and clean["status"] == "ok"
    assert clean["psfFlux"] == pytest.approx(4000.0, abs=4 * clean["psfFluxErr"])


def test_a_position_on_a_saturated_core_is_measured_and_flagged_sat(measured):
    sat = measured[1]
    assert sat["flags"] & int(PrecoveryFlag.SAT) and sat["status"] == "flagged"
    assert np.isfinite(sat["psfFlux"]) and not sat["flags"] & int(PrecoveryFlag.NOT_MEASURED)


def test_a_position_in_a_no_data_strip_is_a_no_data_row_with_nan_fluxes(measured):
    strip = measured[2]
    assert strip["status"] == "no_data"
    assert strip["flags"] & int(PrecoveryFlag.NO_DATA | PrecoveryFlag.NOT_MEASURED) == int(
        PrecoveryFlag.NO_DATA | PrecoveryFlag.NOT_MEASURED)
    assert np.isnan(strip["psfFlux"]) and np.isnan(strip["psfFluxErr"])
    assert np.isnan(strip["scienceFlux"])


def test_a_position_off_the_ccd_is_an_off_image_row_at_the_requested_position(measured, scene):
    *_, ra, dec = scene
    off = measured[3]
    assert off["flags"] == int(PrecoveryFlag.OFF_IMAGE) and np.isnan(off["psfFlux"])
    assert (off["ra"], off["dec"]) == (pytest.approx(ra[3]), pytest.approx(dec[3]))


def test_csv_json_and_votable_carry_status_and_flags(measured):
    parsed = list(csv.DictReader(io.StringIO(to_csv(measured))))
    doc = json.loads(to_json(measured))["rows"]
    vot = parse_single_table(io.BytesIO(to_votable(measured))).to_table()
    want_status = ["ok", "flagged", "no_data", "off_image"]
    want_flags = [int(f) for f in measured["flags"]]
    assert [r["status"] for r in parsed] == [r["status"] for r in doc] == want_status
    assert list(vot["status"]) == want_status
    assert [int(r["flags"]) for r in parsed] == [r["flags"] for r in doc] == want_flags
    assert [int(f) for f in vot["flags"]] == want_flags
    assert doc[2]["psfFlux"] is None and parsed[2]["psfFlux"] == ""


def test_footprint_bits_keep_mask_numbering_and_leave_out_detection_planes(scene):
    *_, science, ra, dec = scene
    ix, iy, on = sky_to_pixels(science, ra, dec)
    assert list(on) == [True, True, True, False]
    flags = footprint_flags(science, ix, iy)
    assert flags[0] == 0  # DETECTED around the transient is not a quality bit
    assert flags[1] == int(MaskBit.SAT) and flags[2] == int(MaskBit.NO_DATA) and flags[3] == 0
    assert QUALITY_BITS & int(MaskBit.DETECTED | MaskBit.DETECTED_NEGATIVE) == 0


def test_a_footprint_running_off_the_ccd_sets_edge(scene):
    science = scene[2]
    flags = footprint_flags(science, np.array([1, 128]), np.array([128, 128]))
    assert list(flags) == [int(PrecoveryFlag.EDGE), 0]


def test_a_footprint_only_reaches_the_saturated_core_within_its_radius(scene):
    science = scene[2]
    sx, sy = int(round(SATURATED[0])), int(round(SATURATED[1]))
    near = footprint_flags(science, np.array([sx + 6]), np.array([sy]), radius_pix=4.0)
    far = footprint_flags(science, np.array([sx + 6]), np.array([sy]), radius_pix=2.0)
    assert near[0] == int(MaskBit.SAT) and far[0] == 0


def test_status_words_rank_failed_over_off_image_over_no_data_over_flagged():
    flags = [int(PrecoveryFlag.FAILED | PrecoveryFlag.SAT), int(PrecoveryFlag.OFF_IMAGE),
             int(PrecoveryFlag.CR), int(PrecoveryFlag.CR), 0]
    flux = [np.nan, np.nan, np.nan, 10.0, 10.0]
    assert list(row_status(flags, flux)) == ["failed", "off_image", "no_data", "flagged", "ok"]


def test_a_failed_row_carries_the_failed_flag_alone():
    rows = rows_from_records([{"target": 0, "visit": 1, "detector": 2, "band": "r",
                               "flags": int(MaskBit.CR), "status": "failed"}])
    assert rows["flags"][0] == int(PrecoveryFlag.FAILED) and rows["status"][0] == "failed"


def test_malformed_inputs_are_refused_with_the_argument_named(scene):
    science = scene[2]
    with pytest.raises(PrecoveryError, match="ix and iy"):
        footprint_flags(science, np.array([1, 2]), np.array([1]))
    with pytest.raises(PrecoveryError, match="radius_pix"):
        footprint_flags(science, np.array([1]), np.array([1]), radius_pix=-1.0)
    with pytest.raises(PrecoveryError, match="psf_flux"):
        row_status([0, 0], [1.0])

"""Benchmark: daytime precovery, per function instance, and a model of an LSST night of it.

Measured (one core, BLAS/OpenMP limited to one thread, CPU seconds best of ``REPEATS``): one
precovery unit as :func:`alertprod.precovery.daily.run_unit` does it, minus storage — parse the
unit message, parse the cached 4096 × 4096 difference and science exposures from their FITS
bytes, :func:`~alertprod.precovery.daily.precovery_rows` (vectorised forced photometry on both,
row building) — for N = 1 … 1,000 objects per unit (1,000 is ``MAX_OBJECTS_PER_UNIT``). The
DynamoDB requests of storing each unit's rows are counted on moto (not timed), as are those of
one planner look-up of the image-cache index.

Modelled: a night of 10,000 new DiaObjects precovered on 30 days of cache, with the
assumptions in ``MODEL`` (printed and written to the JSON): units, CPU seconds, function
instances for 1 h and 24 h, and the daily bill at Lambda and DynamoDB list prices.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

import numpy as np
import pytest
from astropy.wcs import WCS

from alertprod.apdb import CcdWrites, DynamoApdb
from alertprod.formats import ExposureInfo, read_exposure, write_exposure
from alertprod.imaging.psf import add_point_sources, moffat_psf
from alertprod.local.dynamodb import create_level1_table, moto_dynamodb
from alertprod.precovery.daily import MAX_OBJECTS_PER_UNIT, precovery_rows
from alertprod.precovery.units import PrecoveryUnit, unit_from_message, unit_to_message
from alertprod.sky.survey import sky_sigma_njy

pytestmark = pytest.mark.bench

RESULTS = Path(__file__).parent / "results" / "precovery.json"
NPIX = 4096
SCALE_ARCSEC = 0.2
FWHM_PIX = 3.5
MJD = 61000.2
VISIT, DETECTOR, BAND = 60980, 17, "i"
N_PER_UNIT = (1, 10, 100, MAX_OBJECTS_PER_UNIT)
REPEATS = 3

#: Assumptions of the LSST-scale model (each one stated in docs/precovery.md).
MODEL = {
    "new_objects_per_night": 10_000,  # the brief's figure
    "ccds_per_visit": 189,  # LSST camera
    "visits_per_night": 800,  # the brief's figure
    "visits_per_field_per_night": 2,  # LSST observes each field in pairs (TVS/moving objects)
    "field_of_view_deg2": 9.6,  # LSST camera
    "images_per_object_in_30_days": 10,  # WFD cadence, all bands together, before discovery
    "download_mb_per_s": 100.0,  # one function's S3 GET throughput, same region (assumed)
    "lambda_memory_mb": 2048,  # holds two 4k x 4k exposures (2 x ~200 MB) plus work space
    "lambda_usd_per_gb_s": 0.0000166667,  # x86, us-east-1 list price
    "lambda_usd_per_million_requests": 0.20,
    "sqs_usd_per_million_requests": 0.40,  # send + receive + delete per unit
    "s3_get_usd_per_thousand": 0.0004,  # S3 Standard GET
    "dynamodb_usd_per_million_wru": 0.625,  # on-demand write request units, us-east-1
    "wru_per_transactional_item": 4,  # 2 per KB written in a transaction; items of <= 2 KB
    "default_concurrency_limit": 1000,  # Lambda per account and region, unless raised
}


def _cached_images(rng: np.random.Generator, tan_wcs, ccd_exposure) -> tuple[dict[str, bytes], WCS]:
    """FITS bytes of one cached CCD: difference and science exposures with stars and noise."""
    wcs = tan_wcs(40.0, -20.0, NPIX, scale_arcsec=SCALE_ARCSEC)
    info = ExposureInfo(VISIT, DETECTOR, BAND, MJD, 30.0)
    psf = moffat_psf(FWHM_PIX, size_pix=25)
    sigma = sky_sigma_njy(BAND, SCALE_ARCSEC)
    raw = {}
    for kind, n in (("difference", 200), ("science", 5000)):
        # the noise is drawn before the sources' positions and fluxes
        exposure = ccd_exposure(rng, NPIX, sigma, psf, wcs, info)
        stars = (rng.uniform(0, NPIX, n), rng.uniform(0, NPIX, n), rng.uniform(500, 20000, n))
        add_point_sources(exposure.image, psf, *stars)
        raw[kind] = write_exposure(exposure)
    return raw, wcs


def _unit_message(n: int, wcs: WCS, rng: np.random.Generator) -> str:
    x, y = rng.uniform(0, NPIX - 1, n), rng.uniform(0, NPIX - 1, n)
    ra, dec = wcs.all_pix2world(x, y, 0)
    unit = PrecoveryUnit(VISIT, DETECTOR, BAND, MJD, tuple(range(10**9, 10**9 + n)),
                         tuple(map(float, ra)), tuple(map(float, dec)), MJD + 20.0)
    return unit_to_message(unit)


def _unit_work(message: str, raw: dict[str, bytes]):
    """``run_unit`` without its storage: parse message and images, measure, build rows."""
    t = {}
    c = time.process_time()
    unit = unit_from_message(message)
    diff = read_exposure(raw["difference"], what="difference")
    t["parse difference"] = time.process_time() - c
    c = time.process_time()
    sci = read_exposure(raw["science"], what="science")
    t["parse science"] = time.process_time() - c
    c = time.process_time()
    rows = precovery_rows(unit, diff, sci, processed_mjd_tai=MJD + 21.0)
    t["photometry + rows"] = time.process_time() - c
    return rows, t


def _count_requests(rows_by_n: dict[int, object], wcs: WCS) -> dict:
    """DynamoDB requests of storing each unit's rows, and of one image-cache look-up (moto)."""
    out = {"store_unit": {}}
    with moto_dynamodb() as client:
        apdb = DynamoApdb(client, create_level1_table(client))
        for n, rows in rows_by_n.items():
            stats = apdb.store_ccd(CcdWrites(visit=VISIT, detector=DETECTOR, visit_time_mjd_tai=MJD,
                                             dia_sources=rows[:0], dia_forced_sources=rows,
                                             dia_objects=rows[:0]), lease=None)
            out["store_unit"][n] = {"rows": len(rows), "requests": stats.total_requests,
                                    "by_method": dict(stats.requests), "transactions": stats.transactions}
        corners = np.column_stack(wcs.all_pix2world([0, NPIX, NPIX, 0], [0, 0, NPIX, NPIX], 0))
        for k in range(10):  # ten cached exposures of the same CCD over 30 days
            apdb.index_exposure(VISIT + k, DETECTOR, BAND, MJD - 3 * k, corners, ["difference", "science"])
        before = apdb.metrics.total()
        found = apdb.find_exposures(40.0, -20.0, MJD - 30, MJD + 1)
        out["find_exposures"] = {"exposures_found": len(found), "requests": apdb.metrics.total() - before}
    return out


def _model(per_unit_s: float, image_bytes: int, requests_per_unit: float, lookup_requests: int) -> dict:
    """LSST-scale precovery of one night (see ``MODEL`` and docs/precovery.md)."""
    m = MODEL
    ccd_deg2 = (NPIX * SCALE_ARCSEC / 3600) ** 2
    night_deg2 = m["visits_per_night"] / m["visits_per_field_per_night"] * m["field_of_view_deg2"]
    density = m["new_objects_per_night"] / night_deg2  # new objects per deg²
    lam = density * ccd_deg2  # new objects per CCD image (Poisson mean)
    pairs = m["new_objects_per_night"] * m["images_per_object_in_30_days"]  # forced measurements
    units = pairs * (1 - math.exp(-lam)) / lam  # CCD images holding at least one new object
    download_s = 2 * image_bytes / (m["download_mb_per_s"] * 1e6)
    out = {"ccd_deg2": round(ccd_deg2, 4), "night_area_deg2": round(night_deg2, 0),
           "new_objects_per_ccd_image": round(lam, 3), "measurements": pairs, "units": round(units),
           "objects_per_unit": round(pairs / units, 2), "image_bytes": image_bytes,
           "download_s_per_unit": round(download_s, 2), "scenarios": {}}
    gb = m["lambda_memory_mb"] / 1024
    for name, unit_s in (("compute only (images already in memory)", per_unit_s),
                         ("with S3 download of both images", per_unit_s + download_s)):
        cpu_s = units * unit_s
        lambda_usd = (cpu_s * gb * m["lambda_usd_per_gb_s"]
                      + units * m["lambda_usd_per_million_requests"] / 1e6)
        out["scenarios"][name] = {
            "seconds_per_unit": round(unit_s, 3), "function_seconds": round(cpu_s),
            "instances_for_1h": math.ceil(cpu_s / 3600), "instances_for_24h": math.ceil(cpu_s / 86400),
            "lambda_usd_per_day": round(lambda_usd, 2)}
    dynamo_requests = units * requests_per_unit + m["new_objects_per_night"] * lookup_requests
    out["dynamodb_requests"] = round(dynamo_requests)
    out["dynamodb_usd_per_day"] = round(pairs * m["wru_per_transactional_item"]
                                        * m["dynamodb_usd_per_million_wru"] / 1e6, 2)
    out["sqs_usd_per_day"] = round(3 * units * m["sqs_usd_per_million_requests"] / 1e6, 3)
    out["s3_usd_per_day"] = round(2 * units * m["s3_get_usd_per_thousand"] / 1e3, 3)
    return out


def test_bench_precovery_unit_rate_and_lsst_night(one_core, tan_wcs, ccd_exposure):
    rng = np.random.default_rng(341)
    raw, wcs = _cached_images(rng, tan_wcs, ccd_exposure)
    messages = {n: _unit_message(n, wcs, rng) for n in N_PER_UNIT}
    rows_by_n, per_n = {}, {}
    for n in N_PER_UNIT:
        best: dict[str, float] = {}
        for _ in range(REPEATS):
            rows, t = _unit_work(messages[n], raw)
            best = {k: min(v, best.get(k, np.inf)) for k, v in t.items()}
        rows_by_n[n] = rows
        per_n[n] = best
    # the science: every object on the image is measured, on both images, flagged precovery
    for n, rows in rows_by_n.items():
        assert len(rows) == n
        assert np.all(np.isfinite(rows["psfFlux"])) and np.all(np.isfinite(rows["scienceFlux"]))
        assert np.all(rows["isPrecovery"])
    requests = _count_requests(rows_by_n, wcs)
    assert requests["find_exposures"]["exposures_found"] == 10

    table = []
    for n in N_PER_UNIT:
        total = sum(per_n[n].values())
        table.append({"objects": n, **{k: round(v, 4) for k, v in per_n[n].items()},
                      "unit_cpu_s": round(total, 4), "measurements_per_s": round(n / total, 1),
                      "dynamodb_requests": requests["store_unit"][n]["requests"]})
    phot_rate = MAX_OBJECTS_PER_UNIT / per_n[MAX_OBJECTS_PER_UNIT]["photometry + rows"]
    one = sum(per_n[1].values())
    model = _model(one, len(raw["difference"]), requests["store_unit"][1]["requests"] + 1,
                   requests["find_exposures"]["requests"])
    figures = {"image_pix": [NPIX, NPIX], "threads": 1, "repeats": REPEATS,
               "units": table, "photometry_rate_per_s_at_1000": round(phot_rate, 1),
               "dynamodb": requests, "model_assumptions": MODEL, "model": model}
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(figures, indent=2, default=str) + "\n")

    print(f"\nprecovery unit, cached {NPIX}x{NPIX} difference + science exposure "
          f"({len(raw['difference']) / 1e6:.0f} MB each); CPU s, 1 thread, best of {REPEATS}")
    print(f"{'objects':>8}{'parse diff':>12}{'parse sci':>11}{'phot+rows':>11}{'unit s':>9}"
          f"{'meas/s':>10}{'DDB req':>9}")
    for r in table:
        print(f"{r['objects']:>8}{r['parse difference']:>12.4f}{r['parse science']:>11.4f}"
              f"{r['photometry + rows']:>11.4f}{r['unit_cpu_s']:>9.4f}{r['measurements_per_s']:>10.1f}"
              f"{r['dynamodb_requests']:>9}")
    print(f"forced photometry + rows alone at {MAX_OBJECTS_PER_UNIT} objects: {phot_rate:.0f} measurements/s; "
          f"image-index look-up: {requests['find_exposures']['requests']} requests")
    print(f"\nLSST night: {MODEL['new_objects_per_night']} new objects x {MODEL['images_per_object_in_30_days']} "
          f"images = {model['measurements']} measurements in {model['units']} units "
          f"({model['objects_per_unit']} objects/unit, {model['new_objects_per_ccd_image']} new objects "
          "per CCD image)")
    print(f"{'scenario':<44}{'s/unit':>8}{'fn s':>10}{'inst 1h':>9}{'inst 24h':>9}{'Lambda $/d':>11}")
    for name, sc in model["scenarios"].items():
        print(f"{name:<44}{sc['seconds_per_unit']:>8.2f}{sc['function_seconds']:>10}{sc['instances_for_1h']:>9}"
              f"{sc['instances_for_24h']:>9}{sc['lambda_usd_per_day']:>11.2f}")
    print(f"DynamoDB: ~{model['dynamodb_requests']} requests/day, ~${model['dynamodb_usd_per_day']}/day; "
          f"SQS ~${model['sqs_usd_per_day']}/day; S3 GETs ~${model['s3_usd_per_day']}/day")

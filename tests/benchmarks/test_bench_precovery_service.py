"""Benchmark: a precovery-service job for one position, its AWS bill, and an LSST-shaped job.

Measured (one core, BLAS/OpenMP limited to one thread, wall seconds of each unit): a job for
one position over 100 cached and 100 re-created epochs of a 4096 × 4096 CCD (0.2″ pixels), each
epoch one unit as the unit worker runs it (:func:`alertprod.precovery.job_unit.measure_job_unit`:
ranged reads of the cached difference and science, or of the archived tile-compressed science
and template and a difference re-created around the position). The epochs' files hold the
same pixels under 200 keys (building 200 distinct 4k scenes would dominate the run); each unit
opens and reads its own files. The store counts every request and byte as S3 would bill them.

Peer, in the same run: the whole-file path — GET both files whole, parse them, measure (what
a unit cost before stamp-level reads) — on 20 epochs of each kind.

Figures: unit latency p50/p95 per kind (compute measured; S3 wait modelled from the counted
requests with :data:`alertprod.formats.READ_COST`), the job's latency on one worker and on the
workers the service runs at once, the requests and bytes per job and their price, and, from
those unit costs, an LSST-shaped job (ten years, ~800 epochs, almost all re-created) at ten
submissions an hour — the evidence for DMS-REQ-0341's 24 hours, which the embedded stack cannot
run in real time. Written to ``results/precovery_service.json``; docs/precovery-service.md
("Benchmarks") quotes them.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

import numpy as np
import pytest

from alertprod.archive import archive_key
from alertprod.aws import MemoryBlobStore
from alertprod.formats import READ_COST, ExposureInfo, image_key, read_exposure, write_exposure
from alertprod.formats.compression import compress_exposure
from alertprod.imaging.psf import add_point_sources
from alertprod.photometry.dia_forced import VisitImages, dia_forced_rows
from alertprod.photometry.recreated import measure_recreated
from alertprod.precovery.job_plan import JobUnit
from alertprod.precovery.job_unit import measure_job_unit
from alertprod.sky.render import make_psf

pytestmark = pytest.mark.bench

RESULTS = Path(__file__).parent / "results" / "precovery_service.json"
N_PIX, SCALE_ARCSEC = 4096, 0.2
N_CACHED = N_RECREATED = 100
N_PEER = 20
SIG_N, SIG_R = 60.0, 60.0 / np.sqrt(20)
TRUE_FLUX = 3000.0

#: Prices and deployment figures of the cost model (us-east-1 list prices; each stated in
#: docs/precovery-service.md). The per-job service requests (job record, dispatch, fan-in) are
#: counted on the embedded stack by the load test; here the service's own overhead per unit is
#: the DynamoDB and SQS requests the fan-in makes per unit.
MODEL = {
    "unit_worker_memory_mb": 2048,
    "lambda_usd_per_gb_s": 0.0000166667,
    "lambda_usd_per_million_requests": 0.20,
    "s3_get_usd_per_thousand": 0.0004,
    "s3_put_usd_per_thousand": 0.005,
    "dynamodb_usd_per_million_wru": 0.625,
    "dynamodb_usd_per_million_rru": 0.125,
    "sqs_usd_per_million_requests": 0.40,
    "dynamodb_writes_per_unit": 2,  # the unit's completion and the job's counters
    "sqs_requests_per_unit": 3,  # send, receive, delete
    "s3_puts_per_unit": 1,  # the unit's rows
    "workers": 16,  # units the service runs at once (JobServiceSettings.workers)
    "lsst_epochs": 800,  # ten years of a WFD field, all bands
    "lsst_cached_epochs": 7,  # 30 days of cache out of ten years
    "submissions_per_hour": 10,  # DMS-REQ-0341
    "lambda_concurrency": 1000,  # the account's default
}


class CountingStore:
    """An in-memory store that counts what S3 would bill: GETs (whole and ranged), HEADs, PUTs
    and bytes, and keeps each GET's length for the read-time model. It wraps a
    :class:`MemoryBlobStore` (whose own methods call each other, which must not count twice)."""

    def __init__(self, name: str) -> None:
        self._store = MemoryBlobStore(name)
        self.reset()

    def __getattr__(self, name):
        return getattr(self._store, name)

    def reset(self) -> None:
        self.gets = self.heads = self.puts = self.bytes = 0
        self.lengths: list[int] = []

    def _got(self, data: bytes) -> bytes:
        self.gets, self.bytes = self.gets + 1, self.bytes + len(data)
        self.lengths.append(len(data))
        return data

    def get(self, key):
        return self._got(self._store.get(key))

    def get_range(self, key, start, stop):
        return self._got(self._store.get_range(key, start, stop))

    def size(self, key):
        self.heads += 1
        return self._store.size(key)

    def head(self, key):
        self.heads += 1
        return self._store.head(key)

    def put(self, key, data, **kw):
        self.puts += 1
        return self._store.put(key, data, **kw)


def _modelled_s3_s(lengths: list[int], files: int) -> float:
    """S3 wait of one unit: three rounds per file (size, headers, windows) of first-byte latency,
    plus its bytes streamed on ``READ_COST.parallelism`` connections."""
    rate = READ_COST.bytes_per_s_per_connection * min(READ_COST.parallelism, max(1, len(lengths)))
    return 3 * files * READ_COST.first_byte_s + sum(lengths) / rate


def _scene(tan_wcs, ccd_exposure):
    """Difference, science and template of one epoch with a 3,000 nJy transient at the target."""
    rng = np.random.default_rng(341)
    wcs = tan_wcs(150.0, 2.0, N_PIX, scale_arcsec=SCALE_ARCSEC)
    info = ExposureInfo(1, 0, "r", 60000.0, 30.0)
    psf_n, psf_r = make_psf(4.0), make_psf(3.0)
    n = N_PIX * N_PIX // 4000
    stars = (rng.uniform(0, N_PIX, n), rng.uniform(0, N_PIX, n), 10 ** rng.uniform(3.5, 5.5, n))
    x, y = 1500.3, 2300.7
    sci = ccd_exposure(rng, N_PIX, SIG_N, psf_n, wcs, info, sources=[stars, ([x], [y], [TRUE_FLUX])])
    tmp = ccd_exposure(rng, N_PIX, SIG_R, psf_r, wcs, info, sources=[stars])
    diff = ccd_exposure(rng, N_PIX, SIG_N, psf_n, wcs, info)
    add_point_sources(diff.image, psf_n, np.array([x]), np.array([y]), np.array([TRUE_FLUX]))
    ra, dec = wcs.all_pix2world([x], [y], 0)
    return ({"difference": write_exposure(diff), "science": write_exposure(sci),
             "archive_science": compress_exposure(sci), "archive_template": compress_exposure(tmp)},
            float(ra[0]), float(dec[0]))


def _stores(files):
    images, archive = CountingStore("images"), CountingStore("archive")
    for v in range(1, N_CACHED + 1):
        images.put(image_key(v, 0, "difference"), files["difference"])
        images.put(image_key(v, 0, "science"), files["science"])
    for v in range(N_CACHED + 1, N_CACHED + N_RECREATED + 1):
        archive.put(archive_key(v, 0, "science"), files["archive_science"])
        archive.put(archive_key(v, 0, "template"), files["archive_template"])
    images.reset()
    archive.reset()
    return images, archive


def _unit(visit, source, ra, dec):
    return JobUnit(visit, 0, "r", 60000.0 + visit, source, (0,), (ra,), (dec,))


def _run_units(units, images, archive):
    """Each unit's wall seconds, S3 requests, bytes and modelled S3 wait; and the rows."""
    out, rows = [], []
    for u in units:
        for s in (images, archive):
            s.reset()
        t0 = time.perf_counter()
        m = measure_job_unit(u, images=images, archive=archive, processed_mjd_tai=61000.0)
        wall = time.perf_counter() - t0
        lengths = images.lengths + archive.lengths
        out.append({"wall_s": wall, "gets": images.gets + archive.gets,
                    "heads": images.heads + archive.heads, "bytes": images.bytes + archive.bytes,
                    "s3_s": _modelled_s3_s(lengths, 2)})
        rows.append(m.rows)
    return out, rows


def _whole_file(units, images, archive):
    """The peer: both files GET whole, parsed, measured (the path before ranged reads)."""
    out = []
    for u in units:
        for s in (images, archive):
            s.reset()
        t0 = time.perf_counter()
        ra, dec, idx = np.array(u.ra_deg), np.array(u.dec_deg), np.array(u.targets)
        if u.source == "cache":
            diff = read_exposure(images.get(image_key(u.visit, 0, "difference")), what="difference")
            sci = read_exposure(images.get(image_key(u.visit, 0, "science")), what="science")
            rows = dia_forced_rows(idx, ra, dec, VisitImages(u.visit, 0, "r", u.mjd_tai, diff, sci),
                                   processed_mjd_tai=61000.0, is_precovery=True)
        else:
            sci = read_exposure(archive.get(archive_key(u.visit, 0, "science")), what="science")
            tmp = read_exposure(archive.get(archive_key(u.visit, 0, "template")), what="template")
            rows = measure_recreated(sci, tmp, ra, dec, processed_mjd_tai=61000.0, dia_object_ids=idx)
        assert len(rows) == 1
        wall = time.perf_counter() - t0
        lengths = images.lengths + archive.lengths
        out.append({"wall_s": wall, "gets": len(lengths), "heads": 0, "bytes": sum(lengths),
                    "s3_s": READ_COST.seconds(lengths)})
    return out


def _pcts(values):
    v = np.asarray(values, float)
    return {"p50": round(float(np.percentile(v, 50)), 4), "p95": round(float(np.percentile(v, 95)), 4),
            "mean": round(float(v.mean()), 4)}


def _kind_figures(stats):
    return {"units": len(stats), "compute_s": _pcts([s["wall_s"] for s in stats]),
            "s3_wait_s_modelled": _pcts([s["s3_s"] for s in stats]),
            "latency_s": _pcts([s["wall_s"] + s["s3_s"] for s in stats]),
            "s3_requests_per_unit": round(float(np.mean([s["gets"] + s["heads"] for s in stats])), 2),
            "s3_bytes_per_unit": int(np.mean([s["bytes"] for s in stats]))}


def _job_cost(n_cached, n_recreated, kinds):
    """USD and requests of one job from the measured per-unit figures of each kind."""
    m, n = MODEL, n_cached + n_recreated
    gb = m["unit_worker_memory_mb"] / 1024
    seconds = n_cached * kinds["cached"]["latency_s"]["mean"] + n_recreated * kinds["recreated"]["latency_s"]["mean"]
    gets = n_cached * kinds["cached"]["s3_requests_per_unit"] + n_recreated * kinds["recreated"]["s3_requests_per_unit"]
    nbytes = n_cached * kinds["cached"]["s3_bytes_per_unit"] + n_recreated * kinds["recreated"]["s3_bytes_per_unit"]
    usd = {"lambda": seconds * gb * m["lambda_usd_per_gb_s"] + n * m["lambda_usd_per_million_requests"] / 1e6,
           "s3": gets * m["s3_get_usd_per_thousand"] / 1e3 + n * m["s3_puts_per_unit"] * m["s3_put_usd_per_thousand"] / 1e3,
           "dynamodb": n * m["dynamodb_writes_per_unit"] * m["dynamodb_usd_per_million_wru"] / 1e6,
           "sqs": n * m["sqs_requests_per_unit"] * m["sqs_usd_per_million_requests"] / 1e6}
    return {"units": n, "lambda_gb_s": round(seconds * gb, 2), "s3_get_requests": round(gets),
            "s3_put_requests": n * m["s3_puts_per_unit"], "s3_bytes_read": int(nbytes),
            "dynamodb_write_requests": n * m["dynamodb_writes_per_unit"],
            "sqs_requests": n * m["sqs_requests_per_unit"],
            "usd": {k: round(v, 6) for k, v in usd.items()}, "usd_total": round(sum(usd.values()), 5),
            "function_seconds": round(seconds, 1)}


def _lsst(kinds):
    """An LSST-shaped job and ten of them an hour, from the measured unit costs."""
    m = MODEL
    n, cached = m["lsst_epochs"], m["lsst_cached_epochs"]
    cost = _job_cost(cached, n - cached, kinds)
    per_hour_s = m["submissions_per_hour"] * cost["function_seconds"]
    busy_workers = per_hour_s / 3600.0  # steady state: function seconds needed per second
    p95 = kinds["recreated"]["latency_s"]["p95"]
    return {"job": cost,
            "latency_one_worker_h": round(cost["function_seconds"] / 3600, 3),
            "latency_at_service_workers_min": round(cost["function_seconds"] / m["workers"] / 60 + p95 / 60, 2),
            "function_seconds_per_hour_at_10_per_h": round(per_hour_s),
            "concurrent_units_needed": round(busy_workers, 2),
            "fraction_of_default_concurrency": round(busy_workers / m["lambda_concurrency"], 4),
            "worst_case_latency_h_if_all_240_jobs_share_the_service_workers":
                round(240 * cost["function_seconds"] / m["workers"] / 3600, 2),
            "usd_per_day_at_10_per_h": round(24 * m["submissions_per_hour"] * cost["usd_total"], 2)}


def test_bench_precovery_service_job_latency_cost_and_lsst_job(one_core, tan_wcs, ccd_exposure):
    files, ra, dec = _scene(tan_wcs, ccd_exposure)
    images, archive = _stores(files)
    cached = [_unit(v, "cache", ra, dec) for v in range(1, N_CACHED + 1)]
    recreated = [_unit(v, "archive", ra, dec) for v in range(N_CACHED + 1, N_CACHED + N_RECREATED + 1)]
    t0 = time.perf_counter()
    ours_c, rows_c = _run_units(cached, images, archive)
    ours_r, rows_r = _run_units(recreated, images, archive)
    job_compute_s = time.perf_counter() - t0
    # the science: one row per epoch, the transient measured on both kinds, flagged as it was made
    for rows, flag in ((rows_c, False), (rows_r, True)):
        assert all(len(r) == 1 for r in rows)
        flux = np.array([r["psfFlux"][0] for r in rows])
        assert np.all(np.asarray([r["recreated"][0] for r in rows]) == flag)
        assert abs(np.median(flux) / TRUE_FLUX - 1) < 0.1
    peer_c = _whole_file(cached[:N_PEER], images, archive)
    peer_r = _whole_file(recreated[:N_PEER], images, archive)

    kinds = {"cached": _kind_figures(ours_c), "recreated": _kind_figures(ours_r)}
    peers = {"cached": _kind_figures(peer_c), "recreated": _kind_figures(peer_r)}
    ratios = {k: {"latency_p50_whole_over_ours": round(peers[k]["latency_s"]["p50"] / kinds[k]["latency_s"]["p50"], 1),
                  "bytes_whole_over_ours": round(peers[k]["s3_bytes_per_unit"] / kinds[k]["s3_bytes_per_unit"], 1)}
              for k in kinds}
    one_worker_s = sum(s["wall_s"] + s["s3_s"] for s in ours_c + ours_r)
    job = {"epochs": {"cached": N_CACHED, "recreated": N_RECREATED},
           "compute_s_one_worker": round(job_compute_s, 2),
           "latency_s_one_worker": round(one_worker_s, 2),
           "latency_s_at_service_workers": round(one_worker_s / MODEL["workers"]
                                                 + kinds["recreated"]["latency_s"]["p95"], 2),
           "cost": _job_cost(N_CACHED, N_RECREATED, kinds)}
    figures = {"image_pix": [N_PIX, N_PIX], "pixel_arcsec": SCALE_ARCSEC, "threads": 1,
               "archive_file_bytes": len(files["archive_science"]),
               "cache_file_bytes": len(files["difference"]),
               "units": kinds, "peer_whole_file": peers, "ratios": ratios, "job": job,
               "lsst_job": _lsst(kinds), "model_assumptions": MODEL}
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(figures, indent=2) + "\n")
    assert math.isfinite(job["cost"]["usd_total"])
    # stamp-level reads must beat whole files on both kinds, in latency and in bytes
    assert all(r["latency_p50_whole_over_ours"] > 1 and r["bytes_whole_over_ours"] > 1
               for r in ratios.values())

    print(f"\nprecovery-service job, one position, {N_PIX}x{N_PIX} CCD, one thread")
    print(f"{'kind':<10}{'p50 s':>8}{'p95 s':>8}{'GETs':>7}{'MB':>8}   whole-file: {'p50 s':>7}{'MB':>8}")
    for k in kinds:
        a, b = kinds[k], peers[k]
        print(f"{k:<10}{a['latency_s']['p50']:>8.3f}{a['latency_s']['p95']:>8.3f}"
              f"{a['s3_requests_per_unit']:>7.1f}{a['s3_bytes_per_unit'] / 1e6:>8.2f}   "
              f"{'':<12}{b['latency_s']['p50']:>7.3f}{b['s3_bytes_per_unit'] / 1e6:>8.1f}")
    print(f"job of {N_CACHED}+{N_RECREATED} epochs: {job['latency_s_one_worker']:.1f} s on one worker, "
          f"{job['latency_s_at_service_workers']:.1f} s on {MODEL['workers']}; ${job['cost']['usd_total']:.5f}")
    lsst = figures["lsst_job"]
    print(f"LSST-shaped job ({MODEL['lsst_epochs']} epochs): {lsst['latency_one_worker_h']} h on one worker, "
          f"{lsst['latency_at_service_workers_min']} min on {MODEL['workers']}; "
          f"${lsst['job']['usd_total']:.4f}/job; {lsst['concurrent_units_needed']} units busy at "
          f"{MODEL['submissions_per_hour']}/h; ${lsst['usd_per_day_at_10_per_h']}/day")

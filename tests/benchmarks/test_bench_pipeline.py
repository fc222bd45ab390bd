"""Benchmark: the per-CCD compute of the nightly pipeline, stage by stage, on one core.

One LSST-like CCD: 4096 × 4096 difference, science and template exposures (0.2″ pixels,
Moffat PSF of FWHM 0.7″ = 3.5 px, sky noise of an r-band visit), 5,000 known DiaObjects in the
footprint, 200 DiaSources (150 of known objects, 45 new, 5 known asteroids), 30 DiaSources
and 30 forced measurements of 12-month history per known object (every APDB column filled, as
the Level 1 database returns them) and an orbit catalog of 10,000 asteroids of which 5 are in
the field. The stages are those of :func:`alertprod.pipeline.compute.compute_ccd` in its order,
with the storage reads replaced by the tables they would return (storage I/O is excluded;
parsing the uploaded image bytes is reported on its own row):

association (asteroid positions predicted from all 10⁴ orbits, then one-to-one matching),
forced photometry of the undetected objects (difference + science), summaries, solar-system
rows, alerts as ``build_ccd_alerts`` makes them (cutouts, then the batch ``build_alerts``), its
parts, and the per-row ``build_alert`` path it replaced (records only, on the same prepared
source rows and cutouts; packets checked byte-identical), cutouts (difference + template per
alert), serialisation (staging container and one framed packet per alert). Figures are CPU
seconds of this process, best of ``REPEATS``, with BLAS and OpenMP limited to one thread; wall
seconds are printed beside them.

Target: ≤ 1 s for the whole compute of a CCD. Alert packet sizes are compared with the 82 KB
budget of DMTN-102.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pytest
from astropy.table import Table

from alertprod.alerts import build_alert, prepare_alerts, serialize_alert
from alertprod.alerts.examples import example_row
from alertprod.alerts.packet import build_alerts
from alertprod.alerts.serialize import container_from_packets
from alertprod.apdb.schema import conform
from alertprod.formats import DiaSourceCatalog, ExposureInfo, read_exposure, write_exposure
from alertprod.imaging.psf import moffat_psf
from alertprod.orbits import orbit_through, predict_positions, write_mpcorb
from alertprod.photometry.dia_forced import VisitImages
from alertprod.pipeline import steps
from alertprod.pipeline.alerting import alert_sources, build_ccd_alerts
from alertprod.pipeline.config import PipelineConfig
from alertprod.pipeline.orbit_cache import OrbitCache
from alertprod.pixelization import pixels_covering
from alertprod.sky.survey import sky_sigma_njy
from alertprod.summary.versions import next_object_versions

pytestmark = pytest.mark.bench

RESULTS = Path(__file__).parent / "results" / "pipeline.json"
NPIX = 4096
SCALE_ARCSEC = 0.2
FWHM_PIX = 3.5
N_OBJECTS = 5000
N_KNOWN, N_NEW, N_SSO = 150, 45, 5
N_ORBITS = 10_000
N_HISTORY = 30
MJD = 61000.2
VISIT, DETECTOR, BAND = 61001, 42, "r"
REPEATS = 2
TARGET_S = 1.0
BUDGET_BYTES = 82 * 1024


class _OrbitStore:
    """The orbit-catalog reads of the Level 1 database, from memory (no storage)."""

    def __init__(self, text: str):
        self._text = text

    def get_orbit_catalog_version(self) -> str:
        return "bench"

    def get_orbit_catalog(self) -> bytes:
        return self._text.encode("ascii")


# The previous per-row path grouped history like this (build_alerts now groups internally).
def group_rows(table: Table, key: str = "diaObjectId") -> dict[int, Table]:
    """Rows of ``table`` grouped by ``key`` (each group sorted by ``midpointMjdTai``)."""
    if table is None or len(table) == 0 or key not in table.colnames:
        return {}
    order = np.lexsort((np.asarray(table["midpointMjdTai"], float), np.asarray(table[key], np.int64)))
    t = table[order]
    ids = np.asarray(t[key], np.int64)
    starts = np.flatnonzero(np.r_[True, ids[1:] != ids[:-1]])
    ends = np.r_[starts[1:], len(ids)]
    return {int(ids[s]): t[s:e] for s, e in zip(starts, ends, strict=True)}


def _per_row_alerts(ordered, versions, history, forced_history, ss_rows, mpc_orbits, cutouts):
    """The per-row alert path ``build_ccd_alerts`` had before it used ``build_alerts``: one
    ``build_alert`` call per DiaSource on astropy Rows and Table slices (records only; the
    rows are those of :func:`alert_sources`, the cutouts are passed in)."""
    by_obj = {int(i): k for k, i in enumerate(np.asarray(versions["diaObjectId"], np.int64))}
    hist, fhist = group_rows(history), group_rows(forced_history)
    oids = np.ma.filled(ordered["diaObjectId"], 0).astype(np.int64)
    sids = np.ma.filled(ordered["ssObjectId"], 0).astype(np.int64)
    out = []
    for k, row in enumerate(ordered):
        oid, sid = int(oids[k]), int(sids[k])
        ss = ss_rows.get(int(row["diaSourceId"]))
        if ss is not None and sid in mpc_orbits:
            ss = dict(ss, designation=mpc_orbits[sid]["designation"])
        out.append(build_alert(
            row, dia_object=versions[by_obj[oid]] if oid in by_obj else None,
            prv_dia_sources=hist.get(oid, []) if oid > 0 else [],
            prv_dia_forced_sources=fhist.get(oid, []) if oid > 0 else [],
            ss_source=ss, mpc_orbit=mpc_orbits.get(sid) if sid > 0 else None,
            cutout_difference=cutouts[0][k], cutout_template=cutouts[1][k]))
    return out


def _full_rows(record: str, n: int, rng: np.random.Generator, **columns) -> Table:
    """``n`` rows with every field of ``record`` filled, then the given columns set."""
    rows = [example_row(record, rng) for _ in range(n)]
    t = Table(rows=[[r[k] for k in rows[0]] for r in rows], names=list(rows[0]))
    for k, v in columns.items():
        t[k] = v
    return t


def _scene(tan_wcs, ccd_exposure, site: dict[str, float]):
    """Inputs of one CCD: exposures (and their FITS bytes), catalog, objects, history, orbits."""
    rng = np.random.default_rng(20260101)
    wcs = tan_wcs(150.0, -30.0, NPIX, scale_arcsec=SCALE_ARCSEC)
    info = ExposureInfo(VISIT, DETECTOR, BAND, MJD, 30.0)
    psf = moffat_psf(FWHM_PIX, size_pix=25)
    sigma = sky_sigma_njy(BAND, SCALE_ARCSEC)
    n_eff = 2.266 * FWHM_PIX**2
    # known objects uniformly over the CCD
    ox, oy = rng.uniform(3, NPIX - 4, N_OBJECTS), rng.uniform(3, NPIX - 4, N_OBJECTS)
    ora, odec = wcs.all_pix2world(ox, oy, 0)
    oid = np.arange(10**9, 10**9 + N_OBJECTS, dtype=np.int64)
    objects = conform(_full_rows(
        "diaObject", N_OBJECTS, rng, diaObjectId=oid, ra=ora, dec=odec,
        raErr=np.full(N_OBJECTS, 2e-5), decErr=np.full(N_OBJECTS, 2e-5),
        validityStartMjdTai=MJD - rng.uniform(1, 30, N_OBJECTS), nDiaSources=np.full(N_OBJECTS, 40),
        firstDiaSourceMjdTai=np.full(N_OBJECTS, MJD - 600.0),
        lastDiaSourceMjdTai=MJD - rng.uniform(1, 30, N_OBJECTS)), "DiaObject")
    # orbit catalog: 10^4 main-belt asteroids over the sky, N_SSO of them inside the CCD now
    ra = rng.uniform(0, 360, N_ORBITS)
    dec = np.rad2deg(np.arcsin(rng.uniform(-1, 0.5, N_ORBITS)))
    sx, sy = rng.uniform(50, NPIX - 50, N_SSO), rng.uniform(50, NPIX - 50, N_SSO)
    ra[:N_SSO], dec[:N_SSO] = wcs.all_pix2world(sx, sy, 0)
    cat = orbit_through(ra, dec, MJD, geocentric_distance_au=rng.uniform(1.2, 3.0, N_ORBITS),
                        rng=rng, v_mag=rng.uniform(18, 23, N_ORBITS), **site)
    text = write_mpcorb(cat)
    store = _OrbitStore(text)
    orbits = OrbitCache(store)
    parsed = orbits.get()  # a warm function instance holds the parsed catalog
    eph = predict_positions(parsed[:N_SSO], MJD, **site)
    # this visit's DiaSources: known objects, new transients, asteroids
    known = rng.choice(N_OBJECTS, N_KNOWN, replace=False)
    jitter = rng.normal(0, 0.05 / 3600, (2, N_KNOWN + N_NEW + N_SSO))
    nx_, ny_ = rng.uniform(3, NPIX - 4, N_NEW), rng.uniform(3, NPIX - 4, N_NEW)
    nra, ndec = wcs.all_pix2world(nx_, ny_, 0)
    sra = np.concatenate([ora[known], nra, eph.ra_deg]) + jitter[0] / np.cos(np.deg2rad(-30.0))
    sdec = np.concatenate([odec[known], ndec, eph.dec_deg]) + jitter[1]
    sxp, syp = wcs.all_world2pix(sra, sdec, 0)
    n_src = sra.size
    flux = rng.uniform(5, 50, n_src) * sigma * np.sqrt(n_eff)
    catalog = DiaSourceCatalog(_full_rows("diaSource", n_src, rng,
        diaSourceId=VISIT * 10**6 + DETECTOR * 10**3 + np.arange(n_src, dtype=np.int64) + 1,
        ra=sra, dec=sdec, raErr=np.full(n_src, 2e-5), decErr=np.full(n_src, 2e-5), x=sxp, y=syp,
        psfFlux=flux, psfFluxErr=np.full(n_src, sigma * np.sqrt(n_eff)),
        snr=flux / (sigma * np.sqrt(n_eff)), trailLength=np.zeros(n_src)), info, wcs, (NPIX, NPIX))
    # images: noise + sources (the static objects in science and template, changes in the difference)
    static = rng.uniform(200, 20000, N_OBJECTS)
    planes = {}
    for kind, noise in (("difference", sigma), ("science", sigma), ("template", sigma / 3)):
        stars = [(ox, oy, static)] if kind != "difference" else []
        changes = [(sxp, syp, flux)] if kind != "template" else []
        planes[kind] = ccd_exposure(rng, NPIX, noise, psf, wcs, info, sources=stars + changes)
    raw = {k: write_exposure(e) for k, e in planes.items()}
    # 12 months of history of the known objects, every column filled
    hid = np.repeat(oid[known], N_HISTORY)
    t_hist = MJD - rng.uniform(1, 360, hid.size)
    bands = rng.choice(list("ugrizy"), hid.size)
    history = conform(_full_rows("diaSource", hid.size, rng, diaObjectId=hid, midpointMjdTai=t_hist,
                                 ra=np.repeat(ora[known], N_HISTORY), dec=np.repeat(odec[known], N_HISTORY),
                                 band=bands, ssObjectId=np.zeros(hid.size, np.int64)), "DiaSource")
    forced = conform(_full_rows("diaForcedSource", hid.size, rng, diaObjectId=hid,
                                midpointMjdTai=MJD - rng.uniform(1, 360, hid.size),
                                ra=np.repeat(ora[known], N_HISTORY), dec=np.repeat(odec[known], N_HISTORY),
                                band=bands), "DiaForcedSource")
    history.sort(["diaObjectId", "midpointMjdTai"])
    forced.sort(["diaObjectId", "midpointMjdTai"])
    return {"info": info, "catalog": catalog, "raw": raw, "objects": objects, "history": history,
            "forced": forced, "orbits": orbits, "known_ids": oid[known]}


class _Clock:
    """CPU and wall seconds per named stage of one run."""

    def __init__(self):
        self.cpu: dict[str, float] = {}
        self.wall: dict[str, float] = {}

    def __call__(self, name, fn, *args, **kwargs):
        c0, w0 = time.process_time(), time.perf_counter()
        out = fn(*args, **kwargs)
        self.cpu[name] = time.process_time() - c0
        self.wall[name] = time.perf_counter() - w0
        return out


def _run_ccd(s: dict, cfg: PipelineConfig) -> tuple[_Clock, dict]:
    """One CCD's compute, in the order of ``compute_ccd``, each stage timed."""
    clk = _Clock()
    info, catalog = s["info"], s["catalog"]
    corners = catalog.footprint_radec()
    processed = MJD + 0.001
    exposures = clk("parse images (3 FITS from bytes)",
                    lambda: {k: read_exposure(v, what=k) for k, v in s["raw"].items()})
    clk("sky pixels of the footprint", pixels_covering, corners, margin_arcsec=cfg.footprint_margin_arcsec)
    objects, orbits = s["objects"], s["orbits"].get()
    sources = clk("prepare sources", steps.prepare_sources, catalog, processed_mjd_tai=processed)
    predicted, ephem = clk("asteroid positions (10^4 orbits)", steps.predict_solar_system, orbits, info,
                           corners, margin_arcsec=cfg.sso_margin_arcsec)
    assoc = clk("association (SSObjects, DiaObjects)", steps.associate_ccd, sources, objects, predicted,
                max_dist_arcsec=cfg.max_dist_arcsec)
    detected = np.unique(np.asarray(sources["diaObjectId"], np.int64))
    images = VisitImages(info.visit, info.detector, info.band, info.mjd_mid_tai,
                         exposures["difference"], exposures["science"])
    forced_now = clk("forced photometry (diff + science)", steps.forced_measurements, objects, detected,
                     corners, images, processed_mjd_tai=processed)
    touched = detected[detected > 0]
    existing = touched[np.isin(touched, np.asarray(objects["diaObjectId"], np.int64))]
    previous = objects[np.isin(np.asarray(objects["diaObjectId"], np.int64), existing)]
    history, forced_history = s["history"], s["forced"]
    versions = clk("summaries (new versions)", next_object_versions, sources, previous, history,
                   forced_history, forced_now, validity_start_mjd_tai=info.mjd_mid_tai)

    def solar_system():
        ss_rows = steps.ss_source_rows(sources, assoc, ephem)
        return ss_rows, s["orbits"].mpc_orbit_rows(np.asarray(sources["ssObjectId"], np.int64))

    ss_rows, mpc = clk("solar-system rows", solar_system)
    # the alert stage as the pipeline runs it: cutouts, then build_alerts on the whole CCD
    alerts = clk(_ALERTS, build_ccd_alerts, sources, versions,
                 history, forced_history, ss_rows, mpc, exposures, config=cfg)
    # ... its parts (the cutouts it made are reused), and the per-row path it replaced, both on
    # the source rows build_ccd_alerts prepares (ids of 0 made null)
    ordered = alert_sources(sources)
    cuts = ([x["cutoutDifference"] for x in alerts], [x["cutoutTemplate"] for x in alerts])
    ss_named = {k: dict(v, designation=mpc[v["ssObjectId"]]["designation"]) if v["ssObjectId"] in mpc else v
                for k, v in ss_rows.items()}
    clk(_BATCH_RECORDS, build_alerts, ordered, dia_objects=versions,
        prv_dia_sources=history, prv_dia_forced_sources=forced_history, ss_sources=ss_named,
        mpc_orbits=mpc, cutouts_difference=cuts[0], cutouts_template=cuts[1])
    per_row = clk(_ROW_RECORDS, _per_row_alerts, ordered, versions, history, forced_history, ss_rows,
                  mpc, cuts)

    prepared = clk("serialise: prepare_alerts (each packet encoded once)", prepare_alerts, alerts)
    clk("stage: container around the packets", container_from_packets, [p.packet for p in prepared])
    packets = [p.packet for p in prepared]
    out = {"sources": sources, "assoc": assoc, "forced": forced_now, "versions": versions, "alerts": alerts,
           "per_row": per_row, "packets": packets}
    return clk, out


# Stages of the pipeline as it runs today, and with the batch alert builder instead.
_TODAY = ["sky pixels of the footprint", "prepare sources", "asteroid positions (10^4 orbits)",
          "association (SSObjects, DiaObjects)", "forced photometry (diff + science)",
          "summaries (new versions)", "solar-system rows", "alerts: build_ccd_alerts (cutouts + batch)",
          "serialise: prepare_alerts (each packet encoded once)", "stage: container around the packets"]
_ALERTS = "alerts: build_ccd_alerts (cutouts + batch)"
_BATCH_RECORDS = "  records: build_alerts (batch)"
_ROW_RECORDS = "  records: build_alert per row (previous path)"
_CUTOUTS = "  cutouts, 2 per alert (derived: alerts - records)"
_PER_ROW = [s for s in _TODAY if s != _ALERTS] + [_CUTOUTS, _ROW_RECORDS]


def test_bench_ccd_compute_stages_on_one_core(one_core, tan_wcs, ccd_exposure, rubin_site):
    s = _scene(tan_wcs, ccd_exposure, rubin_site)
    cfg = PipelineConfig()
    runs = []
    for _ in range(REPEATS):
        clk, out = _run_ccd(s, cfg)
        runs.append(clk)
    cpu = {k: min(r.cpu[k] for r in runs) for k in runs[0].cpu}
    wall = {k: min(r.wall[k] for r in runs) for k in runs[0].wall}
    cpu[_CUTOUTS] = cpu[_ALERTS] - cpu[_BATCH_RECORDS]
    wall[_CUTOUTS] = wall[_ALERTS] - wall[_BATCH_RECORDS]

    # the run did the science it claims
    sources, assoc = out["sources"], out["assoc"]
    assert len(sources) == N_KNOWN + N_NEW + N_SSO
    assert int(np.sum(assoc.solar_system.matched)) == N_SSO
    assert set(np.asarray(sources["diaObjectId"], np.int64)[:N_KNOWN]) == set(s["known_ids"])
    assert int(np.sum(assoc.new_object)) == N_NEW
    assert len(out["forced"]) == N_OBJECTS - N_KNOWN
    assert len(out["alerts"]) == len(sources)
    assert all(len(a["prvDiaSources"]) == N_HISTORY for a in out["alerts"][:N_KNOWN]
               if a["diaObject"] is not None and a["diaSource"]["diaObjectId"] in set(s["known_ids"]))
    same = [serialize_alert(a) for a in out["per_row"]] == out["packets"]
    sizes = np.array([len(p) for p in out["packets"]])
    cut_sizes = np.array([len(a["cutoutDifference"] or b"") + len(a["cutoutTemplate"] or b"")
                          for a in out["alerts"]])

    total_today = sum(cpu[k] for k in _TODAY)
    total_row = sum(cpu[k] for k in _PER_ROW)
    parse = cpu["parse images (3 FITS from bytes)"]
    figures = {
        "ccd": {"image_pix": [NPIX, NPIX], "pixel_arcsec": SCALE_ARCSEC, "psf_fwhm_pix": FWHM_PIX,
                "dia_objects_in_footprint": N_OBJECTS, "dia_sources": int(len(sources)),
                "known": N_KNOWN, "new": N_NEW, "asteroids": N_SSO, "orbits": N_ORBITS,
                "history_per_object": {"diaSources": N_HISTORY, "diaForcedSources": N_HISTORY},
                "forced_measurements": int(len(out["forced"]))},
        "threads": 1, "repeats": REPEATS,
        "cpu_s": {k: round(v, 4) for k, v in cpu.items()},
        "wall_s": {k: round(v, 4) for k, v in wall.items()},
        "total_cpu_s": {"pipeline": round(total_today, 4),
                                        "with_per_row_alerts": round(total_row, 4),
                        "pipeline_plus_image_parse": round(total_today + parse, 4)},
        "target_s": TARGET_S,
        "meets_target": {"pipeline": bool(total_today <= TARGET_S),
                         "pipeline_plus_image_parse": bool(total_today + parse <= TARGET_S)},
        "batch_packets_identical_to_per_row": bool(same),
        "packet_bytes": {"median": int(np.median(sizes)), "p95": int(np.percentile(sizes, 95)),
                         "max": int(sizes.max()), "budget": BUDGET_BYTES,
                         "fraction_over_budget": round(float(np.mean(sizes > BUDGET_BYTES)), 3),
                         "cutouts_median": int(np.median(cut_sizes))},
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(figures, indent=2) + "\n")

    print(f"\nper-CCD compute, {NPIX}x{NPIX} px, {len(sources)} DiaSources, {N_OBJECTS} DiaObjects, "
          f"{N_ORBITS} orbits; 1 thread, best of {REPEATS}")
    print(f"{'stage':<52}{'CPU s':>9}{'wall s':>9}")
    for k in cpu:
        print(f"{k:<52}{cpu[k]:>9.4f}{wall[k]:>9.4f}")
    print(f"{'TOTAL compute (as the pipeline runs it)':<52}{total_today:>9.4f}")
    print(f"{'TOTAL compute with per-row alert records':<52}{total_row:>9.4f}")
    print(f"{'TOTAL compute + image parse':<52}{total_today + parse:>9.4f}")
    print(f"target <= {TARGET_S:.1f} s: compute {'met' if total_today <= TARGET_S else 'MISSED'}, "
          f"compute + parse {'met' if total_today + parse <= TARGET_S else 'MISSED'}; "
          f"batch packets identical to per-row: {'yes' if same else 'NO'}")
    print(f"packet bytes (2 cutouts): median {np.median(sizes):.0f}, p95 {np.percentile(sizes, 95):.0f}, "
          f"max {sizes.max()}, budget {BUDGET_BYTES} ({np.mean(sizes > BUDGET_BYTES):.0%} over); "
          f"cutouts median {np.median(cut_sizes):.0f} B")
    assert same, "the batch alert records differ from the per-row ones on the same inputs"

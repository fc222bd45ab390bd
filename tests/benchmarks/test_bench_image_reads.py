"""Benchmark: stamp-level image reads against whole-file reads, and the archive's compression.

Measured on 4096 × 4096 exposures (sky noise of the i band, 3,000 stars, a PSF of FWHM 3.5 px
on 21 × 21, cosmic-ray bits) read through :class:`~alertprod.formats.exposure_file.ExposureFile`
from an in-memory source that counts requests and bytes as S3 would get them:

1. one measurement: a forced-photometry stamp (difference), a refinement window (science), a
   cutout (template) — bytes and GETs, opening included, against today's whole-file GET;
2. a nightly CCD with 200 DiaSources and 5,000 DiaObjects to force (and a sweep of the object
   count): bytes, GETs, which way the cost model takes, and the image-read wall time modelled
   at S3's latency and rate with the reader's parallelism (``READ_COST``), against a CCD's
   60 s alert budget; plain and tile-compressed (``ARCHIVE_COMPRESSION``) files;
3. a precovery unit (difference + science) of 1–100 objects: CPU seconds measured (one
   thread) plus download modelled from the bytes read, against whole files;
4. the archive's tile shape and quantisation: compression ratio, bytes per stamp read and the
   scatter quantisation adds to forced-flux pulls, on a 2048 × 2048 cut.

Figures are printed and written to ``results/image_reads.json``; docs/images.md quotes them.
Memory stays under ~3 GB (one 4k exposure and its files at a time).
"""

from __future__ import annotations

import io
import json
import time
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits

from alertprod.formats import (
    READ_COST,
    BytesSource,
    Exposure,
    ExposureFile,
    ExposureInfo,
    MaskBit,
    ReadCost,
    read_exposure,
    write_exposure,
)
from alertprod.formats.compression import ARCHIVE_COMPRESSION, CompressionSpec, compress_exposure
from alertprod.imaging.psf import moffat_psf
from alertprod.photometry.forced import forced_photometry_exposure
from alertprod.photometry.stamps import cutout_half_size_pix, dia_forced_half_size_pix, sky_windows
from alertprod.precovery.daily import precovery_rows
from alertprod.precovery.units import PrecoveryUnit
from alertprod.sky.survey import sky_sigma_njy

pytestmark = pytest.mark.bench

RESULTS = Path(__file__).parent / "results" / "image_reads.json"
NPIX, SCALE_ARCSEC, BAND, MJD = 4096, 0.2, "i", 61000.2
N_SOURCES, N_OBJECTS = 200, 5000
OBJECT_SWEEP = (0, 100, 1000, N_OBJECTS)
UNIT_OBJECTS = (1, 3, 10, 100)
ALERT_BUDGET_S = 60.0
TILES = ((16, 16), (32, 32), (64, 64), (128, 128), (256, 256))
QUANTIZE = (4.0, 8.0, 16.0, 32.0)
#: Goals of issue 10.
GOAL_STAMP_FRACTION, GOAL_CCD_FRACTION, GOAL_UNIT_SPEEDUP, GOAL_PULL_SCATTER = 0.01, 0.30, 10.0, 0.05


def _scene(rng, tan_wcs, ccd_exposure):
    wcs = tan_wcs(40.0, -20.0, NPIX, scale_arcsec=SCALE_ARCSEC)
    psf = moffat_psf(3.5, size_pix=21)
    sigma = sky_sigma_njy(BAND, SCALE_ARCSEC)
    stars = (rng.uniform(0, NPIX, 3000), rng.uniform(0, NPIX, 3000), rng.uniform(300, 3e5, 3000))
    exp = ccd_exposure(rng, NPIX, sigma, psf, wcs, ExposureInfo(60980, 17, BAND, MJD, 30.0),
                       sources=[stars])
    # variance with the sources' own noise, and cosmic rays: planes that do not compress to nothing
    exp.variance += np.maximum(exp.image, 0) * np.float32(sigma / 50)
    exp.mask[rng.random(exp.mask.shape) < 5e-4] |= int(MaskBit.CR)
    return exp, stars


def _sky(wcs, x, y):
    ra, dec = wcs.all_pix2world(x, y, 0)
    return np.asarray(ra), np.asarray(dec)


def _read(raw: bytes, kind: str, ra, dec, *, cutouts=None, whole=None, cost=READ_COST):
    """Open and read the windows ``kind`` needs; returns (exposure, plan, stats, open stats, cpu s)."""
    c = time.process_time()
    source = BytesSource(raw, what=kind)
    f = ExposureFile.open(source, cost=cost)
    opened = {"gets": source.stats.gets, "bytes": source.stats.bytes,
              "modelled_s": source.stats.modelled_seconds(cost)}
    parts = [] if ra is None else [sky_windows(f.wcs, f.shape, ra, dec, dia_forced_half_size_pix(kind, f.psf))]
    if cutouts is not None:
        parts.append(sky_windows(f.wcs, f.shape, *cutouts, cutout_half_size_pix(f.psf)))
    windows = np.concatenate(parts)
    plan = f.plan(windows, whole=whole)
    exp = f.read_windows(windows, whole=whole)
    return exp, plan, source.stats.snapshot() | {"modelled_s": source.stats.modelled_seconds(cost)}, \
        opened, time.process_time() - c


def _exact(raw: bytes, kind: str, ra, dec, *, cutouts=None) -> dict:
    """The windows' bytes with no gap read through: what a byte-frugal plan would GET, and
    what that would take at ``READ_COST``'s latency and parallelism."""
    f = ExposureFile.open(raw, cost=ReadCost(first_byte_s=1e-9))
    parts = [] if ra is None else [sky_windows(f.wcs, f.shape, ra, dec, dia_forced_half_size_pix(kind, f.psf))]
    if cutouts is not None:
        parts.append(sky_windows(f.wcs, f.shape, *cutouts, cutout_half_size_pix(f.psf)))
    ranges = f.plan(np.concatenate(parts), whole=False).windowed_ranges
    lengths = [b - a for a, b in ranges]
    return {"exact_bytes": sum(lengths), "exact_gets": len(lengths),
            "exact_s": READ_COST.seconds(lengths)}


def _whole_get(size: int, cost: ReadCost = READ_COST) -> dict:
    """Today's path: one GET of the whole object."""
    return {"gets": 1, "bytes": size, "modelled_s": cost.seconds([size])}


def _per_measurement(raw: bytes, wcs, rng) -> dict:
    ra, dec = _sky(wcs, rng.uniform(100, NPIX - 100, 1), rng.uniform(100, NPIX - 100, 1))
    whole = _whole_get(len(raw))
    out = {}
    for name, kind, pos, cut in (("forced stamp (difference)", "difference", (ra, dec), None),
                                 ("refinement window (science)", "science", (ra, dec), None),
                                 ("cutout (template)", "template", (None, None), (ra, dec))):
        exp, plan, stats, opened, _ = _read(raw, kind, *pos, cutouts=cut)
        out[name] = {"gets": stats["gets"], "bytes": stats["bytes"], "open_gets": opened["gets"],
                     "open_bytes": opened["bytes"], "fraction_of_file": stats["bytes"] / len(raw),
                     "modelled_s": round(stats["modelled_s"], 4), "whole_file": whole}
    ref = read_exposure(raw)
    exp, *_ = _read(raw, "difference", ra, dec)
    a, b = forced_photometry_exposure(ref, ra, dec), forced_photometry_exposure(exp, ra, dec)
    assert np.array_equal(a.flux, b.flux) and np.array_equal(a.flux_err, b.flux_err)
    return out


def _nightly(raws: dict[str, bytes], wcs, rng, stars) -> dict:
    """Per file kind and object count: both ways' cost, the chosen one, CPU of the read."""
    src = _sky(wcs, rng.uniform(0, NPIX, N_SOURCES), rng.uniform(0, NPIX, N_SOURCES))
    # half the objects on stars (variables), half on blank sky
    n2 = N_OBJECTS // 2
    ox = np.concatenate([stars[0][:n2] + 0.2, rng.uniform(0, NPIX, N_OBJECTS - n2)])
    oy = np.concatenate([stars[1][:n2] - 0.2, rng.uniform(0, NPIX, N_OBJECTS - n2)])
    obj = _sky(wcs, ox, oy)
    out: dict = {}
    for form, files in raws.items():
        rows = []
        for n in OBJECT_SWEEP:
            o = (obj[0][:n], obj[1][:n])
            row = {"objects": n, "kinds": {}}
            for kind in ("difference", "science", "template"):
                raw = files[kind]
                forced = o if kind != "template" else (None, None)
                cut = src if kind != "science" else None
                if forced[0] is not None and n == 0 and cut is None:
                    continue
                _, plan, stats, opened, cpu = _read(raw, kind, *forced, cutouts=cut)
                whole = _whole_get(len(raw))
                exact = _exact(raw, kind, *forced, cutouts=cut)
                row["kinds"][kind] = {
                    "file_bytes": len(raw), "chosen": "whole" if plan.whole else "windowed",
                    "gets": stats["gets"], "bytes": stats["bytes"],
                    "windowed_gets": len(plan.windowed_ranges) + opened["gets"],
                    "windowed_bytes": sum(b - a for a, b in plan.windowed_ranges) + opened["bytes"],
                    "modelled_s": round(stats["modelled_s"], 3), "read_cpu_s": round(cpu, 3),
                    "whole_get_s": round(whole["modelled_s"], 3), **exact}
            k = row["kinds"].values()
            row["bytes"] = sum(v["bytes"] for v in k)
            row["file_bytes"] = sum(v["file_bytes"] for v in k)
            row["fraction"] = row["bytes"] / row["file_bytes"]
            row["windowed_fraction"] = sum(v["windowed_bytes"] for v in k) / row["file_bytes"]
            row["gets"] = sum(v["gets"] for v in k)
            row["modelled_s"] = round(sum(v["modelled_s"] for v in k), 3)
            row["whole_get_s"] = round(sum(v["whole_get_s"] for v in k), 3)
            row["exact_fraction"] = sum(v["exact_bytes"] for v in k) / row["file_bytes"]
            row["exact_gets"] = sum(v["exact_gets"] for v in k)
            row["exact_s"] = round(sum(v["exact_s"] for v in k), 2)
            rows.append(row)
        out[form] = rows
    return out


def _precovery(raws: dict[str, bytes], wcs, rng) -> list[dict]:
    out = []
    for n in UNIT_OBJECTS:
        ra, dec = _sky(wcs, rng.uniform(0, NPIX, n), rng.uniform(0, NPIX, n))
        unit = PrecoveryUnit(60980, 17, BAND, MJD, tuple(range(1, n + 1)), tuple(ra), tuple(dec))
        c = time.process_time()
        exps, modelled, nbytes, gets = {}, 0.0, 0, 0
        for kind in ("difference", "science"):
            exps[kind], _, stats, _, _ = _read(raws[kind], kind, ra, dec)
            modelled += stats["modelled_s"]
            nbytes += stats["bytes"]
            gets += stats["gets"]
        rows = precovery_rows(unit, exps["difference"], exps["science"], processed_mjd_tai=MJD + 9)
        windowed_cpu = time.process_time() - c
        del exps
        c = time.process_time()
        d, s = read_exposure(raws["difference"]), read_exposure(raws["science"])
        expect = precovery_rows(unit, d, s, processed_mjd_tai=MJD + 9)
        whole_cpu = time.process_time() - c
        del d, s
        for col in ("psfFlux", "scienceFlux", "ra", "dec"):
            assert np.array_equal(np.asarray(rows[col]), np.asarray(expect[col]), equal_nan=True)
        whole_bytes = len(raws["difference"]) + len(raws["science"])
        whole_dl = sum(_whole_get(len(raws[k]))["modelled_s"] for k in ("difference", "science"))
        t_win, t_whole = windowed_cpu + modelled, whole_cpu + whole_dl
        out.append({"objects": n, "bytes": nbytes, "gets": gets, "fraction": nbytes / whole_bytes,
                    "windowed_cpu_s": round(windowed_cpu, 3), "windowed_download_s": round(modelled, 3),
                    "whole_cpu_s": round(whole_cpu, 3), "whole_download_s": round(whole_dl, 3),
                    "unit_s": round(t_win, 3), "whole_unit_s": round(t_whole, 3),
                    "speedup": round(t_whole / t_win, 1)})
    return out


def _stamp_reads(packed: bytes, ra, dec) -> dict:
    """Opening a file and reading one forced stamp, averaged over positions (``READ_COST``)."""
    source = BytesSource(packed)
    f = ExposureFile.open(source)
    opened = source.stats.snapshot() | {"modelled_s": source.stats.modelled_seconds(READ_COST)}
    half = dia_forced_half_size_pix("difference", f.psf)
    exact = ReadCost(first_byte_s=1e-9)  # no gap read through: what the touched tiles hold
    plans = [f.plan(sky_windows(f.wcs, f.shape, [r], [d], half), whole=False)
             for r, d in zip(ra, dec, strict=True)]
    g = ExposureFile.open(packed, cost=exact)
    windows = [sky_windows(g.wcs, g.shape, [r], [d], half)[0] for r, d in zip(ra, dec, strict=True)]
    tiles = [g.plan(w[None], whole=False).bytes for w in windows]
    with fits.open(io.BytesIO(packed), memmap=False) as hdul:  # decompressing the touched tiles
        sections = [hdul[name].section for name in ("IMAGE", "VARIANCE", "MASK")]
        c = time.process_time()
        for y0, y1, x0, x1 in windows:
            for sec in sections:
                sec[y0:y1, x0:x1]
        decode_s = (time.process_time() - c) / len(windows)
    return {"open_bytes": opened["bytes"], "open_gets": opened["gets"],
            "tile_bytes_per_stamp": int(np.mean(tiles)),
            "read_bytes_per_stamp": int(opened["bytes"] + np.mean([p.bytes for p in plans])),
            "gets_per_stamp": round(opened["gets"] + float(np.mean([len(p.ranges) for p in plans])), 1),
            "modelled_s_per_stamp": round(opened["modelled_s"]
                                          + float(np.mean([p.windowed_s for p in plans])), 4),
            "decode_cpu_s_per_stamp": round(decode_s, 5)}


def _compression(exp: Exposure, plain: bytes, rng, stars) -> dict:
    """Quantisation at 64 × 64 tiles first (pull scatter against ratio), then tile shapes at the
    chosen quantisation (bytes per stamp read against ratio), on the whole 4k exposure."""
    x = np.concatenate([stars[0][:500], rng.uniform(20, NPIX - 20, 1500)])
    y = np.concatenate([stars[1][:500], rng.uniform(20, NPIX - 20, 1500)])
    ra, dec = _sky(exp.wcs, x, y)
    ref = forced_photometry_exposure(exp, ra, dec)
    stamp = _sky(exp.wcs, rng.uniform(50, NPIX - 50, 20), rng.uniform(50, NPIX - 50, 20))

    def measure(spec: CompressionSpec) -> dict:
        packed = compress_exposure(exp, spec)
        got = forced_photometry_exposure(read_exposure(packed), ra, dec)
        pull = (got.flux - ref.flux) / ref.flux_err
        return {"tile_shape_pix": list(spec.tile_shape_pix), "quantize_level": spec.quantize_level,
                "file_bytes": len(packed), "ratio": round(len(plain) / len(packed), 2),
                "pull_scatter": round(float(np.std(pull)), 4),
                "max_abs_pull": round(float(np.max(np.abs(pull))), 4), **_stamp_reads(packed, *stamp)}

    quant = [measure(CompressionSpec((64, 64), q)) for q in QUANTIZE]
    q = _choose_quantize(quant)
    tiles = [next(r for r in quant if r["quantize_level"] == q) if t == (64, 64)
             else measure(CompressionSpec(t, q)) for t in TILES]
    return {"quantize_rows": quant, "tile_rows": tiles, "quantize_level": q,
            "tile_shape_pix": _choose_tile(tiles)["tile_shape_pix"]}


def _choose_quantize(rows: list[dict]) -> float:
    """The coarsest quantisation (best ratio) whose added pull scatter meets the goal."""
    return min(r["quantize_level"] for r in rows if r["pull_scatter"] <= GOAL_PULL_SCATTER)


def _choose_tile(rows: list[dict]) -> dict:
    """Among tile shapes whose file is within 5 % of the smallest, the fastest stamp: modelled
    read (opening included) plus the CPU of decompressing the tiles it touches."""
    smallest = min(r["file_bytes"] for r in rows)
    ok = [r for r in rows if r["file_bytes"] <= 1.05 * smallest]
    return min(ok, key=lambda r: r["modelled_s_per_stamp"] + r["decode_cpu_s_per_stamp"])


def test_bench_stamp_reads_against_whole_files(tan_wcs, ccd_exposure):
    rng = np.random.default_rng(1010)
    exp, stars = _scene(rng, tan_wcs, ccd_exposure)
    plain = write_exposure(exp)
    packed = compress_exposure(exp, ARCHIVE_COMPRESSION)
    figures: dict = {"image_pix": [NPIX, NPIX], "file_bytes": len(plain), "read_cost": READ_COST.__dict__,
                     "coalesce_gap_bytes": READ_COST.coalesce_gap_bytes,
                     "archive_compression": {"tile_shape_pix": list(ARCHIVE_COMPRESSION.tile_shape_pix),
                                             "quantize_level": ARCHIVE_COMPRESSION.quantize_level,
                                             "file_bytes": len(packed)}}
    figures["measurement"] = _per_measurement(plain, exp.wcs, rng)
    kinds = ("difference", "science", "template")
    figures["nightly_ccd"] = _nightly({"plain": dict.fromkeys(kinds, plain),
                                       "compressed": dict.fromkeys(kinds, packed)}, exp.wcs, rng, stars)
    figures["precovery_unit"] = _precovery({"difference": plain, "science": plain}, exp.wcs, rng)
    figures["compression"] = comp = _compression(exp, plain, rng, stars)
    ccd = figures["nightly_ccd"]["plain"][-1]
    figures["goals"] = {
        "stamp_fraction": [figures["measurement"]["forced stamp (difference)"]["fraction_of_file"],
                           GOAL_STAMP_FRACTION],
        "ccd_fraction": [ccd["fraction"], GOAL_CCD_FRACTION],  # not met: see docs/images.md
        "ccd_exact_fraction": [ccd["exact_fraction"], GOAL_CCD_FRACTION],
        "ccd_image_read_s": [ccd["modelled_s"], ALERT_BUDGET_S],
        "unit_speedup_1_object": [figures["precovery_unit"][0]["speedup"], GOAL_UNIT_SPEEDUP],
        "pull_scatter": [next(r["pull_scatter"] for r in comp["tile_rows"]
                              if r["tile_shape_pix"] == comp["tile_shape_pix"]), GOAL_PULL_SCATTER]}
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(figures, indent=2, default=str) + "\n")

    print(f"\nimage reads, {NPIX}x{NPIX} exposure of {len(plain) / 1e6:.0f} MB "
          f"(compressed {len(packed) / 1e6:.1f} MB); model: {READ_COST}")
    print(f"{'one measurement':<30}{'GETs':>6}{'bytes':>11}{'% file':>8}{'model s':>9}{'whole GET s':>12}")
    for name, m in figures["measurement"].items():
        print(f"{name:<30}{m['gets']:>6}{m['bytes']:>11}{100 * m['fraction_of_file']:>8.2f}"
              f"{m['modelled_s']:>9.3f}{m['whole_file']['modelled_s']:>12.3f}")
    for form, rows in figures["nightly_ccd"].items():
        print(f"\nnightly CCD, {N_SOURCES} DiaSources, {form} files (difference, science, template)")
        print(f"{'objects':>8}{'ways':>8}{'GETs':>7}{'% bytes':>9}{'% windowed':>11}{'model s':>9}"
              f"{'whole GET s':>12}{'% exact':>9}{'exact GETs':>11}{'exact s':>9}")
        for r in rows:
            ways = ",".join(v["chosen"][0] for v in r["kinds"].values())
            print(f"{r['objects']:>8}{ways:>8}{r['gets']:>7}{100 * r['fraction']:>9.1f}"
                  f"{100 * r['windowed_fraction']:>11.1f}{r['modelled_s']:>9.3f}{r['whole_get_s']:>12.3f}"
                  f"{100 * r['exact_fraction']:>9.1f}{r['exact_gets']:>11}{r['exact_s']:>9.2f}")
    print("\nprecovery unit (difference + science): seconds = CPU (1 thread) + modelled download")
    print(f"{'objects':>8}{'GETs':>6}{'% bytes':>9}{'windowed s':>12}{'whole s':>9}{'speedup':>9}")
    for r in figures["precovery_unit"]:
        print(f"{r['objects']:>8}{r['gets']:>6}{100 * r['fraction']:>9.2f}{r['unit_s']:>12.3f}"
              f"{r['whole_unit_s']:>9.3f}{r['speedup']:>9.1f}")
    print("\ncompression of the 4k exposure (RICE_1, SUBTRACTIVE_DITHER_2); a stamp read = open + one "
          "forced stamp")
    print(f"{'tile':>10}{'q':>6}{'ratio':>7}{'pull σ':>8}{'max|pull|':>10}{'open B':>9}{'tile B':>8}"
          f"{'read B':>9}{'GETs':>6}{'model s':>9}{'decode ms':>10}")
    for r in comp["quantize_rows"] + [t for t in comp["tile_rows"] if t not in comp["quantize_rows"]]:
        print(f"{str(tuple(r['tile_shape_pix'])):>10}{r['quantize_level']:>6.0f}{r['ratio']:>7.2f}"
              f"{r['pull_scatter']:>8.4f}{r['max_abs_pull']:>10.4f}{r['open_bytes']:>9}"
              f"{r['tile_bytes_per_stamp']:>8}{r['read_bytes_per_stamp']:>9}{r['gets_per_stamp']:>6}"
              f"{r['modelled_s_per_stamp']:>9.4f}{1e3 * r['decode_cpu_s_per_stamp']:>10.2f}")
    print(f"chosen: tile {comp['tile_shape_pix']}, q {comp['quantize_level']}; "
          f"ARCHIVE_COMPRESSION: {ARCHIVE_COMPRESSION}")

    # the goals
    stamp = figures["measurement"]["forced stamp (difference)"]
    assert stamp["fraction_of_file"] <= GOAL_STAMP_FRACTION
    assert ccd["modelled_s"] < ALERT_BUDGET_S / 10  # image reads: under a tenth of the budget
    # units of a few objects, the typical unit (results/precovery.json: ~1 object per unit)
    assert min(r["speedup"] for r in figures["precovery_unit"][:2]) >= GOAL_UNIT_SPEEDUP
    # the archive's parameters are the measured choice (a tile shape within 5 % of the chosen
    # one's stamp time counts as the same: the timing of the decode is noisy)
    assert ARCHIVE_COMPRESSION.quantize_level == comp["quantize_level"]
    archive = next(r for r in comp["tile_rows"]
                   if r["tile_shape_pix"] == list(ARCHIVE_COMPRESSION.tile_shape_pix))
    chosen = next(r for r in comp["tile_rows"] if r["tile_shape_pix"] == comp["tile_shape_pix"])
    stamp_s = [r["modelled_s_per_stamp"] + r["decode_cpu_s_per_stamp"] for r in (archive, chosen)]
    assert stamp_s[0] <= 1.05 * stamp_s[1] and archive["pull_scatter"] <= GOAL_PULL_SCATTER

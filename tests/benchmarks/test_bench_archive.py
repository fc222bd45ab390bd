"""Benchmark: the long-term archive's bytes per exposure and its CPU seconds per CCD.

One CCD-visit of the simulator's ``lsst-ccd`` preset (a full 4096 × 4096 LSST CCD: sky noise,
stars, galaxies, variables, transients, saturated stars and bleed trails, bad columns, cosmic
rays; its deep template warped to the detector) is archived as ArchiveFunction does it
(:func:`alertprod.archive.archive_image`: compress, store, index) into in-memory stores, one
core. Measured: archived bytes of the science image and of the template against their
uncompressed upload (goal ≤ 25 % together), and CPU seconds per image and per CCD (science
+ template), best of ``REPEATS``. Results in ``results/archive.json``; they feed the LSST
storage figures of docs/archive.md and docs/deployment.md.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from alertprod.apdb import memory_level1
from alertprod.archive import archive_image, open_archived
from alertprod.aws import MemoryBlobStore
from alertprod.formats import read_exposure
from alertprod.formats.compression import ARCHIVE_COMPRESSION
from alertprod.replay.survey_dir import scan_survey_dir
from alertprod.sky import simulate_survey
from alertprod.sky.presets import get_preset

pytestmark = pytest.mark.bench

RESULTS = Path(__file__).parent / "results" / "archive.json"
REPEATS = 2
GOAL_FRACTION = 0.25
#: LSST scale for the storage figures: CCD-visits a night and nights a year.
LSST = {"visits_per_night": 1000, "ccds_per_visit": 189, "nights_per_year": 300}


@pytest.fixture(scope="module")
def lsst_ccd(tmp_path_factory):
    out = tmp_path_factory.mktemp("archive-bench")
    config = get_preset("lsst-ccd", n_ccd_x=1, n_ccd_y=1, visits_per_night=1, n_workers=1,
                        edge_transient=False)
    simulate_survey(out, config=config, seed=11, progress=False)
    (visit,), _ = scan_survey_dir(out)
    (ccd,) = visit.ccds
    return ccd


def test_archive_bytes_and_cpu_per_ccd(lsst_ccd, one_core, best_of):
    images, archive = MemoryBlobStore("images"), MemoryBlobStore("archive")
    apdb = memory_level1().apdb
    keys = lsst_ccd.image_keys()
    figures = {}
    for kind in ("science", "template"):
        raw = lsst_ccd.image_paths[kind].read_bytes()
        images.put(keys[kind], raw)

        def run(kind=kind):
            archive.delete(f"archive/{keys[kind]}")  # recompress each time
            return archive_image(images, archive, apdb, keys[kind])

        timing = best_of(run, repeat=REPEATS)
        assert timing.result.status == "archived"
        packed = open_archived(archive, lsst_ccd.visit, lsst_ccd.detector, kind)
        original, back = read_exposure(raw), read_exposure(packed)
        noise = float(np.sqrt(np.median(original.variance)))
        figures[kind] = {
            "uncompressed_bytes": len(raw), "archived_bytes": len(packed),
            "fraction": round(len(packed) / len(raw), 4), "cpu_s": round(timing.cpu_s, 3),
            "wall_s": round(timing.wall_s, 3),
            "max_abs_error_over_sky_sigma": round(float(
                np.max(np.abs(back.image - original.image))) / noise, 4),
            "mask_exact": bool(np.array_equal(back.mask, original.mask)),
        }
    raw_total = sum(f["uncompressed_bytes"] for f in figures.values())
    packed_total = sum(f["archived_bytes"] for f in figures.values())
    per_ccd_visit_mb = packed_total / 1e6
    per_year_tb = per_ccd_visit_mb * np.prod(list(LSST.values())) / 1e6
    result = {
        "image_pix": [4096, 4096], "threads": 1, "compression": {
            "tile_shape_pix": list(ARCHIVE_COMPRESSION.tile_shape_pix),
            "quantize_level": ARCHIVE_COMPRESSION.quantize_level},
        "per_kind": figures,
        "fraction_science_plus_template": round(packed_total / raw_total, 4),
        "archived_mb_per_ccd_visit": round(per_ccd_visit_mb, 1),
        "cpu_s_per_ccd_visit": round(sum(f["cpu_s"] for f in figures.values()), 3),
        "lsst": LSST, "lsst_archive_tb_per_year": round(per_year_tb, 1),
    }
    print(json.dumps(result, indent=1))
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    assert all(f["mask_exact"] for f in figures.values())
    assert all(f["max_abs_error_over_sky_sigma"] < 1.0 for f in figures.values())
    assert result["fraction_science_plus_template"] <= GOAL_FRACTION

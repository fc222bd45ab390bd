"""``simulate_survey``: build the sky, render every CCD-visit, subtract, detect, and write it all.

For each CCD-visit the chain is the real one: the science image and its template are rendered
(:mod:`alertprod.sky.render`), the difference image is made by our ZOGY subtraction
(:func:`alertprod.imaging.subtraction.zogy_subtract`) and the DiaSource catalog by our detection
(:func:`alertprod.imaging.detection.detect_dia_sources`). Files follow the upload contract
(``alertprod.formats``); the truth goes to ``DIR/truth/`` (:mod:`alertprod.sky.truth`).
Every CCD-visit draws from its own generator seeded by ``(seed, visit, detector)``, so the
output does not depend on the number of worker processes or their order.
"""

from __future__ import annotations

import json
import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np
from astropy.table import Table, vstack
from tqdm import tqdm

from alertprod.errors import ConfigError
from alertprod.formats import (
    ExposureInfo,
    diasource_key,
    image_key,
)
from alertprod.imaging.detection import detect_dia_sources
from alertprod.imaging.psf import psf_effective_area_pix
from alertprod.imaging.subtraction import zogy_subtract
from alertprod.sky.asteroids import asteroid_ephemerides, make_asteroids
from alertprod.sky.bogus import bad_columns
from alertprod.sky.data_release import write_data_release_templates
from alertprod.sky.fastfits import diasource_catalog_bytes, exposure_bytes
from alertprod.sky.focal_plane import FocalPlane
from alertprod.sky.presets import SurveyConfig, get_preset
from alertprod.sky.proper_motion import earth_barycentric_au, hpm_positions, make_hpm_stars
from alertprod.sky.render import CcdConditions, make_psf, render_ccd
from alertprod.sky.scene import SkyModel, build_scene
from alertprod.sky.static_sky import make_galaxies, make_stars
from alertprod.sky.survey import make_schedule, pointing_of, sky_sigma_njy
from alertprod.sky.transients import make_transients, place_edge_transient
from alertprod.sky.truth import Truth, assemble_objects, match_detections, write_truth
from alertprod.sky.variables import make_variables

__all__ = ["SurveySummary", "simulate_survey", "build_survey", "Survey", "TEMPLATE_EPOCH_OFFSET_DAYS"]

#: Templates are built from data this many days before the survey (proper-motion stars move).
TEMPLATE_EPOCH_OFFSET_DAYS = 365.25

#: ``diaSourceId = (visit * 1000 + detector) * ID_BLOCK + i``.
ID_BLOCK = 100_000


class SurveySummary(NamedTuple):
    """What :func:`simulate_survey` wrote.

    Attributes
    ----------
    out_dir : pathlib.Path
    preset : str
    seed : int
    n_visits, n_nights, n_detectors, n_ccd_visits : int
    n_diasources : int
        DiaSources detected over the survey.
    n_real, n_bogus : int
        Detections matched to a simulated object / to an artifact or noise.
    counts : dict
        Objects per kind.
    edge_case : dict or None
        The edge-crossing transient (see :class:`~alertprod.sky.transients.EdgeCase`).
    """

    out_dir: Path
    preset: str
    seed: int
    n_visits: int
    n_nights: int
    n_detectors: int
    n_ccd_visits: int
    n_diasources: int
    n_real: int
    n_bogus: int
    counts: dict
    edge_case: dict | None


@dataclass
class Survey:
    """A survey ready to render: configuration, schedule, sky, orbits."""

    config: SurveyConfig
    seed: int
    schedule: Table
    sky: SkyModel
    mpcorb_text: str
    edge_case: dict | None
    mpcorb_epoch_mjd: float = float("nan")  # TT, whole day; NaN without asteroids


def build_survey(config: SurveyConfig, seed: int) -> Survey:
    """Draw the schedule and every object of the survey (no images yet)."""
    rng = np.random.default_rng([int(seed), 0])
    schedule = make_schedule(config, rng)
    edge = None
    parts = [make_stars(config, rng), make_galaxies(config, rng), make_variables(config, rng)]
    transients = make_transients(config, schedule, rng)
    if config.edge_transient:
        t_edge, edge = place_edge_transient(config, schedule, rng)
        transients = vstack([transients, t_edge]) if len(transients) else t_edge
    hpm = make_hpm_stars(config, rng)
    asteroids = make_asteroids(config, schedule, rng)
    parts += [transients, hpm, asteroids.truth]
    objects = assemble_objects(parts)
    kinds = np.asarray(objects["kind"])
    index = {k: np.flatnonzero(kinds == k) for k in ("star", "galaxy", "variable", "transient",
                                                      "hpm_star", "asteroid")}
    mjd = np.asarray(schedule["mjd"], dtype=float)
    hpm_rows = objects[index["hpm_star"]]
    earth = earth_barycentric_au(mjd).reshape(3, -1)
    hpm_ra = np.zeros((len(mjd), len(hpm_rows)))
    hpm_dec = np.zeros_like(hpm_ra)
    for j in range(len(mjd)):
        hpm_ra[j], hpm_dec[j] = hpm_positions(hpm_rows, mjd[j], earth_au=earth[:, j])
    t_tmpl = config.start_mjd_tai - TEMPLATE_EPOCH_OFFSET_DAYS
    tmpl_ra, tmpl_dec = hpm_positions(hpm_rows, t_tmpl)
    eph = asteroid_ephemerides(asteroids, mjd, np.asarray(schedule["band"]))
    sky = SkyModel(objects, index, hpm_ra, hpm_dec, tmpl_ra, tmpl_dec, eph)
    return Survey(config, int(seed), schedule, sky, asteroids.mpcorb_text,
                  edge.as_dict() if edge is not None else None, asteroids.mpcorb_epoch_mjd)


_SURVEY: Survey | None = None  # the survey a worker process renders (set by _init_worker)


def _init_worker(survey: Survey) -> None:
    global _SURVEY
    _SURVEY = survey


def _write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def render_ccd_visit(survey: Survey, j: int, detector: int, out_dir: Path, *, fft_workers: int = 1) -> dict:
    """Render, subtract, detect and write one CCD-visit; return its truth rows."""
    config, row = survey.config, survey.schedule[j]
    visit, band, mjd = int(row["visit"]), str(row["band"]), float(row["mjd"])
    rng = np.random.default_rng([survey.seed, visit, int(detector)])
    fp = FocalPlane(config)
    pointing = pointing_of(row)
    wcs = fp.wcs(pointing, detector)
    shape = (config.ccd_ny_pix, config.ccd_nx_pix)
    scale = config.pixel_scale_arcsec
    seeing_pix = float(row["seeing_fwhm_arcsec"]) / scale
    template_sigma = sky_sigma_njy(band, scale) / np.sqrt(config.template_depth_visits)
    scene, scene_truth = build_scene(
        survey.sky, j, row, wcs, shape, config, rng, psf_neff_pix=psf_effective_area_pix(make_psf(seeing_pix)),
        sky_sigma_njy=float(row["sky_sigma_njy"]), template_sigma_njy=template_sigma)
    cond = CcdConditions(
        shape=shape, seeing_fwhm_pix=seeing_pix, template_fwhm_pix=config.template_fwhm_arcsec / scale,
        sky_sigma_njy=float(row["sky_sigma_njy"]), template_sigma_njy=template_sigma,
        template_depth_visits=config.template_depth_visits, njy_per_electron=config.njy_per_electron,
        saturation_njy=config.saturation_njy, edge_pix=config.edge_pix,
        bad_columns=bad_columns(detector, config.n_bad_columns, config.ccd_nx_pix, survey.seed),
        cosmic_rays=config.cosmic_rays_per_ccd, cr_masked_fraction=config.cr_masked_fraction,
        hot_pixels=config.hot_pixels_per_ccd,
        edge_junk=config.edge_junk_per_ccd, template_gap=bool(rng.uniform() < 0.1),
        with_snapdiff=bool(row["has_snapdiff"]))
    info = ExposureInfo(visit, int(detector), band, mjd, float(row["exptime"]))
    images = render_ccd(scene, cond, wcs, info, rng)
    difference = zogy_subtract(images.science, images.template, flux_scale=1.0, workers=fft_workers,
                               compute_score=False).difference
    catalog = detect_dia_sources(difference, threshold_sigma=5.0, science=images.science,
                                 snapdiff=images.snapdiff, id_start=(visit * 1000 + int(detector)) * ID_BLOCK,
                                 workers=fft_workers)
    out = Path(out_dir)
    kinds = {"science": images.science, "template": images.template, "difference": difference}
    if images.snapdiff is not None:
        kinds["snapdiff"] = images.snapdiff
    for kind, exposure in kinds.items():
        _write(out / "images" / image_key(visit, detector, kind), exposure_bytes(exposure))
    _write(out / diasource_key(visit, detector), diasource_catalog_bytes(catalog, info, wcs, fp.detsize))

    lc = scene_truth.lightcurve
    for name, value in (("visit", visit), ("detector", int(detector)), ("band", band), ("mjd", mjd)):
        lc[name] = np.full(len(lc), value)
    matched = match_detections(catalog, scene_truth, images.artifacts)
    matched["visit"] = np.full(len(matched), visit, dtype=np.int64)
    matched["detector"] = np.full(len(matched), int(detector), dtype=np.int32)
    corners = fp.corners(pointing, detector)
    footprint = {"visit": visit, "detector": int(detector), "band": band, "mjd": mjd,
                 "corner_ra": corners[:, 0], "corner_dec": corners[:, 1],
                 "detsize1": config.ccd_nx_pix, "detsize2": config.ccd_ny_pix,
                 "wcsHeader": wcs.to_header(relax=True).tostring(sep="\n")}
    return {"lightcurve": lc, "diasources": matched, "footprint": footprint}


def _task(j: int, detector: int, out_dir: str, fft_workers: int) -> tuple[int, int, dict]:
    assert _SURVEY is not None
    return j, detector, render_ccd_visit(_SURVEY, j, detector, Path(out_dir), fft_workers=fft_workers)


def simulate_survey(out_dir, *, preset: str = "tiny", seed: int = 0, progress: bool = True,
                    config: SurveyConfig | None = None, n_workers: int | None = None) -> SurveySummary:
    """Simulate a survey and write it in the upload layout, with its truth.

    Parameters
    ----------
    out_dir : str or pathlib.Path
        Output directory (created): ``images/visits/...``, ``diasources/...``, ``mpcorb.dat``,
        ``truth/``, ``dr_templates/`` (data-release coadds).
    preset : {"tiny", "tiny-stale-orbits", "night", "lsst-ccd"}, keyword-only
        Survey size (:data:`~alertprod.sky.presets.PRESETS`); ignored when ``config`` is given.
    seed : int, keyword-only
        Random seed; the same seed gives byte-identical catalogs.
    progress : bool, keyword-only
        Show a progress bar over CCD-visits.
    config : SurveyConfig, optional, keyword-only
        A custom configuration instead of a preset.
    n_workers : int, optional, keyword-only
        Worker processes (default: the configuration's ``n_workers``, at most the CPU count).

    Returns
    -------
    SurveySummary
    """
    if int(seed) < 0:
        raise ConfigError(f"seed must be non-negative, got {seed!r}")
    config = get_preset(preset) if config is None else config
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    survey = build_survey(config, int(seed))
    (out / "mpcorb.dat").write_text(survey.mpcorb_text)
    tasks = [(j, d) for j in range(len(survey.schedule)) for d in range(config.n_detectors)]
    workers = min(n_workers or config.n_workers, os.cpu_count() or 1, len(tasks))
    results: dict[tuple[int, int], dict] = {}
    bar = tqdm(total=len(tasks), desc=f"simulate {config.name}", unit="ccd", disable=not progress)
    if workers <= 1:
        _init_worker(survey)
        for j, d in tasks:
            results[(j, d)] = _task(j, d, str(out), 2)[2]
            bar.update()
    else:
        method = "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"
        with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context(method),
                                 initializer=_init_worker, initargs=(survey,)) as pool:
            futures = [pool.submit(_task, j, d, str(out), 1) for j, d in tasks]
            for fut in as_completed(futures):
                j, d, res = fut.result()
                results[(j, d)] = res
                bar.update()
    bar.close()
    ordered = [results[t] for t in tasks]
    truth = _collect_truth(survey, ordered, preset=config.name)
    write_truth(out, truth)
    write_data_release_templates(survey, out)  # the deeper coadds of option F (sky.data_release)
    n_det = len(truth.diasources)
    n_real = int(np.sum(np.asarray(truth.diasources["truthId"]) > 0)) if n_det else 0
    return SurveySummary(out, config.name, int(seed), len(survey.schedule), config.n_nights,
                         config.n_detectors, len(tasks), n_det, n_real, n_det - n_real,
                         truth.survey["counts"], survey.edge_case)


def _collect_truth(survey: Survey, results: list[dict], *, preset: str) -> Truth:
    lightcurves = vstack([r["lightcurve"] for r in results])
    diasources = vstack([r["diasources"] for r in results])
    fp = [r["footprint"] for r in results]
    footprints = Table()
    for key in fp[0]:
        footprints[key] = np.array([f[key] for f in fp])
    objects = survey.sky.objects
    kinds, counts = np.unique(np.asarray(objects["kind"]), return_counts=True)
    bogus, bogus_counts = np.unique(np.asarray(diasources["bogusKind"]), return_counts=True)
    sched = survey.schedule
    meta = {
        "preset": preset,
        "seed": survey.seed,
        "config": {k: v for k, v in vars(survey.config).items()},
        "n_nights": int(survey.config.n_nights),
        "n_detectors": int(survey.config.n_detectors),
        "visits": [{"visit": int(r["visit"]), "night": int(r["night"]), "mjd": float(r["mjd"]),
                    "band": str(r["band"]), "ra": float(r["ra"]), "dec": float(r["dec"]),
                    "rot": float(r["rot"]), "seeing_fwhm_arcsec": float(r["seeing_fwhm_arcsec"]),
                    "sky_sigma_njy": float(r["sky_sigma_njy"]), "has_snapdiff": bool(r["has_snapdiff"])}
                   for r in sched],
        "counts": {str(k): int(c) for k, c in zip(kinds, counts, strict=True)},
        "detections": {"total": len(diasources),
                       "real": int(np.sum(np.asarray(diasources["truthId"]) > 0)),
                       **{f"bogus_{k}": int(c) for k, c in zip(bogus, bogus_counts, strict=True) if k}},
        "template_epoch_mjd": survey.config.start_mjd_tai - TEMPLATE_EPOCH_OFFSET_DAYS,
        "mpcorb_epoch_mjd_tt": (None if np.isnan(survey.mpcorb_epoch_mjd)
                                else float(survey.mpcorb_epoch_mjd)),
        "edge_case": survey.edge_case,
    }
    json.dumps(meta)  # fail here, not half-way through writing, if something is not JSON
    return Truth(objects, diasources, footprints, lightcurves, meta)

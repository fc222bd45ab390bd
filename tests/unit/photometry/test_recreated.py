"""Forced photometry on re-created difference images (alertprod.photometry.recreated).

Scenes are rendered by the simulator (:func:`alertprod.sky.render.render_ccd`: Moffat PSFs,
sky and source photon noise, a sharper and deeper template on the same grid, saturation, bad
columns, the edge mask): static stars in both images, transients in the science image only.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import pytest
from synthetic import make_wcs

from alertprod.errors import ImageError
from alertprod.formats import Exposure, ExposureInfo, MaskBit
from alertprod.imaging.psf import psf_effective_area_pix
from alertprod.imaging.subtraction import zogy_subtract
from alertprod.photometry import (
    forced_photometry_exposure,
    measure_recreated,
    sky_recreation_windows,
)
from alertprod.photometry.dia_forced import VisitImages, dia_forced_rows
from alertprod.sky.render import CcdConditions, Galaxies, PointSources, Scene, make_psf, render_ccd

pytestmark = pytest.mark.unit

N_PIX = 1024
SKY_SIGMA, TEMPLATE_SIGMA = 60.0, 60.0 / np.sqrt(20)
PROCESSED = 61000.5


class Epoch(NamedTuple):
    science: Exposure
    template: Exposure
    ra: np.ndarray  #: transients
    dec: np.ndarray
    flux: np.ndarray  #: true science-only flux (nJy)


def _epoch(seed: int, seeing_pix: float, *, n: int = N_PIX, template_gap: bool = False) -> Epoch:
    """One CCD-visit: ~300 transients on a jittered grid (S/N 3–100 on the difference), 150 stars
    of 3·10³–3·10⁵ nJy at least 20 px from any transient, two bad columns."""
    rng = np.random.default_rng(seed)
    step = 56.0
    g = np.arange(step / 2, n - step / 4, step)
    gx, gy = (a.ravel() + rng.uniform(-8, 8, a.size) for a in np.meshgrid(g, g))
    err = np.sqrt(SKY_SIGMA**2 + TEMPLATE_SIGMA**2) * np.sqrt(psf_effective_area_pix(make_psf(seeing_pix)))
    flux = err * 10 ** rng.uniform(np.log10(3), 2, gx.size)
    sx, sy = rng.uniform(0, n, 600), rng.uniform(0, n, 600)
    far = np.hypot(sx[:, None] - gx[None], sy[:, None] - gy[None]).min(axis=1) > 20
    sx, sy = sx[far][:150], sy[far][:150]
    sflux = 10 ** rng.uniform(3.5, 5.5, sx.size)
    stars = PointSources(sx, sy, sflux)
    none = PointSources.empty()
    scene = Scene(PointSources.concatenate([stars, PointSources(gx, gy, flux)]), stars,
                  Galaxies(*(np.zeros(0),) * 7), none, none)
    cond = CcdConditions(
        shape=(n, n), seeing_fwhm_pix=seeing_pix, template_fwhm_pix=3.5, sky_sigma_njy=SKY_SIGMA,
        template_sigma_njy=TEMPLATE_SIGMA, template_depth_visits=20, njy_per_electron=0.5,
        saturation_njy=60000.0, edge_pix=4, bad_columns=rng.integers(0, n, 2), cosmic_rays=0,
        cr_masked_fraction=1.0, hot_pixels=0, edge_junk=0, template_gap=template_gap, with_snapdiff=False)
    wcs = make_wcs(nx=n, ny=n)
    info = ExposureInfo(visit=9000 + seed, detector=12, band="r", mjd_mid_tai=60500.2, exptime_s=30.0)
    images = render_ccd(scene, cond, wcs, info, rng)
    ra, dec = wcs.all_pix2world(gx, gy, 0)
    return Epoch(images.science, images.template, np.asarray(ra), np.asarray(dec), flux)


@pytest.fixture(scope="module")
def epochs() -> list[Epoch]:
    return [_epoch(seed, seeing) for seed, seeing in ((1, 3.0), (2, 3.8), (3, 4.6), (4, 5.5))]


def _only_windows(exp: Exposure, windows) -> Exposure:
    """The exposure as a windowed read returns it: full shape, NaN and NO_DATA outside the windows."""
    keep = np.zeros(exp.shape, dtype=bool)
    for y0, y1, x0, x1 in windows:
        keep[y0:y1, x0:x1] = True
    return Exposure(np.where(keep, exp.image, np.float32(np.nan)), np.where(keep, exp.variance, np.float32(np.nan)),
                    np.where(keep, exp.mask, int(MaskBit.NO_DATA)).astype(np.int32), exp.psf, exp.wcs, exp.info,
                    dict(exp.header))


def test_recreated_transient_pulls_are_unit_normal_and_match_the_whole_ccd_difference(epochs):
    pulls, science_pulls = [], []
    for ep in epochs:
        ids = np.arange(ep.ra.size)
        rows = measure_recreated(ep.science, ep.template, ep.ra, ep.dec, processed_mjd_tai=PROCESSED,
                                 dia_object_ids=ids, tile_pix=256)
        assert rows["recreated"].all() and rows["isPrecovery"].all()
        # what the upstream pipeline would have cached: ZOGY of the whole CCD, the same rows
        whole = zogy_subtract(ep.science, ep.template, flux_scale=1.0, compute_score=False).difference
        info = ep.science.info
        cached = dia_forced_rows(ids, ep.ra, ep.dec, VisitImages(info.visit, info.detector, info.band,
                                                                 info.mjd_mid_tai, whole, ep.science),
                                 processed_mjd_tai=PROCESSED, is_precovery=True)
        assert list(rows["diaObjectId"]) == list(cached["diaObjectId"])
        assert np.all(np.abs(rows["psfFlux"] - cached["psfFlux"]) < 0.01 * cached["psfFluxErr"])
        assert np.allclose(rows["psfFluxErr"], cached["psfFluxErr"], rtol=1e-3)
        assert np.array_equal(rows["scienceFlux"], cached["scienceFlux"])
        truth = ep.flux[rows["diaObjectId"]]
        pulls.append((rows["psfFlux"] - truth) / rows["psfFluxErr"])
        science_pulls.append((rows["scienceFlux"] - truth) / rows["scienceFluxErr"])
    pull = np.concatenate(pulls)
    spull = np.concatenate(science_pulls)
    assert pull.size >= 1000
    assert abs(pull.mean()) < 0.05, pull.mean()
    assert abs(pull.std() - 1.0) < 0.05, pull.std()
    assert abs(spull.mean()) < 0.1 and abs(spull.std() - 1.0) < 0.1, (spull.mean(), spull.std())
    print(f"psfFlux pulls: N={pull.size} mean={pull.mean():+.3f} std={pull.std():.3f}; "
          f"scienceFlux: mean={spull.mean():+.3f} std={spull.std():.3f}")


def test_windowed_inputs_give_the_same_rows_as_full_images(epochs):
    ep = epochs[1]
    pick = np.arange(0, ep.ra.size, 37)  # a few positions: tiles, not the whole CCD
    ra, dec = ep.ra[pick], ep.dec[pick]
    psf_size = max(ep.science.psf.shape[0], ep.template.psf.shape[0])
    windows = sky_recreation_windows(ep.science.wcs, ep.science.shape, ra, dec, psf_size_pix=psf_size,
                                     tile_pix=256)
    assert 1 < len(windows) <= pick.size
    assert sum((y1 - y0) * (x1 - x0) for y0, y1, x0, x1 in windows) < 0.5 * N_PIX**2
    full = measure_recreated(ep.science, ep.template, ra, dec, processed_mjd_tai=PROCESSED, tile_pix=256)
    part = measure_recreated(_only_windows(ep.science, windows), _only_windows(ep.template, windows), ra, dec,
                             processed_mjd_tai=PROCESSED, tile_pix=256)
    assert len(full) == pick.size
    for col in full.colnames:
        assert np.array_equal(full[col], part[col], equal_nan=full[col].dtype.kind == "f"), col


def test_position_where_the_template_has_no_data_gets_no_row():
    ep = _epoch(5, 4.0, n=512, template_gap=True)  # the template lacks the strip x < 32
    wcs = ep.science.wcs
    ra, dec = wcs.all_pix2world([10.0, 300.0, 2000.0], [200.0, 300.0, 200.0], 0)  # gap, clean, off the CCD
    rows = measure_recreated(ep.science, ep.template, ra, dec, processed_mjd_tai=PROCESSED,
                             dia_object_ids=np.array([11, 12, 13]))
    assert list(rows["diaObjectId"]) == [12]
    assert np.isfinite(rows["psfFlux"][0]) and np.isfinite(rows["scienceFlux"][0])


def test_rows_are_dia_forced_rows_with_the_recreated_flag(epochs):
    ep = epochs[0]
    rows = measure_recreated(ep.science, ep.template, ep.ra[:3], ep.dec[:3], processed_mjd_tai=PROCESSED)
    assert list(rows["diaObjectId"]) == [0, 1, 2]
    assert (rows["visit"] == ep.science.info.visit).all() and (rows["band"] == "r").all()
    assert np.isnan(rows["snapDiffFlux"]).all() and (rows["timeProcessedMjdTai"] == PROCESSED).all()
    sci = forced_photometry_exposure(ep.science, ep.ra[:3], ep.dec[:3])
    assert np.all(np.abs(rows["scienceFlux"] - sci.flux) < 3 * sci.flux_err)


@pytest.mark.parametrize("kwargs, match", [
    ({"dia_object_ids": np.array([1, 2])}, "dia_object_ids"),
    ({"dia_object_ids": np.array([1.0, 2.0, 3.0])}, "dia_object_ids"),
    ({"flux_scale": 0.0}, "flux_scale"),
    ({"tile_pix": 64}, "tile_pix"),
])
def test_bad_arguments_are_refused_by_name(epochs, kwargs, match):
    ep = epochs[0]
    with pytest.raises(ImageError, match=match):
        measure_recreated(ep.science, ep.template, ep.ra[:3], ep.dec[:3], processed_mjd_tai=PROCESSED, **kwargs)


def test_bad_positions_and_inputs_are_refused(epochs):
    ep = epochs[0]
    with pytest.raises(ImageError, match="ra_deg and dec_deg"):
        measure_recreated(ep.science, ep.template, ep.ra[:3], ep.dec[:2], processed_mjd_tai=PROCESSED)
    with pytest.raises(ImageError, match="science"):
        measure_recreated(ep.science.image, ep.template, ep.ra[:3], ep.dec[:3], processed_mjd_tai=PROCESSED)
    with pytest.raises(ImageError, match="template"):
        measure_recreated(ep.science, None, ep.ra[:3], ep.dec[:3], processed_mjd_tai=PROCESSED)

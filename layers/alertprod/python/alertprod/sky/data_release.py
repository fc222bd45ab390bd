"""The simulated survey's data-release templates: deeper coadds per sky patch and band.

A data release (the precovery service's option F; :mod:`alertprod.archive.data_release`)
holds, per patch of sky and band, a coadd deeper than the nightly templates. The simulator
writes one for its own survey, consistent with its truth: the same static scene the nightly
templates show (stars, galaxies, variables at their template flux, fast stars at the template
epoch; no transients, no asteroids), through the nightly template's PSF, with the noise of
``DR_DEPTH_FACTOR`` times as many visits — so a difference against it has the same expected
flux (``diffFlux`` of the truth) and a smaller error.

Patches are tangent-plane grids of the survey's pixel scale, north up, laid over the union of
every CCD footprint: cores of ``PATCH_CORE_PIX`` pixels, each patch grown by
``PATCH_OVERLAP_PIX`` on every side so that a re-creation window (a PSF stamp plus the ZOGY
kernel, < 100 pixels) around any point of a core lies inside one patch. Files go to
``DIR/dr_templates/{patch}_{band}.fits`` in the exposure format with the ``DRNAME``,
``DRPATCH`` and ``DRDEPTH`` cards, ready for ``alertprod templates load DIR/dr_templates``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from astropy.wcs import WCS

from alertprod.formats import Exposure, ExposureInfo
from alertprod.imaging.psf import psf_effective_area_pix
from alertprod.sky.bogus import saturate
from alertprod.sky.fastfits import exposure_bytes
from alertprod.sky.focal_plane import FocalPlane
from alertprod.sky.render import _scene_image, galaxy_stamps, make_psf
from alertprod.sky.scene import build_scene
from alertprod.sky.survey import pointing_of, sky_sigma_njy

__all__ = ["DR_DEPTH_FACTOR", "DR_RELEASE", "PATCH_CORE_PIX", "PATCH_OVERLAP_PIX",
           "patch_grid", "write_data_release_templates"]

#: The release's coadds are this many times deeper (in visits) than the nightly templates.
DR_DEPTH_FACTOR = 4
#: Release name written to the coadds.
DR_RELEASE = "DR1"
#: Side of a patch's core (pixels) and the overlap added on each side.
PATCH_CORE_PIX = 768
PATCH_OVERLAP_PIX = 128
#: Subdirectory of the survey directory holding the coadds.
DR_SUBDIR = "dr_templates"


def _tangent_wcs(ra0: float, dec0: float, scale_arcsec: float, crpix: tuple[float, float]) -> WCS:
    w = WCS(naxis=2)
    w.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    w.wcs.crval = [ra0, dec0]
    w.wcs.crpix = list(crpix)
    w.wcs.cd = np.array([[-scale_arcsec / 3600.0, 0.0], [0.0, scale_arcsec / 3600.0]])
    return w


def patch_grid(corners: np.ndarray, scale_arcsec: float) -> list[tuple[str, WCS, tuple[int, int]]]:
    """Patches covering every footprint: ``(name, wcs, (ny, nx))``, names ``p{iy:02d}{ix:02d}``.

    Parameters
    ----------
    corners : ndarray, shape (n, 2)
        Sky corners of every CCD footprint (degrees).
    scale_arcsec : float
        Pixel scale of the patches.
    """
    v = np.stack([np.cos(np.deg2rad(corners[:, 1])) * np.cos(np.deg2rad(corners[:, 0])),
                  np.cos(np.deg2rad(corners[:, 1])) * np.sin(np.deg2rad(corners[:, 0])),
                  np.sin(np.deg2rad(corners[:, 1]))]).mean(axis=1)
    ra0 = float(np.rad2deg(np.arctan2(v[1], v[0])) % 360.0)
    dec0 = float(np.rad2deg(np.arcsin(v[2] / np.linalg.norm(v))))
    plane = _tangent_wcs(ra0, dec0, scale_arcsec, (0.0, 0.0))
    x, y = plane.all_world2pix(corners[:, 0], corners[:, 1], 0)
    x0, y0 = float(np.floor(x.min())), float(np.floor(y.min()))
    nx = max(1, int(np.ceil((x.max() - x0) / PATCH_CORE_PIX)))
    ny = max(1, int(np.ceil((y.max() - y0) / PATCH_CORE_PIX)))
    side = PATCH_CORE_PIX + 2 * PATCH_OVERLAP_PIX
    out = []
    for iy in range(ny):
        for ix in range(nx):
            # pixel (0, 0) of the patch sits at plane pixel (px0, py0); crpix is 1-based
            px0 = x0 + ix * PATCH_CORE_PIX - PATCH_OVERLAP_PIX
            py0 = y0 + iy * PATCH_CORE_PIX - PATCH_OVERLAP_PIX
            wcs = _tangent_wcs(ra0, dec0, scale_arcsec, (1.0 - px0, 1.0 - py0))
            out.append((f"p{iy:02d}{ix:02d}", wcs, (side, side)))
    return out


def write_data_release_templates(survey, out_dir, *, depth_factor: int = DR_DEPTH_FACTOR,
                                 release: str = DR_RELEASE) -> list[Path]:
    """Render and write the survey's data-release coadds (see the module notes).

    Parameters
    ----------
    survey : alertprod.sky.writer.Survey
        The survey (configuration, schedule, sky).
    out_dir : path
        The survey directory; coadds go to ``out_dir/dr_templates/``.
    depth_factor : int, keyword-only
        Depth relative to the nightly templates (visits).
    release : str, keyword-only
        The release's name.

    Returns
    -------
    list of Path
        The files written (one per patch and observed band).
    """
    from alertprod.sky.writer import TEMPLATE_EPOCH_OFFSET_DAYS  # the writer calls this module

    config, schedule = survey.config, survey.schedule
    fp = FocalPlane(config)
    corners = np.concatenate([fp.corners(pointing_of(row), d) for row in schedule
                              for d in range(config.n_detectors)])
    scale = config.pixel_scale_arcsec
    depth = int(config.template_depth_visits) * int(depth_factor)
    psf_t = make_psf(config.template_fwhm_arcsec / scale)
    bands = sorted({str(b) for b in schedule["band"]})
    first = {b: int(np.flatnonzero(np.asarray(schedule["band"]) == b)[0]) for b in bands}
    epoch = float(config.start_mjd_tai) - TEMPLATE_EPOCH_OFFSET_DAYS  # the nightly templates' epoch
    out = Path(out_dir) / DR_SUBDIR
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for k, (name, wcs, shape) in enumerate(patch_grid(corners, scale)):
        for band in bands:
            j = first[band]
            rng = np.random.default_rng([survey.seed, 7_000_000 + k, "ugrizy".index(band)])
            sigma = sky_sigma_njy(band, scale) / np.sqrt(depth)
            scene, _ = build_scene(survey.sky, j, schedule[j], wcs, shape, config, rng,
                                   psf_neff_pix=psf_effective_area_pix(psf_t),
                                   sky_sigma_njy=sigma, template_sigma_njy=sigma)
            model = _scene_image(shape, psf_t, scene.template, galaxy_stamps(scene.galaxies))
            variance = sigma**2 + np.clip(model, 0, None) * config.njy_per_electron / depth
            image = model + rng.standard_normal(shape) * np.sqrt(variance)
            mask = np.zeros(shape, np.int32)
            saturate(image, mask, config.saturation_njy)
            info = ExposureInfo(0, k, band, epoch, float(config.exptime_s) * depth)
            header = {"DRNAME": release, "DRPATCH": name, "DRDEPTH": depth}
            exposure = Exposure(image.astype(np.float32), variance.astype(np.float32), mask,
                                psf_t, wcs, info, header)
            path = out / f"{name}_{band}.fits"
            path.write_bytes(exposure_bytes(exposure))
            written.append(path)
    return written

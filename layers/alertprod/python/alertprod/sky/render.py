"""Rendering one CCD-visit: the science image, its deep template, and the snap difference.

Point sources are added with :func:`alertprod.imaging.psf.add_point_sources` (the PSF shifted to
each sub-pixel position), galaxies are Sérsic profiles sampled on the pixel grid, each stamp
convolved with the PSF (:func:`scipy.signal.fftconvolve`). The science image is the scene through the
visit's Moffat PSF plus Gaussian noise of the sky and of the sources' photons, then cosmic rays,
hot pixels, edge junk, saturation with bleed trails, bad columns and the edge mask. The template
is the static scene on the same pixel grid (as Rubin's warped templates are uploaded) through its
own, sharper PSF, with the noise of a coadd of ``template_depth_visits`` visits. The snap
difference is the difference of the two 15 s snaps: noise, moving objects' displacement between
the snaps, and the cosmic rays that hit one snap.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from astropy.modeling.models import Sersic2D
from astropy.wcs import WCS
from scipy.signal import fftconvolve

from alertprod.formats import Exposure, ExposureInfo, MaskBit
from alertprod.imaging.psf import add_point_sources, moffat_psf
from alertprod.sky.bogus import (
    ArtifactList,
    add_cosmic_rays,
    add_edge_junk,
    add_hot_pixels,
    edge_mask,
    saturate,
)

__all__ = ["PointSources", "Galaxies", "GalaxyStamp", "Scene", "CcdConditions", "RenderedCcd",
           "render_ccd", "galaxy_stamps", "add_galaxies", "make_psf"]


class PointSources(NamedTuple):
    """Point sources on a CCD: 0-based pixel positions and fluxes (nJy), arrays shape (n,)."""

    x: np.ndarray
    y: np.ndarray
    flux: np.ndarray

    @classmethod
    def empty(cls) -> PointSources:
        """No sources."""
        return cls(np.zeros(0), np.zeros(0), np.zeros(0))

    @classmethod
    def concatenate(cls, parts: list[PointSources]) -> PointSources:
        """All sources of several lists."""
        if not parts:
            return cls.empty()
        return cls(*(np.concatenate([np.asarray(getattr(p, f), dtype=float) for p in parts])
                     for f in cls._fields))


class Galaxies(NamedTuple):
    """Galaxies on a CCD, arrays shape (n,): position (pix), flux (nJy), half-light radius (pix),
    Sérsic index, ellipticity and position angle (deg, from +x)."""

    x: np.ndarray
    y: np.ndarray
    flux: np.ndarray
    r_eff_pix: np.ndarray
    sersic_n: np.ndarray
    ellip: np.ndarray
    theta_deg: np.ndarray


class Scene(NamedTuple):
    """What one CCD-visit sees.

    Attributes
    ----------
    science : PointSources
        Every point source at the visit's epoch (stars, variables, transients, proper-motion
        stars, asteroid trails as chains of points).
    template : PointSources
        The static point sources as the template holds them.
    galaxies : Galaxies
        Galaxies (in both images; fluxes in the visit's band).
    snap_plus, snap_minus : PointSources
        Moving sources during the first and the second snap (for the snap difference).
    """

    science: PointSources
    template: PointSources
    galaxies: Galaxies
    snap_plus: PointSources
    snap_minus: PointSources


class CcdConditions(NamedTuple):
    """Observing conditions and detector properties of one CCD-visit."""

    shape: tuple[int, int]  #: (ny, nx)
    seeing_fwhm_pix: float
    template_fwhm_pix: float
    sky_sigma_njy: float  #: per-pixel sky noise of the visit
    template_sigma_njy: float  #: per-pixel noise of the template
    template_depth_visits: int
    njy_per_electron: float
    saturation_njy: float
    edge_pix: int
    bad_columns: np.ndarray
    cosmic_rays: float  #: mean number of cosmic rays
    cr_masked_fraction: float  #: fraction of them masked and interpolated over
    hot_pixels: float
    edge_junk: float
    template_gap: bool  #: template lacks a strip (NO_DATA)
    with_snapdiff: bool


class RenderedCcd(NamedTuple):
    """The images of one CCD-visit and the unflagged artifacts in them."""

    science: Exposure
    template: Exposure
    snapdiff: Exposure | None
    artifacts: ArtifactList


def make_psf(fwhm_pix: float) -> np.ndarray:
    """The PSF image used for a given FWHM (Moffat, β = 3.5, pixel-integrated, sums to 1)."""
    return moffat_psf(float(fwhm_pix), beta=3.5)


class GalaxyStamp(NamedTuple):
    """A galaxy's intrinsic (not PSF-convolved) image, nJy per pixel, and where it lies.

    ``stamp[i, j]`` is image pixel ``(y0 + i, x0 + j)``; the stamp may extend past the image.
    """

    y0: int
    x0: int
    stamp: np.ndarray


def galaxy_stamps(galaxies: Galaxies) -> list[GalaxyStamp]:
    """Intrinsic Sérsic stamps of the galaxies.

    Each profile is sampled at pixel centres on a stamp of ±6 half-light radii (at least ±5,
    at most ±60 pixels) and scaled so that the stamp holds the galaxy's flux. The profile is
    :meth:`astropy.modeling.models.Sersic2D.evaluate` (called directly: building one model
    object per galaxy and CCD-visit costs more than evaluating it).
    """
    out = []
    for k in range(len(galaxies.x)):
        x0, y0 = float(galaxies.x[k]), float(galaxies.y[k])
        half = int(np.clip(np.ceil(6 * galaxies.r_eff_pix[k]), 5, 60))
        ix, iy = int(np.rint(x0)), int(np.rint(y0))
        yy, xx = np.mgrid[iy - half:iy + half + 1, ix - half:ix + half + 1]
        stamp = Sersic2D.evaluate(xx, yy, 1.0, float(galaxies.r_eff_pix[k]), float(galaxies.sersic_n[k]),
                                  x0, y0, float(galaxies.ellip[k]), np.deg2rad(float(galaxies.theta_deg[k])))
        stamp *= galaxies.flux[k] / stamp.sum()
        out.append(GalaxyStamp(iy - half, ix - half, stamp))
    return out


def add_galaxies(image: np.ndarray, psf: np.ndarray, stamps: list[GalaxyStamp]) -> np.ndarray:
    """Add PSF-convolved galaxy stamps into ``image`` in place (parts off the image are dropped).

    Each stamp is convolved on its own (:func:`scipy.signal.fftconvolve`, full output), which
    for tens of galaxies costs far less than convolving the whole CCD; light from galaxies just
    off the CCD spills onto it as it should.
    """
    ny, nx = image.shape
    h = psf.shape[0] // 2
    for g in stamps:
        conv = fftconvolve(g.stamp, psf, mode="full")
        y_lo, x_lo = g.y0 - h, g.x0 - h
        ys, xs = max(y_lo, 0), max(x_lo, 0)
        ye, xe = min(y_lo + conv.shape[0], ny), min(x_lo + conv.shape[1], nx)
        if ys < ye and xs < xe:
            image[ys:ye, xs:xe] += conv[ys - y_lo:ye - y_lo, xs - x_lo:xe - x_lo]
    return image


def _scene_image(shape, psf, points: PointSources, galaxies: list[GalaxyStamp]) -> np.ndarray:
    image = np.zeros(shape)
    add_galaxies(image, psf, galaxies)
    if len(points.x):
        add_point_sources(image, psf, points.x, points.y, points.flux)
    return image


def render_ccd(scene: Scene, cond: CcdConditions, wcs: WCS, info: ExposureInfo,
               rng: np.random.Generator) -> RenderedCcd:
    """Render the science, template and (optionally) snap-difference exposures of a CCD-visit.

    Parameters
    ----------
    scene : Scene
        Sources in the CCD's pixel frame.
    cond : CcdConditions
        Seeing, noise, detector defects.
    wcs : astropy.wcs.WCS
        The CCD's celestial WCS (written with every image).
    info : ExposureInfo
        Visit metadata (written with every image).
    rng : numpy.random.Generator
        The CCD-visit's own generator (determinism per (seed, visit, detector)).
    """
    shape = cond.shape
    artifacts = ArtifactList()
    psf_s = make_psf(cond.seeing_fwhm_pix)
    psf_t = make_psf(cond.template_fwhm_pix)
    gal = galaxy_stamps(scene.galaxies)
    edges = edge_mask(shape, cond.edge_pix)
    g = cond.njy_per_electron

    # --- science
    model = _scene_image(shape, psf_s, scene.science, gal)
    variance = cond.sky_sigma_njy**2 + np.clip(model, 0, None) * g
    image = model + rng.standard_normal(shape, dtype=np.float32) * np.sqrt(variance)
    mask = np.zeros(shape, dtype=np.int32)
    hits = add_cosmic_rays(image, mask, rng, cond.cosmic_rays, artifacts,
                           masked_fraction=cond.cr_masked_fraction)
    add_hot_pixels(image, rng, cond.hot_pixels, artifacts)
    add_edge_junk(image, rng, cond.edge_junk, cond.edge_pix, artifacts)
    saturate(image, mask, cond.saturation_njy)
    cols = np.asarray(cond.bad_columns, dtype=int)
    if cols.size:
        image[:, cols] = model[:, cols]  # interpolated over, as ISR does
        mask[:, cols] |= int(MaskBit.BAD | MaskBit.INTRP)
    mask[edges] |= int(MaskBit.EDGE)
    science = Exposure(image.astype(np.float32), variance.astype(np.float32), mask, psf_s, wcs, info, {})

    # --- template (coadd on the science grid)
    model_t = _scene_image(shape, psf_t, scene.template, gal)
    var_t = cond.template_sigma_njy**2 + np.clip(model_t, 0, None) * g / cond.template_depth_visits
    image_t = model_t + rng.standard_normal(shape, dtype=np.float32) * np.sqrt(var_t)
    mask_t = np.zeros(shape, dtype=np.int32)
    saturate(image_t, mask_t, cond.saturation_njy)
    mask_t[edges] |= int(MaskBit.EDGE)
    if cond.template_gap:  # a strip the coadd does not cover
        width = max(8, shape[1] // 16)
        image_t[:, :width] = 0.0
        mask_t[:, :width] |= int(MaskBit.NO_DATA)
    template = Exposure(image_t.astype(np.float32), var_t.astype(np.float32), mask_t, psf_t, wcs, info, {})

    # --- snap difference: snap1 - snap2 (each snap has twice the visit's variance)
    snapdiff = None
    if cond.with_snapdiff:
        image_d = rng.standard_normal(shape, dtype=np.float32) * (2.0 * np.sqrt(variance))
        if len(scene.snap_plus.x):
            add_point_sources(image_d, psf_s, scene.snap_plus.x, scene.snap_plus.y, scene.snap_plus.flux)
        if len(scene.snap_minus.x):
            add_point_sources(image_d, psf_s, scene.snap_minus.x, scene.snap_minus.y, -scene.snap_minus.flux)
        for ys, xs, values, snap in hits:
            image_d[ys, xs] += (2.0 if snap == 0 else -2.0) * values
        snapdiff = Exposure(image_d.astype(np.float32), (4.0 * variance).astype(np.float32), mask.copy(),
                            psf_s, wcs, info, {})
    return RenderedCcd(science, template, snapdiff, artifacts)

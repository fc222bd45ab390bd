"""The pixels a measurement reads: windows around sky positions, sized by the measuring code.

Reading an exposure by windows (:class:`alertprod.formats.exposure_file.ExposureFile`) gives
the same numbers as reading it whole only if every pixel a measurement touches is inside a
window. The half-sizes come from the measuring modules themselves, not from new constants:

- forced PSF photometry (:mod:`alertprod.photometry.forced`) fits the k × k stamp centred on
  the nearest pixel, k the PSF's side: half-size ``k // 2``;
- position refinement for ``scienceFlux`` (:func:`alertprod.photometry.positions.refine_positions`)
  moves at most ``_MAX_STEP_PIX`` per Gauss–Newton step for at most ``max_iter`` steps and fits
  the k × k stamp at each position, then measures at the last one: half-size
  ``k // 2 + ceil(max_iter · _MAX_STEP_PIX) + 1`` (the +1: the nearest pixel of a position moved
  by d can move by d + 1);
- cutouts (:mod:`alertprod.imaging.cutouts`) of side ``size`` (the configured one, else
  :func:`~alertprod.imaging.cutouts.cutout_size_pix` of the PSF's FWHM): half-size ``size // 2``.
"""

from __future__ import annotations

import inspect
import math

import numpy as np
from astropy.wcs import WCS

from alertprod.errors import NotFoundError
from alertprod.formats import BlobSource, Exposure, ExposureFile
from alertprod.formats.exposure_file import windows_around
from alertprod.imaging.cutouts import cutout_size_pix
from alertprod.imaging.psf import psf_fwhm_pix
from alertprod.photometry import positions
from alertprod.photometry.forced import _check_sky_positions

__all__ = ["cutout_half_size_pix", "dia_forced_half_size_pix", "forced_half_size_pix",
           "read_forced_windows", "refine_half_size_pix", "sky_windows"]

#: refine_positions' own default number of Gauss–Newton steps.
_REFINE_MAX_ITER = int(inspect.signature(positions.refine_positions).parameters["max_iter"].default)


def forced_half_size_pix(psf: np.ndarray) -> int:
    """Half-side of the stamp forced PSF photometry fits (pixels): ``k // 2`` for a k × k PSF."""
    return int(np.asarray(psf).shape[0]) // 2


def refine_half_size_pix(psf: np.ndarray, *, max_iter: int = _REFINE_MAX_ITER) -> int:
    """Half-side of the pixels position refinement may touch around a start position (pixels)."""
    return forced_half_size_pix(psf) + math.ceil(int(max_iter) * positions._MAX_STEP_PIX) + 1


def cutout_half_size_pix(psf: np.ndarray, size_pix: int | None = None) -> int:
    """Half-side of an alert cutout (pixels): ``size_pix`` or the PSF-sized default."""
    size = cutout_size_pix(psf_fwhm_pix(np.asarray(psf))) if size_pix is None else int(size_pix)
    return size // 2


def dia_forced_half_size_pix(kind: str, psf: np.ndarray) -> int:
    """Half-side of what :func:`alertprod.photometry.dia_forced.dia_forced_rows` reads of an
    image of ``kind``: forced photometry on ``difference`` and ``snapdiff``, refinement then
    forced photometry on ``science``."""
    return refine_half_size_pix(psf) if kind == "science" else forced_half_size_pix(psf)


def sky_windows(wcs: WCS, shape: tuple[int, int], ra_deg, dec_deg, half_size_pix: int) -> np.ndarray:
    """Windows ``[y0, y1, x0, x1]`` of side ``2h + 1`` around sky positions on an image.

    Positions go through ``wcs`` as forced photometry maps them (``all_world2pix``, 0-based);
    positions the WCS cannot map, and windows off the image, give none.

    Returns
    -------
    ndarray of int64, shape (m, 4)
    """
    ra, dec = _check_sky_positions(ra_deg, dec_deg)
    if ra.size == 0:
        return np.zeros((0, 4), np.int64)
    with np.errstate(invalid="ignore"):
        x, y = wcs.all_world2pix(ra, dec, 0, quiet=True)
    return windows_around(x, y, half_size_pix, shape)


def read_forced_windows(store, key: str, kind: str, ra_deg, dec_deg) -> Exposure | None:
    """An image of ``kind`` at ``key`` read by ranges: its headers, then the windows
    :func:`~alertprod.photometry.dia_forced.dia_forced_rows` needs around the positions (or
    whole, when the read cost model says that is cheaper); None when the object is missing.

    ``store`` is a :class:`~alertprod.aws.blobs.BlobStore` (the image cache).
    """
    try:
        efile = ExposureFile.open(BlobSource(store, key), what=kind)
    except NotFoundError:
        return None
    half = dia_forced_half_size_pix(kind, efile.psf)
    return efile.read_windows(sky_windows(efile.wcs, efile.shape, ra_deg, dec_deg, half))

"""Forced photometry on a re-created difference image (precovery beyond the 30-day cache).

When a visit's difference image has expired, the precovery service (DMS-REQ-0341) re-creates
it around the requested positions from the archived calibrated exposure and its template
(:func:`alertprod.imaging.recreate.recreate_difference`, ZOGY on tiles) and measures the rows
there with the one DiaForcedSource row builder (:func:`alertprod.photometry.dia_forced.dia_forced_rows`):
``psfFlux`` on the re-created difference, ``scienceFlux`` on the science image, each row
flagged ``recreated``. A reader that fetches only part of the images asks
:func:`sky_recreation_windows` which pixels to fetch.
"""

from __future__ import annotations

import numpy as np
from astropy.table import Table
from astropy.wcs import WCS

from alertprod.errors import ImageError
from alertprod.formats.exposure import Exposure
from alertprod.imaging.recreate import (
    DEFAULT_TILE_PIX,
    Window,
    recreate_difference,
    recreation_windows,
)
from alertprod.photometry.dia_forced import VisitImages, dia_forced_rows
from alertprod.photometry.forced import _check_sky_positions

__all__ = ["measure_recreated", "sky_recreation_windows"]


def _pixels(wcs: WCS, ra: np.ndarray, dec: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """0-based pixel positions of the sky positions that the WCS maps (the others dropped)."""
    if ra.size == 0:
        return np.zeros(0), np.zeros(0)
    with np.errstate(invalid="ignore"):
        x, y = wcs.all_world2pix(ra, dec, 0, quiet=True)
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    ok = np.isfinite(x) & np.isfinite(y)
    return x[ok], y[ok]


def sky_recreation_windows(wcs: WCS, shape: tuple[int, int], ra_deg: np.ndarray, dec_deg: np.ndarray,
                           *, psf_size_pix: int, tile_pix: int = DEFAULT_TILE_PIX) -> list[Window]:
    """The ``(y0, y1, x0, x1)`` windows of science and template that :func:`measure_recreated`
    reads for these positions (numpy slices, end excluded).

    Parameters
    ----------
    wcs : astropy.wcs.WCS
        The science exposure's WCS.
    shape : tuple of int
        ``(ny, nx)`` of the CCD.
    ra_deg, dec_deg : array_like, shape (n,)
        ICRS positions, degrees.
    psf_size_pix : int, keyword-only
        Side of the larger of the science and template PSFs.
    tile_pix : int, keyword-only
        As :func:`measure_recreated`.
    """
    ra, dec = _check_sky_positions(ra_deg, dec_deg)
    x, y = _pixels(wcs, ra, dec)
    return recreation_windows(x, y, shape, psf_size_pix=psf_size_pix, tile_pix=tile_pix)


def measure_recreated(science: Exposure, template: Exposure, ra_deg: np.ndarray, dec_deg: np.ndarray, *,
                      processed_mjd_tai: float, dia_object_ids: np.ndarray | None = None,
                      tile_pix: int = DEFAULT_TILE_PIX, flux_scale: float = 1.0,
                      workers: int = 1) -> Table:
    """DiaForcedSource rows of one epoch measured on its re-created difference image.

    Parameters
    ----------
    science : Exposure
        The archived calibrated exposure (nJy), full CCD shape; only the windows of
        :func:`sky_recreation_windows` need hold data.
    template : Exposure
        Its template on the science pixel grid, same shape and windows.
    ra_deg, dec_deg : array_like, shape (n,)
        ICRS positions, degrees, finite.
    processed_mjd_tai : float, keyword-only
        ``timeProcessedMjdTai`` of the rows.
    dia_object_ids : array_like of int, shape (n,), keyword-only, optional
        ``diaObjectId`` of the positions; default ``0 … n−1`` (a request's positions need not
        be DiaObjects), which keeps rows traceable to the request.
    tile_pix, flux_scale, workers : keyword-only
        As :func:`alertprod.imaging.recreate.recreate_difference` (``flux_scale`` 1: both images
        in nJy).

    Returns
    -------
    astropy.table.Table
        :func:`~alertprod.photometry.dia_forced.dia_forced_rows` columns (``isPrecovery``
        True, ``snapDiffFlux`` NaN: no snap difference is archived) plus ``recreated`` (True).
        As there, positions off the CCD or without a usable pixel on the difference (e.g. a
        tile the template does not cover) get no row.

    Raises
    ------
    ImageError
        Naming the argument: bad positions, ids of another length, or an input
        :func:`~alertprod.imaging.recreate.recreate_difference` refuses.
    """
    ra, dec = _check_sky_positions(ra_deg, dec_deg)
    if dia_object_ids is None:
        ids = np.arange(ra.size, dtype=np.int64)
    else:
        ids = np.atleast_1d(np.asarray(dia_object_ids))
        if ids.shape != ra.shape or ids.dtype.kind not in "iu":
            raise ImageError(f"dia_object_ids must be {ra.size} integers, got {ids.dtype} {ids.shape}")
    if not isinstance(science, Exposure):
        raise ImageError(f"science must be an Exposure, got {type(science).__name__}")
    x, y = _pixels(science.wcs, ra, dec)
    difference = recreate_difference(science, template, x, y, tile_pix=tile_pix, flux_scale=flux_scale,
                                     workers=workers)
    info = science.info
    images = VisitImages(info.visit, info.detector, info.band, info.mjd_mid_tai, difference=difference,
                         science=science)
    rows = dia_forced_rows(ids, ra, dec, images, processed_mjd_tai=processed_mjd_tai, is_precovery=True)
    rows["recreated"] = np.ones(len(rows), dtype=bool)
    return rows

"""The focal plane: a grid of CCDs with gaps, and the per-CCD celestial WCS of each visit.

Every CCD of a visit shares one gnomonic (TAN) projection centred on the boresight; a CCD's
WCS is that projection with the reference pixel moved to the boresight's position in the CCD's
own pixel frame. The focal-plane frame ``(u, v)`` is measured in pixels from the boresight,
``u`` along CCD rows (x) and ``v`` along columns (y); CCD ``(ix, iy)`` has detector id
``iy * n_ccd_x + ix`` and its pixel ``(x, y)`` (0-based) sits at ``(u0 + x, v0 + y)``.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from astropy.wcs import WCS

from alertprod.errors import ConfigError
from alertprod.sky.presets import SurveyConfig

__all__ = ["Pointing", "FocalPlane", "DetectorPosition"]


class Pointing(NamedTuple):
    """Where the telescope points during a visit.

    Attributes
    ----------
    ra_deg, dec_deg : float
        Boresight, degrees.
    rot_deg : float
        Rotation of the focal plane (position angle of the CCD +y axis, east of north).
    """

    ra_deg: float
    dec_deg: float
    rot_deg: float


class DetectorPosition(NamedTuple):
    """Where sky positions land on the focal plane.

    Attributes
    ----------
    detector : ndarray of int, shape (n,)
        Detector id, or -1 in a gap or off the focal plane.
    x, y : ndarray of float, shape (n,)
        0-based pixel position on that detector (NaN when ``detector`` is -1).
    """

    detector: np.ndarray
    x: np.ndarray
    y: np.ndarray


class FocalPlane:
    """A rectangular grid of identical CCDs separated by gaps.

    Parameters
    ----------
    config : SurveyConfig
        Uses ``n_ccd_x``, ``n_ccd_y``, ``ccd_nx_pix``, ``ccd_ny_pix``, ``gap_pix`` and
        ``pixel_scale_arcsec``.
    """

    def __init__(self, config: SurveyConfig):
        self.n_ccd_x, self.n_ccd_y = config.n_ccd_x, config.n_ccd_y
        self.nx, self.ny = config.ccd_nx_pix, config.ccd_ny_pix
        self.gap_pix = config.gap_pix
        self.scale_deg = config.pixel_scale_arcsec / 3600.0
        self.width_pix = self.n_ccd_x * self.nx + (self.n_ccd_x - 1) * self.gap_pix
        self.height_pix = self.n_ccd_y * self.ny + (self.n_ccd_y - 1) * self.gap_pix

    @property
    def n_detectors(self) -> int:
        """Number of CCDs."""
        return self.n_ccd_x * self.n_ccd_y

    @property
    def detsize(self) -> tuple[int, int]:
        """``(nx, ny)`` of every CCD, pixels."""
        return self.nx, self.ny

    def origin(self, detector: int) -> tuple[float, float]:
        """Focal-plane position ``(u0, v0)`` (pixels from the boresight) of a CCD's pixel (0, 0)."""
        if not 0 <= int(detector) < self.n_detectors:
            raise ConfigError(f"detector {detector!r} is not in 0..{self.n_detectors - 1}")
        iy, ix = divmod(int(detector), self.n_ccd_x)
        u0 = ix * (self.nx + self.gap_pix) - self.width_pix / 2.0 + 0.5
        v0 = iy * (self.ny + self.gap_pix) - self.height_pix / 2.0 + 0.5
        return u0, v0

    def neighbours(self, detector: int) -> dict[str, int]:
        """Detectors sharing an edge with ``detector``: keys ``left``, ``right``, ``down``, ``up``."""
        iy, ix = divmod(int(detector), self.n_ccd_x)
        out = {}
        if ix > 0:
            out["left"] = detector - 1
        if ix < self.n_ccd_x - 1:
            out["right"] = detector + 1
        if iy > 0:
            out["down"] = detector - self.n_ccd_x
        if iy < self.n_ccd_y - 1:
            out["up"] = detector + self.n_ccd_x
        return out

    def _cd(self, rot_deg: float) -> np.ndarray:
        t = np.deg2rad(rot_deg)
        # East to the left (RA decreasing with x), north up, then rotated by rot_deg.
        return self.scale_deg * np.array([[-np.cos(t), np.sin(t)], [np.sin(t), np.cos(t)]])

    def wcs(self, pointing: Pointing, detector: int) -> WCS:
        """Celestial TAN WCS of one CCD for one pointing (FITS 1-based ``CRPIX``)."""
        u0, v0 = self.origin(detector)
        w = WCS(naxis=2)
        w.wcs.ctype = ["RA---TAN", "DEC--TAN"]
        w.wcs.crval = [pointing.ra_deg % 360.0, pointing.dec_deg]
        w.wcs.crpix = [1.0 - u0, 1.0 - v0]
        w.wcs.cd = self._cd(pointing.rot_deg)
        w.wcs.radesys = "ICRS"
        w.wcs.set()
        return w

    def boresight_wcs(self, pointing: Pointing) -> WCS:
        """TAN WCS of the whole focal plane: pixel (0, 0) (0-based) is the boresight."""
        w = WCS(naxis=2)
        w.wcs.ctype = ["RA---TAN", "DEC--TAN"]
        w.wcs.crval = [pointing.ra_deg % 360.0, pointing.dec_deg]
        w.wcs.crpix = [1.0, 1.0]
        w.wcs.cd = self._cd(pointing.rot_deg)
        w.wcs.radesys = "ICRS"
        w.wcs.set()
        return w

    def locate(self, pointing: Pointing, ra_deg, dec_deg) -> DetectorPosition:
        """Detector and pixel position of sky positions (vectorised), -1 in gaps or outside.

        Parameters
        ----------
        pointing : Pointing
            The visit's pointing.
        ra_deg, dec_deg : array_like, shape (n,)
            Sky positions, degrees.
        """
        ra = np.atleast_1d(np.asarray(ra_deg, dtype=float))
        dec = np.atleast_1d(np.asarray(dec_deg, dtype=float))
        u, v = self.boresight_wcs(pointing).all_world2pix(ra, dec, 0)
        # Position measured from the lower-left pixel edge of the whole mosaic.
        fu = u + self.width_pix / 2.0
        fv = v + self.height_pix / 2.0
        pitch_x, pitch_y = self.nx + self.gap_pix, self.ny + self.gap_pix
        ix = np.floor(fu / pitch_x).astype(int)
        iy = np.floor(fv / pitch_y).astype(int)
        x = fu - ix * pitch_x - 0.5
        y = fv - iy * pitch_y - 0.5
        ok = ((ix >= 0) & (ix < self.n_ccd_x) & (iy >= 0) & (iy < self.n_ccd_y)
              & (x >= -0.5) & (x < self.nx - 0.5) & (y >= -0.5) & (y < self.ny - 0.5))
        det = np.where(ok, iy * self.n_ccd_x + ix, -1)
        return DetectorPosition(det, np.where(ok, x, np.nan), np.where(ok, y, np.nan))

    def corners(self, pointing: Pointing, detector: int) -> np.ndarray:
        """Sky corners of a CCD, shape (4, 2), degrees (pixel edges, counter-clockwise in pixels)."""
        xs = np.array([-0.5, self.nx - 0.5, self.nx - 0.5, -0.5])
        ys = np.array([-0.5, -0.5, self.ny - 0.5, self.ny - 0.5])
        ra, dec = self.wcs(pointing, detector).all_pix2world(xs, ys, 0)
        return np.column_stack([ra, dec])

    def radius_deg(self) -> float:
        """Radius of the circle (around the boresight) enclosing the whole focal plane."""
        return 0.5 * np.hypot(self.width_pix, self.height_pix) * self.scale_deg

"""Small synthetic inputs shared by tests (importable by name: ``tests/`` is on the test path)."""

from __future__ import annotations

import numpy as np
from astropy.wcs import WCS


def make_wcs(ra0: float = 150.0, dec0: float = 2.0, nx: int = 256, ny: int = 256,
             scale_arcsec: float = 0.2) -> WCS:
    """A TAN WCS centred on (ra0, dec0) for an nx × ny detector."""
    w = WCS(naxis=2)
    w.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    w.wcs.crval = [ra0, dec0]
    w.wcs.crpix = [(nx + 1) / 2, (ny + 1) / 2]
    w.wcs.cd = np.array([[-scale_arcsec / 3600, 0], [0, scale_arcsec / 3600]])
    return w

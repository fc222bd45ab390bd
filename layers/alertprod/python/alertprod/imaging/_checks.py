"""Checks of arguments shared by the imaging and photometry code."""

from __future__ import annotations

import numpy as np

from alertprod.errors import ImageError

__all__ = ["check_pixel_positions"]


def check_pixel_positions(x_pix, y_pix) -> tuple[np.ndarray, np.ndarray]:
    """Pixel positions as 1-D float64 arrays of equal length, finite (ImageError otherwise)."""
    x = np.atleast_1d(np.asarray(x_pix, dtype=np.float64))
    y = np.atleast_1d(np.asarray(y_pix, dtype=np.float64))
    if x.ndim != 1 or x.shape != y.shape:
        raise ImageError(f"x_pix and y_pix must be 1-D of equal length, got {x.shape} and {y.shape}")
    if not (np.all(np.isfinite(x)) and np.all(np.isfinite(y))):
        raise ImageError("x_pix and y_pix must be finite")
    return x, y

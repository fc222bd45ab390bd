"""Forced PSF photometry at given positions (vectorised), and where on an image to measure."""

from alertprod.photometry.forced import (
    ForcedFlag,
    ForcedPhotometryResult,
    forced_photometry_exposure,
    forced_psf_photometry,
)
from alertprod.photometry.positions import (
    PsfPositionFit,
    RefinedPositions,
    fit_psf_positions,
    refine_positions,
)

__all__ = [
    "ForcedFlag",
    "ForcedPhotometryResult",
    "PsfPositionFit",
    "RefinedPositions",
    "fit_psf_positions",
    "forced_photometry_exposure",
    "forced_psf_photometry",
    "refine_positions",
]

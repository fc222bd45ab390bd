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
from alertprod.photometry.recreated import measure_recreated, sky_recreation_windows

__all__ = [
    "ForcedFlag",
    "ForcedPhotometryResult",
    "PsfPositionFit",
    "RefinedPositions",
    "fit_psf_positions",
    "forced_photometry_exposure",
    "forced_psf_photometry",
    "measure_recreated",
    "refine_positions",
    "sky_recreation_windows",
]

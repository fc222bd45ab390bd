"""Forced PSF photometry at given positions, vectorised over many positions."""

from alertprod.photometry.forced import (
    ForcedFlag,
    ForcedPhotometryResult,
    forced_photometry_exposure,
    forced_psf_photometry,
)

__all__ = [
    "ForcedFlag",
    "ForcedPhotometryResult",
    "forced_photometry_exposure",
    "forced_psf_photometry",
]

"""Image-level science: PSF models, image subtraction (ZOGY), detection and measurement, cutouts."""

from alertprod.imaging.cutouts import cutout_fits, cutout_size_pix, read_cutout
from alertprod.imaging.psf import (
    PsfCentroid,
    add_point_sources,
    gaussian_psf,
    moffat_psf,
    psf_centroid,
    psf_effective_area_pix,
    psf_fwhm_pix,
    psf_stamps,
    shift_psf,
    validate_psf,
)
from alertprod.imaging.recreate import (
    RecreationTile,
    recreate_difference,
    recreation_tiles,
    recreation_windows,
)

__all__ = [
    "PsfCentroid",
    "add_point_sources",
    "cutout_fits",
    "cutout_size_pix",
    "gaussian_psf",
    "moffat_psf",
    "psf_centroid",
    "psf_effective_area_pix",
    "psf_fwhm_pix",
    "psf_stamps",
    "read_cutout",
    "RecreationTile",
    "recreate_difference",
    "recreation_tiles",
    "recreation_windows",
    "shift_psf",
    "validate_psf",
]

"""The upload contract: object keys, exposure FITS files, DiaSource catalogs, mask bits.

See docs/formats.md for the contract these modules implement.
"""

from alertprod.formats.catalog import (
    REQUIRED_DIASOURCE_COLUMNS,
    DiaSourceCatalog,
    read_diasource_catalog,
    write_diasource_catalog,
)
from alertprod.formats.exposure import (
    RUBIN_SITE,
    Exposure,
    ExposureInfo,
    read_exposure,
    read_exposure_info,
    write_exposure,
)
from alertprod.formats.layout import (
    IMAGE_KINDS,
    ObjectKey,
    diasource_key,
    image_key,
    parse_key,
    quarantine_key,
)
from alertprod.formats.mask import MaskBit

__all__ = [
    "IMAGE_KINDS",
    "REQUIRED_DIASOURCE_COLUMNS",
    "RUBIN_SITE",
    "DiaSourceCatalog",
    "Exposure",
    "ExposureInfo",
    "MaskBit",
    "ObjectKey",
    "diasource_key",
    "image_key",
    "parse_key",
    "quarantine_key",
    "read_diasource_catalog",
    "read_exposure",
    "read_exposure_info",
    "write_diasource_catalog",
    "write_exposure",
]

"""The upload contract: object keys, exposure FITS files, DiaSource catalogs, mask bits, time scales;
exposure files read by byte ranges (docs/images.md).

See docs/formats.md for the contract these modules implement.
"""

from alertprod.formats.byte_ranges import (
    READ_COST,
    BlobSource,
    ByteSource,
    BytesSource,
    ReadCost,
    ReadStats,
)
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
from alertprod.formats.exposure_file import ExposureFile, ReadPlan, windows_around
from alertprod.formats.layout import (
    IMAGE_KINDS,
    ObjectKey,
    diasource_key,
    image_key,
    parse_key,
    quarantine_key,
)
from alertprod.formats.mask import MaskBit
from alertprod.formats.time_scale import TIME_SCALES, mjd_to_tai, time_scale_from_header

__all__ = [
    "IMAGE_KINDS",
    "READ_COST",
    "BlobSource",
    "ByteSource",
    "BytesSource",
    "ExposureFile",
    "ReadCost",
    "ReadPlan",
    "ReadStats",
    "windows_around",
    "REQUIRED_DIASOURCE_COLUMNS",
    "RUBIN_SITE",
    "TIME_SCALES",
    "DiaSourceCatalog",
    "Exposure",
    "ExposureInfo",
    "MaskBit",
    "ObjectKey",
    "diasource_key",
    "image_key",
    "mjd_to_tai",
    "parse_key",
    "quarantine_key",
    "read_diasource_catalog",
    "read_exposure",
    "read_exposure_info",
    "time_scale_from_header",
    "write_diasource_catalog",
    "write_exposure",
]

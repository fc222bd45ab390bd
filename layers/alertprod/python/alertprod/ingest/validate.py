"""Validation of one per-CCD upload against the upload contract (docs/formats.md).

The DiaSource catalog is checked completely (structure, values, key/header agreement, positions
against its own WCS); the images are opened by their headers only — ranged reads of a few KB
(:class:`~alertprod.formats.exposure_file.ExposureFile`), not the ~200 MB files — and checked
by them; their pixels are read later, by the windows the CCD's measurements need. A violation raises
:class:`~alertprod.errors.ContractError` with a machine-readable reason; nothing is written
before validation passes, so a quarantined upload leaves the Level 1 database untouched.

Midpoints stated in another time scale than TAI (``TIMESYS``) arrive here already converted
(:mod:`alertprod.formats.time_scale`), so images are compared with the catalog in TAI; each
conversion is recorded as a warning on the upload. A scale that cannot be converted refuses the
upload (``bad_time_scale``), for an image as for the catalog: its time could not be checked.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from alertprod.errors import ContractError, NotFoundError
from alertprod.formats import (
    BlobSource,
    BytesSource,
    DiaSourceCatalog,
    ExposureFile,
    ExposureInfo,
    image_key,
    parse_key,
    read_diasource_catalog,
)
from alertprod.formats.layout import REQUIRED_IMAGE_KINDS

__all__ = ["ValidatedUpload", "validate_catalog", "validate_upload", "REASONS",
           "max_wcs_mismatch_arcsec"]

#: Every quarantine reason code, with its meaning (also in docs/formats.md).
REASONS: dict[str, str] = {
    "bad_key": "the object key follows no pattern of the upload contract",
    "not_fits": "the catalog is not a readable FITS file",
    "missing_extension": "extension 1 is not a binary table",
    "missing_header": "a required primary-header keyword is absent",
    "bad_header": "a primary-header keyword has an invalid value",
    "bad_time_scale": "TIMESYS of the catalog or an image names a time scale that cannot be "
                      "converted to TAI",
    "bad_wcs": "the catalog header has no usable celestial WCS",
    "missing_column": "a required DiaSource column is absent",
    "bad_column": "a required column has the wrong type",
    "bad_value": "a required column holds NaN, infinite or out-of-range values",
    "duplicate_id": "diaSourceId values repeat within the catalog",
    "key_mismatch": "VISIT/DETECTOR in the header differ from the object key",
    "position_mismatch": "ra/dec disagree with x/y through the catalog's own WCS",
    "missing_images": "none of the visit's images is in the image cache",
    "image_mismatch": "an image's header names another visit, detector, band or time",
    "bad_orbit_catalog": "an orbit-catalog upload is not MPCORB.DAT (or holds no orbit); the "
                         "current catalog is kept",
}

#: Largest allowed offset between (ra, dec) and WCS(x, y), arcseconds.
max_wcs_mismatch_arcsec = 2.0


@dataclass
class ValidatedUpload:
    """A catalog that passed validation, with the image metadata found beside it.

    Attributes
    ----------
    key : str
        Object key of the catalog in the upload bucket.
    catalog : DiaSourceCatalog
        The parsed catalog.
    image_info : dict
        ``kind -> ExposureInfo`` of each image present in the cache.
    image_files : dict
        ``kind -> ExposureFile`` of each image present: opened by its headers, its pixels read
        later by the windows the stage that needs them asks for.
    warnings : list of str
        Degradations and conversions that do not stop processing: ``missing_image:<kind>``,
        ``unreadable_image:<kind>:<reason>``, ``time_scale_converted:<catalog|kind>:<TIMESYS>``.
    """

    key: str
    catalog: DiaSourceCatalog
    image_info: dict[str, ExposureInfo] = field(default_factory=dict)
    image_files: dict[str, ExposureFile] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    @property
    def visit(self) -> int:
        return self.catalog.info.visit

    @property
    def detector(self) -> int:
        return self.catalog.info.detector


def _finite(table, col: str) -> np.ndarray:
    return np.isfinite(np.asarray(table[col], dtype=float))


def validate_catalog(data: bytes, key: str) -> DiaSourceCatalog:
    """Parse and check a DiaSource catalog upload.

    Parameters
    ----------
    data : bytes
        The uploaded FITS file.
    key : str
        Its object key, ``diasources/{V:08d}/{D:03d}.fits``.

    Raises
    ------
    ContractError
        With one of the :data:`REASONS` codes.
    """
    parsed = parse_key(key)
    if parsed.kind != "diasources":
        raise ContractError("bad_key", f"{key!r} is not a DiaSource catalog key")
    cat = read_diasource_catalog(data, what=key)
    if (cat.info.visit, cat.info.detector) != (parsed.visit, parsed.detector):
        raise ContractError(
            "key_mismatch",
            f"header says visit {cat.info.visit} detector {cat.info.detector}, "
            f"key says visit {parsed.visit} detector {parsed.detector}")
    t = cat.table
    for col in ("ra", "dec", "raErr", "decErr", "x", "y", "psfFlux", "psfFluxErr", "snr"):
        bad = ~_finite(t, col)
        if bad.any():
            raise ContractError("bad_value", f"{key}: column {col!r} has {int(bad.sum())} NaN/infinite "
                                             f"values (first at row {int(np.argmax(bad))})")
    ra, dec = np.asarray(t["ra"], float), np.asarray(t["dec"], float)
    if np.any((ra < 0) | (ra >= 360)):
        raise ContractError("bad_value", f"{key}: ra outside [0, 360) degrees")
    if np.any(np.abs(dec) > 90):
        raise ContractError("bad_value", f"{key}: dec outside [-90, 90] degrees")
    for col in ("raErr", "decErr", "psfFluxErr"):
        if np.any(np.asarray(t[col], float) <= 0):
            raise ContractError("bad_value", f"{key}: {col} must be positive")
    ids = np.asarray(t["diaSourceId"], dtype=np.int64)
    if np.any(ids <= 0):
        raise ContractError("bad_value", f"{key}: diaSourceId must be positive")
    if len(np.unique(ids)) != len(ids):
        raise ContractError("duplicate_id", f"{key}: {len(ids) - len(np.unique(ids))} repeated diaSourceId")
    nx, ny = cat.detsize
    x, y = np.asarray(t["x"], float), np.asarray(t["y"], float)
    if np.any((x < -0.5) | (x > nx - 0.5) | (y < -0.5) | (y > ny - 0.5)):
        raise ContractError("bad_value", f"{key}: x/y outside the detector (DETSIZE {nx}x{ny})")
    if len(t):
        wra, wdec = cat.wcs.all_pix2world(x, y, 0)
        cosd = np.cos(np.deg2rad(dec))
        dra = ((wra - ra + 180.0) % 360.0 - 180.0) * cosd
        off = np.hypot(dra, wdec - dec) * 3600.0
        if np.nanmax(off) > max_wcs_mismatch_arcsec:
            i = int(np.nanargmax(off))
            raise ContractError("position_mismatch",
                                f"{key}: row {i} ra/dec is {off[i]:.2f} arcsec from WCS(x, y)")
    return cat


def _note_time_scale(up: ValidatedUpload, what: str, info: ExposureInfo) -> None:
    """Record on the upload that ``what``'s midpoint was converted to TAI from another scale."""
    if info.header_time_scale != "TAI":
        up.warnings.append(f"time_scale_converted:{what}:{info.header_time_scale}")


def _image_source(images: Any, key: str):
    """A byte source of an image: ranged reads of a store, or the bytes a getter returns."""
    if hasattr(images, "get_range") and hasattr(images, "size"):
        return BlobSource(images, key)
    if callable(images):
        return BytesSource(images(key), what=key)
    raise TypeError(f"images must be a BlobStore or a callable, got {type(images).__name__}")


def validate_upload(data: bytes, key: str, images: Any) -> ValidatedUpload:
    """Validate a catalog and find its images in the image cache.

    Parameters
    ----------
    data : bytes
        The uploaded catalog.
    key : str
        Its object key.
    images : BlobStore or callable
        The image cache (headers read by ranged reads), or ``get_image(image_key) -> bytes``
        raising :class:`~alertprod.errors.NotFoundError` when an image is absent (whole bytes,
        for tools and tests).

    Raises
    ------
    ContractError
        When the catalog breaks the contract, no image at all is present, or an image's header
        names another visit/detector/band/time (compared in TAI) or an unconvertible time scale.
    """
    cat = validate_catalog(data, key)
    up = ValidatedUpload(key=key, catalog=cat)
    info = cat.info
    _note_time_scale(up, "catalog", info)
    for kind in (*REQUIRED_IMAGE_KINDS, "snapdiff"):
        ikey = image_key(info.visit, info.detector, kind)
        try:
            efile = ExposureFile.open(_image_source(images, ikey), what=ikey)
        except NotFoundError:
            if kind != "snapdiff":
                up.warnings.append(f"missing_image:{kind}")
            continue
        except ContractError as exc:
            if exc.reason == "bad_time_scale":
                raise
            up.warnings.append(f"unreadable_image:{kind}:{exc.reason}")
            continue
        iinfo = efile.info
        _note_time_scale(up, kind, iinfo)
        same = (iinfo.visit, iinfo.detector, iinfo.band) == (info.visit, info.detector, info.band)
        if kind != "template" and not (same and abs(iinfo.mjd_mid_tai - info.mjd_mid_tai) < 1e-6):
            raise ContractError("image_mismatch", f"{ikey}: header says visit {iinfo.visit} detector "
                                                  f"{iinfo.detector} band {iinfo.band} mjd "
                                                  f"{iinfo.mjd_mid_tai!r} TAI (catalog: visit {info.visit} "
                                                  f"detector {info.detector} band {info.band} mjd "
                                                  f"{info.mjd_mid_tai!r} TAI)")
        if kind == "template" and (iinfo.detector, iinfo.band) != (info.detector, info.band):
            raise ContractError("image_mismatch", f"{ikey}: template is for detector {iinfo.detector} "
                                                  f"band {iinfo.band}")
        up.image_info[kind] = iinfo
        up.image_files[kind] = efile
    if not any(k in up.image_info for k in REQUIRED_IMAGE_KINDS):
        raise ContractError("missing_images", f"{key}: no science, difference or template image under "
                                              f"visits/{info.visit:08d}/{info.detector:03d}/")
    return up

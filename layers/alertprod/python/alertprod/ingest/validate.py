"""Validation of one per-CCD upload against the upload contract (docs/formats.md).

The DiaSource catalog is checked completely (structure, values, key/header agreement, positions
against its own WCS); the images are opened by their headers only — ranged reads of a few KB
(:class:`~alertprod.formats.exposure_file.ExposureFile`), not the ~200 MB files — and checked
by them (every plane present once, shapes equal to the catalog's ``DETSIZE``, pixel types, an
odd, normalised, centred PSF, a celestial WCS, the file as long as its headers declare); their
pixels are read later, by the windows the CCD's measurements need, where a pixel-level defect
(negative variance) is flagged instead of refused (docs/formats.md, "What is checked, at what
cost"). A violation raises :class:`~alertprod.errors.ContractError` with a machine-readable
reason, and no other exception type leaves the validator for what the uploaded bytes hold;
nothing is written before validation passes, so a quarantined upload leaves the Level 1
database untouched.

Midpoints stated in another time scale than TAI (``TIMESYS``) arrive here already converted
(:mod:`alertprod.formats.time_scale`), so images are compared with the catalog in TAI; each
conversion is recorded as a warning on the upload. A scale that cannot be converted refuses the
upload (``bad_time_scale``), for an image as for the catalog: its time could not be checked.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from alertprod.errors import ContractError, NotFoundError
from alertprod.formats import (
    REQUIRED_DIASOURCE_COLUMNS,
    BlobSource,
    BytesSource,
    DiaSourceCatalog,
    ExposureFile,
    ExposureInfo,
    ObjectKey,
    image_key,
    parse_key,
    read_diasource_catalog,
)
from alertprod.formats.layout import REQUIRED_IMAGE_KINDS

__all__ = ["ValidatedUpload", "validate_catalog", "validate_upload", "REASONS",
           "max_wcs_mismatch_arcsec"]

#: Every quarantine reason code, with its meaning (also in docs/formats.md, "Quarantine").
REASONS: dict[str, str] = {
    "bad_key": "the object key follows no pattern of the upload contract",
    "empty_file": "the catalog or an image is a zero-length object",
    "not_fits": "the catalog or an image is not a readable FITS file",
    "truncated_file": "the catalog or an image ends before the bytes its headers declare",
    "unreadable_catalog": "the catalog could not be read for a reason no other code names "
                          "(the detail says what failed)",
    "missing_extension": "extension 1 of the catalog is not a binary table, or an image lacks "
                         "its IMAGE, VARIANCE, MASK or PSF extension",
    "duplicate_extension": "an image holds one of its IMAGE, VARIANCE, MASK, PSF extensions twice",
    "missing_header": "a required primary-header keyword is absent",
    "bad_header": "a header breaks the FITS standard, or a keyword has an invalid value or type",
    "bad_time_scale": "TIMESYS of the catalog or an image names a time scale that cannot be "
                      "converted to TAI",
    "bad_wcs": "the catalog header or an image's IMAGE header has no usable celestial WCS",
    "too_many_rows": "the catalog has more rows than the per-CCD limit (MAX_CATALOG_ROWS)",
    "duplicate_column": "a column name appears twice in the catalog table",
    "missing_column": "a required DiaSource column is absent",
    "bad_column": "a required column has the wrong type or shape, or the table cannot be decoded",
    "bad_value": "a required column holds NaN, infinite, null or out-of-range values",
    "duplicate_id": "diaSourceId values repeat within the catalog",
    "reused_id": "a diaSourceId is already stored in the Level 1 database by another CCD",
    "key_mismatch": "VISIT/DETECTOR in the header differ from the object key",
    "position_mismatch": "ra/dec disagree with x/y through the catalog's own WCS",
    "missing_images": "none of the visit's images is in the image cache",
    "missing_image": "one of the science, difference and template images is not in the image "
                     "cache",
    "image_mismatch": "an image's header names another visit, detector, band or time",
    "image_size_mismatch": "an image's planes disagree in shape with the catalog's DETSIZE",
    "bad_image": "an image's IMAGE/VARIANCE/MASK planes differ in shape, are not 2-D, or have "
                 "the wrong pixel type",
    "bad_psf": "an image's PSF is not square and odd-sized, not finite, not normalised to 1 or "
               "not centred",
    "already_processed": "the CCD was already processed from a catalog with different content; "
                         "reprocessing is an operator's action",
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
        Conversions and pixel-level findings that do not stop processing:
        ``time_scale_converted:<catalog|kind>:<TIMESYS>``, ``negative_variance:<kind>:<n>``
        (added when the pixels are read), ``unreadable_image:<kind>:<error>`` (an image that
        passed validation but whose pixels could not be read later).
    catalog_sha256 : str
        SHA-256 of the catalog bytes (hex): what the ledger keeps to tell a redelivery of
        this upload from a re-upload with other content.
    """

    key: str
    catalog: DiaSourceCatalog
    image_info: dict[str, ExposureInfo] = field(default_factory=dict)
    image_files: dict[str, ExposureFile] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    catalog_sha256: str = ""

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
    try:
        return _check_catalog(data, key, parsed.visit, parsed.detector)
    except ContractError:
        raise
    except Exception as exc:  # nothing else leaves the validator: the upload is quarantined
        raise ContractError("unreadable_catalog", f"{key}: {type(exc).__name__}: {exc}") from exc


def _check_catalog(data: bytes, key: str, visit: int, detector: int) -> DiaSourceCatalog:
    cat = read_diasource_catalog(data, what=key)
    parsed = ObjectKey("diasources", visit, detector)
    if (cat.info.visit, cat.info.detector) != (parsed.visit, parsed.detector):
        raise ContractError(
            "key_mismatch",
            f"header says visit {cat.info.visit} detector {cat.info.detector}, "
            f"key says visit {parsed.visit} detector {parsed.detector}")
    t = cat.table
    for col in REQUIRED_DIASOURCE_COLUMNS:
        null = np.ma.getmaskarray(t[col])
        if null.any():
            raise ContractError("bad_value", f"{key}: column {col!r} has {int(null.sum())} null "
                                             f"values (first at row {int(np.argmax(null))})")
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
        try:
            with np.errstate(all="ignore"):
                wra, wdec = cat.wcs.all_pix2world(x, y, 0)
        except Exception as exc:
            raise ContractError("bad_wcs", f"{key}: the catalog WCS cannot map x/y: {exc}") from exc
        cosd = np.cos(np.deg2rad(dec))
        dra = ((wra - ra + 180.0) % 360.0 - 180.0) * cosd
        off = np.hypot(dra, wdec - dec) * 3600.0
        far = ~np.isfinite(off) | (off > max_wcs_mismatch_arcsec)  # NaN: the WCS maps nowhere
        if far.any():
            i = int(np.argmax(far))
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
    """Validate a catalog and the images beside it in the image cache.

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
        When the catalog breaks the contract; when no image (``missing_images``) or one of
        science, difference, template (``missing_image``) is absent; when an image present
        (``snapdiff`` included) is not a readable exposure file by its headers (``empty_file``,
        ``not_fits``, ``truncated_file``, ``missing_extension``, ``duplicate_extension``,
        ``bad_image``, ``bad_psf``, ``bad_wcs``, header reasons), has planes whose shape is not
        the catalog's ``DETSIZE`` (``image_size_mismatch``), or names another
        visit/detector/band/time (``image_mismatch``, compared in TAI). A failure of the image
        store itself (:class:`~alertprod.errors.StorageError`) is raised as it is: retrying
        may fix it.
    """
    cat = validate_catalog(data, key)
    up = ValidatedUpload(key=key, catalog=cat, catalog_sha256=hashlib.sha256(data).hexdigest())
    info = cat.info
    _note_time_scale(up, "catalog", info)
    missing = []
    for kind in (*REQUIRED_IMAGE_KINDS, "snapdiff"):
        ikey = image_key(info.visit, info.detector, kind)
        try:
            efile = ExposureFile.open(_image_source(images, ikey), what=ikey)
        except NotFoundError:
            if kind != "snapdiff":
                missing.append(kind)
            continue
        _check_image(up, kind, ikey, efile)
        efile.on_warning = (lambda code, n, kind=kind: up.warnings.append(f"{code}:{kind}:{n}"))
        up.image_info[kind] = efile.info
        up.image_files[kind] = efile
    where = f"visits/{info.visit:08d}/{info.detector:03d}/"
    if len(missing) == len(REQUIRED_IMAGE_KINDS):
        raise ContractError("missing_images", f"{key}: no science, difference or template image "
                                              f"under {where}")
    if missing:
        raise ContractError("missing_image", f"{key}: no {' or '.join(missing)} image under {where} "
                                             f"(images are uploaded before the catalog)")
    return up


def _check_image(up: ValidatedUpload, kind: str, ikey: str, efile: ExposureFile) -> None:
    """An opened image against its catalog: detector size, visit, detector, band, time."""
    info, iinfo = up.catalog.info, efile.info
    _note_time_scale(up, kind, iinfo)
    nx, ny = up.catalog.detsize
    if tuple(efile.shape) != (ny, nx):
        raise ContractError("image_size_mismatch", f"{ikey}: planes of {efile.shape[1]}x"
                                                   f"{efile.shape[0]} pixels, the catalog's DETSIZE "
                                                   f"is {nx}x{ny}")
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

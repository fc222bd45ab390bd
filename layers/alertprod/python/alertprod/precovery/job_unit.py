"""Measure one unit of a precovery-service job: light-curve rows of one image.

A unit (:class:`alertprod.precovery.job_plan.JobUnit`) is one CCD-visit and the positions it
covers. From the cache: the difference and science images opened by ranged reads, only the
windows forced photometry and position refinement need, measured by the one row builder the
nightly pipeline uses (:func:`alertprod.photometry.dia_forced.dia_forced_rows`). From the
archive: the tile-compressed science and template read by windows large enough for the
subtraction, the difference re-created on tiles around the positions
(:func:`alertprod.photometry.measure_recreated`). Either way the rows come out in the
service's light-curve columns (:mod:`alertprod.precovery.results`), ``recreated`` saying which.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from astropy.table import Table

from alertprod.archive import archive_key
from alertprod.aws.blobs import BlobStore
from alertprod.errors import PrecoveryError
from alertprod.formats import BlobSource, ExposureFile, image_key
from alertprod.photometry.dia_forced import VisitImages, dia_forced_rows
from alertprod.photometry.recreated import measure_recreated, sky_recreation_windows
from alertprod.photometry.stamps import read_forced_windows
from alertprod.precovery.job_plan import JobUnit
from alertprod.precovery.results import rows_from_records

__all__ = ["Stamp", "UnitMeasurement", "measure_job_unit"]


class Stamp(NamedTuple):
    """One postage stamp of a unit: where it is kept in the job's stamp archive, and its bytes."""

    name: str
    data: bytes
    content_type: str


class UnitMeasurement(NamedTuple):
    """What one unit produced: light-curve rows, and stamps when the job asked for them."""

    rows: Table
    stamps: tuple[Stamp, ...] = ()


def _archived_pair(archive: BlobStore, unit: JobUnit, ra: np.ndarray, dec: np.ndarray):
    science = ExposureFile.open(BlobSource(archive, archive_key(unit.visit, unit.detector, "science")),
                                what="science")
    template = ExposureFile.open(BlobSource(archive, archive_key(unit.visit, unit.detector, "template")),
                                 what="template")
    psf = max(science.psf.shape[0], template.psf.shape[0])
    windows = sky_recreation_windows(science.wcs, science.shape, ra, dec, psf_size_pix=psf)
    return science.read_windows(windows), template.read_windows(windows)


def measure_job_unit(unit: JobUnit, *, images: BlobStore, archive: BlobStore,
                     processed_mjd_tai: float, stamps: bool = False,
                     image_kind: str = "nightly", templates: BlobStore | None = None
                     ) -> UnitMeasurement:
    """Light-curve rows of one image for the positions it covers.

    Parameters
    ----------
    unit : JobUnit
        From :func:`~alertprod.precovery.job_plan.plan_fixed_target`.
    images, archive : BlobStore
        The image cache and the long-term archive.
    processed_mjd_tai : float, keyword-only
        When the rows are measured.

    stamps : bool, keyword-only
        Also cut postage stamps (option A).
    image_kind : {"nightly", "data_release"}, keyword-only
        Which template a re-created difference uses (option F).
    templates : BlobStore, optional, keyword-only
        Where data-release templates are kept.

    Returns
    -------
    UnitMeasurement
        ``rows``: :data:`alertprod.precovery.results.COLUMNS` rows, one per covered position
        measured (positions off the CCD or without usable pixels get none); ``stamps``.

    Notes
    -----
    A cached difference that expired between planning and measuring falls back to the
    archive, as if it had been planned there.
    """
    idx = np.asarray(unit.targets, dtype=np.int64)
    ra = np.asarray(unit.ra_deg, float)
    dec = np.asarray(unit.dec_deg, float)
    if idx.size == 0 or ra.shape != idx.shape or dec.shape != idx.shape:
        raise PrecoveryError("a unit needs one (ra, dec) per covered position, and at least one")
    source = unit.source
    rows = None
    if source == "cache":
        difference = read_forced_windows(images, image_key(unit.visit, unit.detector, "difference"),
                                         "difference", ra, dec)
        if difference is None:
            source = "archive"  # expired since planning: re-create it
        else:
            science = read_forced_windows(images, image_key(unit.visit, unit.detector, "science"),
                                          "science", ra, dec)
            visit = VisitImages(unit.visit, unit.detector, unit.band, unit.mjd_tai, difference,
                                science)
            rows = dia_forced_rows(idx, ra, dec, visit, processed_mjd_tai=processed_mjd_tai,
                                   is_precovery=True)
            recreated = False
    if source == "archive":
        science, template = _archived_pair(archive, unit, ra, dec)
        rows = measure_recreated(science, template, ra, dec, processed_mjd_tai=processed_mjd_tai,
                                 dia_object_ids=idx)
        recreated = True
    if rows is None:
        raise PrecoveryError(f"unit source must be 'cache' or 'archive', got {unit.source!r}")
    records = [{"target": int(r["diaObjectId"]), "ra": float(r["ra"]), "dec": float(r["dec"]),
                "visit": unit.visit, "detector": unit.detector, "band": unit.band,
                "midpointMjdTai": unit.mjd_tai, "psfFlux": float(r["psfFlux"]),
                "psfFluxErr": float(r["psfFluxErr"]), "scienceFlux": float(r["scienceFlux"]),
                "scienceFluxErr": float(r["scienceFluxErr"]), "recreated": recreated, "flags": 0,
                "template": ("archive:template" if recreated else "cache:template")}
               for r in rows]
    return UnitMeasurement(rows_from_records(records))

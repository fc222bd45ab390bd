"""Measure one unit of a precovery-service job: light-curve rows of one image.

A unit (:class:`alertprod.precovery.job_plan.JobUnit`) is one CCD-visit and the positions it
covers. From the cache: the difference and science images opened by ranged reads, only the
windows forced photometry and position refinement need, measured by the one row builder the
nightly pipeline uses (:func:`alertprod.photometry.dia_forced.dia_forced_rows`). From the
archive: the tile-compressed science and template read by windows large enough for the
subtraction, the difference re-created on tiles around the positions
(:func:`alertprod.photometry.measure_recreated`). Either way the rows come out in the
service's light-curve columns (:mod:`alertprod.precovery.results`), ``recreated`` saying which.

Option F (``image_kind="data_release"``): every epoch is re-created from the archive, against
the data-release coadd covering each position in the unit's band
(:mod:`alertprod.archive.data_release`, resampled onto the science CCD); a position no coadd
covers is measured against the nightly template, and each row's ``template`` says which
(``data_release:{release}/{patch}``, ``archive:template``, ``cache:template``). Option A
(``stamps=True``): the windows read grow to hold the stamps
(:mod:`alertprod.precovery.stamps`); on a re-created epoch the stamp's difference is
re-created over the whole stamp with the same template.

Every position of the unit gets a row: planning said the CCD covered it. Its ``flags`` and
``status`` (:mod:`alertprod.precovery.flags`) come from the mask planes of the windows already
read — the cached difference and science, or, for a re-created epoch, the science and the
template whose union the re-created difference's mask is — so the rows the nightly pipeline
builds stay exactly as they were.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from astropy.table import Table

from alertprod.archive import archive_key
from alertprod.archive.data_release import (
    DataReleaseIndex,
    read_data_release_index,
    template_on_science_grid,
)
from alertprod.aws.blobs import BlobStore
from alertprod.errors import NotFoundError, PrecoveryError
from alertprod.formats import BlobSource, Exposure, ExposureFile, image_key
from alertprod.imaging.recreate import recreate_difference
from alertprod.photometry.dia_forced import VisitImages, dia_forced_rows
from alertprod.photometry.recreated import measure_recreated, sky_recreation_windows
from alertprod.photometry.stamps import dia_forced_half_size_pix, sky_windows
from alertprod.precovery.flags import PrecoveryFlag, footprint_flags, row_status, sky_to_pixels
from alertprod.precovery.job_plan import JobUnit
from alertprod.precovery.results import rows_from_records
from alertprod.precovery.stamps import STAMP_SIZE_PIX, Stamp, make_stamps, stamp_points

__all__ = ["IMAGE_KINDS", "Stamp", "UnitMeasurement", "measure_job_unit"]


class _Group(NamedTuple):
    """Rows measured against one template, for the unit's positions ``ks``."""

    rows: Table  # dia_forced_rows, diaObjectId = position index in the unit
    template: str
    ks: np.ndarray  # position indices in the unit
    flags: np.ndarray  # footprint flags per position in ks
    on: np.ndarray  # per position in ks: on the CCD


class UnitMeasurement(NamedTuple):
    """What one unit produced: light-curve rows, and stamps when the job asked for them."""

    rows: Table
    stamps: tuple[Stamp, ...] = ()


IMAGE_KINDS = ("nightly", "data_release")


def _read_cached(images: BlobStore, unit: JobUnit, kind: str, ra: np.ndarray, dec: np.ndarray,
                 min_half_pix: int) -> Exposure | None:
    """A cached image read by the windows its measurement needs (or a stamp's, if larger)."""
    try:
        efile = ExposureFile.open(BlobSource(images, image_key(unit.visit, unit.detector, kind)),
                                  what=kind)
    except NotFoundError:
        return None
    half = max(dia_forced_half_size_pix(kind, efile.psf), int(min_half_pix))
    return efile.read_windows(sky_windows(efile.wcs, efile.shape, ra, dec, half))


def _cached_flags(difference: Exposure, science: Exposure | None, ra, dec):
    """Footprint flags on the cached difference and science, and which positions are on the CCD."""
    ix, iy, on = sky_to_pixels(difference, ra, dec)
    flags = footprint_flags(difference, ix, iy)
    if science is not None:
        sx, sy, _ = sky_to_pixels(science, ra, dec)
        flags |= footprint_flags(science, sx, sy)
    return flags, on


def _measure_cached(unit, idx, ra, dec, images, processed_mjd_tai, want_stamps):
    half = STAMP_SIZE_PIX // 2 if want_stamps else 0
    difference = _read_cached(images, unit, "difference", ra, dec, half)
    if difference is None:
        return None  # expired since planning
    science = _read_cached(images, unit, "science", ra, dec, half)
    visit = VisitImages(unit.visit, unit.detector, unit.band, unit.mjd_tai, difference, science)
    ks = np.arange(idx.size)  # rows keyed by position, mapped back to targets by the caller
    rows = dia_forced_rows(ks, ra, dec, visit, processed_mjd_tai=processed_mjd_tai,
                           is_precovery=True)
    flags, on = _cached_flags(difference, science, ra, dec)
    found = []
    if want_stamps:
        found = make_stamps(difference, science, idx.tolist(), ra.tolist(), dec.tolist(),
                            visit=unit.visit, detector=unit.detector, band=unit.band,
                            mjd_tai=unit.mjd_tai, recreated=False, template="cache:template")
    return [_Group(rows, "cache:template", ks, flags, on)], found


def _template_groups(unit, ra, dec, image_kind, dr_index):
    """``[(provenance, entry or None, position indices)]``: which template each position uses."""
    if image_kind == "nightly" or dr_index is None:
        return [("archive:template", None, np.arange(ra.size))]
    groups: dict[str, tuple] = {}
    for k, (r, d) in enumerate(zip(ra.tolist(), dec.tolist(), strict=True)):
        entry = dr_index.covering(r, d, unit.band)
        name = "archive:template" if entry is None else entry.provenance
        groups.setdefault(name, (name, entry, []))[2].append(k)
    return [(name, entry, np.array(ks)) for name, entry, ks in groups.values()]


def _measure_archived(unit, idx, ra, dec, archive, templates, processed_mjd_tai, want_stamps,
                      image_kind, dr_index):
    science_file = ExposureFile.open(BlobSource(archive, archive_key(unit.visit, unit.detector,
                                                                     "science")), what="science")
    nightly_file = None
    out, found = [], []
    for name, entry, ks in _template_groups(unit, ra, dec, image_kind, dr_index):
        g_ra, g_dec = ra[ks], dec[ks]
        if entry is None and nightly_file is None:
            nightly_file = ExposureFile.open(BlobSource(archive, archive_key(
                unit.visit, unit.detector, "template")), what="template")
        psf = max(science_file.psf.shape[0],
                  nightly_file.psf.shape[0] if entry is None else science_file.psf.shape[0])
        p_ra, p_dec = g_ra, g_dec
        if want_stamps:
            s_ra, s_dec = stamp_points(science_file.wcs, g_ra, g_dec)
            p_ra, p_dec = np.r_[g_ra, s_ra], np.r_[g_dec, s_dec]
        windows = sky_recreation_windows(science_file.wcs, science_file.shape, p_ra, p_dec,
                                         psf_size_pix=psf)
        science = science_file.read_windows(windows)
        if entry is None:
            template = nightly_file.read_windows(windows)
        else:
            template = template_on_science_grid(templates, entry, science, windows)
        rows = measure_recreated(science, template, g_ra, g_dec,
                                 processed_mjd_tai=processed_mjd_tai, dia_object_ids=ks)
        # The re-created difference's mask is the union of science and template masks
        # (alertprod.imaging.subtraction): read both, without re-creating the difference.
        sx, sy, on = sky_to_pixels(science, g_ra, g_dec)
        flags = footprint_flags(science, sx, sy) | footprint_flags(template, sx, sy)
        out.append(_Group(rows, name, ks, flags, on))
        if want_stamps:
            x, y = science.wcs.all_world2pix(p_ra, p_dec, 0)
            difference = recreate_difference(science, template, x, y)
            found += make_stamps(difference, science, idx[ks].tolist(), g_ra.tolist(),
                                 g_dec.tolist(), visit=unit.visit, detector=unit.detector,
                                 band=unit.band, mjd_tai=unit.mjd_tai, recreated=True,
                                 template=name)
    return out, found


def measure_job_unit(unit: JobUnit, *, images: BlobStore, archive: BlobStore,
                     processed_mjd_tai: float, stamps: bool = False,
                     image_kind: str = "nightly", templates: BlobStore | None = None,
                     dr_index: DataReleaseIndex | None = None) -> UnitMeasurement:
    """Light-curve rows of one image for the positions it covers.

    Parameters
    ----------
    unit : JobUnit
        From :func:`~alertprod.precovery.job_plan.plan_job`.
    images, archive : BlobStore
        The image cache and the long-term archive.
    processed_mjd_tai : float, keyword-only
        When the rows are measured.
    stamps : bool, keyword-only
        Also cut postage stamps (option A; :mod:`alertprod.precovery.stamps`).
    image_kind : {"nightly", "data_release"}, keyword-only
        Which template a difference is made against (option F): ``data_release`` re-creates
        every epoch against the data-release coadds.
    templates : BlobStore, optional, keyword-only
        Where data-release coadds and their index are kept (default: ``archive``).
    dr_index : DataReleaseIndex, optional, keyword-only
        The loaded index, when the caller has read it already (else read from ``templates``).

    Returns
    -------
    UnitMeasurement
        ``rows``: :data:`alertprod.precovery.results.COLUMNS` rows, one per position of the
        unit, ``template`` naming the template of each, ``flags`` and ``status`` saying how it
        was measured (:mod:`alertprod.precovery.flags`: a position off the CCD is an
        ``off_image`` row, one without usable pixels a ``no_data`` row, both with NaN fluxes);
        ``stamps``: FITS stamps and PNG previews when asked.

    Raises
    ------
    PrecoveryError
        For a malformed unit or an unknown ``image_kind``.

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
    if unit.source not in ("cache", "archive"):
        raise PrecoveryError(f"unit source must be 'cache' or 'archive', got {unit.source!r}")
    if image_kind not in IMAGE_KINDS:
        raise PrecoveryError(f"image_kind must be one of {list(IMAGE_KINDS)}, got {image_kind!r}")
    templates = archive if templates is None else templates
    if image_kind == "data_release" and dr_index is None:
        dr_index = read_data_release_index(templates)
    measured = None
    if unit.source == "cache" and image_kind == "nightly":
        measured = _measure_cached(unit, idx, ra, dec, images, processed_mjd_tai, stamps)
    recreated = measured is None
    if measured is None:
        measured = _measure_archived(unit, idx, ra, dec, archive, templates, processed_mjd_tai,
                                     stamps, image_kind, dr_index)
    groups, found = measured
    records = []
    for g in groups:
        records += _group_records(unit, idx, ra, dec, g, recreated)
    records.sort(key=lambda rec: rec["target"])
    return UnitMeasurement(rows_from_records(records), tuple(found))


def _group_records(unit: JobUnit, idx, ra, dec, group: _Group, recreated: bool) -> list[dict]:
    """One record per position of the group: measured, ``no_data`` or ``off_image``."""
    by_pos = {int(r["diaObjectId"]): r for r in group.rows}
    out = []
    for k, flags, on in zip(group.ks.tolist(), group.flags.tolist(), group.on.tolist(), strict=True):
        rec = {"target": int(idx[k]), "ra": float(ra[k]), "dec": float(dec[k]),
               "visit": unit.visit, "detector": unit.detector, "band": unit.band,
               "midpointMjdTai": unit.mjd_tai, "recreated": recreated, "template": group.template}
        r = by_pos.get(k)
        if not on:
            flags = int(PrecoveryFlag.OFF_IMAGE)
        elif r is None:  # no usable pixel under the PSF on the difference
            flags |= int(PrecoveryFlag.NOT_MEASURED)
        else:
            rec.update({"ra": float(r["ra"]), "dec": float(r["dec"]), "psfFlux": float(r["psfFlux"]),
                        "psfFluxErr": float(r["psfFluxErr"]), "scienceFlux": float(r["scienceFlux"]),
                        "scienceFluxErr": float(r["scienceFluxErr"])})
        rec["flags"] = int(flags)
        out.append(rec)
    statuses = row_status([rec["flags"] for rec in out], [rec.get("psfFlux", np.nan) for rec in out])
    for rec, status in zip(out, statuses.tolist(), strict=True):
        rec["status"] = status
    return out

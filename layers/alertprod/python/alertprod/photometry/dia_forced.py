"""DiaForcedSource rows: forced PSF photometry of DiaObjects on one visit's images.

The one row builder behind both the nightly pipeline (seed step 5: known objects not detected
this visit) and daytime precovery (seed step 14: new objects on cached images of earlier
visits). Each row measures the object on the difference image (``psfFlux``), the science image
(``scienceFlux``, Rubin's fpFlux) and, when one was uploaded, the difference of the two snaps
(``snapDiffFlux``, an extension column: docs/photometry.md).

Where: ``psfFlux`` and ``snapDiffFlux`` at the DiaObject's position; ``scienceFlux`` at that
position refined on the science image when the object is bright there
(:func:`alertprod.photometry.positions.refine_positions`: forced S/N ≥ 5, a converged PSF
fit within 1″; the flux less the σ²/F the fitted position adds), because a DiaObject's mean of
faint difference-image detections can sit 0.1–0.3″ off a bright steady source and a PSF fit
there loses several σ of its flux. The row's ``ra``/``dec`` are where ``scienceFlux`` was
measured; they differ from the DiaObject's only where the position was refined
(docs/photometry.md, "Where scienceFlux is measured").
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from astropy.table import Table

from alertprod.formats import Exposure
from alertprod.ids import forced_source_ids
from alertprod.photometry.forced import forced_photometry_exposure
from alertprod.photometry.positions import fitted_position_flux, refine_positions

__all__ = ["DIA_FORCED_COLUMNS", "VisitImages", "dia_forced_rows", "empty_dia_forced"]

#: Columns of a DiaForcedSource row as this module builds it (Rubin names plus extensions).
DIA_FORCED_COLUMNS: dict[str, str] = {
    "diaForcedSourceId": "i8", "diaObjectId": "i8", "ra": "f8", "dec": "f8", "visit": "i8",
    "detector": "i2", "psfFlux": "f8", "psfFluxErr": "f8", "midpointMjdTai": "f8",
    "scienceFlux": "f8", "scienceFluxErr": "f8", "snapDiffFlux": "f8", "snapDiffFluxErr": "f8",
    "band": "U1", "timeProcessedMjdTai": "f8", "isPrecovery": "?",
}


@dataclass(frozen=True)
class VisitImages:
    """One visit's images of a detector, as forced photometry needs them.

    Attributes
    ----------
    visit, detector : int
        The CCD-visit.
    band : str
        Its band (u g r i z y).
    midpoint_mjd_tai : float
        Exposure midpoint, TAI MJD.
    difference : Exposure
        The difference image (required: no difference image, no forced source).
    science : Exposure or None
        The calibrated exposure (``scienceFlux``).
    snapdiff : Exposure or None
        The difference of the two snaps (``snapDiffFlux``), when uploaded.
    """

    visit: int
    detector: int
    band: str
    midpoint_mjd_tai: float
    difference: Exposure
    science: Exposure | None = None
    snapdiff: Exposure | None = None


def empty_dia_forced() -> Table:
    """A DiaForcedSource table with no rows (the columns of :func:`dia_forced_rows`)."""
    return Table({c: np.zeros(0, dtype=t) for c, t in DIA_FORCED_COLUMNS.items()})


def _measure(exposure: Exposure | None, ra: np.ndarray, dec: np.ndarray) -> tuple[np.ndarray,
                                                                                   np.ndarray]:
    if exposure is None:
        nan = np.full(ra.size, np.nan)
        return nan, nan.copy()
    res = forced_photometry_exposure(exposure, ra, dec)
    return np.asarray(res.flux, float), np.asarray(res.flux_err, float)


def _science_flux(science: Exposure | None, ra: np.ndarray, dec: np.ndarray
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``scienceFlux`` and its error, and where it was measured: ``(ra, dec, flux, err)``.

    At the position refined on the science image where the object is bright there, the flux
    less the σ²/F that fitting the position adds (:mod:`alertprod.photometry.positions`).
    """
    if science is None:
        flux, err = _measure(None, ra, dec)
        return ra, dec, flux, err
    pos = refine_positions(science, ra, dec)
    flux, err = _measure(science, pos.ra_deg, pos.dec_deg)
    flux = np.where(pos.refined, fitted_position_flux(flux, err), flux)
    return pos.ra_deg, pos.dec_deg, flux, err


def dia_forced_rows(dia_object_ids: np.ndarray, ra_deg: np.ndarray, dec_deg: np.ndarray,
                    images: VisitImages, *, processed_mjd_tai: float,
                    is_precovery: bool) -> Table:
    """DiaForcedSource rows of the given objects on one visit (vectorised over objects).

    Parameters
    ----------
    dia_object_ids : ndarray of int64, shape (n,)
        Objects to measure.
    ra_deg, dec_deg : ndarray, shape (n,)
        The objects' positions (ICRS, degrees): ``psfFlux`` and ``snapDiffFlux`` are measured
        there, ``scienceFlux`` there or at the position refined on the science image.
    images : VisitImages
        The visit's difference, science and snap-difference images.
    processed_mjd_tai : float, keyword-only
        ``timeProcessedMjdTai`` of the rows.
    is_precovery : bool, keyword-only
        The ``isPrecovery`` flag (daytime precovery rather than the nightly pipeline).

    Returns
    -------
    astropy.table.Table
        One row per object the difference image measures (objects off the image or on
        unusable pixels are dropped), columns :data:`DIA_FORCED_COLUMNS`, ``ra``/``dec`` the
        position ``scienceFlux`` was measured at (see the module notes); ids are
        deterministic (:func:`alertprod.ids.forced_source_ids`), so a rerun rebuilds the same
        rows.
    """
    ids = np.asarray(dia_object_ids, np.int64)
    ra = np.asarray(ra_deg, float)
    dec = np.asarray(dec_deg, float)
    if ids.size == 0:
        return empty_dia_forced()
    flux, flux_err = _measure(images.difference, ra, dec)
    on = np.isfinite(flux)
    n = int(on.sum())
    if n == 0:
        return empty_dia_forced()
    sra, sdec, sflux, serr = _science_flux(images.science, ra[on], dec[on])
    dflux, derr = _measure(images.snapdiff, ra[on], dec[on])
    return Table({
        "diaForcedSourceId": forced_source_ids(ids[on], images.visit, images.detector),
        "diaObjectId": ids[on], "ra": sra, "dec": sdec,
        "visit": np.full(n, images.visit, np.int64),
        "detector": np.full(n, images.detector, np.int16),
        "psfFlux": flux[on], "psfFluxErr": flux_err[on],
        "midpointMjdTai": np.full(n, float(images.midpoint_mjd_tai)),
        "scienceFlux": sflux, "scienceFluxErr": serr,
        "snapDiffFlux": dflux, "snapDiffFluxErr": derr,
        "band": np.full(n, images.band, dtype="U1"),
        "timeProcessedMjdTai": np.full(n, float(processed_mjd_tai)),
        "isPrecovery": np.full(n, bool(is_precovery)),
    })

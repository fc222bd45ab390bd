"""DiaSource catalogs: the per-CCD FITS binary tables that trigger processing.

The table is in extension 1 with Rubin APDB DiaSource column names and units; the primary
header carries the visit metadata (``MJD-MID`` converted to TAI from ``TIMESYS``, as for
exposures), ``DETSIZE1``/``DETSIZE2`` and the detector's celestial WCS.
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass

import numpy as np
from astropy.io import fits
from astropy.table import Table
from astropy.wcs import WCS, FITSFixedWarning

from alertprod.errors import ContractError
from alertprod.formats.exposure import ExposureInfo, info_from_header, info_to_header

__all__ = ["REQUIRED_DIASOURCE_COLUMNS", "DiaSourceCatalog", "read_diasource_catalog",
           "write_diasource_catalog"]

#: Required columns and the numpy kind each must have (``i`` integer, ``f`` float).
REQUIRED_DIASOURCE_COLUMNS: dict[str, str] = {
    "diaSourceId": "i",
    "ra": "f",
    "dec": "f",
    "raErr": "f",
    "decErr": "f",
    "x": "f",
    "y": "f",
    "psfFlux": "f",
    "psfFluxErr": "f",
    "snr": "f",
}


@dataclass
class DiaSourceCatalog:
    """A parsed per-CCD DiaSource upload.

    Attributes
    ----------
    table : astropy.table.Table
        One row per DiaSource, Rubin column names (``ra``/``dec`` in deg, fluxes in nJy).
    info : ExposureInfo
        Visit metadata from the primary header.
    wcs : astropy.wcs.WCS
        The detector's celestial WCS.
    detsize : tuple of int
        ``(nx, ny)`` detector size in pixels (``DETSIZE1``, ``DETSIZE2``).
    """

    table: Table
    info: ExposureInfo
    wcs: WCS
    detsize: tuple[int, int]

    def footprint_radec(self, *, margin_pix: float = 0.0) -> np.ndarray:
        """Sky corners of the detector, shape (4, 2), degrees, optionally padded by pixels."""
        nx, ny = self.detsize
        m = margin_pix
        xs = np.array([-0.5 - m, nx - 0.5 + m, nx - 0.5 + m, -0.5 - m])
        ys = np.array([-0.5 - m, -0.5 - m, ny - 0.5 + m, ny - 0.5 + m])
        ra, dec = self.wcs.all_pix2world(xs, ys, 0)
        return np.column_stack([ra, dec])


def write_diasource_catalog(table: Table, info: ExposureInfo, wcs: WCS,
                            detsize: tuple[int, int]) -> bytes:
    """Serialise a DiaSource catalog to FITS bytes in the upload-contract layout."""
    hdr = info_to_header(info)
    hdr["DETSIZE1"] = (int(detsize[0]), "[pix] detector size along x")
    hdr["DETSIZE2"] = (int(detsize[1]), "[pix] detector size along y")
    hdr.update(wcs.to_header(relax=True))
    buf = io.BytesIO()
    fits.HDUList([fits.PrimaryHDU(header=hdr), fits.BinTableHDU(Table(table), name="DIASOURCE")]).writeto(buf)
    return buf.getvalue()


def read_diasource_catalog(data: bytes, *, what: str = "catalog") -> DiaSourceCatalog:
    """Parse DiaSource catalog FITS bytes. Structure only; see :mod:`alertprod.ingest` for values.

    Raises
    ------
    ContractError
        ``not_fits``, ``missing_extension``, ``missing_header``, ``bad_header``,
        ``bad_time_scale``, ``bad_wcs``, ``missing_column`` or ``bad_column``.
    """
    try:
        hdul = fits.open(io.BytesIO(data), memmap=False)
        hdul.verify("exception")
    except Exception as exc:
        raise ContractError("not_fits", f"{what} is not a readable FITS file: {exc}") from exc
    with hdul:
        hdr = hdul[0].header
        info = info_from_header(hdr, what=what)
        if len(hdul) < 2 or not isinstance(hdul[1], fits.BinTableHDU):
            raise ContractError("missing_extension", f"{what}: extension 1 is not a binary table")
        for key in ("DETSIZE1", "DETSIZE2"):
            if key not in hdr:
                raise ContractError("missing_header", f"{what}: primary header lacks {key}")
        try:
            detsize = (int(hdr["DETSIZE1"]), int(hdr["DETSIZE2"]))
        except (TypeError, ValueError) as exc:
            raise ContractError("bad_header", f"{what}: DETSIZE1/2: {exc}") from exc
        if min(detsize) <= 0:
            raise ContractError("bad_header", f"{what}: DETSIZE {detsize} must be positive")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FITSFixedWarning)
            try:
                wcs = WCS(hdr)
            except Exception as exc:
                raise ContractError("bad_wcs", f"{what}: {exc}") from exc
        if not wcs.has_celestial:
            raise ContractError("bad_wcs", f"{what}: primary header has no celestial WCS")
        table = Table.read(hdul[1], format="fits")
    table.meta.clear()
    for col, kind in REQUIRED_DIASOURCE_COLUMNS.items():
        if col not in table.colnames:
            raise ContractError("missing_column", f"{what}: required column {col!r} is missing")
        dk = table[col].dtype.kind
        if kind == "i" and dk not in "iu":
            raise ContractError("bad_column", f"{what}: column {col!r} must be integer, is {table[col].dtype}")
        if kind == "f" and dk not in "fiu":
            raise ContractError("bad_column", f"{what}: column {col!r} must be numeric, is {table[col].dtype}")
    return DiaSourceCatalog(table, info, wcs.celestial, detsize)

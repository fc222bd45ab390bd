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
from astropy.wcs import WCS

from alertprod.errors import ContractError
from alertprod.formats._fits_layout import check_header_bytes, data_bytes
from alertprod.formats.exposure import ExposureInfo, info_from_header, info_to_header

__all__ = ["MAX_CATALOG_ROWS", "MAX_DETSIZE_PIX", "REQUIRED_DIASOURCE_COLUMNS", "DiaSourceCatalog",
           "read_diasource_catalog", "write_diasource_catalog"]

#: Largest DiaSource catalog accepted for one CCD, rows (docs/formats.md, "Limits"). A crowded
#: LSST field gives a few thousand per CCD; the limit leaves a factor of ~50 and bounds what one
#: invocation holds (the rows are counted from the header, before any is read).
MAX_CATALOG_ROWS = 200_000
#: Largest detector side accepted in ``DETSIZE1``/``DETSIZE2``, pixels (an LSST CCD is 4096).
MAX_DETSIZE_PIX = 65_536
_BLOCK = 2880

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


def _open_checked(data: bytes, what: str) -> fits.HDUList:
    """Open catalog bytes, refusing an empty, non-FITS or cut-short file before any row is read."""
    if len(data) == 0:
        raise ContractError("empty_file", f"{what} is empty (zero bytes)")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # astropy warns of truncation: measured below
            hdul = fits.open(io.BytesIO(data), memmap=False, lazy_load_hdus=False)
    except Exception as exc:  # astropy raises OSError/ValueError/TypeError variously
        if data[:9] == b"SIMPLE  =" and len(data) % _BLOCK:  # FITS, cut inside a header
            raise ContractError("truncated_file", f"{what} is truncated: {len(data)} bytes, not a "
                                                  f"whole number of FITS blocks ({exc})") from exc
        raise ContractError("not_fits", f"{what} is not a readable FITS file: {exc}") from exc
    try:
        for i, hdu in enumerate(hdul):
            where = hdu.fileinfo()
            check_header_bytes(data[where["hdrLoc"]:where["datLoc"]], what, where["hdrLoc"])
            end = where["datLoc"] + data_bytes(hdu.header)
            if end > len(data):
                raise ContractError("truncated_file", f"{what} is truncated: HDU {i} needs bytes up "
                                                      f"to {end}, the file has {len(data)}")
        try:
            hdul.verify("exception")
        except Exception as exc:
            raise ContractError("bad_header", f"{what}: a header breaks the FITS standard: {exc}") \
                from exc
    except ContractError:
        hdul.close()
        raise
    except Exception as exc:
        hdul.close()
        raise ContractError("not_fits", f"{what} is not a readable FITS file: {exc}") from exc
    return hdul


def _check_table_hdu(hdul: fits.HDUList, what: str, max_rows: int) -> None:
    """Extension 1: a binary table, within the row limit, with unique column names."""
    if len(hdul) < 2 or not isinstance(hdul[1], fits.BinTableHDU):
        raise ContractError("missing_extension", f"{what}: extension 1 is not a binary table")
    nrows = int(hdul[1].header.get("NAXIS2", 0))
    if nrows > max_rows:
        raise ContractError("too_many_rows", f"{what}: {nrows} rows, over the limit of {max_rows} "
                                             f"rows per CCD (docs/formats.md)")
    names = [str(n) for n in hdul[1].columns.names]
    folded = [n.strip().lower() for n in names]
    repeated = sorted({n for n, f in zip(names, folded, strict=True) if folded.count(f) > 1})
    if repeated:
        raise ContractError("duplicate_column", f"{what}: column names repeat: {repeated}")


def read_diasource_catalog(data: bytes, *, what: str = "catalog",
                           max_rows: int = MAX_CATALOG_ROWS) -> DiaSourceCatalog:
    """Parse DiaSource catalog FITS bytes. Structure only; see :mod:`alertprod.ingest` for values.

    The file is checked by its headers before any row is read: its length against what the
    headers declare, the row count against ``max_rows``, the column names for repeats.

    Parameters
    ----------
    data : bytes
        The uploaded file.
    what : str, keyword-only
        Name in error messages.
    max_rows : int, keyword-only
        Largest row count accepted (:data:`MAX_CATALOG_ROWS`).

    Raises
    ------
    ContractError
        ``empty_file``, ``not_fits``, ``truncated_file``, ``missing_extension``,
        ``too_many_rows``, ``duplicate_column``, ``missing_header``, ``bad_header``,
        ``bad_time_scale``, ``bad_wcs``, ``missing_column`` or ``bad_column``
        (:func:`alertprod.ingest.validate_catalog` refuses anything else that goes wrong as
        ``unreadable_catalog``).
    """
    hdul = _open_checked(bytes(data), what)
    with hdul:
        hdr = hdul[0].header
        info = info_from_header(hdr, what=what)
        _check_table_hdu(hdul, what, max_rows)
        for key in ("DETSIZE1", "DETSIZE2"):
            if key not in hdr:
                raise ContractError("missing_header", f"{what}: primary header lacks {key}")
        if not all(_is_int(hdr[k]) for k in ("DETSIZE1", "DETSIZE2")):
            raise ContractError("bad_header", f"{what}: DETSIZE1/2 must be integers, are "
                                              f"{hdr['DETSIZE1']!r}, {hdr['DETSIZE2']!r}")
        detsize = (int(hdr["DETSIZE1"]), int(hdr["DETSIZE2"]))
        if min(detsize) <= 0 or max(detsize) > MAX_DETSIZE_PIX:
            raise ContractError("bad_header", f"{what}: DETSIZE {detsize} must be in 1..{MAX_DETSIZE_PIX}")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # FITSFixedWarning and astropy.wcs's other notes
            try:
                wcs = WCS(hdr)
                celestial = wcs.has_celestial
            except Exception as exc:
                raise ContractError("bad_wcs", f"{what}: {exc}") from exc
        if not celestial:
            raise ContractError("bad_wcs", f"{what}: primary header has no celestial WCS")
        try:
            table = Table.read(hdul[1], format="fits")
        except Exception as exc:  # a column astropy cannot decode (TFORM, TDIM, scaling, ...)
            raise ContractError("bad_column", f"{what}: the table cannot be decoded: {exc}") from exc
    table.meta.clear()
    for col, kind in REQUIRED_DIASOURCE_COLUMNS.items():
        if col not in table.colnames:
            raise ContractError("missing_column", f"{what}: required column {col!r} is missing")
        dt = table[col].dtype
        if table[col].ndim != 1:
            raise ContractError("bad_column", f"{what}: column {col!r} must hold one value per row, "
                                              f"has shape {table[col].shape[1:]}")
        if kind == "i" and dt.kind not in "iu":
            raise ContractError("bad_column", f"{what}: column {col!r} must be integer, is {dt}")
        if kind == "f" and dt.kind not in "fiu":
            raise ContractError("bad_column", f"{what}: column {col!r} must be numeric, is {dt}")
    try:
        wcs = wcs.celestial
    except Exception as exc:
        raise ContractError("bad_wcs", f"{what}: {exc}") from exc
    return DiaSourceCatalog(table, info, wcs, detsize)


def _is_int(value) -> bool:
    return isinstance(value, int | np.integer) and not isinstance(value, bool | np.bool_)

"""Tile-compressed exposure files: the contract's alternative form and the archive's form.

Each plane of an exposure may be stored as a FITS compressed-image extension with the same
``EXTNAME`` (docs/formats.md): Rice with subtractive-dither quantisation for the float planes
(``IMAGE``, ``VARIANCE``), Rice on the integers for ``MASK`` (lossless), ``PSF`` left as it is.
astropy reads and writes the form (:class:`astropy.io.fits.CompImageHDU`); this module only
chooses its parameters, in one place (:class:`CompressionSpec`), so that the archive writer, the
simulator and the tests agree on them. The parameters and the measurements behind them are in
docs/images.md.
"""

from __future__ import annotations

import functools
import gzip
import io
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
from astropy.io import fits
from astropy.io.fits.hdu.compressed import _codecs

from alertprod.errors import ImageError
from alertprod.formats.exposure import Exposure, read_exposure, write_exposure

__all__ = ["ARCHIVE_COMPRESSION", "CompressionSpec", "compress_exposure", "compress_exposure_bytes"]

_PLANES = ("IMAGE", "VARIANCE", "MASK")


@dataclass(frozen=True)
class CompressionSpec:
    """How the planes of an exposure are tile-compressed.

    Attributes
    ----------
    tile_shape_pix : tuple of int
        ``(ny, nx)`` of a compression tile; a stamp read decompresses every tile it touches.
    quantize_level : float
        Float planes are quantised to ``σ_noise / quantize_level`` (FITS ``ZQUANTIZ``
        convention: larger keeps more bits); the added noise is σ/(q·√12) per pixel.
    dither_seed : int
        Seed of the subtractive dither (1–10000), fixed so that a re-written file is identical.
    """

    tile_shape_pix: tuple[int, int] = (64, 64)
    quantize_level: float = 16.0
    dither_seed: int = 1


#: The parameters of the long-term archive, chosen by tests/benchmarks/test_bench_image_reads.py
#: (docs/images.md, "Compression"): q = 8 is the coarsest quantisation whose added scatter in
#: forced-flux pulls stays within 0.05σ (0.034σ; 7.7× smaller files than plain); 128 × 128 tiles
#: give the fastest stamp read (opening included) among tile shapes whose files are within 5 %
#: of the smallest.
ARCHIVE_COMPRESSION = CompressionSpec(tile_shape_pix=(128, 128), quantize_level=8.0)


_GZIP_LOCK = threading.Lock()


@contextmanager
def _gzip_without_time() -> Iterator[None]:
    """Pin the gzip header's time to 0 while astropy compresses.

    astropy stores a float tile it cannot quantise (a constant tile: no noise to scale to) in
    the ``GZIP_COMPRESSED_DATA`` column, through ``gzip.compress``, which stamps each member
    with the current time: the pixels of two compressions are equal, their bytes are not, and
    a re-written archive copy would differ from the first. No astropy option sets that time,
    so its codec module's compressor is swapped for one with ``mtime=0`` (under a lock, and
    put back) — the one patch of a library in this package.
    """
    with _GZIP_LOCK:
        original = _codecs.gzip_compress
        _codecs.gzip_compress = functools.partial(gzip.compress, mtime=0)
        try:
            yield
        finally:
            _codecs.gzip_compress = original


def _plane_hdu(data: np.ndarray, header: fits.Header, name: str, spec: CompressionSpec
               ) -> fits.CompImageHDU:
    kwargs: dict = {"compression_type": "RICE_1", "tile_shape": spec.tile_shape_pix}
    if data.dtype.kind == "f":
        kwargs.update(quantize_level=float(spec.quantize_level),
                      quantize_method=2,  # SUBTRACTIVE_DITHER_2: exact zeros stay zero
                      dither_seed=int(spec.dither_seed))
    return fits.CompImageHDU(data, header=header, name=name, **kwargs)


def compress_exposure_bytes(raw: bytes, spec: CompressionSpec = ARCHIVE_COMPRESSION, *,
                            what: str = "image") -> bytes:
    """Re-write exposure FITS bytes (either form) with its planes tile-compressed by ``spec``.

    Headers (the primary's and each plane's WCS) are carried over unchanged; ``MASK`` round-trips
    exactly. Raises :class:`~alertprod.errors.ContractError` for bytes that are not an exposure.
    """
    exposure = read_exposure(raw, what=what)  # validates: a bad file is refused, not archived
    with fits.open(io.BytesIO(raw), memmap=False) as hdul:
        hdus: list[fits.hdu.base.ExtensionHDU | fits.PrimaryHDU] = [fits.PrimaryHDU(header=hdul[0].header)]
        for name in _PLANES:
            hdr = hdul[name].header.copy()
            for key in ("XTENSION", "BITPIX", "NAXIS", "NAXIS1", "NAXIS2", "PCOUNT", "GCOUNT",
                        "EXTNAME"):
                hdr.remove(key, ignore_missing=True)
            data = {"IMAGE": exposure.image, "VARIANCE": exposure.variance,
                    "MASK": exposure.mask}[name]
            hdus.append(_plane_hdu(data, hdr, name, spec))
        hdus.append(fits.ImageHDU(np.asarray(exposure.psf, np.float32), name="PSF"))
    buf = io.BytesIO()
    with _gzip_without_time():  # astropy compresses the tiles as it writes
        fits.HDUList(hdus).writeto(buf)
    return buf.getvalue()


def compress_exposure(exposure: Exposure, spec: CompressionSpec = ARCHIVE_COMPRESSION) -> bytes:
    """Serialise an exposure with its planes tile-compressed by ``spec`` (see module notes)."""
    if not isinstance(spec, CompressionSpec):
        raise ImageError(f"spec must be a CompressionSpec, got {type(spec).__name__}")
    return compress_exposure_bytes(write_exposure(exposure), spec)

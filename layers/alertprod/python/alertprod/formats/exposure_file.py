"""Exposure files opened lazily: headers first, then only the bytes some pixel windows need.

A measurement needs a few KB around each position of a ~201 MB exposure. :meth:`ExposureFile.open`
walks the file's HDU headers by ranged reads (a chunk per header, the compressed planes' tile
tables and the small PSF plane fetched beside the next header), checks them as
:func:`~alertprod.formats.exposure.read_exposure` does, and keeps the byte layout.
:meth:`ExposureFile.read_windows` then

1. *plans*: the byte ranges every window needs in every plane — row segments computed from
   ``BITPIX``, ``NAXISn`` and the data offset for plain planes; the heap bytes of each tile a
   window touches, from the tile table, for tile-compressed planes (``CompImageHDU``);
2. *coalesces* them (gaps cheaper to read than a GET's wait are read through) and compares,
   with the cost model (:class:`~alertprod.formats.byte_ranges.ReadCost`), the modelled price
   of these ranges with that of reading the whole file in a few large parallel ranges, and
   takes the cheaper;
3. *fetches* the ranges in parallel, and decodes: plain planes straight from the bytes,
   compressed ones by astropy (``CompImageHDU.section``) over a file object whose reads are
   served from the fetched ranges (``_fits_layout.RangeFile``: the one hand-written adapter — astropy
   reads a compressed section through ``seek``/``read`` of its file, one tile at a time, and
   no library gives it a file whose bytes come from a prefetched set of ranges).

The result is an ordinary :class:`~alertprod.formats.exposure.Exposure` of the detector's
full shape whose pixels inside the windows are exactly the file's and outside are NaN (image,
variance) and ``NO_DATA`` (mask): forced photometry, position refinement and cutouts run on it
unchanged and give the same numbers as on the whole file. docs/images.md has the rules and
the measurements.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import numpy as np
from astropy.io import fits

from alertprod.errors import ContractError, ImageError, StorageError
from alertprod.formats._fits_layout import (
    FILL,
    OUT_DTYPE,
    PLANES,
    Hdu,
    Layout,
    RangeCache,
    RangeFile,
    walk_headers,
)
from alertprod.formats.byte_ranges import (
    READ_COST,
    ByteSource,
    BytesSource,
    ReadCost,
    coalesce,
    whole_ranges,
)
from alertprod.formats.exposure import Exposure, exposure_meta, read_exposure
from alertprod.formats.mask import MaskBit

__all__ = ["ExposureFile", "ReadPlan", "windows_around"]

def windows_around(x_pix, y_pix, half_size_pix: int, shape: tuple[int, int]) -> np.ndarray:
    """Windows ``[y0, y1, x0, x1]`` (half-open, clipped to ``shape``) of side ``2h + 1``
    centred on the pixels nearest to each position (``floor(x + 0.5)``, as forced photometry
    and cutouts centre their stamps); non-finite positions and windows off the image give none.

    Returns
    -------
    ndarray of int64, shape (m, 4)
    """
    x = np.atleast_1d(np.asarray(x_pix, float))
    y = np.atleast_1d(np.asarray(y_pix, float))
    if x.shape != y.shape or x.ndim != 1:
        raise ImageError(f"x_pix and y_pix must be 1-D of equal length, got {x.shape}, {y.shape}")
    h = int(half_size_pix)
    if h < 0:
        raise ImageError(f"half_size_pix must be >= 0, got {half_size_pix!r}")
    ok = np.isfinite(x) & np.isfinite(y) & (np.abs(x) < 1e9) & (np.abs(y) < 1e9)
    ix = np.floor(x[ok] + 0.5).astype(np.int64)
    iy = np.floor(y[ok] + 0.5).astype(np.int64)
    ny, nx = shape
    w = np.column_stack([np.clip(iy - h, 0, ny), np.clip(iy + h + 1, 0, ny),
                         np.clip(ix - h, 0, nx), np.clip(ix + h + 1, 0, nx)]).astype(np.int64)
    return w[(w[:, 1] > w[:, 0]) & (w[:, 3] > w[:, 2])].reshape(-1, 4)


class ReadPlan(NamedTuple):
    """The ranges a read will fetch, and the modelled cost of both ways.

    Attributes
    ----------
    ranges : list of (int, int)
        Byte ranges to GET (the chosen way).
    whole : bool
        Whether the chosen way is the whole file.
    windowed_ranges : list of (int, int)
        The coalesced ranges the windows need.
    windowed_s, whole_s : float
        Modelled wall time of each way (:meth:`ReadCost.seconds`).
    windowed_usd, whole_usd : float
        Modelled price of each way.
    """

    ranges: list[tuple[int, int]]
    whole: bool
    windowed_ranges: list[tuple[int, int]]
    windowed_s: float
    whole_s: float
    windowed_usd: float
    whole_usd: float

    @property
    def bytes(self) -> int:
        return sum(b - a for a, b in self.ranges)


class ExposureFile:
    """An exposure file opened by its headers; pixels read by windows (see module notes).

    Attributes
    ----------
    info : ExposureInfo
    wcs : astropy.wcs.WCS
    psf : ndarray, shape (k, k)
    shape : tuple of int
        ``(ny, nx)`` of the planes.
    header : dict
        Extra primary-header cards (as :attr:`Exposure.header`).
    compressed : bool
        Whether any pixel plane is tile-compressed.
    source : ByteSource
        Where the bytes come from; ``source.stats`` counts every request and byte.
    """

    def __init__(self, source: ByteSource, cache: RangeCache, hdus: list[Hdu], what: str,
                 cost: ReadCost):
        self.source, self._cache, self._hdus, self.what, self.cost = source, cache, hdus, what, cost
        #: pixels read so far with a negative variance (flagged ``BAD``)
        self.negative_variance_pixels = 0
        #: called as ``on_warning(code, count)`` when a read finds unusable pixels (or None)
        self.on_warning: Callable[[str, int], None] | None = None
        self._hdul = fits.open(RangeFile(cache, what), memmap=False, lazy_load_hdus=True)
        meta = exposure_meta(self._hdul, what=what)
        self.info, self.wcs, self.psf, self.header, self.shape = (meta.info, meta.wcs, meta.psf,
                                                                  meta.header, meta.shape)
        by_name = {h.name: h for h in hdus}
        self._layouts = {n: Layout(by_name[n], cache, self.shape) for n in PLANES}
        self.compressed = any(lay.compressed for lay in self._layouts.values())

    @classmethod
    def open(cls, source: ByteSource | bytes, *, what: str | None = None,
             cost: ReadCost = READ_COST) -> ExposureFile:
        """Read and check the headers (and the PSF plane) of an exposure file.

        Parameters
        ----------
        source : ByteSource or bytes
            Where the file's bytes are (:class:`~alertprod.formats.byte_ranges.BlobSource` for
            a store key).
        what : str, keyword-only
            Name in error messages (default: the source's).
        cost : ReadCost, keyword-only
            The cost model that chooses between windowed and whole-file reads.

        Raises
        ------
        ContractError
            As :func:`~alertprod.formats.exposure.read_exposure` (``empty_file``,
            ``truncated_file`` for a file shorter than its headers declare, ``not_fits``,
            ``missing_extension`` for a missing plane, ``duplicate_extension``, ``bad_image``,
            ``bad_psf``, ``bad_wcs``, the header reasons); no other exception type for what
            the bytes hold (a failing store raises its own error, to be retried).
        """
        if isinstance(source, bytes | bytearray | memoryview):
            source = BytesSource(bytes(source), what=what or "image")
        what = what or source.what
        cache = RangeCache(source)
        try:
            hdus = walk_headers(cache, what)
            names = [h.name for h in hdus]
            for name in (*PLANES, "PSF"):
                if name not in names:
                    raise ContractError("missing_extension", f"{what}: no {name} extension")
                if names.count(name) > 1:
                    raise ContractError("duplicate_extension",
                                        f"{what}: {names.count(name)} {name} extensions")
            return cls(source, cache, hdus, what, cost)
        except (ContractError, StorageError):  # a failing store is retried, not quarantined
            raise
        except Exception as exc:  # astropy raises OSError/ValueError/KeyError variously
            raise ContractError("not_fits", f"{what} is not a readable FITS file: {exc}") from exc

    @property
    def stats(self):
        """The source's :class:`~alertprod.formats.byte_ranges.ReadStats`."""
        return self.source.stats

    def _windows(self, windows) -> np.ndarray:
        w = np.asarray(windows, dtype=np.int64).reshape(-1, 4)
        ny, nx = self.shape
        w = np.column_stack([np.clip(w[:, 0], 0, ny), np.clip(w[:, 1], 0, ny),
                             np.clip(w[:, 2], 0, nx), np.clip(w[:, 3], 0, nx)])
        return w[(w[:, 1] > w[:, 0]) & (w[:, 3] > w[:, 2])]

    def plan(self, windows, *, whole: bool | None = None) -> ReadPlan:
        """The ranges :meth:`read_windows` would fetch for ``windows`` (``[y0, y1, x0, x1]``
        rows), and the modelled cost of windowed and whole-file reads; ``whole`` forces a way."""
        w, cost = self._windows(windows), self.cost
        gap = cost.coalesce_gap_bytes
        needed = []
        for lay in self._layouts.values() if len(w) else ():
            # compressed tiles decode from the cache, so what it holds is not fetched again;
            # plain planes decode from this read's bytes only (the cache may hold a plane's
            # first rows, fetched with its header)
            ranges = lay.ranges(w, gap)
            needed += self._cache.missing(ranges) if lay.compressed else ranges
        merged = coalesce(needed, gap_bytes=gap)
        total = sum(b - a for a, b in merged)  # split so that every connection gets work
        windowed = coalesce(merged, gap_bytes=0, max_bytes=max(-(-total // cost.parallelism), gap))
        whole_r = whole_ranges(self.source.size, cost.parallelism)
        lw, lh = [b - a for a, b in windowed], [b - a for a, b in whole_r]
        use_whole = cost.usd(lh) < cost.usd(lw) if whole is None else bool(whole)
        return ReadPlan(whole_r if use_whole else windowed, use_whole, windowed, cost.seconds(lw),
                        cost.seconds(lh), cost.usd(lw), cost.usd(lh))

    def read_windows(self, windows, *, whole: bool | None = None) -> Exposure:
        """An :class:`Exposure` of full shape holding the file's pixels inside ``windows``.

        Parameters
        ----------
        windows : array_like of int, shape (n, 4)
            ``[y0, y1, x0, x1]`` half-open pixel boxes (clipped to the image), e.g. from
            :func:`windows_around`.
        whole : bool, keyword-only, optional
            Force (True) or forbid (False) reading the whole file; None lets the cost model
            choose (:meth:`plan`).

        Returns
        -------
        Exposure
            Inside the windows the file's pixels, bit for bit; outside NaN (image, variance)
            and ``MaskBit.NO_DATA`` (mask). PSF, WCS, metadata as the file's.
        """
        w = self._windows(windows)
        plan = self.plan(w, whole=whole)
        fetched = list(zip([a for a, _ in plan.ranges], self.source.read_ranges(plan.ranges),
                           strict=True))
        for (a, b), (_, data) in zip(plan.ranges, fetched, strict=True):
            if len(data) != b - a:  # the object changed or was cut short since it was opened
                raise ContractError("truncated_file", f"{self.what} is truncated: bytes {a}-{b} gave "
                                                f"{len(data)} bytes")
        if self.compressed:  # astropy decompresses from the cache
            for a, data in fetched:
                self._cache.add(a, data)
        planes = {}
        for name, lay in self._layouts.items():
            out = np.full(self.shape, FILL[name], OUT_DTYPE[name])
            if len(w):
                if lay.compressed:
                    lay._tiles(w)
                try:
                    full = lay.decode(fetched, self._hdul)
                except (ContractError, StorageError):
                    raise
                except Exception as exc:  # a corrupt tile: cfitsio's own exception types
                    raise ContractError("bad_image", f"{self.what}: {name} pixels cannot be "
                                                     f"decoded: {exc}") from exc
                for y0, y1, x0, x1 in w:
                    out[y0:y1, x0:x1] = full[y0:y1, x0:x1]
                del full
            planes[name] = out
        return self._flag_negative_variance(
            Exposure(planes["IMAGE"], planes["VARIANCE"], planes["MASK"], self.psf.copy(),
                     self.wcs.deepcopy(), self.info, dict(self.header)))

    def read_all(self) -> Exposure:
        """The whole exposure, as :func:`~alertprod.formats.exposure.read_exposure` reads it
        (the file in a few large parallel ranges)."""
        ranges = whole_ranges(self.source.size, self.cost.parallelism)
        return self._flag_negative_variance(
            read_exposure(b"".join(self.source.read_ranges(ranges)), what=self.what))

    def _flag_negative_variance(self, exp: Exposure) -> Exposure:
        """Pixels read with a negative variance are unusable: ``MaskBit.BAD`` is set on them
        (every measurement gives them zero weight, and alert cutouts show them) and
        :attr:`on_warning` hears ``("negative_variance", count)``. A pixel-level defect is
        found here, on the pixels a CCD reads, not at validation (docs/formats.md)."""
        negative = exp.variance < 0  # NaN compares False: NaN pixels are unusable already
        n = int(np.count_nonzero(negative))
        if n:
            exp.mask[negative] |= np.int32(MaskBit.BAD)
            self.negative_variance_pixels += n
            if self.on_warning is not None:
                self.on_warning("negative_variance", n)
        return exp

    def close(self) -> None:
        """Close the astropy view of the file (the source stays usable)."""
        self._hdul.close()

"""Byte layout of FITS exposure files read by ranges: the private half of
:mod:`alertprod.formats.exposure_file`.

:class:`RangeCache` holds the fetched byte ranges of one object; :class:`RangeFile` is a
seekable file over it for astropy (which reads compressed sections tile by tile through
``seek``/``read``: no library gives it a file backed by a prefetched set of ranges, so this
small adapter is written here); :func:`walk_headers` finds every HDU by ranged reads in few
round trips; :class:`Layout` knows where a plane's pixels are — row segments of a plain plane
from ``BITPIX``/``NAXISn``/data offset, tile heap spans of a compressed one from its tile table —
and decodes them (compressed tiles by astropy's ``CompImageHDU.section``).
"""

from __future__ import annotations

import bisect
import io
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
from astropy.io import fits

from alertprod.errors import ContractError
from alertprod.formats.byte_ranges import ByteSource, coalesce
from alertprod.formats.mask import MaskBit

_BLOCK = 2880
#: Bytes fetched for a header when its size is not yet known (headers here are 1–4 blocks).
HEADER_CHUNK_BYTES = 4 * _BLOCK
PLANES = ("IMAGE", "VARIANCE", "MASK")
FILL = {"IMAGE": np.nan, "VARIANCE": np.nan, "MASK": int(MaskBit.NO_DATA)}
OUT_DTYPE = {"IMAGE": np.float32, "VARIANCE": np.float32, "MASK": np.int32}
_HEAP_ELEM = {"B": 1, "I": 2, "J": 4, "K": 8, "E": 4, "D": 8}


class RangeCache:
    """Fetched byte ranges of one object, non-overlapping; misses are fetched (and counted)."""

    def __init__(self, source: ByteSource):
        self.source = source
        self.starts: list[int] = []
        self.chunks: list[bytes] = []

    def missing(self, ranges) -> list[tuple[int, int]]:
        out = []
        for a, b in ranges:
            pos = a
            i = max(bisect.bisect_right(self.starts, a) - 1, 0)
            while pos < b and i < len(self.starts):
                s, e = self.starts[i], self.starts[i] + len(self.chunks[i])
                if s > pos:
                    out.append((pos, min(s, b)))
                pos = max(pos, min(e, b)) if s < b else b
                i += 1
            if pos < b:
                out.append((pos, b))
        return [r for r in out if r[1] > r[0]]

    def fetch(self, ranges, *, gap_bytes: int = 0) -> None:
        """Fetch the parts of ``ranges`` not yet held, merged over gaps below ``gap_bytes``."""
        todo = coalesce(self.missing(ranges), gap_bytes=gap_bytes)
        todo = self.missing(todo)  # gaps read through may overlap what is held
        for (a, b), data in zip(todo, self.source.read_ranges(todo), strict=True):
            if len(data) != min(b, self.source.size) - a:
                raise ContractError("truncated_file", f"{self.source.what} is truncated: bytes {a}-{b} "
                                                f"gave {len(data)} bytes")
            self.add(a, data)

    def add(self, a: int, data: bytes) -> None:
        """Hold bytes fetched elsewhere (starting at byte ``a``), keeping only what is new."""
        for lo, hi in self.missing([(a, a + len(data))]):
            i = bisect.bisect_left(self.starts, lo)
            self.starts.insert(i, lo)
            self.chunks.insert(i, data[lo - a:hi - a])

    def read(self, a: int, b: int) -> bytes:
        b = min(b, self.source.size)
        if b <= a:
            return b""
        self.fetch([(a, b)])
        out = bytearray(b - a)
        i = max(bisect.bisect_right(self.starts, a) - 1, 0)
        while i < len(self.starts) and self.starts[i] < b:
            s, c = self.starts[i], self.chunks[i]
            lo, hi = max(a, s), min(b, s + len(c))
            if hi > lo:
                out[lo - a:hi - a] = c[lo - s:hi - s]
            i += 1
        return bytes(out)


class RangeFile(io.RawIOBase):
    """A read-only, seekable file whose bytes come from a :class:`RangeCache` (for astropy)."""

    def __init__(self, cache: RangeCache, name: str):
        super().__init__()
        self.cache, self.name, self.mode, self.pos = cache, name, "rb", 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self.pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self.pos, io.SEEK_END: self.cache.source.size}[whence]
        self.pos = max(0, base + int(offset))
        return self.pos

    def readinto(self, buf) -> int:
        data = self.cache.read(self.pos, self.pos + len(buf))
        buf[:len(data)] = data
        self.pos += len(data)
        return len(data)


@dataclass(frozen=True)
class Hdu:
    name: str
    header: fits.Header
    data_offset: int
    data_bytes: int

    @property
    def compressed(self) -> bool:
        return bool(self.header.get("ZIMAGE", False))

    @property
    def table_bytes(self) -> int:
        return int(self.header.get("NAXIS1", 0)) * int(self.header.get("NAXIS2", 0))


def data_bytes(hdr: fits.Header) -> int:
    """Bytes of an HDU's data as its header declares them (without the padding to 2880)."""
    naxis = int(hdr.get("NAXIS", 0))
    if naxis == 0:
        return 0
    n = 1
    for i in range(1, naxis + 1):
        n *= int(hdr[f"NAXIS{i}"])
    return abs(int(hdr["BITPIX"])) // 8 * int(hdr.get("GCOUNT", 1)) * (int(hdr.get("PCOUNT", 0)) + n)


def _padded(n: int) -> int:
    return -(-n // _BLOCK) * _BLOCK


def check_header_bytes(text: bytes, what: str, offset: int) -> None:
    """Refuse a header holding bytes FITS forbids there (only ASCII 32–126; astropy would
    read them as ``?``), as ``bad_header``."""
    raw = np.frombuffer(text, np.uint8)
    bad = (raw < 32) | (raw > 126)
    if bad.any():
        i = int(np.argmax(bad))
        raise ContractError("bad_header", f"{what}: byte {offset + i} of a header is "
                                          f"0x{int(raw[i]):02x}, outside FITS's printable ASCII")


def first_chunk(cache: RangeCache) -> int:
    """The file's first header chunk, fetched while its size is asked (one round trip, not two)."""
    source = cache.source
    with ThreadPoolExecutor(max_workers=1) as pool:
        size = pool.submit(lambda: source.size)
        head = source.read_ranges([(0, HEADER_CHUNK_BYTES)])[0]
        size = size.result()
    cache.add(0, head[:size])
    return size


def walk_headers(cache: RangeCache, what: str) -> list[Hdu]:
    """Every HDU's header and data extent, by ranged reads.

    Round trips are few: the first chunk comes with the size; after each header, the next
    header's chunk is fetched together with the HDU's tile table or small data, and with
    guesses of the headers after it (where they are if the following HDUs have this one's
    header length and data size — true of the IMAGE, VARIANCE and MASK planes of a plain
    file, so a plain file opens in two round trips).
    """
    size, off, hdus = first_chunk(cache), 0, []
    if size == 0:
        raise ContractError("empty_file", f"{what} is empty (zero bytes)")
    if cache.read(0, 9) != b"SIMPLE  =":
        raise ContractError("not_fits", f"{what} is not a FITS file (it does not begin with SIMPLE)")
    while off < size:
        text, end = b"", off
        while True:
            if cache.missing([(end, min(end + _BLOCK, size))]):
                cache.fetch([(end, min(end + HEADER_CHUNK_BYTES, size))])
            block = cache.read(end, end + _BLOCK)
            if len(block) < _BLOCK:
                raise ContractError("truncated_file", f"{what} is truncated: header at byte {off} "
                                                f"ends past the end of the file ({size} bytes)")
            text, end = text + block, end + _BLOCK
            if any(block[i:i + 3] == b"END" and block[i + 3:i + 80].strip() == b""
                   for i in range(0, _BLOCK, 80)):
                break
            if end - off > 100 * _BLOCK:
                raise ContractError("not_fits", f"{what}: no END card in the header at byte {off}")
        check_header_bytes(text, what, off)
        try:
            hdr = fits.Header.fromstring(text.decode("ascii"))
            nbytes = data_bytes(hdr)
        except Exception as exc:
            raise ContractError("not_fits", f"{what} is not a readable FITS file: {exc}") from exc
        name = "PRIMARY" if not hdus else str(hdr.get("EXTNAME", "")).strip().upper()
        hdu = Hdu(name, hdr, end, nbytes)
        if end + nbytes > size:
            raise ContractError("truncated_file", f"{what} is truncated: HDU {name or len(hdus)} needs "
                                            f"bytes up to {end + nbytes}, the file has {size}")
        hdus.append(hdu)
        small = hdu.table_bytes if hdu.compressed else (nbytes if nbytes <= HEADER_CHUNK_BYTES else 0)
        step = (end - off) + _padded(nbytes)
        off = off + step
        wanted = [(end, end + small)] if small else []
        wanted += [(o, min(o + HEADER_CHUNK_BYTES, size)) for o in range(off, off + 3 * step, step)
                   if o < size]
        wanted = [r for r in wanted if cache.missing([r])]
        if wanted and (off >= size or cache.missing([(off, min(off + _BLOCK, size))]) or small):
            cache.fetch(wanted)
    return hdus


class Layout:
    """Where one pixel plane's bytes are: plain (row-major) or as tiles of a compressed table."""

    def __init__(self, hdu: Hdu, cache: RangeCache, shape: tuple[int, int]):
        self.hdu, self.shape, h = hdu, shape, hdu.header
        self.compressed = hdu.compressed
        if not self.compressed:
            self.dtype = np.dtype(fits.hdu.base.BITPIX2DTYPE[int(h["BITPIX"])]).newbyteorder(">")
            self.scale = (float(h.get("BSCALE", 1.0)), float(h.get("BZERO", 0.0)))
            return
        ny, nx = shape
        self.tile = (int(h.get("ZTILE2", 1)), int(h.get("ZTILE1", nx)))
        self.ntiles = (-(-ny // self.tile[0]), -(-nx // self.tile[1]))
        table = cache.read(hdu.data_offset, hdu.data_offset + hdu.table_bytes)
        rows = np.frombuffer(table, np.uint8).reshape(int(h["NAXIS2"]), int(h["NAXIS1"]))
        heap = hdu.data_offset + int(h.get("THEAP", hdu.table_bytes))
        self.spans = []  # per array column: (start, stop) heap bytes of each tile
        col = 0
        for i in range(1, int(h["TFIELDS"]) + 1):
            form = str(h[f"TFORM{i}"]).strip().upper()
            rep = form.lstrip("0123456789")
            count = int(form[:len(form) - len(rep)] or 1)
            if rep[:1] in "PQ":
                dt = ">i4" if rep[0] == "P" else ">i8"
                desc = rows[:, col:col + 2 * np.dtype(dt).itemsize].copy().view(dt).astype(np.int64)
                elem = _HEAP_ELEM.get(rep[1:2], 1)
                self.spans.append((heap + desc[:, 1], heap + desc[:, 1] + desc[:, 0] * elem))
                col += 2 * np.dtype(dt).itemsize
            else:
                col += count * {"L": 1, "X": 1, "B": 1, "I": 2, "J": 4, "K": 8, "A": 1, "E": 4,
                                "D": 8, "C": 8, "M": 16}[rep[:1]]

    def ranges(self, windows: np.ndarray, gap_bytes: int) -> list[tuple[int, int]]:
        """Byte ranges of the windows' pixels in this plane."""
        if not self.compressed:
            nx, item, off = self.shape[1], self.dtype.itemsize, self.hdu.data_offset
            y0, y1, x0, x1 = windows.T
            whole_rows = (nx - (x1 - x0)) * item < gap_bytes  # rows of a window read through
            out = list(zip((off + (y0 * nx + x0) * item)[whole_rows],
                           (off + ((y1 - 1) * nx + x1) * item)[whole_rows], strict=True))
            for wy0, wy1, wx0, wx1 in windows[~whole_rows]:
                rows = np.arange(wy0, wy1)
                out += list(zip(off + (rows * nx + wx0) * item, off + (rows * nx + wx1) * item,
                                strict=True))
            return [(int(a), int(b)) for a, b in out]
        tiles = self._tiles(windows)
        return [(int(a[t]), int(b[t])) for a, b in self.spans for t in tiles if b[t] > a[t]]

    def _tiles(self, windows: np.ndarray) -> np.ndarray:
        """Raster indices of the tiles the windows touch."""
        (ty, tx), (nty, ntx) = self.tile, self.ntiles
        touched = np.zeros((nty, ntx), bool)
        for y0, y1, x0, x1 in windows:
            touched[y0 // ty:(y1 - 1) // ty + 1, x0 // tx:(x1 - 1) // tx + 1] = True
        self.touched = touched
        return np.flatnonzero(touched)

    def decode(self, fetched: list[tuple[int, bytes]], hdul: fits.HDUList) -> np.ndarray:
        """The plane, full shape, right wherever fetched bytes (or touched tiles) cover it."""
        ny, nx = self.shape
        if self.compressed:
            out = np.empty(self.shape, OUT_DTYPE[self.hdu.name])  # only touched tiles are used
            (ty, tx), section = self.tile, hdul[self.hdu.name].section
            for r in range(self.touched.shape[0]):
                cols = np.flatnonzero(self.touched[r])
                if cols.size == 0:
                    continue
                runs = np.split(cols, np.flatnonzero(np.diff(cols) > 1) + 1)
                for run in runs:  # one astropy call per run of adjacent touched tiles
                    ys = slice(r * ty, min((r + 1) * ty, ny))
                    xs = slice(int(run[0]) * tx, min((int(run[-1]) + 1) * tx, nx))
                    out[ys, xs] = section[ys, xs]
            return out
        start, nbytes = self.hdu.data_offset, self.hdu.data_bytes
        buf = np.empty(nbytes, np.uint8)  # pages of bytes not fetched are never touched
        for a, data in fetched:
            lo, hi = max(a, start), min(a + len(data), start + nbytes)
            if hi > lo:
                buf[lo - start:hi - start] = np.frombuffer(data, np.uint8, hi - lo, lo - a)
        plane = buf.view(self.dtype).reshape(ny, nx)
        if self.scale != (1.0, 0.0):
            return plane * self.scale[0] + self.scale[1]
        return plane

"""Byte ranges of large objects: where they come from, how they are counted, what they cost.

A :class:`ByteSource` serves several byte ranges of one object at once — from a
:class:`~alertprod.aws.blobs.BlobStore` key (:class:`BlobSource`: one ranged GET per range, a
small thread pool in parallel, S3 serving one range per GET) or from bytes in memory
(:class:`BytesSource`, counted the same way so tests and benchmarks see the requests a store
would get). :class:`ReadStats` counts requests and bytes.

:class:`ReadCost` is the cost model of reading from S3 inside a function (docs/images.md,
"Cost model"): each GET waits ``first_byte_s`` for its first byte, then streams at
``bytes_per_s_per_connection``, on ``parallelism`` connections at once; the modelled wall time
of a set of ranges is the makespan of handing them to the connections longest first, and its
price that time of function memory plus the GETs. :func:`coalesce` merges ranges whose gap
costs less to read than a GET's wait (``ReadCost.coalesce_gap_bytes``) and splits long ones so
that every connection gets work; :func:`whole_ranges` is the whole object in ``parallelism``
equal ranges. Written here because no maintained library plans ranged reads against a cost
model (fsspec's block caches read fixed blocks on demand, one request at a time).
"""

from __future__ import annotations

import heapq
import math
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from alertprod.errors import ImageError

if TYPE_CHECKING:  # formats stays below aws: a store is used through its two read methods
    from alertprod.aws.blobs import BlobStore

__all__ = ["READ_COST", "BlobSource", "ByteSource", "BytesSource", "ReadCost", "ReadStats",
           "coalesce", "whole_ranges"]

Range = tuple[int, int]


@dataclass
class ReadStats:
    """Requests and bytes a :class:`ByteSource` has served (thread-safe counters).

    Attributes
    ----------
    gets : int
        Ranged GET requests.
    heads : int
        HEAD requests (the object's size).
    bytes : int
        Bytes received.
    rounds : list of list of int
        The lengths of the ranges of each ``read_ranges`` call: one round trip each, its
        ranges in parallel (what :meth:`ReadCost.seconds` models, round by round).
    """

    gets: int = 0
    heads: int = 0
    bytes: int = 0
    rounds: list[list[int]] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def add(self, *, gets: int = 0, heads: int = 0, nbytes: int = 0) -> None:
        with self._lock:
            self.gets += gets
            self.heads += heads
            self.bytes += nbytes

    def add_round(self, lengths: Sequence[int]) -> None:
        with self._lock:
            self.rounds.append([int(n) for n in lengths])

    def modelled_seconds(self, cost: ReadCost) -> float:
        """Wall time of every round so far on S3, as ``cost`` models it (rounds one after another)."""
        with self._lock:
            return sum(cost.seconds(r) for r in self.rounds)

    @property
    def requests(self) -> int:
        """GETs and HEADs together (S3 bills both at the GET price)."""
        return self.gets + self.heads

    def snapshot(self) -> dict[str, int]:
        """``{"gets", "heads", "requests", "bytes"}`` now."""
        with self._lock:
            return {"gets": self.gets, "heads": self.heads, "requests": self.gets + self.heads,
                    "bytes": self.bytes}


@runtime_checkable
class ByteSource(Protocol):
    """One object's bytes, served by ranges.

    Notes
    -----
    ``read_ranges`` costs one request per range (no range is merged or split here: that is
    the caller's plan); ranges past the end come back cut, as slices do.
    """

    what: str
    stats: ReadStats

    @property
    def size(self) -> int:
        """Length of the object in bytes."""
        ...

    def read_ranges(self, ranges: Sequence[Range]) -> list[bytes]:
        """Bytes of each ``[start, stop)`` range, in the order given."""
        ...


def _check_ranges(ranges: Sequence[Range]) -> list[Range]:
    out = []
    for r in ranges:
        a, b = int(r[0]), int(r[1])
        if not 0 <= a <= b:
            raise ImageError(f"ranges: need 0 <= start <= stop, got {r!r}")
        out.append((a, b))
    return out


class BytesSource:
    """A :class:`ByteSource` over bytes in memory, counting requests as a store would."""

    def __init__(self, data: bytes, *, what: str = "image") -> None:
        self._data = bytes(data)
        self.what = what
        self.stats = ReadStats()

    @property
    def size(self) -> int:
        return len(self._data)

    def read_ranges(self, ranges: Sequence[Range]) -> list[bytes]:
        out = [self._data[a:b] for a, b in _check_ranges(ranges)]
        self.stats.add(gets=len(out), nbytes=sum(map(len, out)))
        if out:
            self.stats.add_round([len(d) for d in out])
        return out


class BlobSource:
    """A :class:`ByteSource` over one key of a :class:`~alertprod.aws.blobs.BlobStore`.

    Parameters
    ----------
    store : BlobStore
        The store (``get_range`` and ``size`` are used).
    key : str
        The object's key.
    parallelism : int, keyword-only
        GETs in flight at once (threads; keep at most the client's connection pool, 10 by
        default in botocore).
    what : str, keyword-only
        Name used in error messages (default: the key).
    """

    def __init__(self, store: BlobStore, key: str, *, parallelism: int | None = None,
                 what: str | None = None) -> None:
        p = READ_COST.parallelism if parallelism is None else int(parallelism)
        if p < 1:
            raise ImageError(f"parallelism must be positive, got {parallelism!r}")
        self.store, self.key, self.parallelism = store, key, p
        self.what = key if what is None else what
        self.stats = ReadStats()
        self._size: int | None = None

    def __repr__(self) -> str:
        return f"BlobSource({self.store.uri(self.key)!r})"

    @property
    def size(self) -> int:
        """Length in bytes (one HEAD, the first time); NotFoundError when missing."""
        if self._size is None:
            self._size = int(self.store.size(self.key))
            self.stats.add(heads=1)
        return self._size

    def read_ranges(self, ranges: Sequence[Range]) -> list[bytes]:
        ranges = _check_ranges(ranges)

        def one(r: Range) -> bytes:
            data = self.store.get_range(self.key, r[0], r[1])
            self.stats.add(gets=1, nbytes=len(data))
            return data

        if len(ranges) <= 1:
            out = [one(r) for r in ranges]
        else:
            with ThreadPoolExecutor(max_workers=min(self.parallelism, len(ranges))) as pool:
                out = list(pool.map(one, ranges))
        if out:
            self.stats.add_round([len(d) for d in out])
        return out


@dataclass(frozen=True)
class ReadCost:
    """The cost model of ranged reads from S3 in a function (docs/images.md, "Cost model").

    Attributes
    ----------
    first_byte_s : float
        Wait for a GET's first byte (S3 in-region: 20–30 ms).
    bytes_per_s_per_connection : float
        Streaming rate of one connection once bytes flow (~90 MB/s).
    parallelism : int
        Connections in flight at once (threads of :class:`BlobSource`).
    get_usd_per_1000 : float
        S3 Standard GET price.
    function_usd_per_s : float
        What a second of the reading function costs (Lambda, 2,048 MB at $0.0000166667/GB-s).
    """

    first_byte_s: float = 0.025
    bytes_per_s_per_connection: float = 90e6
    parallelism: int = 8
    get_usd_per_1000: float = 0.0004
    function_usd_per_s: float = 2.0 * 0.0000166667

    @property
    def coalesce_gap_bytes(self) -> int:
        """Bytes one connection streams while a GET waits for its first byte: reading a gap
        shorter than this costs less time than a second GET (2.25 MB by default)."""
        return int(self.first_byte_s * self.bytes_per_s_per_connection)

    def seconds(self, lengths: Sequence[int]) -> float:
        """Modelled wall time of reading ranges of these lengths: each costs ``first_byte_s
        + length / rate``, handed longest first to the least busy of ``parallelism``
        connections."""
        if not len(lengths):
            return 0.0
        busy = [0.0] * min(self.parallelism, len(lengths))
        for n in sorted(lengths, reverse=True):
            heapq.heapreplace(busy, busy[0] + self.first_byte_s + n / self.bytes_per_s_per_connection)
        return max(busy)

    def usd(self, lengths: Sequence[int]) -> float:
        """Modelled price: the wall time of function memory plus the GETs."""
        return (self.seconds(lengths) * self.function_usd_per_s
                + len(lengths) * self.get_usd_per_1000 / 1000.0)


#: The model used unless a caller passes its own (S3 in-region, Lambda of 2 GB, 8 threads).
READ_COST = ReadCost()


def coalesce(ranges: Sequence[Range], *, gap_bytes: int, max_bytes: int | None = None) -> list[Range]:
    """Sorted, merged ranges: overlapping ones and those less than ``gap_bytes`` apart are
    merged; then ranges longer than ``max_bytes`` are cut into equal pieces no longer than it."""
    merged: list[list[int]] = []
    for a, b in sorted(r for r in _check_ranges(ranges) if r[1] > r[0]):
        if merged and a - merged[-1][1] < gap_bytes:
            merged[-1][1] = max(merged[-1][1], b)
        else:
            merged.append([a, b])
    if max_bytes is None or max_bytes <= 0:
        return [(a, b) for a, b in merged]
    out: list[Range] = []
    for a, b in merged:
        pieces = max(1, math.ceil((b - a) / max_bytes))
        cuts = [a + (b - a) * i // pieces for i in range(pieces + 1)]
        out.extend(zip(cuts[:-1], cuts[1:], strict=True))
    return out


def whole_ranges(size: int, parallelism: int) -> list[Range]:
    """An object of ``size`` bytes in ``parallelism`` (at most) equal contiguous ranges."""
    pieces = max(1, min(int(parallelism), size))
    cuts = [size * i // pieces for i in range(pieces + 1)]
    return [(a, b) for a, b in zip(cuts[:-1], cuts[1:], strict=True) if b > a]

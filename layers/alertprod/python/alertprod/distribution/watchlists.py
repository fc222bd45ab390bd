"""Users' own watchlists: uploads checked and parsed, kept in the object store, loaded for filters.

A user uploads a watchlist (CSV, JSON or VOTable of ``ra``, ``dec`` [deg], optional ``radius``
[arcsec] and ``id``) through the API; :func:`parse_watchlist` checks every value and names the
row of the first bad one. :class:`WatchlistLibrary` keeps the entries as a compressed ``.npz``
in the object store (content-addressed: a replacement never half-overwrites the list a running
filter reads) beside a :class:`~alertprod.distribution.records.WatchlistRecord` in the service
store, and gives the filtering service each user's :class:`~alertprod.filtering.watch.Watchlist`
objects — built once per content hash and shared by every filter and batch of the process.
A user's filters see only that user's watchlists.
"""

from __future__ import annotations

import hashlib
import io
import re
import secrets
import threading
from collections import OrderedDict
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple
from urllib.parse import quote

import numpy as np

from alertprod.aws.blobs import BlobStore
from alertprod.distribution.records import WatchlistRecord
from alertprod.distribution.store import ServiceStore
from alertprod.errors import AlertprodError, NotFoundError
from alertprod.filtering._parser import parse_filter
from alertprod.filtering.syntax import Call, children
from alertprod.filtering.watch import MAX_WATCHLIST_ENTRIES, Watchlist

__all__ = ["WatchlistInputError", "ParsedWatchlist", "WatchlistLibrary", "parse_watchlist",
           "referenced_watchlists", "check_entries", "WATCHLIST_NAME", "MAX_RADIUS_ARCSEC", "MAX_ID_CHARS"]

#: What a watchlist may be called (the argument of ``in_watchlist('name')``).
WATCHLIST_NAME = re.compile(r"[A-Za-z0-9_.\-]{1,64}")
#: Largest per-entry radius, arcsec (1 degree: larger radii are regions, for watchmaps).
MAX_RADIUS_ARCSEC = 3600.0
#: Longest entry id.
MAX_ID_CHARS = 64
_COLUMNS = {"ra": "ra", "ra_deg": "ra", "dec": "dec", "dec_deg": "dec", "radius": "radius",
            "radius_arcsec": "radius", "id": "id", "name": "id"}


class WatchlistInputError(AlertprodError):
    """An uploaded watchlist is refused (the message names the column or row)."""


class ParsedWatchlist(NamedTuple):
    """Checked entries of an upload: ``ra``, ``dec`` [deg], ``radius`` [arcsec], shape ``(m,)``; ids."""

    ra: np.ndarray
    dec: np.ndarray
    radius: np.ndarray
    ids: np.ndarray          # str, "" where none was given
    source_format: str


def check_entries(ra: Any, dec: Any, radius: Any, ids: Any, fmt: str,
                  max_entries: int = MAX_WATCHLIST_ENTRIES) -> ParsedWatchlist:
    """Check entries given as columns (degrees, arcsec; ids ``""`` where none); refuse the first bad one."""
    ra, dec, radius = (np.asarray(x, np.float64).reshape(-1) for x in (ra, dec, radius))
    ids = np.asarray(ids, dtype=str).reshape(-1)
    n = len(ra)
    if n == 0:
        raise WatchlistInputError("the watchlist has no entries")
    if n > max_entries:
        raise WatchlistInputError(f"{n:,} entries; a watchlist holds at most {max_entries:,}")
    for name, values, ok in (("ra", ra, np.isfinite(ra) & (ra >= 0) & (ra < 360)),
                             ("dec", dec, np.isfinite(dec) & (np.abs(dec) <= 90)),
                             ("radius", radius, np.isfinite(radius) & (radius > 0) & (radius <= MAX_RADIUS_ARCSEC))):
        bad = np.flatnonzero(~ok)
        if len(bad):
            rule = {"ra": "0 <= ra < 360 deg", "dec": "-90 <= dec <= 90 deg",
                    "radius": f"0 < radius <= {MAX_RADIUS_ARCSEC:g} arcsec"}[name]
            raise WatchlistInputError(f"entry {bad[0]}: {name}={values[bad[0]]!r} is outside {rule}")
    long_ids = np.flatnonzero(np.char.str_len(ids) > MAX_ID_CHARS) if len(ids) else []
    if len(long_ids):
        raise WatchlistInputError(f"entry {long_ids[0]}: id longer than {MAX_ID_CHARS} characters")
    return ParsedWatchlist(ra, dec, radius, ids, fmt)


def _from_table(table: Any, fmt: str, default_radius_arcsec: float, max_entries: int) -> ParsedWatchlist:
    cols: dict[str, str] = {}
    for c in table.colnames:
        role = _COLUMNS.get(c.strip().lower())
        if role is None:
            raise WatchlistInputError(f"unknown column {c!r} (columns: ra, dec [deg], radius [arcsec], id)")
        if role in cols:
            raise WatchlistInputError(f"column {c!r}: {role} given twice")
        cols[role] = c
    if "ra" not in cols or "dec" not in cols:
        raise WatchlistInputError(f"needs ra and dec columns, has {list(table.colnames)}")
    n = len(table)
    if n > max_entries:
        raise WatchlistInputError(f"{n:,} entries; a watchlist holds at most {max_entries:,}")

    def numbers(role: str) -> np.ndarray:
        column = table[cols[role]]
        mask = np.asarray(getattr(column, "mask", np.zeros(n, bool)), bool).reshape(-1)
        if mask.any():
            raise WatchlistInputError(f"entry {int(np.flatnonzero(mask)[0])}: {role} is empty")
        try:
            return np.asarray(column, np.float64)
        except (TypeError, ValueError) as exc:
            raise WatchlistInputError(f"column {cols[role]!r}: not a number ({str(exc)[:80]})") from exc

    radius = numbers("radius") if "radius" in cols else np.full(n, default_radius_arcsec)
    ids = (np.asarray(table[cols["id"]].filled("") if hasattr(table[cols["id"]], "filled") else table[cols["id"]],
                      dtype=str) if "id" in cols else np.full(n, "", dtype=str))
    return check_entries(numbers("ra"), numbers("dec"), radius, ids, fmt, max_entries)


def parse_watchlist(data: bytes, content_type: str, *, default_radius_arcsec: float = 1.0,
                    max_entries: int = MAX_WATCHLIST_ENTRIES) -> ParsedWatchlist:
    """Check and parse an uploaded watchlist.

    Parameters
    ----------
    data : bytes
        The upload.
    content_type : str
        ``text/csv`` (header ``ra,dec[,radius][,id]``) or ``application/x-votable+xml`` (a
        VOTable with those columns). JSON uploads are validated by the API's model
        (:class:`~alertprod.api.models.WatchlistUpload`) and checked with :func:`check_entries`.
    default_radius_arcsec : float, keyword-only
        Radius of entries without one, arcsec.
    max_entries : int, keyword-only
        Most entries accepted.

    Raises
    ------
    WatchlistInputError
        Anything malformed or out of range, naming the column or the 0-based entry.
    """
    kind = (content_type or "").split(";")[0].strip().lower()
    from astropy.table import Table

    if kind in ("text/csv", "text/plain"):
        fmt, reader = "csv", "ascii.csv"
    elif kind in ("application/x-votable+xml", "application/xml", "text/xml"):
        fmt, reader = "votable", "votable"
    else:
        raise WatchlistInputError(f"Content-Type {kind!r}: send text/csv or application/x-votable+xml")
    try:
        table = Table.read(io.BytesIO(data) if fmt == "votable" else data.decode("utf-8"), format=reader)
    except UnicodeDecodeError as exc:
        raise WatchlistInputError("the CSV is not UTF-8 text") from exc
    except Exception as exc:  # astropy's readers raise many kinds; all mean "unreadable"
        raise WatchlistInputError(f"not a readable {fmt.upper()} table ({str(exc)[:160]})") from exc
    return _from_table(table, fmt, default_radius_arcsec, max_entries)


def referenced_watchlists(expression: str) -> set[str]:
    """Names of the watchlists an expression references (``in_watchlist('name')``); {} if it does not parse."""
    try:
        root = parse_filter(expression).root
    except AlertprodError:
        return set()
    names, stack = set(), [root]
    while stack:
        node = stack.pop()
        stack.extend(children(node))
        if isinstance(node, Call) and node.name == "in_watchlist" and node.args:
            value = getattr(node.args[0], "value", None)
            if isinstance(value, str):
                names.add(value)
    return names


class WatchlistLibrary:
    """Users' watchlists: records in the service store, entries in the object store.

    Parameters
    ----------
    store : ServiceStore
        Keeps the :class:`WatchlistRecord` of each (user, name).
    blobs : BlobStore
        Keeps the entries (under ``prefix``).
    prefix : str, keyword-only
        Object key prefix.
    cache_entries : int, keyword-only
        Entries kept loaded across all cached watchlists (least recently used dropped first).
    presign : callable, keyword-only, optional
        ``presign(key, expires_s) -> URL`` a client may PUT an object to (S3's pre-signed
        ``put_object``): uploads larger than an API request. None: not offered.
    """

    def __init__(self, store: ServiceStore, blobs: BlobStore, *, prefix: str = "watchlists/",
                 cache_entries: int = 4 * MAX_WATCHLIST_ENTRIES,
                 presign: Callable[[str, int], str] | None = None):
        self.store, self.blobs, self.prefix, self.presign = store, blobs, prefix, presign
        self.cache_entries = cache_entries
        self._cache: OrderedDict[str, Watchlist] = OrderedDict()
        self._lock = threading.Lock()

    def put(self, user_id: str, name: str, parsed: ParsedWatchlist, now_unix: float) -> WatchlistRecord:
        """Store (or replace) the user's watchlist ``name``; returns its record."""
        if not WATCHLIST_NAME.fullmatch(name):
            raise WatchlistInputError(f"name {name[:70]!r}: letters, digits, _ . - (1 to 64)")
        buffer = io.BytesIO()
        np.savez_compressed(buffer, ra=parsed.ra, dec=parsed.dec, radius=parsed.radius, ids=parsed.ids)
        data = buffer.getvalue()
        digest = hashlib.sha256(data).hexdigest()
        key = f"{self.prefix}{quote(user_id, safe='')}/{name}/{digest[:32]}.npz"
        old = self.store.get_watchlist(user_id, name)
        self.blobs.put(key, data, content_type="application/octet-stream")
        record = WatchlistRecord(user_id, name, len(parsed.ra), float(parsed.radius.max()), digest, key,
                                 parsed.source_format, old.created_unix if old else now_unix, now_unix)
        self.store.put_watchlist(record)
        if old is not None and old.blob_key != key:
            self.blobs.delete(old.blob_key)
        return record

    def upload_key(self, user_id: str, name: str, upload_id: str) -> str:
        """Where a pre-signed upload lands (``{prefix}incoming/``: expired by the bucket's lifecycle)."""
        return f"{self.prefix}incoming/{quote(user_id, safe='')}/{name}/{upload_id}"

    def upload_url(self, user_id: str, name: str, expires_s: int) -> tuple[str, str]:
        """A new upload: ``(upload_id, URL to PUT the file to)``; None-presign raises."""
        if self.presign is None:
            raise WatchlistInputError("uploads by URL are not offered on this deployment")
        upload_id = secrets.token_hex(16)
        return upload_id, self.presign(self.upload_key(user_id, name, upload_id), int(expires_s))

    def take_upload(self, user_id: str, name: str, upload_id: str, *, max_bytes: int) -> bytes:
        """The bytes of a finished upload (then removed).

        Raises
        ------
        WatchlistInputError
            No such upload (or not uploaded yet), or larger than ``max_bytes`` ("at most").
        """
        if not re.fullmatch(r"[0-9a-f]{32}", upload_id or ""):
            raise WatchlistInputError("upload_id: not an upload id")
        key = self.upload_key(user_id, name, upload_id)
        try:
            size = self.blobs.size(key)
        except NotFoundError as exc:
            raise WatchlistInputError(f"no upload {upload_id} for watchlist {name!r}: PUT the file "
                                      "to the upload URL first") from exc
        if size > max_bytes:
            self.blobs.delete(key)
            raise WatchlistInputError(f"the upload is {size:,} bytes; a watchlist file holds at most {max_bytes:,}")
        data = self.blobs.get(key)
        self.blobs.delete(key)
        return data

    def delete(self, record: WatchlistRecord) -> None:
        """Forget a watchlist and its entries."""
        self.store.delete_watchlist(record.user_id, record.name)
        self.blobs.delete(record.blob_key)

    def load(self, record: WatchlistRecord) -> Watchlist:
        """The :class:`Watchlist` of a record (built once per content hash)."""
        with self._lock:
            if record.sha256 in self._cache:
                self._cache.move_to_end(record.sha256)
                return self._cache[record.sha256]
        with np.load(io.BytesIO(self.blobs.get(record.blob_key)), allow_pickle=False) as z:
            ids = z["ids"]
            named = bool(ids.size) and bool(np.char.str_len(ids).any())
            watch = Watchlist(z["ra"], z["dec"], z["radius"], names=ids.tolist() if named else None)
        with self._lock:
            self._cache[record.sha256] = watch
            while sum(len(w) for w in self._cache.values()) > self.cache_entries and len(self._cache) > 1:
                self._cache.popitem(last=False)
        return watch

    def entries(self, record: WatchlistRecord) -> dict[str, list]:
        """The stored entries as columns (``ra``, ``dec``, ``radius``, ``id``)."""
        w = self.load(record)
        return {"ra": w.ra_deg.tolist(), "dec": w.dec_deg.tolist(), "radius": w.radius_arcsec.tolist(),
                "id": list(w.names) if w.names is not None else [""] * len(w)}

    def resolver(self, *, ttl_s: float = 30.0,
                 clock: Callable[[], float] | None = None) -> Callable[[str, set[str]], Mapping[str, Watchlist]]:
        """``resolve(user_id, names) -> {name: Watchlist}`` of the user's watchlists among ``names``.

        Records are re-read at most every ``ttl_s`` seconds per (user, name), so a replaced list
        reaches running filters within that time; names the user has no watchlist for are left out.
        """
        import time

        clock = clock or time.time
        seen: dict[tuple[str, str], tuple[float, WatchlistRecord | None]] = {}

        def resolve(user_id: str, names: set[str]) -> Mapping[str, Watchlist]:
            out = {}
            for name in sorted(names):
                now = clock()
                hit = seen.get((user_id, name))
                if hit is None or now - hit[0] >= ttl_s:
                    hit = (now, self.store.get_watchlist(user_id, name))
                    seen[(user_id, name)] = hit
                if hit[1] is not None:
                    out[name] = self.load(hit[1])
            return out

        return resolve

"""The Level 1 database in process memory: :class:`MemoryApdb`.

Same observable behaviour as :class:`~alertprod.apdb.dynamodb.DynamoApdb` (the contract suite
in ``tests/contract/`` runs on both), in milliseconds and without moto: pipeline and precovery
tests use it. Rows are kept packed (the DynamoDB backend's row codec), so what a caller
passes in or gets back never aliases the store; requests are charged as DynamoDB's would be
(:mod:`alertprod.apdb.memory._state`).
"""

from __future__ import annotations

import hashlib
import math
import zlib
from collections.abc import Sequence

import numpy as np
from astropy.table import Table

from alertprod.apdb._archiveindex import (
    ARCHIVE_INDEX_ORDER,
    archive_attribute,
    archive_days,
    archive_entry,
    archive_table,
    check_pixels,
)
from alertprod.apdb._codec import pack_rows, unpack_rows
from alertprod.apdb._layout import (
    INDEX_ORDER,
    ORBIT_CHUNK_BYTES,
    as_ids,
    check_unit_key,
    exposure_entry,
    history_span,
    history_window,
    item_size_bytes,
    matching_exposures,
    new_objects_table,
    run_id_chunks,
)
from alertprod.apdb._ssobs import apply_observations, observation_entries
from alertprod.apdb.export import sort_export
from alertprod.apdb.interface import (
    Apdb,
    PrecoveryRun,
    StorageMetrics,
    check_night_mjd,
    check_run_id,
)
from alertprod.apdb.memory._ccd import CcdWriter
from alertprod.apdb.memory._state import QUERY_PAGE_BYTES, MemoryStore, Run
from alertprod.errors import NotFoundError
from alertprod.ids import time_bucket
from alertprod.pixelization import pixel_of, pixels_covering

__all__ = ["MemoryApdb"]


class MemoryApdb(CcdWriter, Apdb):
    """The APDB in memory, thread-safe (one lock per :class:`MemoryStore`).

    Parameters
    ----------
    store : MemoryStore, optional
        The storage (shared with a ledger and lease manager by
        :func:`~alertprod.apdb.memory.memory_level1`); a new one by default.
    metrics : StorageMetrics, keyword-only, optional
        The metrics hook; requests are counted as DynamoDB's backend would send them.

    Attributes
    ----------
    store : MemoryStore
        The storage.
    metrics : StorageMetrics
        Every modelled request of this object.
    """

    def __init__(self, store: MemoryStore | None = None, *,
                 metrics: StorageMetrics | None = None):
        super().__init__(store, metrics=metrics)
        self._orbit_cache: tuple[str, bytes] | None = None

    # -- DiaObjects ---------------------------------------------------------------------------
    def get_dia_objects(self, pixels: Sequence[int] | np.ndarray) -> Table:
        wanted = set(as_ids(pixels, "pixels"))
        self._requests("batch_get_item", len(wanted))
        with self.store.lock:
            ids = sorted(set().union(*(self.store.pixels.get(p, set()) for p in wanted)))
        self._requests("batch_get_item", len(ids))
        with self.store.lock:
            lasts = [self.store.last.get(i) for i in ids]
        return unpack_rows([la.row for la in lasts if la is not None and la.pix in wanted],
                           "DiaObject")

    def get_dia_objects_by_id(self, ids: Sequence[int] | np.ndarray) -> Table:
        wanted = as_ids(ids, "ids")
        self._requests("batch_get_item", len(wanted))
        with self.store.lock:
            lasts = [self.store.last.get(i) for i in wanted]
        return unpack_rows([la.row for la in lasts if la is not None], "DiaObject")

    def new_dia_objects(self, mjd_start: float, mjd_end: float) -> Table:
        if not mjd_end >= mjd_start:
            raise ValueError(f"mjd_end: must be >= mjd_start ({mjd_start}), got {mjd_end}")
        days = range(math.floor(mjd_start), math.floor(mjd_end) + 1)
        with self.store.lock:  # one Query per day and per MB of its items (32 B an object)
            sizes = [32 * len(self.store.new_objects.get(d, {})) for d in days]
        for n_bytes in sizes:
            for _ in range(max(1, math.ceil(n_bytes / QUERY_PAGE_BYTES))):
                self._request("query")
        with self.store.lock:
            rows = [(oid, ra, dec, t) for d in days
                    for oid, (ra, dec, t) in self.store.new_objects.get(d, {}).items()
                    if mjd_start <= t < mjd_end]
        return new_objects_table(rows)

    def claim_new_dia_objects(self, run_id: str, mjd_start: float, mjd_end: float) -> Table:
        check_run_id(run_id)
        with self.store.lock:  # the read and the claims at once (DynamoDB: query, then marks)
            new = self.new_dia_objects(mjd_start, mjd_end)
            claims = self.store.new_object_claims
            ids = [int(i) for i in new["diaObjectId"]]
            mine = np.asarray([claims.get(i, run_id) == run_id for i in ids], bool)
            fresh = [i for i, m in zip(ids, mine, strict=True) if m and i not in claims]
            for _ in range(0, len(fresh), 25):
                self._request("batch_write_item")
            claims.update((i, run_id) for i in fresh)
        return new[mine] if len(new) else new

    # -- history ------------------------------------------------------------------------------
    def _history(self, object_ids, visit_time_mjd_tai: float, months: int,
                 kind: str) -> tuple[dict[str, list[bytes]], float, float]:
        ids = as_ids(object_ids, "object_ids")
        start, t, buckets = history_span(visit_time_mjd_tai, months)
        first, last = buckets[0], buckets[-1]
        self._requests("batch_get_item", len(ids) * len(buckets))
        with self.store.lock:  # items that filled up list their hour parts: a second read
            n_parts = sum(len(self.store.history_parts.get(((kind, oid), b), ()))
                          for oid in ids for b in buckets)
        if n_parts:
            self._requests("batch_get_item", n_parts)
        rows: dict[str, list[bytes]] = {"s": [], "f": []}
        with self.store.lock:
            for oid in ids:
                for (bucket, prefix, _), row in self.store.history.get((kind, oid), {}).items():
                    if first <= bucket <= last:
                        rows[prefix].append(row)
        return rows, start, t

    def get_dia_history(self, object_ids: Sequence[int] | np.ndarray, visit_time_mjd_tai: float,
                        *, months: int = 12) -> tuple[Table, Table]:
        rows, start, t = self._history(object_ids, visit_time_mjd_tai, months, "obj")
        return (history_window(unpack_rows(rows["s"], "DiaSource"), start, t, "diaObjectId"),
                history_window(unpack_rows(rows["f"], "DiaForcedSource"), start, t, "diaObjectId"))

    def get_ss_sources(self, ss_object_ids: Sequence[int] | np.ndarray, visit_time_mjd_tai: float,
                       *, months: int = 12) -> Table:
        rows, start, t = self._history(ss_object_ids, visit_time_mjd_tai, months, "ss")
        return history_window(unpack_rows(rows["s"], "DiaSource"), start, t, "ssObjectId")

    # -- solar system -------------------------------------------------------------------------
    def get_ss_objects(self, ids: Sequence[int] | np.ndarray | None = None) -> Table:
        if ids is None:
            self._request("scan")
            with self.store.lock:
                found = sorted(self.store.ss_objects.items())
        else:
            wanted = as_ids(ids, "ids")
            self._requests("batch_get_item", len(wanted))
            with self.store.lock:
                found = [(i, self.store.ss_objects[i]) for i in wanted
                         if i in self.store.ss_objects]
        rows = unpack_rows([row for _, row in found], "SSObject")
        if len(rows):
            self._requests("batch_get_item", len(found))
            with self.store.lock:
                sets = {i: list(self.store.ss_observations[i]) for i, _ in found
                        if i in self.store.ss_observations}
            self._spill_reads("ss observations", [i for i, _ in found])
            apply_observations(rows, sets)
        return rows

    def store_ss_objects(self, table: Table) -> None:
        if "ssObjectId" not in table.colnames:
            raise ValueError("table: column 'ssObjectId' is required")
        rows = pack_rows(table, "SSObject")
        ids = np.asarray(table["ssObjectId"], dtype=np.int64).tolist()
        self._requests("batch_write_item", len(rows))
        with self.store.lock:
            self.store.ss_objects.update(zip(ids, rows, strict=True))

    def record_ss_observations(self, dia_sources: Table) -> int:
        entries = observation_entries(dia_sources)
        for oid, obs in entries.items():  # one UpdateItem (ADD to a set) per SSObject
            self._spill_write("ss observations", oid, sum(len(o.encode()) for o in obs))
            with self.store.lock:
                self.store.ss_observations.setdefault(oid, set()).update(obs)
        return len(entries)

    def store_orbit_catalog(self, data: str | bytes, *, night_mjd: int | None = None) -> str:
        night = check_night_mjd(night_mjd)
        raw = data.encode() if isinstance(data, str) else bytes(data)
        version = hashlib.sha256(raw).hexdigest()[:16]
        chunks = math.ceil(len(zlib.compress(raw, 6)) / ORBIT_CHUNK_BYTES)
        self._requests("batch_write_item", chunks)  # chunks first, then the pointer
        self._request("put_item")
        with self.store.lock:
            self.store.orbit_catalogs[version] = raw
            if night is None:
                self.store.orbit_current = (version, chunks)
            else:
                self.store.orbit_nights[night] = (version, chunks)
        return version

    def _orbit_pointer(self, night: int | None) -> tuple[str, int] | None:
        self._request("get_item")
        with self.store.lock:
            return self.store.orbit_current if night is None else self.store.orbit_nights.get(night)

    def get_orbit_catalog_version(self, *, night_mjd: int | None = None) -> str | None:
        current = self._orbit_pointer(check_night_mjd(night_mjd))
        return current[0] if current else None

    def get_orbit_catalog(self, *, night_mjd: int | None = None) -> bytes:
        night = check_night_mjd(night_mjd)
        current = self._orbit_pointer(night)
        if current is None:
            what = "no orbit catalog" if night is None else f"no orbit catalog of night {night}"
            raise NotFoundError(f"{what} is stored")
        if night is None and self._orbit_cache and self._orbit_cache[0] == current[0]:
            return self._orbit_cache[1]
        self._requests("batch_get_item", current[1])
        with self.store.lock:
            raw = self.store.orbit_catalogs[current[0]]
        if night is None:  # the base catalog is kept; a night's is parsed once by its reader
            self._orbit_cache = (current[0], raw)
        return raw

    # -- image-cache index --------------------------------------------------------------------
    def index_exposure(self, visit, detector, band, mjd_tai, corners_radec, kinds) -> None:
        entry = exposure_entry(visit, detector, band, mjd_tai, corners_radec, kinds)
        name = f"e{int(visit)}_{int(detector)}"
        bucket = time_bucket(float(mjd_tai))
        for pixel in pixels_covering(np.asarray(corners_radec, float), order=INDEX_ORDER).tolist():
            # one UpdateItem per pixel of the footprint (three once its item is full)
            self._spill_write("image index", (pixel, bucket), len(name) + len(entry.encode()))
            with self.store.lock:
                self.store.images.setdefault((pixel, bucket), {})[name] = entry

    def find_exposures(self, ra_deg, dec_deg, mjd_start, mjd_end) -> Table:
        if not mjd_end >= mjd_start:
            raise ValueError(f"mjd_end: must be >= mjd_start ({mjd_start}), got {mjd_end}")
        pixel = int(pixel_of(ra_deg, dec_deg, order=INDEX_ORDER))
        buckets = range(time_bucket(float(mjd_start)), time_bucket(float(mjd_end)) + 1)
        self._requests("batch_get_item", len(buckets))
        self._spill_reads("image index", [(pixel, b) for b in buckets])
        with self.store.lock:
            texts = [e for b in buckets for e in self.store.images.get((pixel, b), {}).values()]
        return matching_exposures(texts, ra_deg, dec_deg, mjd_start, mjd_end)

    # -- long-term image archive index --------------------------------------------------------
    def index_archived_exposure(self, visit, detector, kind, band, mjd_tai, corners_radec) -> None:
        name = archive_attribute(visit, detector, kind)
        entry = archive_entry(band, mjd_tai, corners_radec)
        day = int(np.floor(float(mjd_tai)))
        for pixel in pixels_covering(np.asarray(corners_radec, float),
                                     order=ARCHIVE_INDEX_ORDER).tolist():
            # one UpdateItem per cell of the footprint (three once its item is full)
            self._spill_write("archive index", (pixel, day), len(name) + len(entry))
            with self.store.lock:
                self.store.archive.setdefault((pixel, day), {})[name] = entry

    def find_archived_exposures(self, pixels, mjd_start, mjd_end) -> Table:
        cells = check_pixels(pixels)
        days = archive_days(mjd_start, mjd_end)
        self._requests("batch_get_item", len(cells) * len(days))
        self._spill_reads("archive index", [(p, d) for p in cells for d in days])
        with self.store.lock:
            attrs = [dict(self.store.archive[(p, d)]) for p in cells for d in days
                     if (p, d) in self.store.archive]
        return archive_table(attrs, float(mjd_start), float(mjd_end))

    # -- precovery runs ---------------------------------------------------------------------
    # Modelled on DynamoDB's layout (apdb.dynamodb._runs): a small run record with a counter,
    # one marker per completed unit, the object ids in chunks; the same requests are charged.
    def start_precovery_run(self, run_id: str, *, n_units: int, object_ids: np.ndarray,
                            validity_start_mjd_tai: float) -> None:
        digest, chunks = run_id_chunks(object_ids)
        self._request("get_item")
        for k, chunk in enumerate(chunks):
            self._check_item_size("precovery run object ids",
                                  item_size_bytes(f"PRECOVERY#{run_id}", f"O#{digest}#{k:05d}",
                                                  {"data": chunk}))
        self._requests("batch_write_item", len(chunks))
        self._request("update_item")
        with self.store.lock:
            run = self.store.runs.setdefault(run_id, Run())
            run.expected, run.objects = int(n_units), b"".join(chunks)
            run.ids_digest, run.id_chunks = digest, len(chunks)
            run.validity_start = float(validity_start_mjd_tai)

    def complete_precovery_unit(self, run_id: str, unit_key: str) -> bool:
        key = check_unit_key(unit_key)
        # one transaction: Put the unit's marker if absent, ADD 1 to the run's counter
        self._request("transact_write_items", 2)
        with self.store.lock:
            run = self.store.runs.get(run_id)
            if run is None or run.expected is None:
                raise NotFoundError(f"precovery run {run_id!r} was never started")
            if key not in run.units:
                self._check_item_size("precovery unit marker",
                                      item_size_bytes(f"PRECOVERY#{run_id}", f"U#{key}", {}))
                run.units.add(key)
                run.n += 1
        return self._win_finalization(run_id)

    def _win_finalization(self, run_id: str) -> bool:
        """Set the run's flag if its counter is complete and the flag is free: True for the one
        caller who sets it (a read, then a conditional update only when it can succeed)."""
        self._request("get_item")
        with self.store.lock:
            run = self.store.runs[run_id]
            if run.finalized or run.n < (run.expected or 0):
                return False
        self._request("update_item")
        with self.store.lock:
            won = not run.finalized and run.n >= (run.expected or 0)
            run.finalized = run.finalized or won
        return won

    def get_precovery_run(self, run_id: str) -> PrecoveryRun | None:
        self._request("get_item")
        with self.store.lock:
            run = self.store.runs.get(run_id)
            if run is None or run.expected is None:
                return None
            done = frozenset(run.units)
            record = (run.expected, run.objects, run.id_chunks, run.validity_start, run.finalized)
        marker_bytes = sum(len(f"PRECOVERY#{run_id}U#{k}".encode()) + 4 for k in done)
        for _ in range(max(1, -(-marker_bytes // QUERY_PAGE_BYTES))):
            self._request("query")  # one page per MB of markers
        if record[2]:
            self._requests("batch_get_item", record[2])
        return PrecoveryRun(run_id=run_id, expected_units=record[0], done_units=done,
                            object_ids=np.frombuffer(record[1], dtype=np.int64).copy(),
                            validity_start_mjd_tai=record[3], finalized=record[4])

    # -- export -------------------------------------------------------------------------------
    def export(self) -> dict[str, Table]:
        self._request("scan")
        with self.store.lock:
            last = [la.row for la in self.store.last.values()]
            versions = [v for vs in self.store.versions.values() for v in vs.values()]
            rows = [(k[1], row) for h in self.store.history.values() for k, row in h.items()]
            ss = list(self.store.ss_objects.values())
            obs = {i: list(s) for i, s in self.store.ss_observations.items()}
        history = unpack_rows([v.row for v in versions], "DiaObject")
        history["validityEndMjdTai"] = np.asarray(
            [np.nan if v.end is None else v.end for v in versions],
            dtype=history["validityEndMjdTai"].dtype)
        return sort_export({
            "DiaObject": unpack_rows(last, "DiaObject"), "DiaObjectHistory": history,
            "DiaSource": unpack_rows([r for p, r in rows if p == "s"], "DiaSource"),
            "DiaForcedSource": unpack_rows([r for p, r in rows if p == "f"], "DiaForcedSource"),
            "SSObject": apply_observations(unpack_rows(ss, "SSObject"), obs)})

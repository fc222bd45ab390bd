"""The Level 1 database on one DynamoDB table (``pk`` S / ``sk`` S), by key lookups only.

:class:`DynamoApdb` implements :class:`alertprod.apdb.interface.Apdb` on an injected low-level
DynamoDB client. Reads are strongly consistent BatchGetItem calls on keys computed from pixels,
object ids and 30-day buckets (``_keys``); writes are fenced, idempotent TransactWriteItems
(``_store``). Only :meth:`DynamoApdb.export` and
``get_ss_objects()`` without ids Scan. See docs/apdb.md for the design and request counts.
"""

from __future__ import annotations

import hashlib
import zlib
from collections.abc import Sequence
from typing import Any

import numpy as np
from astropy.table import Table

from alertprod.apdb._codec import pack_rows, unpack_rows
from alertprod.apdb._layout import (
    ORBIT_CHUNK_BYTES,
    as_ids,
    history_span,
    history_window,
    new_objects_table,
    unpack_new_objects,
)
from alertprod.apdb._ssobs import apply_observations
from alertprod.apdb.coordination import Lease
from alertprod.apdb.dynamodb import _archiveindex, _runs
from alertprod.apdb.dynamodb import _keys as keys
from alertprod.apdb.dynamodb._calls import (
    InstrumentedClient,
    batch_get,
    batch_write,
    num,
    query_all,
    scan_all,
)
from alertprod.apdb.dynamodb._export import export_tables
from alertprod.apdb.dynamodb._imageindex import find_exposures, index_exposure
from alertprod.apdb.dynamodb._leases import fence_checks
from alertprod.apdb.dynamodb._newobjects import claim_new_objects
from alertprod.apdb.dynamodb._ssobs import observation_sets, record_observations
from alertprod.apdb.dynamodb._store import ccd_tag, store_ccd, unpack_new_object
from alertprod.apdb.interface import (
    Apdb,
    CcdWrites,
    PrecoveryRun,
    StorageMetrics,
    StoreStats,
    check_night_mjd,
    check_run_id,
)
from alertprod.errors import NotFoundError

__all__ = ["DynamoApdb", "NIGHT_CATALOG_TTL_DAYS"]

#: Days after its night that a night's refreshed orbit catalog expires (DynamoDB TTL).
NIGHT_CATALOG_TTL_DAYS = 14
_UNIX_EPOCH_MJD = 40587


def _rows_of(items: list[dict], prefix: str) -> list[bytes]:
    """Packed rows in the attributes ``<prefix><digits>`` of history items and their parts
    (a row re-sent after its item filled up may be in both: it is kept once)."""
    out: dict[str, bytes] = {}
    for item in items:
        for attr, value in item.items():
            if attr[0] == prefix and attr[1:].isdigit():
                out[attr] = value["B"]
    return list(out.values())


class DynamoApdb(Apdb):
    """The APDB on one DynamoDB table.

    Parameters
    ----------
    client : botocore client
        Low-level DynamoDB client, injected (wrapped in an ``InstrumentedClient`` that
        reports to ``metrics`` unless it already is one).
    table_name : str
        The Level 1 table (``Level1Table`` in the template).
    metrics : StorageMetrics, keyword-only, optional
        The metrics hook (shared with the ledger and leases by :func:`dynamo_level1`).

    Attributes
    ----------
    metrics : StorageMetrics
        Every request this object sends.
    """

    def __init__(self, client: Any, table_name: str, *, metrics: StorageMetrics | None = None):
        if not table_name:
            raise ValueError("table_name: must be a non-empty string")
        if not isinstance(client, InstrumentedClient):
            client = InstrumentedClient(client, metrics)
        self._client = client
        self._table = table_name
        self.metrics = client.metrics
        self._orbit_cache: tuple[str, bytes] | None = None

    # -- DiaObjects ---------------------------------------------------------------------------
    def _last_items(self, ids: list[int]) -> list[dict]:
        # Only the two attributes needed: moto's response serialiser costs per attribute,
        # and on AWS a projection trims the bytes on the wire (not the read units).
        return batch_get(self._client, self._table, [keys.obj_last(i) for i in ids],
                         projection="#row, pix", names={"#row": "row"})

    def get_dia_objects(self, pixels: Sequence[int] | np.ndarray) -> Table:
        wanted = set(as_ids(pixels, "pixels"))
        index = batch_get(self._client, self._table, [keys.pixel_index(p) for p in wanted])
        ids = sorted({int(i) for item in index for i in item.get("ids", {}).get("NS", [])})
        items = [i for i in self._last_items(ids) if int(i["pix"]["N"]) in wanted]
        return self._objects_table(items)

    def get_dia_objects_by_id(self, ids: Sequence[int] | np.ndarray) -> Table:
        return self._objects_table(self._last_items(as_ids(ids, "ids")))

    @staticmethod
    def _objects_table(items: list[dict]) -> Table:
        table = unpack_rows([i["row"]["B"] for i in items], "DiaObject")
        if len(table):
            table.sort("diaObjectId")
        return table

    # -- history ------------------------------------------------------------------------------
    def get_dia_history(self, object_ids: Sequence[int] | np.ndarray, visit_time_mjd_tai: float,
                        *, months: int = 12) -> tuple[Table, Table]:
        """DiaSources and DiaForcedSources of the objects, fetched together (one set of calls).

        Returns
        -------
        (Table, Table)
            DiaSource and DiaForcedSource rows with ``midpointMjdTai`` in
            [t − 30·months d, t), sorted by object then time.
        """
        items, start, t = self._history_items(object_ids, visit_time_mjd_tai, months, ss=False)
        return (history_window(unpack_rows(_rows_of(items, "s"), "DiaSource"), start, t, "diaObjectId"),
                history_window(unpack_rows(_rows_of(items, "f"), "DiaForcedSource"), start, t,
                        "diaObjectId"))

    def get_ss_sources(self, ss_object_ids: Sequence[int] | np.ndarray, visit_time_mjd_tai: float,
                       *, months: int = 12) -> Table:
        items, start, t = self._history_items(ss_object_ids, visit_time_mjd_tai, months, ss=True)
        return history_window(unpack_rows(_rows_of(items, "s"), "DiaSource"), start, t, "ssObjectId")

    def _history_items(self, object_ids: Any, visit_time_mjd_tai: float, months: int, *,
                       ss: bool) -> tuple[list[dict], float, float]:
        ids = as_ids(object_ids, "object_ids")
        start, t, buckets = history_span(visit_time_mjd_tai, months)
        items = batch_get(self._client, self._table,
                          [keys.history(i, b, ss=ss) for i in ids for b in buckets])
        parts = [keys.part(keys.key(i["pk"]["S"], i["sk"]["S"]), int(p))
                 for i in items for p in i.get("parts", {}).get("NS", [])]
        if parts:  # items that filled up list their hour parts
            items += batch_get(self._client, self._table, parts)
        return items, start, t

    # -- writes -------------------------------------------------------------------------------
    def _write_ccd(self, writes: CcdWrites, lease: Lease | None, stats: StoreStats) -> None:
        fence = fence_checks(lease, self._table) if lease is not None else []
        store_ccd(self._client, self._table, writes, fence, stats)

    def load_dia_objects(self, objects: Table) -> int:
        """Bulk-load first versions of DiaObjects into an idle database (seeding, migration).

        Uses BatchWriteItem (25 items per request) and one ``ADD`` per pixel: no transactions,
        no conditions, no fencing — never while CCDs are being processed. ``objects`` must
        carry ``validityStartMjdTai``. Returns the number of requests sent.
        """
        from alertprod.pixelization import pixel_of

        if len(objects) == 0:
            return 0
        rows = pack_rows(objects, "DiaObject")
        ids = np.asarray(objects["diaObjectId"], np.int64).tolist()
        starts = np.asarray(objects["validityStartMjdTai"], float).tolist()
        pix = np.asarray(pixel_of(np.asarray(objects["ra"], float),
                                  np.asarray(objects["dec"], float))).tolist()
        tag = {"S": ccd_tag(0, 0)}
        puts = []
        for oid, row, t, p in zip(ids, rows, starts, pix, strict=True):
            common = {"v": num(t), "ccd": tag, "id": num(oid), "row": {"B": row}}
            puts.append({**keys.obj_last(oid), **common, "pix": num(int(p))})
            puts.append({**keys.obj_version(oid, t), **common})
        sent = batch_write(self._client, self._table, puts=puts)
        by_pixel: dict[int, list[int]] = {}
        for oid, p in zip(ids, pix, strict=True):
            by_pixel.setdefault(int(p), []).append(oid)
        for p, members in by_pixel.items():
            self._client.update_item(TableName=self._table, Key=keys.pixel_index(p),
                                    UpdateExpression="ADD #ids :ids",
                                    ExpressionAttributeNames={"#ids": "ids"},
                                    ExpressionAttributeValues={":ids": {"NS": [str(i) for i in
                                                                               members]}})
        return sent + len(by_pixel)

    def new_dia_objects(self, mjd_start: float, mjd_end: float) -> Table:
        if not mjd_end >= mjd_start:
            raise ValueError(f"mjd_end: must be >= mjd_start ({mjd_start}), got {mjd_end}")
        # One Query per day reads both layouts: the per-CCD items (C#...) and the shards
        # (S#...) written inside the transactions before them.
        found: dict[int, tuple[int, float, float, float]] = {}
        for d in range(int(np.floor(mjd_start)), int(np.floor(mjd_end)) + 1):
            for item in query_all(self._client, self._table, keys.new_objects_partition(d), "",
                                  projection=None):
                for attr, value in item.items():
                    if attr == "objs":
                        found.update((r[0], r) for r in unpack_new_objects(value["B"]))
                    elif attr[0] == "o" and attr[1:].isdigit():
                        found[int(attr[1:])] = (int(attr[1:]), *unpack_new_object(value["B"]))
        return new_objects_table([r for r in found.values() if mjd_start <= r[3] < mjd_end])

    def claim_new_dia_objects(self, run_id: str, mjd_start: float, mjd_end: float) -> Table:
        check_run_id(run_id)
        if not mjd_end >= mjd_start:
            raise ValueError(f"mjd_end: must be >= mjd_start ({mjd_start}), got {mjd_end}")
        return claim_new_objects(self._client, self._table, run_id, mjd_start, mjd_end)

    # -- solar system -------------------------------------------------------------------------
    def store_ss_objects(self, table: Table) -> None:
        if "ssObjectId" not in table.colnames:
            raise ValueError("table: column 'ssObjectId' is required")
        rows = pack_rows(table, "SSObject")
        ids = np.asarray(table["ssObjectId"], dtype=np.int64).tolist()
        batch_write(self._client, self._table,
                    puts=[{**keys.ss_object(i), "row": {"B": r}} for i, r in zip(ids, rows, strict=True)])

    def get_ss_objects(self, ids: Sequence[int] | np.ndarray | None = None) -> Table:
        if ids is None:
            items = [i for i in scan_all(self._client, self._table)
                     if i["pk"]["S"].startswith("SSOBJ#")]
        else:
            items = batch_get(self._client, self._table,
                              [keys.ss_object(i) for i in as_ids(ids, "ids")])
        items = [i for i in items if i["sk"]["S"] == "ROW"]
        items.sort(key=lambda i: int(i["pk"]["S"][6:]))
        rows = unpack_rows([i["row"]["B"] for i in items], "SSObject")
        if len(rows):
            ids_ = np.asarray(rows["ssObjectId"], np.int64).tolist()
            apply_observations(rows, observation_sets(self._client, self._table, ids_))
        return rows

    def record_ss_observations(self, dia_sources: Table) -> int:
        return record_observations(self._client, self._table, dia_sources)

    def store_orbit_catalog(self, data: str | bytes, *, night_mjd: int | None = None) -> str:
        night = check_night_mjd(night_mjd)
        raw = data.encode() if isinstance(data, str) else bytes(data)
        version = hashlib.sha256(raw).hexdigest()[:16]
        packed = zlib.compress(raw, 6)
        chunks = [packed[i:i + ORBIT_CHUNK_BYTES] for i in range(0, len(packed), ORBIT_CHUNK_BYTES)]
        if night is None:
            pointer, chunk_key, expiry = keys.orbit_pointer(), keys.orbit_chunk, {}
        else:  # a night's catalog expires (TTL) NIGHT_CATALOG_TTL_DAYS after its night
            pointer, chunk_key = keys.orbit_night_pointer(night), keys.orbit_night_chunk
            expiry = {"ttl": num(int((night + 1 + NIGHT_CATALOG_TTL_DAYS - _UNIX_EPOCH_MJD) * 86400))}
        # Chunks first, then the pointer: a reader never sees a half-written version.
        batch_write(self._client, self._table,
                    puts=[{**chunk_key(version, i), "data": {"B": c}, **expiry}
                          for i, c in enumerate(chunks)])
        self._client.put_item(TableName=self._table, Item={
            **pointer, "version": {"S": version}, "chunks": num(len(chunks)),
            "bytes": num(len(raw)), **expiry})
        return version

    def _orbit_pointer(self, night: int | None) -> dict | None:
        pointer = keys.orbit_pointer() if night is None else keys.orbit_night_pointer(night)
        return self._client.get_item(TableName=self._table, Key=pointer,
                                     ConsistentRead=True).get("Item")

    def get_orbit_catalog_version(self, *, night_mjd: int | None = None) -> str | None:
        item = self._orbit_pointer(check_night_mjd(night_mjd))
        return item["version"]["S"] if item else None

    def get_orbit_catalog(self, *, night_mjd: int | None = None) -> bytes:
        night = check_night_mjd(night_mjd)
        item = self._orbit_pointer(night)
        if not item:
            what = "no orbit catalog" if night is None else f"no orbit catalog of night {night}"
            raise NotFoundError(f"{what} is stored")
        version = item["version"]["S"]
        if night is None and self._orbit_cache and self._orbit_cache[0] == version:
            return self._orbit_cache[1]
        chunk_key = keys.orbit_chunk if night is None else keys.orbit_night_chunk
        wanted = [chunk_key(version, i) for i in range(int(item["chunks"]["N"]))]
        found = batch_get(self._client, self._table, wanted)
        by_key = {keys.split_key(i): i["data"]["B"] for i in found}
        try:
            packed = b"".join(by_key[keys.split_key(k)] for k in wanted)
        except KeyError as exc:
            raise NotFoundError(f"orbit catalog {version}: chunk missing") from exc
        raw = zlib.decompress(packed)
        if night is None:  # the base catalog is kept; a night's is parsed once by its reader
            self._orbit_cache = (version, raw)
        return raw

    # -- image-cache index --------------------------------------------------------------------
    def index_exposure(self, visit, detector, band, mjd_tai, corners_radec, kinds) -> None:
        index_exposure(self._client, self._table, visit, detector, band, mjd_tai,
                       corners_radec, kinds)

    def find_exposures(self, ra_deg, dec_deg, mjd_start, mjd_end) -> Table:
        return find_exposures(self._client, self._table, ra_deg, dec_deg, mjd_start, mjd_end)

    # -- long-term image archive index --------------------------------------------------------
    def index_archived_exposure(self, visit, detector, kind, band, mjd_tai, corners_radec) -> None:
        _archiveindex.index_archived_exposure(self._client, self._table, visit, detector, kind,
                                              band, mjd_tai, corners_radec)

    def find_archived_exposures(self, pixels, mjd_start, mjd_end) -> Table:
        return _archiveindex.find_archived_exposures(self._client, self._table, pixels,
                                                     mjd_start, mjd_end)

    # -- precovery runs ----------------------------------------------------------------------
    def start_precovery_run(self, run_id: str, *, n_units: int, object_ids: np.ndarray,
                            validity_start_mjd_tai: float) -> None:
        _runs.start_run(self._client, self._table, run_id, n_units=n_units, object_ids=object_ids,
                        validity_start_mjd_tai=validity_start_mjd_tai)

    def complete_precovery_unit(self, run_id: str, unit_key: str) -> bool:
        return _runs.complete_unit(self._client, self._table, run_id, unit_key)

    def get_precovery_run(self, run_id: str) -> PrecoveryRun | None:
        return _runs.get_run(self._client, self._table, run_id)

    # -- export -------------------------------------------------------------------------------
    def export(self) -> dict[str, Table]:
        return export_tables(scan_all(self._client, self._table))

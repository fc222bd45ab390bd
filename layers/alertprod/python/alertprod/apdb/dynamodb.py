"""The Level 1 database on one DynamoDB table (``pk`` S / ``sk`` S), by key lookups only.

:class:`DynamoApdb` implements :class:`alertprod.apdb.interface.Apdb` on an injected low-level
DynamoDB client. Reads are strongly consistent BatchGetItem calls on keys computed from pixels,
object ids and 30-day buckets (:mod:`alertprod.apdb.keys`); writes are fenced, idempotent
TransactWriteItems (:mod:`alertprod.apdb.store`). Only :meth:`DynamoApdb.export` and
``get_ss_objects()`` without ids Scan. See docs/apdb.md for the design and request counts.
"""

from __future__ import annotations

import hashlib
import zlib
from collections.abc import Sequence
from typing import Any

import numpy as np
from astropy.table import Table

from alertprod.apdb import keys
from alertprod.apdb.calls import InstrumentedClient, batch_get, batch_write, num, scan_all
from alertprod.apdb.codec import pack_rows, unpack_rows
from alertprod.apdb.imageindex import find_exposures, index_exposure
from alertprod.apdb.interface import Apdb, CcdWrites, StoreStats
from alertprod.apdb.leases import Lease, LeaseManager
from alertprod.apdb.ledger import CcdLedger
from alertprod.apdb.ssobs import apply_observations, observation_sets, record_observations
from alertprod.apdb.store import store_ccd, unpack_new_object
from alertprod.errors import NotFoundError
from alertprod.ids import TIME_BUCKET_DAYS, time_bucket

__all__ = ["DynamoApdb", "ORBIT_CHUNK_BYTES"]

#: Bytes of compressed orbit catalog per item (below the 400 KB item limit).
ORBIT_CHUNK_BYTES = 350_000


def _as_ids(values: Any, name: str) -> list[int]:
    arr = np.atleast_1d(np.asarray(values))
    if arr.size and arr.dtype.kind not in "iu":
        raise TypeError(f"{name}: expected integer ids, got dtype {arr.dtype}")
    return sorted({int(i) for i in arr.tolist()})


def _rows_of(items: list[dict], prefix: str) -> list[bytes]:
    """Packed rows in the attributes ``<prefix><digits>`` of history items."""
    out = []
    for item in items:
        for attr, value in item.items():
            if attr[0] == prefix and attr[1:].isdigit():
                out.append(value["B"])
    return out


class DynamoApdb(Apdb):
    """The APDB on one DynamoDB table.

    Parameters
    ----------
    client : botocore client
        Low-level DynamoDB client, injected (wrapped here in an
        :class:`~alertprod.apdb.calls.InstrumentedClient` unless it already is one).
    table_name : str
        The Level 1 table (``Level1Table`` in the template).

    Attributes
    ----------
    client : InstrumentedClient
        Counts every request this object makes (``client.requests``).
    leases : LeaseManager
        Sky-cell leases in the same table.
    ledger : CcdLedger
        Per-CCD processing records and alert publish marks in the same table.
    """

    def __init__(self, client: Any, table_name: str):
        if not table_name:
            raise ValueError("table_name: must be a non-empty string")
        self.client = client if isinstance(client, InstrumentedClient) else InstrumentedClient(client)
        self.table_name = table_name
        self.leases = LeaseManager(self.client, table_name)
        self.ledger = CcdLedger(self.client, table_name)
        self._orbit_cache: tuple[str, bytes] | None = None

    # -- DiaObjects ---------------------------------------------------------------------------
    def _last_items(self, ids: list[int]) -> list[dict]:
        # Only the two attributes needed: moto's response serialiser costs per attribute,
        # and on AWS a projection trims the bytes on the wire (not the read units).
        return batch_get(self.client, self.table_name, [keys.obj_last(i) for i in ids],
                         projection="#row, pix", names={"#row": "row"})

    def get_dia_objects(self, pixels: Sequence[int] | np.ndarray) -> Table:
        wanted = set(_as_ids(pixels, "pixels"))
        index = batch_get(self.client, self.table_name, [keys.pixel_index(p) for p in wanted])
        ids = sorted({int(i) for item in index for i in item.get("ids", {}).get("NS", [])})
        items = [i for i in self._last_items(ids) if int(i["pix"]["N"]) in wanted]
        return self._objects_table(items)

    def get_dia_objects_by_id(self, ids: Sequence[int] | np.ndarray) -> Table:
        return self._objects_table(self._last_items(_as_ids(ids, "ids")))

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
        ids = _as_ids(object_ids, "object_ids")
        t = float(visit_time_mjd_tai)
        if not np.isfinite(t):
            raise ValueError(f"visit_time_mjd_tai: must be finite, got {t}")
        if months < 0:
            raise ValueError(f"months: must be >= 0, got {months}")
        start = t - TIME_BUCKET_DAYS * months
        buckets = range(time_bucket(start), time_bucket(t) + 1)
        items = batch_get(self.client, self.table_name,
                          [keys.history(i, b) for i in ids for b in buckets])
        out = []
        for prefix, name in (("s", "DiaSource"), ("f", "DiaForcedSource")):
            rows = unpack_rows(_rows_of(items, prefix), name)
            mid = np.asarray(rows["midpointMjdTai"], float)
            rows = rows[(mid >= start) & (mid < t)]
            rows.sort(["diaObjectId", "midpointMjdTai"])
            out.append(rows)
        return out[0], out[1]

    def get_dia_sources(self, object_ids, visit_time_mjd_tai, *, months=12) -> Table:
        return self.get_dia_history(object_ids, visit_time_mjd_tai, months=months)[0]

    def get_dia_forced_sources(self, object_ids, visit_time_mjd_tai, *, months=12) -> Table:
        return self.get_dia_history(object_ids, visit_time_mjd_tai, months=months)[1]

    # -- writes -------------------------------------------------------------------------------
    def store_ccd(self, writes: CcdWrites, *, lease: Lease | None) -> StoreStats:
        if not isinstance(writes, CcdWrites):
            raise TypeError(f"writes: expected CcdWrites, got {type(writes).__name__}")
        before, cap_before = self.client.snapshot(), self.client.capacity_units
        stats = StoreStats()
        fence = lease.fence_checks() if lease is not None else []
        try:
            store_ccd(self.client, self.table_name, writes, fence, stats)
            if writes.ss_objects is not None and len(writes.ss_objects):
                self.store_ss_objects(writes.ss_objects)
        finally:
            after = self.client.snapshot()
            stats.requests = {k: after[k] - before.get(k, 0) for k in after
                              if after[k] != before.get(k, 0)}
            stats.capacity_units = self.client.capacity_units - cap_before
        return stats

    def load_dia_objects(self, objects: Table) -> int:
        """Bulk-load first versions of DiaObjects into an idle database (seeding, migration).

        Uses BatchWriteItem (25 items per request) and one ``ADD`` per pixel: no transactions,
        no conditions, no fencing — never while CCDs are being processed. ``objects`` must
        carry ``validityStartMjdTai``. Returns the number of requests sent.
        """
        from alertprod.apdb.store import ccd_tag
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
        sent = batch_write(self.client, self.table_name, puts=puts)
        by_pixel: dict[int, list[int]] = {}
        for oid, p in zip(ids, pix, strict=True):
            by_pixel.setdefault(int(p), []).append(oid)
        for p, members in by_pixel.items():
            self.client.update_item(TableName=self.table_name, Key=keys.pixel_index(p),
                                    UpdateExpression="ADD #ids :ids",
                                    ExpressionAttributeNames={"#ids": "ids"},
                                    ExpressionAttributeValues={":ids": {"NS": [str(i) for i in
                                                                               members]}})
        return sent + len(by_pixel)

    def new_dia_objects(self, mjd_start: float, mjd_end: float) -> Table:
        if not mjd_end >= mjd_start:
            raise ValueError(f"mjd_end: must be >= mjd_start ({mjd_start}), got {mjd_end}")
        days = range(int(np.floor(mjd_start)), int(np.floor(mjd_end)) + 1)
        items = batch_get(self.client, self.table_name,
                          [keys.new_objects(d, s) for d in days for s in range(keys.NEW_OBJECT_SHARDS)])
        rows = []
        for item in items:
            for attr, value in item.items():
                if attr[0] == "o" and attr[1:].isdigit():
                    ra, dec, t = unpack_new_object(value["B"])
                    if mjd_start <= t < mjd_end:
                        rows.append((int(attr[1:]), ra, dec, t))
        rows.sort()
        out = Table(rows=rows or None, names=["diaObjectId", "ra", "dec", "validityStartMjdTai"],
                    dtype=["i8", "f8", "f8", "f8"])
        out["ra"].unit = out["dec"].unit = "deg"
        return out

    # -- solar system -------------------------------------------------------------------------
    def store_ss_objects(self, table: Table) -> None:
        if "ssObjectId" not in table.colnames:
            raise ValueError("table: column 'ssObjectId' is required")
        rows = pack_rows(table, "SSObject")
        ids = np.asarray(table["ssObjectId"], dtype=np.int64).tolist()
        batch_write(self.client, self.table_name,
                    puts=[{**keys.ss_object(i), "row": {"B": r}} for i, r in zip(ids, rows, strict=True)])

    def get_ss_objects(self, ids: Sequence[int] | np.ndarray | None = None) -> Table:
        if ids is None:
            items = [i for i in scan_all(self.client, self.table_name)
                     if i["pk"]["S"].startswith("SSOBJ#")]
        else:
            items = batch_get(self.client, self.table_name,
                              [keys.ss_object(i) for i in _as_ids(ids, "ids")])
        items = [i for i in items if i["sk"]["S"] == "ROW"]
        items.sort(key=lambda i: int(i["pk"]["S"][6:]))
        rows = unpack_rows([i["row"]["B"] for i in items], "SSObject")
        if len(rows):
            ids_ = np.asarray(rows["ssObjectId"], np.int64).tolist()
            apply_observations(rows, observation_sets(self.client, self.table_name, ids_))
        return rows

    def record_ss_observations(self, dia_sources: Table) -> int:
        """Count a CCD's solar-system DiaSources in their SSObjects (atomic, idempotent; see
        :mod:`alertprod.apdb.ssobs`). Returns the number of SSObjects updated."""
        return record_observations(self.client, self.table_name, dia_sources)

    def store_orbit_catalog(self, data: str | bytes) -> str:
        raw = data.encode() if isinstance(data, str) else bytes(data)
        version = hashlib.sha256(raw).hexdigest()[:16]
        packed = zlib.compress(raw, 6)
        chunks = [packed[i:i + ORBIT_CHUNK_BYTES] for i in range(0, len(packed), ORBIT_CHUNK_BYTES)]
        # Chunks first, then the pointer: a reader never sees a half-written version.
        batch_write(self.client, self.table_name,
                    puts=[{**keys.orbit_chunk(version, i), "data": {"B": c}}
                          for i, c in enumerate(chunks)])
        self.client.put_item(TableName=self.table_name, Item={
            **keys.orbit_pointer(), "version": {"S": version}, "chunks": num(len(chunks)),
            "bytes": num(len(raw))})
        return version

    def get_orbit_catalog_version(self) -> str | None:
        item = self.client.get_item(TableName=self.table_name, Key=keys.orbit_pointer(),
                                    ConsistentRead=True).get("Item")
        return item["version"]["S"] if item else None

    def get_orbit_catalog(self) -> bytes:
        item = self.client.get_item(TableName=self.table_name, Key=keys.orbit_pointer(),
                                    ConsistentRead=True).get("Item")
        if not item:
            raise NotFoundError("no orbit catalog is stored")
        version = item["version"]["S"]
        if self._orbit_cache and self._orbit_cache[0] == version:
            return self._orbit_cache[1]
        n = int(item["chunks"]["N"])
        found = batch_get(self.client, self.table_name, [keys.orbit_chunk(version, i) for i in range(n)])
        by_sk = {i["sk"]["S"]: i["data"]["B"] for i in found}
        try:
            packed = b"".join(by_sk[keys.orbit_chunk(version, i)["sk"]["S"]] for i in range(n))
        except KeyError as exc:
            raise NotFoundError(f"orbit catalog {version}: chunk missing") from exc
        raw = zlib.decompress(packed)
        self._orbit_cache = (version, raw)
        return raw

    # -- image-cache index --------------------------------------------------------------------
    def index_exposure(self, visit, detector, band, mjd_tai, corners_radec, kinds) -> None:
        index_exposure(self.client, self.table_name, visit, detector, band, mjd_tai,
                       corners_radec, kinds)

    def find_exposures(self, ra_deg, dec_deg, mjd_start, mjd_end) -> Table:
        return find_exposures(self.client, self.table_name, ra_deg, dec_deg, mjd_start, mjd_end)

    # -- export -------------------------------------------------------------------------------
    def export(self) -> dict[str, Table]:
        from alertprod.apdb.export import export_tables

        return export_tables(scan_all(self.client, self.table_name))

    def write_export(self, out_dir) -> dict[str, str]:
        """Write :meth:`export` as FITS tables into ``out_dir``; returns name -> path."""
        from alertprod.apdb.export import write_export

        return write_export(self.export(), out_dir)


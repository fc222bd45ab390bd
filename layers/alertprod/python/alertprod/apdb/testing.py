"""Test support for APDB backends: a DynamoDB table on moto's server and synthetic CCD writes.

Like Rubin's ``lsst.dax.apdb.tests``, this ships with the package so that every test (unit,
integration, benchmark) builds the table and the data the same way. The table is created from
``Level1Table`` of the SAM template, so the emulation cannot drift from the infrastructure.
Requires ``moto[server]`` and ``boto3`` (development dependencies).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
from astropy.table import Table

from alertprod.apdb.interface import PREV_VALIDITY_COLUMN, CcdWrites
from alertprod.ids import forced_source_ids

__all__ = ["level1_table_properties", "create_level1_table", "moto_dynamodb", "make_objects",
           "make_sources", "make_forced", "make_ccd_writes", "FailAfter",
           "patch_moto_transactions"]

_PATCHED = False


def patch_moto_transactions() -> None:
    """Make moto's TransactWriteItems cost O(items), not O(items × table size), and isolated.

    moto (5.x) deep-copies the whole table once per item of every transaction to be able to
    roll back: a 100-item transaction on a 5,000-item table takes seconds. This replaces that
    snapshot by a copy-on-write one (the dict structure is copied, and only the items the
    transaction touches are deep-copied), which rolls back identically. Idempotent; affects
    the moto backends of this process only. Written by hand: no moto option does this.
    """
    global _PATCHED
    if _PATCHED:
        return
    import copy
    import threading

    from moto.dynamodb import models as dynamo_models
    from moto.dynamodb.models.dynamo_type import DynamoType
    from moto.dynamodb.models.table import Table as MotoTable

    local = threading.local()
    original = dynamo_models.DynamoDBBackend.transact_write_items

    def snapshot(table: Any) -> Any:
        cache = local.snapshots
        if id(table) in cache:
            return cache[id(table)]
        copied = copy.copy(table)
        copied.items = type(table.items)(dict) if table.has_range_key else {}
        for hk, value in table.items.items():
            copied.items[hk] = dict(value) if table.has_range_key else value
        for table_name, hk, rk in local.touched:
            if table_name != table.name or hk not in table.items:
                continue
            if table.has_range_key:
                if rk in table.items[hk]:
                    copied.items[hk][rk] = copy.deepcopy(table.items[hk][rk])
            else:
                copied.items[hk] = copy.deepcopy(table.items[hk])
        cache[id(table)] = copied
        return copied

    class _Copy:
        @staticmethod
        def deepcopy(obj: Any, memo: Any = None) -> Any:
            if isinstance(obj, MotoTable) and getattr(local, "touched", None) is not None:
                return snapshot(obj)
            return copy.deepcopy(obj, memo)

        def __getattr__(self, name: str) -> Any:
            return getattr(copy, name)

    def transact_write_items(self: Any, transact_items: list[dict[str, Any]]) -> None:
        touched = []
        for entry in transact_items:
            op = next(iter(entry.values()))
            table = self.tables.get(op.get("TableName"))
            if table is None:
                continue
            attrs = op.get("Key") or op.get("Item") or {}
            hk = DynamoType(attrs[table.hash_key_attr]) if table.hash_key_attr in attrs else None
            rk = (DynamoType(attrs[table.range_key_attr])
                  if table.range_key_attr and table.range_key_attr in attrs else None)
            touched.append((table.name, hk, rk))
        local.touched, local.snapshots = touched, {}
        try:
            return original(self, transact_items)
        finally:
            local.touched, local.snapshots = None, {}

    dynamo_models.copy = _Copy()
    dynamo_models.DynamoDBBackend.transact_write_items = transact_write_items
    # moto rolls a cancelled transaction back by restoring the snapshot taken when it began,
    # which would silently undo writes other threads made meanwhile (DynamoDB isolates them).
    # One lock around the item operations of the in-process server restores that isolation.
    lock = threading.RLock()
    for name in ("get_item", "put_item", "update_item", "delete_item", "transact_write_items",
                 "batch_write_item", "transact_get_items", "query", "scan"):
        op = getattr(dynamo_models.DynamoDBBackend, name, None)
        if op is None:
            continue

        def locked(*args: Any, _op: Any = op, **kwargs: Any) -> Any:
            with lock:
                return _op(*args, **kwargs)

        setattr(dynamo_models.DynamoDBBackend, name, locked)
    _PATCHED = True


def level1_table_properties() -> dict[str, Any]:
    """``Properties`` of ``Level1Table`` in the SAM template."""
    from alertprod.local.template import find_template, load_template

    return load_template(find_template())["Resources"]["Level1Table"]["Properties"]


def create_level1_table(client: Any, name: str | None = None) -> str:
    """Create a fresh Level 1 table with the template's keys and TTL; returns its name."""
    props = level1_table_properties()
    name = name or f"level1-{uuid.uuid4().hex[:10]}"
    client.create_table(TableName=name, AttributeDefinitions=props["AttributeDefinitions"],
                        KeySchema=props["KeySchema"],
                        BillingMode=props.get("BillingMode", "PAY_PER_REQUEST"))
    ttl = props.get("TimeToLiveSpecification")
    if ttl:
        client.update_time_to_live(TableName=name, TimeToLiveSpecification={
            "AttributeName": ttl["AttributeName"], "Enabled": True})
    return name


@contextmanager
def moto_dynamodb() -> Iterator[Any]:
    """moto's server on a free local port; yields a low-level DynamoDB client for it."""
    import boto3
    from moto.server import ThreadedMotoServer

    patch_moto_transactions()
    server = ThreadedMotoServer(port=0, ip_address="127.0.0.1", verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        yield boto3.client("dynamodb", endpoint_url=f"http://{host}:{port}",
                           region_name="us-east-1", aws_access_key_id="testing",
                           aws_secret_access_key="testing")
    finally:
        server.stop()


class FailAfter:
    """Client wrapper that raises ``RuntimeError`` on the call after ``n`` calls (a crash)."""

    def __init__(self, client: Any, n: int, *, methods: tuple[str, ...] = ("transact_write_items",)):
        self._client, self.remaining, self._methods = client, n, methods

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._client, name)
        if name not in self._methods:
            return attr

        def call(*args: Any, **kwargs: Any) -> Any:
            if self.remaining <= 0:
                raise RuntimeError(f"injected crash before {name}")
            self.remaining -= 1
            return attr(*args, **kwargs)

        return call


def make_objects(n: int, ra_deg: float, dec_deg: float, radius_deg: float, *, seed: int = 0,
                 first_id: int = 1) -> Table:
    """``n`` DiaObject rows scattered uniformly in a small disc (ids from ``first_id``)."""
    rng = np.random.default_rng(seed)
    r = radius_deg * np.sqrt(rng.uniform(0, 1, n))
    phi = rng.uniform(0, 2 * np.pi, n)
    dec = dec_deg + r * np.sin(phi)
    ra = ra_deg + r * np.cos(phi) / np.cos(np.deg2rad(dec_deg))
    t = Table()
    t["diaObjectId"] = np.arange(first_id, first_id + n, dtype=np.int64)
    t["ra"], t["dec"] = ra, dec
    t["raErr"] = np.full(n, 1e-5, np.float32)
    t["decErr"] = np.full(n, 1e-5, np.float32)
    t["r_psfFluxMean"] = rng.normal(1000, 100, n).astype(np.float32)
    for band in "ugrizy":
        t[f"{band}_psfFluxNdata"] = np.zeros(n, np.int32)
    t["r_psfFluxNdata"] = np.ones(n, np.int32)
    t["nDiaSources"] = np.ones(n, np.int32)
    t[PREV_VALIDITY_COLUMN] = np.full(n, np.nan)
    return t


def make_sources(object_ids: np.ndarray, ra: np.ndarray, dec: np.ndarray, visit: int,
                 detector: int, mjd_tai: float, *, seed: int = 0, first_id: int | None = None,
                 band: str = "r") -> Table:
    """One DiaSource per object at its position, deterministic ids ``visit*10**6 + k``."""
    rng = np.random.default_rng(seed)
    n = len(object_ids)
    start = visit * 10**6 + detector * 10**3 if first_id is None else first_id
    t = Table()
    t["diaSourceId"] = np.arange(start, start + n, dtype=np.int64)
    t["visit"] = np.full(n, visit, np.int64)
    t["detector"] = np.full(n, detector, np.int16)
    t["diaObjectId"] = np.asarray(object_ids, np.int64)
    t["midpointMjdTai"] = np.full(n, mjd_tai)
    t["ra"], t["dec"] = np.asarray(ra, float), np.asarray(dec, float)
    t["x"], t["y"] = rng.uniform(0, 4000, n), rng.uniform(0, 4000, n)
    t["psfFlux"] = rng.normal(1000, 50, n).astype(np.float32)
    t["psfFluxErr"] = np.full(n, 50, np.float32)
    t["snr"] = (t["psfFlux"] / t["psfFluxErr"]).astype(np.float32)
    t["band"] = np.full(n, band, "U1")
    t["psfNdata"] = np.full(n, 25, np.int32)
    t["trailNdata"] = np.zeros(n, np.int32)
    t["dipoleNdata"] = np.zeros(n, np.int32)
    t["timeProcessedMjdTai"] = np.full(n, mjd_tai + 1e-3)
    t["bboxSize"] = np.full(n, 15, np.int64)
    t["isDipole"] = np.zeros(n, bool)
    return t


def make_forced(object_ids: np.ndarray, ra: np.ndarray, dec: np.ndarray, visit: int,
                detector: int, mjd_tai: float, *, band: str = "r") -> Table:
    """One DiaForcedSource per object (ids from :func:`alertprod.ids.forced_source_ids`)."""
    n = len(object_ids)
    t = Table()
    t["diaForcedSourceId"] = forced_source_ids(np.asarray(object_ids), visit, detector)
    t["diaObjectId"] = np.asarray(object_ids, np.int64)
    t["ra"], t["dec"] = np.asarray(ra, float), np.asarray(dec, float)
    t["visit"] = np.full(n, visit, np.int64)
    t["detector"] = np.full(n, detector, np.int16)
    t["psfFlux"] = np.full(n, 10.0, np.float32)
    t["psfFluxErr"] = np.full(n, 50.0, np.float32)
    t["midpointMjdTai"] = np.full(n, mjd_tai)
    t["band"] = np.full(n, band, "U1")
    t["timeProcessedMjdTai"] = np.full(n, mjd_tai + 1e-3)
    return t


def make_ccd_writes(objects: Table, visit: int, detector: int, mjd_tai: float, *,
                    detected: np.ndarray | None = None, new: bool = False,
                    seed: int = 0) -> CcdWrites:
    """A CCD that detects ``objects[detected]`` and force-measures the others.

    With ``new=True`` the detected objects are created (previous version NaN); otherwise each
    gets a new version replacing ``objects["validityStartMjdTai"]``.
    """
    n = len(objects)
    det = np.ones(n, bool) if detected is None else np.asarray(detected, bool)
    obj = objects[det]
    ids = np.asarray(obj["diaObjectId"], np.int64)
    sources = make_sources(ids, obj["ra"], obj["dec"], visit, detector, mjd_tai, seed=seed)
    undet = objects[~det]
    forced = make_forced(np.asarray(undet["diaObjectId"], np.int64), undet["ra"], undet["dec"],
                         visit, detector, mjd_tai)
    versions = obj.copy()
    versions[PREV_VALIDITY_COLUMN] = (np.full(len(obj), np.nan) if new else
                                      np.asarray(obj["validityStartMjdTai"], float))
    versions["validityStartMjdTai"] = mjd_tai
    versions["nDiaSources"] = np.asarray(obj["nDiaSources"]) + (0 if new else 1)
    versions["lastDiaSourceMjdTai"] = mjd_tai
    return CcdWrites(visit=visit, detector=detector, visit_time_mjd_tai=mjd_tai,
                     dia_sources=sources, dia_forced_sources=forced, dia_objects=versions)

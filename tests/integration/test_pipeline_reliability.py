"""Exactly once under crashes, redeliveries and concurrency (on the embedded stack).

- a handler killed at any AWS call of a CCD's processing and then retried ends with no
  duplicate DiaSource, DiaObject version or alert, and nothing missing;
- CCDs of several visits processed concurrently, in shuffled order, with a transient crossing
  the shared CCD edge between visits: exactly one DiaObject per real object, and every
  DiaObject's ``nDiaSources`` equals the DiaSources assigned to it.
"""

from __future__ import annotations

import random
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from ccdsky import SCALE_ARCSEC, CcdSky

from alertprod.apdb import dynamo_level1
from alertprod.aws import AwsClients, Services
from alertprod.local.stack import EmbeddedStack
from alertprod.pipeline.config import PipelineConfig
from alertprod.pipeline.dispatch import handle_upload
from alertprod.pipeline.nightly import NightlyPipeline

pytestmark = [pytest.mark.integration, pytest.mark.slow]


class InjectedCrashError(Exception):
    """The process 'dies' here: this call and every later one fail."""


class Countdown:
    """Counts AWS calls (before and after each) and kills the process at event ``n``."""

    def __init__(self, n: int | None):
        self.n, self.events, self.dead = n, 0, False

    def tick(self):
        if self.dead:
            raise InjectedCrashError("process is dead")
        self.events += 1
        if self.n is not None and self.events >= self.n:
            self.dead = True
            raise InjectedCrashError(f"killed at event {self.events}")


class CrashingClient:
    """A boto3 client whose calls go through a :class:`Countdown` (fault injection, not a mock:
    every call that happens reaches the embedded stack)."""

    _passthrough = {"exceptions", "meta", "get_paginator", "can_paginate", "get_waiter"}

    def __init__(self, client, countdown: Countdown):
        self._client, self._cd = client, countdown

    def __getattr__(self, name):
        attr = getattr(self._client, name)
        if name in self._passthrough or name.startswith("_") or not callable(attr):
            return attr

        def call(*args, **kwargs):
            self._cd.tick()  # killed before the call
            out = attr(*args, **kwargs)
            self._cd.tick()  # killed after the call succeeded
            return out

        return call


def _services(stack, countdown: Countdown | None = None) -> Services:
    c = stack.clients
    if countdown is None:
        return Services.from_resources(stack.resources, clients=c)
    wrap = AwsClients(s3=CrashingClient(c.s3, countdown), dynamodb=CrashingClient(c.dynamodb, countdown),
                      sns=CrashingClient(c.sns, countdown), sqs=c.sqs)
    return Services.from_resources(stack.resources, clients=wrap)


def _put(stack, key, cat, images):
    s3 = stack.clients.s3
    for ikey, data in images.items():
        s3.put_object(Bucket=stack.resources.image_bucket, Key=ikey, Body=data)
    s3.put_object(Bucket=stack.resources.upload_bucket, Key=key, Body=cat)


def _run(services, key, config=None):
    pipeline = NightlyPipeline.from_services(services, config)
    return handle_upload(services, services.resources.upload_bucket, key, pipeline=pipeline)


def _check_region(tables, object_ids: set[int], expected_sources: set[int]):
    src = tables["DiaSource"]
    ids = np.asarray(src["diaSourceId"], np.int64)
    mine = np.isin(ids, list(expected_sources))
    assert len(np.unique(ids[mine])) == mine.sum() == len(expected_sources), "DiaSources duplicated or missing"
    hist = tables["DiaObjectHistory"]
    hid = np.asarray(hist["diaObjectId"], np.int64)
    for oid in object_ids:
        versions = hist[hid == oid]
        open_versions = np.sum(~np.isfinite(np.asarray(versions["validityEndMjdTai"], float)))
        assert open_versions == 1, f"object {oid} has {open_versions} open versions"
        order = np.argsort(np.asarray(versions["validityStartMjdTai"], float))
        starts = np.asarray(versions["validityStartMjdTai"], float)[order]
        ends = np.asarray(versions["validityEndMjdTai"], float)[order]
        assert len(np.unique(starts)) == len(starts), f"object {oid} has a duplicated version"
        # the chain is contiguous and ordered: each version ends where the next one starts
        np.testing.assert_array_equal(ends[:-1], starts[1:], err_msg=f"object {oid}: broken version chain")
        assert np.all(ends[:-1] > starts[:-1])
    last = tables["DiaObject"]
    lid = np.asarray(last["diaObjectId"], np.int64)
    sid = np.asarray(src["diaObjectId"], np.int64)
    for oid in object_ids:
        n = int(last["nDiaSources"][np.flatnonzero(lid == oid)[0]])
        assert n == int(np.sum(sid == oid)), f"object {oid}: nDiaSources {n} != assigned sources"


def test_handler_killed_at_any_call_then_retried_duplicates_nothing():
    with EmbeddedStack() as stack:
        healthy = _services(stack)
        archive = stack.clients.s3

        def scenario(k: int, crash_at: int | None):
            sky = CcdSky(ra0=150.0 + 0.05 * k, n_detectors=1)
            rng = np.random.default_rng(k)
            pos = [sky.radec(0, *rng.uniform(20, 180, 2)) for _ in range(6)]
            extra = pos.pop()  # a new object in visit B
            va, vb = 1000 + 2 * k, 1001 + 2 * k
            _put(stack, *sky.upload(va, 0, 60000.1 + 0.01 * k, [(r, d, 5000.0, True) for r, d in pos]))
            _run(healthy, f"diasources/{va:08d}/000.fits")
            key_b = sky.upload(vb, 0, 60000.1005 + 0.01 * k, [(r, d, 6000.0, i != 4)
                                                               for i, (r, d) in enumerate(pos)]
                               + [(*extra, 7000.0, True)])
            _put(stack, *key_b)
            cd = Countdown(crash_at)
            crashed = False
            try:
                _run(_services(stack, cd), key_b[0], PipelineConfig(lease_ttl_s=1.0, lease_wait_s=5.0))
            except Exception:  # the crash, possibly wrapped by the library's error mapping
                assert cd.dead, "the handler failed without an injected crash"
                crashed = True
            if crashed:
                _run(healthy, key_b[0], PipelineConfig(lease_wait_s=10.0))  # redelivery after the crash
            _run(healthy, key_b[0])  # and one more (at-least-once)
            return va, vb, cd.events, crashed

        va, vb, total_events, crashed = scenario(0, None)
        assert not crashed and total_events > 20
        points = sorted(set(np.linspace(1, 0.95 * total_events, 14).astype(int)))
        level1 = dynamo_level1(stack.clients.dynamodb, stack.resources.level1_table)
        for k, n in enumerate(points, start=1):
            va, vb, _, crashed = scenario(k, int(n))
            assert crashed
            tables = level1.apdb.export()
            ids_a = {(va * 1000) * 100000 + 1 + i for i in range(5)}
            ids_b = {(vb * 1000) * 100000 + 1 + i for i in range(5)}
            objects = ids_a | {max(ids_b)}
            _check_region(tables, objects, ids_a | ids_b)
            keys = {o["Key"] for o in archive.list_objects_v2(
                Bucket=stack.resources.alert_bucket, Prefix=f"alerts/{vb:08d}/").get("Contents", [])}
            assert keys == {f"alerts/{vb:08d}/000/{i}.avro" for i in ids_b}, f"crash at {n}: alerts"
            marks = level1.ledger.get_alert_marks(sorted(ids_b))
            assert set(marks) == ids_b


def test_concurrent_shuffled_ccds_make_one_object_per_real_object():
    npix = 200
    dithers_pix = [0, 12, -6, 18, 4]
    base = CcdSky(n_detectors=2, npix=npix)
    rng = np.random.default_rng(7)
    truth = [base.radec(0, npix - 4.0, 100.0)]  # crosses the shared edge between visits 1 and 2
    truth += [base.radec(int(rng.integers(0, 2)), *rng.uniform(25, npix - 25, 2)) for _ in range(10)]
    truth += [base.radec(1, 2.5, 60.0), base.radec(0, npix - 2.5, 140.0)]  # hugging the edge
    uploads = []
    for v, dpix in enumerate(dithers_pix, start=1):
        sky = CcdSky(ra0=base.ra0 + dpix * SCALE_ARCSEC / 3600 / np.cos(np.deg2rad(base.dec0)),
                     n_detectors=2, npix=npix)
        srcs = [(ra, dec, 6000.0, True) for ra, dec in truth]
        for d in range(2):
            uploads.append(sky.upload(v, d, 60100.0 + 0.0005 * v, srcs))
    edge = truth[0]
    on = [CcdSky(ra0=base.ra0 + d * SCALE_ARCSEC / 3600 / np.cos(np.deg2rad(base.dec0)),
                 n_detectors=2, npix=npix).detector_of(*edge)[0] for d in dithers_pix[:2]]
    assert on == [0, 1], "the edge transient must change CCD between visits 1 and 2"
    with EmbeddedStack() as stack:
        for u in uploads:
            _put(stack, *u)
        keys = [u[0] for u in uploads]
        random.Random(3).shuffle(keys)
        services = _services(stack)
        with ThreadPoolExecutor(max_workers=4) as pool:
            outcomes = list(pool.map(lambda k: _run(services, k), keys))
        assert all(o.status == "processed" for o in outcomes)
        tables = dynamo_level1(stack.clients.dynamodb, stack.resources.level1_table).apdb.export()
    objects = tables["DiaObject"]
    assert len(objects) == len(truth), f"{len(objects)} DiaObjects for {len(truth)} real objects"
    ora, odec = np.asarray(objects["ra"], float), np.asarray(objects["dec"], float)
    for ra, dec in truth:
        sep = np.hypot((ora - ra) * np.cos(np.deg2rad(dec)), odec - dec) * 3600
        assert np.sum(sep < 0.5) == 1
    _check_region(tables, set(np.asarray(objects["diaObjectId"], np.int64).tolist()),
                  set(np.asarray(tables["DiaSource"]["diaSourceId"], np.int64).tolist()))
    assert len(tables["DiaSource"]) == len(uploads) // 2 * len(truth)

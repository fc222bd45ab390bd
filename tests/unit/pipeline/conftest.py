"""Fixtures of the pipeline unit tests: an exact little sky and a deployment held in memory.

No moto, no embedded stack, no AWS client: the Level 1 storage is
:func:`alertprod.apdb.memory_level1`, the buckets are :class:`alertprod.aws.MemoryBlobStore`
and the alert topic is :class:`RecordingTopic`, which batches as SNS does
(:func:`alertprod.aws.sns.batch_indices`) and keeps what it was sent. (boto3 is still imported,
because ``alertprod.aws/__init__`` imports its boto3 adapters beside ``MemoryBlobStore``; and
``alertprod.alerts`` imports ``alertprod.aws.blobs``.)

The sky is ``tests/integration/ccdsky.py`` (real images with the sources rendered through a
PSF, so forced photometry and cutouts run on pixels). That folder is not importable from here
(the repository never edits the import path), so the module is loaded from its file once; it
imports neither moto nor boto3.
"""

from __future__ import annotations

import importlib.util
import sys
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from astropy.table import Table

from alertprod.alerts import AlertMarksLedger, AlertPublisher, deserialize_alert
from alertprod.alerts.publish import MAX_SNS_BATCH_ENTRIES, MAX_SNS_MESSAGE_BYTES, message_size
from alertprod.apdb import Level1, MemoryApdb, memory_level1
from alertprod.aws import MemoryBlobStore
from alertprod.aws.sns import batch_indices
from alertprod.formats import RUBIN_SITE
from alertprod.ingest import ValidatedUpload, validate_upload
from alertprod.orbits import orbit_through
from alertprod.pipeline import NightlyPipeline
from alertprod.pipeline.config import PipelineConfig

SITE = {"obs_lon_deg": RUBIN_SITE[0], "obs_lat_deg": RUBIN_SITE[1], "obs_height_m": RUBIN_SITE[2]}
#: Midpoint (TAI MJD) of the first visit in every test module (their ``T1``).
T1 = 60000.10


def _load_ccdsky():
    if "ccdsky" in sys.modules:  # already imported by the integration tests of this session
        return sys.modules["ccdsky"]
    path = Path(__file__).resolve().parents[2] / "integration" / "ccdsky.py"
    spec = importlib.util.spec_from_file_location("ccdsky", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules["ccdsky"] = module  # dataclasses look their module up while being built
    spec.loader.exec_module(module)
    return module


ccdsky = _load_ccdsky()


class TopicDownError(RuntimeError):
    """The alert topic refused a PublishBatch call (injected)."""


class RecordingTopic:
    """An alert topic that keeps what it is sent, one list per PublishBatch call.

    SNS's limits are enforced (10 entries, 256 KB per call). ``fail_at_call = n`` makes this
    topic's n-th PublishBatch call (counting from its creation) fail once, before anything of it
    is sent; ``on_publish`` (a callable) runs as each publisher enters :meth:`publish_batch`
    (to stage an interleaving).
    """

    def __init__(self) -> None:
        self.calls: list[list[tuple[str, dict]]] = []
        self.fail_at_call: int | None = None
        self.on_publish = None
        self._attempts = 0
        self._lock = threading.Lock()

    def publish_batch(self, entries, *, on_batch=None):
        if self.on_publish is not None:
            self.on_publish()
        entries = list(entries)
        sizes = [message_size(body, attrs) for body, attrs in entries]
        for positions in batch_indices(sizes, MAX_SNS_BATCH_ENTRIES, MAX_SNS_MESSAGE_BYTES):
            batch = [entries[i] for i in positions]
            assert len(batch) <= MAX_SNS_BATCH_ENTRIES
            assert sum(message_size(b, a) for b, a in batch) <= MAX_SNS_MESSAGE_BYTES
            with self._lock:
                self._attempts += 1
                if self.fail_at_call is not None and self._attempts >= self.fail_at_call:
                    self.fail_at_call = None
                    raise TopicDownError("PublishBatch failed")
                self.calls.append(batch)
            if on_batch is not None:
                on_batch(positions)
        return [str(i) for i in range(len(entries))]

    @property
    def messages(self) -> list[tuple[str, dict]]:
        return [m for call in self.calls for m in call]

    @property
    def alert_ids(self) -> list[int]:
        """``alert_id`` attribute of every message sent, in order."""
        return [int(attrs["alert_id"]) for _, attrs in self.messages]


def _short_sleep(seconds: float) -> None:
    time.sleep(min(seconds, 0.01))  # a waiting lease polls often: tests stay fast


class Deployment:
    """One deployment on the in-memory backend: buckets, Level 1 storage, alert topic.

    ``apdb_class`` replaces the memory APDB by a subclass over the same store (fault
    injection). :meth:`pipeline` builds a :class:`NightlyPipeline` as a new function container
    would, so a retry after a crash runs in a fresh one over the same storage.
    """

    def __init__(self, *, apdb_class: type[MemoryApdb] = MemoryApdb,
                 config: PipelineConfig | None = None):
        base = memory_level1(sleep=_short_sleep)
        if apdb_class is not MemoryApdb:  # a thin subclass injecting a fault or a delay
            base = Level1(apdb_class(base.apdb.store, metrics=base.metrics), base.ledger,
                          base.leases)
        self.level1 = base
        self.uploads = MemoryBlobStore("uploads")
        self.images = MemoryBlobStore("images")
        self.archive = MemoryBlobStore("alerts")
        self.topic = RecordingTopic()
        self.config = config if config is not None else PipelineConfig(lease_wait_s=10.0)
        #: what ``handle_upload`` needs of :class:`alertprod.aws.Services`
        self.services = SimpleNamespace(uploads=self.uploads, images=self.images)

    def pipeline(self) -> NightlyPipeline:
        publisher = AlertPublisher(self.archive, self.topic,
                                   ledger=AlertMarksLedger(self.level1.ledger), max_workers=1)
        return NightlyPipeline(self.level1, self.archive, publisher, self.config)

    def put(self, upload: tuple[str, bytes, dict[str, bytes]]) -> str:
        """Upload images, then the catalog (the contract's order); return the catalog key."""
        key, cat, images = upload
        for ikey, data in images.items():
            self.images.put(ikey, data)
        self.uploads.put(key, cat)
        return key

    def validated(self, upload: tuple[str, bytes, dict[str, bytes]]) -> ValidatedUpload:
        """Upload and validate one CCD, as the ingest function does."""
        key = self.put(upload)
        return validate_upload(self.uploads.get(key), key, self.images)

    def export(self) -> dict[str, Table]:
        return self.level1.apdb.export()


@pytest.fixture(scope="session")
def sky():
    """Two adjacent 200 × 200 CCDs at (150°, 2°), 0.2″ pixels."""
    return ccdsky.CcdSky(n_detectors=2)


@pytest.fixture(scope="session")
def sky_sources(sky):
    """``sky_sources(n, seed=0)``: ``n`` detected point sources (3–8 μJy) 20 pixels or more
    inside detector 0, as ``(ra, dec, flux_nJy, detected)`` for ``CcdSky.upload``."""

    def build(n: int, *, seed: int = 0):
        rng = np.random.default_rng(seed)
        out = []
        for _ in range(n):
            x, y = rng.uniform(20, sky.npix - 20, 2)
            out.append((*sky.radec(0, x, y), float(rng.uniform(3000, 8000)), True))
        return out

    return build


@pytest.fixture
def deployment():
    return Deployment()


@pytest.fixture(scope="session")
def new_deployment():
    """``new_deployment(apdb_class=MemoryApdb, config=None)``: another :class:`Deployment`."""
    return Deployment


@pytest.fixture(scope="session")
def asteroid(sky):
    """An orbit (one object, main belt, 1.5 au) seen at the centre of detector 0 at ``T1``.

    The first use in a session costs ~0.7 s: astropy reads its IERS-B table for polar motion.
    """
    ra0, dec0 = sky.radec(0, 100.0, 100.0)
    return orbit_through(ra0, dec0, T1, geocentric_distance_au=1.5, rng=np.random.default_rng(1),
                         **SITE)


@pytest.fixture(scope="session")
def decode():
    """``decode(prepared_alerts) -> {diaSourceId: alert record}``."""

    def run(prepared) -> dict[int, dict]:
        return {p.alert_id: deserialize_alert(p.packet) for p in prepared}

    return run


def _same_column(a, b) -> bool:
    x, y = np.ma.asarray(a), np.ma.asarray(b)
    if x.shape != y.shape:
        return False
    if x.dtype.kind == "f" and y.dtype.kind == "f":  # a null float is NaN, masked or not
        return np.array_equal(x.filled(np.nan), y.filled(np.nan), equal_nan=True)
    mx, my = np.ma.getmaskarray(x), np.ma.getmaskarray(y)
    return np.array_equal(mx, my) and np.array_equal(np.asarray(x)[~mx], np.asarray(y)[~my])


@pytest.fixture(scope="session")
def assert_same_tables():
    """``assert_same_tables(a, b, what)``: same columns in order, same rows, NaN equal to null."""

    def check(a: Table, b: Table, what: str = "table") -> None:
        assert a.colnames == b.colnames, what
        assert len(a) == len(b), what
        differ = [c for c in a.colnames if not _same_column(a[c], b[c])]
        assert differ == [], f"{what}: columns differ: {differ}"

    return check

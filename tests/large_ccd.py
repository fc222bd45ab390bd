"""One crowded CCD through the nightly pipeline, its peak memory measured: ``python large_ccd.py``.

Shared by the large-catalog test (``tests/unit/pipeline/test_pipeline_large_catalog.py``) and
the memory benchmark (``tests/benchmarks/test_bench_ccd_memory.py``), which run it in a
subprocess of its own so that its peak resident memory (``VmHWM``: ``getrusage``'s ``ru_maxrss`` would include the parent's size) is this
CCD's alone. The buckets keep their objects on disk (:class:`FileBlobStore`), as S3 keeps them
out of the function's memory; the Level 1 database is the in-memory backend.

Usage: ``python tests/large_ccd.py N_ROWS NPIX WORKDIR [ALERT_CHUNK]``; prints one JSON line.
"""

from __future__ import annotations

import importlib.util
import json
import sys
import time
from pathlib import Path

import numpy as np

from alertprod.alerts import AlertMarksLedger, AlertPublisher
from alertprod.apdb import memory_level1
from alertprod.aws import MemoryBlobStore
from alertprod.ingest import validate_upload
from alertprod.local._worker import peak_rss_mb
from alertprod.pipeline import NightlyPipeline
from alertprod.pipeline.config import PipelineConfig

__all__ = ["CountingTopic", "FileBlobStore", "crowded_upload", "load_ccdsky", "process_large_ccd"]


def load_ccdsky():
    """The ``ccdsky`` module of the integration tests (loaded from its file once)."""
    if "ccdsky" in sys.modules:
        return sys.modules["ccdsky"]
    path = Path(__file__).resolve().parent / "integration" / "ccdsky.py"
    spec = importlib.util.spec_from_file_location("ccdsky", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules["ccdsky"] = module
    spec.loader.exec_module(module)
    return module


class FileBlobStore(MemoryBlobStore):
    """A bucket whose objects are files under a directory (kept out of this process's memory)."""

    def __init__(self, root: Path, name: str) -> None:
        super().__init__(name)
        self.root = Path(root) / name
        self.root.mkdir(parents=True, exist_ok=True)

    def _path(self, key: str) -> Path:
        return self.root / key.replace("/", "__")

    def put(self, key, data, *, content_type=None, metadata=None):
        self._path(key).write_bytes(bytes(data))
        super().put(key, b"", content_type=content_type, metadata=metadata)  # the listing only

    def put_if_absent(self, key, data):
        if self.exists(key):
            return False
        self.put(key, data)
        return True

    def get(self, key):
        super().get(key)  # NotFoundError for a missing key
        return self._path(key).read_bytes()


class CountingTopic:
    """An alert topic that counts what it is sent (SNS's batching is not the point here)."""

    def __init__(self) -> None:
        self.sent = 0

    def publish_batch(self, entries, *, on_batch=None):
        entries = list(entries)
        self.sent += len(entries)
        if on_batch is not None:
            on_batch(list(range(len(entries))))
        return [str(i) for i in range(len(entries))]


def crowded_upload(n_rows: int, npix: int, *, seed: int = 0):
    """``(key, catalog bytes, images)`` of one CCD of ``npix``² pixels with ``n_rows`` sources."""
    ccdsky = load_ccdsky()
    sky = ccdsky.CcdSky(npix=npix, n_detectors=1)
    rng = np.random.default_rng(seed)
    xy = rng.uniform(5, npix - 5, (n_rows, 2))
    ra, dec = sky.wcs(0).all_pix2world(xy[:, 0], xy[:, 1], 0)
    flux = rng.uniform(3000, 8000, n_rows)
    return sky.upload(1, 0, 60000.10, [(float(a), float(b), float(f), True)
                                       for a, b, f in zip(ra, dec, flux, strict=True)])


def process_large_ccd(n_rows: int, npix: int, workdir: Path, *, alert_chunk: int | None = None
                      ) -> dict:
    """Process one crowded CCD; what it did, its time and the process's peak memory (MB)."""
    key, cat, images = crowded_upload(n_rows, npix)
    uploads, cache, alerts = (FileBlobStore(workdir, n) for n in ("uploads", "images", "alerts"))
    for ikey, data in images.items():
        cache.put(ikey, data)
    uploads.put(key, cat)
    del images, cat
    level1 = memory_level1()
    topic = CountingTopic()
    publisher = AlertPublisher(alerts, topic, ledger=AlertMarksLedger(level1.ledger), max_workers=1)
    config = PipelineConfig() if alert_chunk is None else PipelineConfig(alert_chunk_size=alert_chunk)
    pipeline = NightlyPipeline(level1, alerts, publisher, config)
    before_mb = peak_rss_mb()
    t0 = time.perf_counter()
    result = pipeline.process_ccd(validate_upload(uploads.get(key), key, cache))
    seconds = time.perf_counter() - t0
    record = level1.ledger.get_ccd_record(1, 0)
    return {"rows": n_rows, "status": result.status, "alerts_sent": topic.sent,
            "dia_sources": result.counts.get("diaSources"), "alert_parts": record.get("alertParts"),
            "seconds": round(seconds, 2), "stages": {k: round(v, 2) for k, v in result.seconds.items()},
            "setup_peak_rss_mb": round(before_mb, 1),
            "peak_rss_mb": round(peak_rss_mb(), 1)}


if __name__ == "__main__":
    chunk = int(sys.argv[4]) if len(sys.argv) > 4 else None
    print(json.dumps(process_large_ccd(int(sys.argv[1]), int(sys.argv[2]), Path(sys.argv[3]),
                                       alert_chunk=chunk)))

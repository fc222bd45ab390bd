"""A job service on memory backends over the precovery scene (one CCD-visit, three transients)."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pytest

from alertprod.apdb import MemoryApdb
from alertprod.aws import MemoryBlobStore
from alertprod.precovery.jobservice import (
    JobContext,
    JobServiceSettings,
    MemoryJobStore,
    MemoryQueue,
)

#: The scene's exposure midpoint (TAI MJD) and the clock of the tests: 10 days later.
EPOCH_MJD = 60500.2
NOW = datetime(2024, 7, 23, 12, 0, tzinfo=UTC)  # TAI MJD ~60514.5


class Clock:
    """A settable clock; ``sleep`` advances it (so waiting takes no wall time)."""

    def __init__(self, t: float):
        self.t = float(t)

    def __call__(self) -> float:
        return self.t

    def sleep(self, seconds: float) -> None:
        self.t += float(seconds)


def scene_apdb(stores, *, cached: bool, visits=((42, EPOCH_MJD),)) -> MemoryApdb:
    """The scene's CCD-visit indexed in the archive (and the cache when ``cached``)."""
    _, _, ra, dec = stores
    corners = np.array([[ra.max() + 0.02, dec.min() - 0.02], [ra.min() - 0.02, dec.min() - 0.02],
                        [ra.min() - 0.02, dec.max() + 0.02], [ra.max() + 0.02, dec.max() + 0.02]])
    db = MemoryApdb()
    for visit, mjd in visits:
        for kind in ("science", "template"):
            db.index_archived_exposure(visit, 3, kind, "r", mjd, corners)
        if cached:
            db.index_exposure(visit, 3, "r", mjd, corners, ["science", "difference"])
    return db


def make_context(stores, *, apdb=None, settings=None, clock=None) -> JobContext:
    images, archive, _, _ = stores
    clock = clock or Clock(NOW.timestamp())
    return JobContext(store=MemoryJobStore(), apdb=apdb if apdb is not None else scene_apdb(stores, cached=True),
                      bucket=MemoryBlobStore(), images=images, archive=archive,
                      job_queue=MemoryQueue(), tick_queue=MemoryQueue(), unit_queue=MemoryQueue(),
                      settings=settings or JobServiceSettings(), clock=clock, sleep=clock.sleep)


@pytest.fixture
def ctx(stores):
    """A fresh service (memory store, memory queues) over the cached scene."""
    return make_context(stores)


def batch_body(stores, **options):
    """A ``batch`` request for the scene's three transients."""
    _, _, ra, dec = stores
    return {"target": {"kind": "batch", "positions": [{"ra": float(r), "dec": float(d)}
                                                       for r, d in zip(ra, dec, strict=True)]},
            "options": {"mjd_min": 60000.0, **options}}

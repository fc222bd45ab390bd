"""A small sky for the precovery service on the embedded stack: epochs in the cache and the archive.

One CCD footprint (256 × 256 pixels of 0.2″ at ra 150°, dec 2°) observed at ``n_cached`` recent
epochs (difference and science in ``ImageBucket``, indexed for the image cache) and
``n_archived`` old ones (tile-compressed science and template in ``ArchiveBucket``, indexed in
the archive), with a 4,000 nJy source at :data:`TARGET` on every epoch. The epochs hold the
same pixels under their own keys: a job's unit count is the number of epochs, and every unit
reads its own files. :func:`serve_precovery` starts the stack with its functions running in a
background thread (as the AWS services would run them), serves the HTTP API and issues tokens.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, NamedTuple

import numpy as np
from astropy.time import Time
from synthetic import make_wcs

from alertprod.apdb import DynamoApdb
from alertprod.api.tokens import issue_token
from alertprod.archive import archive_key
from alertprod.aws import S3BlobStore
from alertprod.distribution.store import DynamoServiceStore
from alertprod.formats import Exposure, ExposureInfo, image_key, write_exposure
from alertprod.formats.compression import compress_exposure
from alertprod.imaging.psf import add_point_sources, gaussian_psf
from alertprod.local.stack import EmbeddedStack

__all__ = ["NPIX", "TARGET", "TARGET_FLUX", "PrecoveryService", "seed_epochs", "serve_precovery"]

NPIX = 256
TARGET_FLUX = 4000.0
_WCS = make_wcs(nx=NPIX, ny=NPIX)
TARGET = tuple(float(v[0]) for v in _WCS.all_pix2world([128.3], [120.6], 0))  # (ra, dec), deg


class PrecoveryService(NamedTuple):
    """A served stack: the stack, the API's root URL, tokens by user, and the epochs seeded."""

    stack: EmbeddedStack
    url: str
    tokens: dict[str, str]
    epochs: dict[str, list[int]]


def _exposures(seed: int = 12) -> dict[str, Exposure]:
    rng = np.random.default_rng(seed)
    psf = gaussian_psf(2.5, size_pix=15)
    info = ExposureInfo(1, 0, "r", 60000.0, 30.0)
    sigma = 20.0
    var = np.full((NPIX, NPIX), sigma**2, np.float32)
    mask = np.zeros((NPIX, NPIX), np.int32)
    stars = np.zeros((NPIX, NPIX))
    add_point_sources(stars, psf, rng.uniform(20, 236, 15), rng.uniform(20, 236, 15),
                      rng.uniform(2e3, 3e4, 15))
    x, y = np.array([128.3]), np.array([120.6])
    transient = np.zeros((NPIX, NPIX))
    add_point_sources(transient, psf, x, y, np.array([TARGET_FLUX]))

    def exposure(pixels: np.ndarray, noise: float) -> Exposure:
        img = (pixels + rng.normal(0, noise, (NPIX, NPIX))).astype(np.float32)
        return Exposure(img, var, mask, psf, _WCS, info)

    science = exposure(stars + transient, sigma)
    template = exposure(stars, sigma / 5)
    difference = exposure(transient, sigma)
    return {"science": science, "template": template, "difference": difference}


def seed_epochs(stack: EmbeddedStack, n_cached: int, n_archived: int) -> dict[str, list[int]]:
    """Put ``n_cached`` cached and ``n_archived`` archived epochs of the CCD on the stack.

    Cached epochs are 1–20 days before now (the functions run on the machine's clock, so the
    stack's runs on it too), archived ones 100 days and more (one a day). Returns the visits of
    each kind.
    """
    clients = stack.clients
    images = S3BlobStore(clients.s3, stack.physical_id("ImageBucket"))
    archive = S3BlobStore(clients.s3, stack.physical_id("ArchiveBucket"))
    apdb = DynamoApdb(clients.dynamodb, stack.physical_id("Level1Table"))
    exp = _exposures()
    raw = {k: write_exposure(exp[k]) for k in ("difference", "science")}
    packed = {k: compress_exposure(exp[k]) for k in ("science", "template")}
    corners = np.column_stack(_WCS.all_pix2world([0, NPIX, NPIX, 0], [0, 0, NPIX, NPIX], 0))
    now_mjd = float(Time(stack.clock).tai.mjd)
    epochs: dict[str, list[int]] = {"cached": [], "archived": []}
    for i in range(n_cached):
        visit, mjd = 9000 + i, now_mjd - 1.0 - i * 19.0 / max(1, n_cached)
        for kind, data in raw.items():
            images.put(image_key(visit, 0, kind), data)
        apdb.index_exposure(visit, 0, "r", mjd, corners, ["difference", "science"])
        epochs["cached"].append(visit)
    for i in range(n_archived):
        visit, mjd = 1000 + i, now_mjd - 100.0 - i
        for kind, data in packed.items():
            archive.put(archive_key(visit, 0, kind), data)
            apdb.index_archived_exposure(visit, 0, kind, "r", mjd, corners)
        epochs["archived"].append(visit)
    return epochs


@contextmanager
def serve_precovery(users: tuple[str, ...], *, n_cached: int = 3, n_archived: int = 3,
                    environment: dict[str, str] | None = None,
                    parameters: dict[str, Any] | None = None,
                    stack_name: str = "precovery") -> Iterator[PrecoveryService]:
    """The stack with the scene seeded, its functions running, its API served, tokens issued.

    ``environment`` sets job-service settings (``ALERTPROD_PRECOVERY_*``) for the run;
    ``parameters`` overrides template parameters.
    """
    import os

    saved = {k: os.environ.get(k) for k in environment or {}}
    os.environ.update(environment or {})
    stop = threading.Event()
    try:
        with EmbeddedStack(stack_name=stack_name, parameter_overrides=parameters) as stack:
            epochs = seed_epochs(stack, n_cached, n_archived)
            store = DynamoServiceStore(stack.clients.dynamodb, stack.physical_id("ServiceTable"))
            tokens = {u: issue_token(store, u, label="test").token for u in users}
            endpoint = stack.serve_api("HttpApi")
            runner = threading.Thread(target=stack.run_forever, args=(stop,),
                                      kwargs={"idle_sleep_s": 0.05}, daemon=True)
            runner.start()
            try:
                yield PrecoveryService(stack, endpoint.url, tokens, epochs)
            finally:
                stop.set()
                runner.join(timeout=60)
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def rows_by_target(rows: list[dict[str, Any]]) -> dict[int, list[dict[str, Any]]]:
    """Light-curve rows grouped by their ``target`` index."""
    out: dict[int, list[dict[str, Any]]] = {}
    for r in rows:
        out.setdefault(int(r["target"]), []).append(r)
    return out

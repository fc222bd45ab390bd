"""One ingest invocation of ``IngestBatchSize`` LSST-size CCDs, against the function's Timeout.

On the embedded stack with the functions isolated (``EmbeddedStack(isolate=True)``: the
ingest function runs in a worker process with its ``MemorySize`` as a resource limit and its
``Timeout`` enforced), one SQS batch of ``IngestBatchSize`` (5) catalog uploads is handed to the
ingest function, as Lambda's poller hands it. Each CCD is 4096 × 4096 pixels (difference,
science and template images, tile-compressed as the contract allows) with 200 DiaSources, the
LSST average. The peer is the function's ``Timeout`` (120 s): the headline is the invocation's
duration as a fraction of it (the worker's start-up, Lambda's init phase, is not counted, as
on AWS). Writes
``results/ingest_batch.json``.
"""

from __future__ import annotations

import io
import json
import time
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits

from alertprod.apdb import CcdState, dynamo_level1
from alertprod.aws.sqs import SqsQueue
from alertprod.local._worker import FunctionTimeoutError
from alertprod.local.stack import EmbeddedStack

pytestmark = pytest.mark.bench

RESULTS = Path(__file__).parent / "results"
NPIX = 4096
SOURCES_PER_CCD = 200


def _compressed(raw: bytes) -> bytes:
    """The exposure's planes tile-compressed (Rice; the mask losslessly), as uploads may be."""
    with fits.open(io.BytesIO(raw)) as hdul:
        hdus = [fits.PrimaryHDU(header=hdul[0].header)]
        for name in ("IMAGE", "VARIANCE", "MASK"):
            hdus.append(fits.CompImageHDU(hdul[name].data, header=hdul[name].header, name=name,
                                          compression_type="RICE_1"))
        hdus.append(fits.ImageHDU(hdul["PSF"].data, header=hdul["PSF"].header, name="PSF"))
        buf = io.BytesIO()
        fits.HDUList(hdus).writeto(buf)
    return buf.getvalue()


def _upload_batch(stack, ccdsky, n_ccds: int) -> None:
    sky = ccdsky.CcdSky(npix=NPIX, n_detectors=n_ccds)
    s3, res = stack.clients.s3, stack.resources
    rng = np.random.default_rng(13)
    for detector in range(n_ccds):
        xy = rng.uniform(20, NPIX - 20, (SOURCES_PER_CCD, 2))
        ra, dec = sky.wcs(detector).all_pix2world(xy[:, 0], xy[:, 1], 0)
        sources = [(float(a), float(b), float(f), True)
                   for a, b, f in zip(ra, dec, rng.uniform(3000, 8000, SOURCES_PER_CCD), strict=True)]
        key, cat, images = sky.upload(1, detector, 60000.10, sources)
        for ikey, data in images.items():
            s3.put_object(Bucket=res.image_bucket, Key=ikey, Body=_compressed(data))
        s3.put_object(Bucket=res.upload_bucket, Key=key, Body=cat)


def _catalog_messages(stack, n: int) -> tuple:
    fn = stack.lambdas.function("IngestFunction")
    (source,) = fn.sqs_sources
    queue = SqsQueue(stack.clients.sqs, source.queue_url)
    got = []
    deadline = time.monotonic() + 60
    while len(got) < n and time.monotonic() < deadline:
        for m in queue.receive(10, 1, visibility_timeout_s=900):
            if "s3:TestEvent" in m.body:
                queue.delete(m.receipt_handle)
            else:
                got.append(m)
    return source, queue, got


def test_bench_ingest_batch_of_lsst_ccds_finishes_within_the_timeout():
    from large_ccd import load_ccdsky  # beside this folder: the sky of the integration tests

    ccdsky = load_ccdsky()
    with EmbeddedStack(stack_name="ingestbatch", isolate=True) as stack:
        batch = int(stack.template["Parameters"]["IngestBatchSize"]["Default"])
        fn = stack.lambdas.function("IngestFunction")
        t0 = time.perf_counter()
        _upload_batch(stack, ccdsky, batch)
        setup_s = time.perf_counter() - t0
        source, queue, messages = _catalog_messages(stack, batch)
        assert len(messages) == batch
        event = stack.lambdas.sqs_event(source, messages)
        t0 = time.perf_counter()
        try:
            response, error = stack.invoke("IngestFunction", event), None
        except FunctionTimeoutError as exc:  # killed at the Timeout, as on AWS: kept as a figure
            response, error = None, str(exc)
        duration_s = time.perf_counter() - t0
        ledger = dynamo_level1(stack.clients.dynamodb, stack.resources.level1_table).ledger
        states = [(ledger.get_ccd_record(1, d) or {}).get("state") for d in range(batch)]
        per_ccd = [(ledger.get_ccd_record(1, d) or {}).get("seconds") for d in range(batch)]
    result = {"ccds_per_invocation": batch, "ccd_pixels": f"{NPIX}x{NPIX}",
              "ccds_done": sum(s is CcdState.DONE for s in states), "error": error,
              "ccd_seconds_in_ledger": per_ccd,
              "dia_sources_per_ccd": SOURCES_PER_CCD, "isolated_worker": True,
              "memory_size_mb": fn.memory_mb, "timeout_s": fn.timeout_s,
              "invocation_s": round(duration_s, 2),
              "ratio_invocation_over_timeout": round(duration_s / fn.timeout_s, 3),
              "seconds_per_ccd": round(duration_s / batch, 2), "setup_s": round(setup_s, 1)}
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "ingest_batch.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    assert error is None and not (response or {}).get("batchItemFailures")
    assert states == [CcdState.DONE] * batch
    assert duration_s < fn.timeout_s

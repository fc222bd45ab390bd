"""The per-CCD nightly processing: from an upload to alerts, exactly once.

- :mod:`~alertprod.pipeline.dispatch` — an S3 notification → validation → the pipeline;
- :mod:`~alertprod.pipeline.nightly` — :class:`NightlyPipeline`: ledger, lease, write-ahead
  staging, store, publish (the four steps of one CCD);
- :mod:`~alertprod.pipeline.compute` — everything a CCD computes before it writes;
- :mod:`~alertprod.pipeline.steps` — the science steps as functions of tables;
- :mod:`~alertprod.pipeline.alerting` — one alert per DiaSource;
- :mod:`~alertprod.pipeline.write_ahead` — the staged plan a retry replays;
- :mod:`~alertprod.pipeline.orbit_cache` — the orbit catalog, parsed once per container;
- :mod:`~alertprod.pipeline.latency` — each alert's latency (shutter close → publish) as a metric;
- :mod:`~alertprod.pipeline.reprocess` — an operator's reprocessing of a CCD (rows withdrawn).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from alertprod.pipeline.dispatch import UploadOutcome, handle_upload, handle_upload_message
from alertprod.pipeline.nightly import CcdResult, NightlyPipeline

if TYPE_CHECKING:
    from alertprod.aws import Services

__all__ = ["CcdResult", "NightlyPipeline", "UploadOutcome", "build_pipeline", "handle_upload",
           "handle_upload_message"]


def build_pipeline(services: Services, *, metrics: Any = None) -> NightlyPipeline:
    """The nightly pipeline bound to a deployment's adapters (:class:`alertprod.aws.Services`);
    ``metrics`` (a Powertools ``Metrics``) receives each alert's latency."""
    return NightlyPipeline.from_services(services, metrics=metrics)

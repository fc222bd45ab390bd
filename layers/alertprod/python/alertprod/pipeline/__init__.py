"""The per-CCD nightly processing: from an upload to alerts, exactly once.

- :mod:`~alertprod.pipeline.dispatch` — an S3 notification → validation → the pipeline;
- :mod:`~alertprod.pipeline.nightly` — :class:`NightlyPipeline`: ledger, lease, write-ahead
  staging, store, publish (the four steps of one CCD);
- :mod:`~alertprod.pipeline.compute` — everything a CCD computes before it writes;
- :mod:`~alertprod.pipeline.steps` — the science steps as functions of tables;
- :mod:`~alertprod.pipeline.alerting` — one alert per DiaSource;
- :mod:`~alertprod.pipeline.write_ahead` — the staged plan a retry replays;
- :mod:`~alertprod.pipeline.orbit_cache` — the orbit catalog, parsed once per container.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from alertprod.pipeline.dispatch import UploadOutcome, handle_upload, handle_upload_message
from alertprod.pipeline.nightly import CcdResult, NightlyPipeline

if TYPE_CHECKING:
    from alertprod.aws import Services

__all__ = ["CcdResult", "NightlyPipeline", "UploadOutcome", "build_pipeline", "handle_upload",
           "handle_upload_message"]


def build_pipeline(services: Services) -> NightlyPipeline:
    """The nightly pipeline bound to a deployment's adapters (:class:`alertprod.aws.Services`)."""
    return NightlyPipeline.from_services(services)

"""The per-CCD nightly processing: from an upload to alerts, exactly once."""

from alertprod.pipeline.dispatch import UploadOutcome, handle_upload, handle_upload_message
from alertprod.pipeline.nightly import CcdResult, NightlyPipeline

__all__ = ["CcdResult", "NightlyPipeline", "UploadOutcome", "build_pipeline", "handle_upload",
           "handle_upload_message"]


def build_pipeline(services) -> NightlyPipeline:
    """The nightly pipeline bound to a deployment's adapters (:class:`alertprod.aws.Services`)."""
    return NightlyPipeline.from_services(services)

"""The per-CCD nightly processing: from an upload to alerts, exactly once."""

from alertprod.pipeline.dispatch import UploadOutcome, handle_upload, handle_upload_message

__all__ = ["UploadOutcome", "build_pipeline", "handle_upload", "handle_upload_message"]


def build_pipeline(services):
    """The nightly pipeline bound to a deployment's adapters (None until the pipeline exists)."""
    try:
        from alertprod.pipeline.nightly import NightlyPipeline
    except ImportError:  # pragma: no cover - during bring-up only
        return None
    return NightlyPipeline.from_services(services)

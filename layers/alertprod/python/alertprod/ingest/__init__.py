"""Validation of uploads against the upload contract, and quarantine of what breaks it."""

from alertprod.ingest.events import S3Object, s3_objects_from_sqs_body
from alertprod.ingest.quarantine import QUARANTINE_SCHEMA, quarantine_record, write_quarantine
from alertprod.ingest.validate import REASONS, ValidatedUpload, validate_catalog, validate_upload

__all__ = [
    "QUARANTINE_SCHEMA",
    "REASONS",
    "S3Object",
    "ValidatedUpload",
    "quarantine_record",
    "s3_objects_from_sqs_body",
    "validate_catalog",
    "validate_upload",
    "write_quarantine",
]

"""One exception hierarchy for the whole library.

Every error raised on purpose by :mod:`alertprod` derives from :class:`AlertprodError`, so
handlers can map library failures to responses in one place.
"""

from __future__ import annotations

__all__ = [
    "AlertprodError",
    "ConfigError",
    "ContractError",
    "ImageError",
    "PsfError",
    "CatalogError",
    "OrbitError",
    "StorageError",
    "ConflictError",
    "LeaseLostError",
    "StalePlanError",
    "AlertSchemaError",
    "PrecoveryError",
    "NotFoundError",
    "EventError",
    "FilterError",
]


class AlertprodError(Exception):
    """Base class of every error raised on purpose by alertprod."""


class ConfigError(AlertprodError):
    """A configuration value or environment variable is missing or invalid."""


class ContractError(AlertprodError):
    """An upload breaks the upload contract (docs/formats.md).

    Parameters
    ----------
    reason : str
        Machine-readable reason code, e.g. ``"missing_column"``, ``"not_fits"`` or
        ``"bad_time_scale"``; the quarantine reasons are listed, with their meaning, in
        :data:`alertprod.ingest.REASONS` and docs/formats.md ("Quarantine").
    detail : str
        Human-readable explanation naming the offending key, column or value.
    """

    def __init__(self, reason: str, detail: str):
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


class ImageError(AlertprodError):
    """An image is unusable for the requested operation (shape, WCS, NaNs, ...)."""


class PsfError(ImageError):
    """A PSF model is invalid: not odd-sized, not normalised, not finite."""


class CatalogError(AlertprodError):
    """A table lacks required columns or holds invalid values."""


class OrbitError(AlertprodError):
    """An orbit record cannot be parsed or propagated."""


class StorageError(AlertprodError):
    """A storage backend (S3, DynamoDB, SQS, SNS) failed or returned something unexpected."""


class ConflictError(StorageError):
    """A conditional write lost a race; the caller should re-read and retry."""


class LeaseLostError(ConflictError):
    """A sky-cell lease expired and another holder took a cell: nothing more may be written
    under it (fencing refused it, or a renewal found the cell taken). Take the lease again."""


class StalePlanError(ConflictError):
    """A staged plan no longer fits the database (objects it updates changed since it was
    computed) and nothing of it was committed: compute it again."""


class AlertSchemaError(AlertprodError):
    """An alert packet does not validate against the Rubin alert schema."""


class PrecoveryError(AlertprodError):
    """A precovery request is invalid or cannot be served."""


class NotFoundError(StorageError):
    """A requested object, item or message does not exist."""


class EventError(AlertprodError):
    """A function received an event it cannot interpret (not an S3 notification, bad shape)."""


class FilterError(AlertprodError):
    """A user's alert filter is refused: bad syntax, unknown field or function, wrong type, over a limit.

    Parameters
    ----------
    message : str
        What is wrong, naming the offending token.
    position : int
        0-based character offset of the offending token in the filter text.
    token : str
        The offending token as written (``""`` for the end of the expression).
    """

    def __init__(self, message: str, *, position: int, token: str):
        shown = token if len(token) <= 40 else token[:37] + "..."
        where = "end of expression" if token == "" else repr(shown)
        super().__init__(f"{message} (position {position}: {where})")
        self.message = message
        self.position = position
        self.token = token

    def __reduce__(self):  # keyword-only arguments: pickle (multiprocessing, caches) needs help
        return _filter_error, (self.message, self.position, self.token)


def _filter_error(message: str, position: int, token: str) -> FilterError:
    return FilterError(message, position=position, token=token)

"""Messages on the orbit-refresh queue: a refresh request, or one chunk of a night's refresh.

Both are JSON with a ``schema`` field and are validated on receipt, so that a bad message
fails alone (and reaches the dead-letter queue after three receives) without touching anything.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import Any

from alertprod.errors import OrbitError

__all__ = ["CHUNK_SCHEMA", "REQUEST_SCHEMA", "RefreshChunk", "RefreshRequest", "parse_message",
           "run_id", "unit_key"]

REQUEST_SCHEMA = "alertprod.orbit-refresh-request/1"
CHUNK_SCHEMA = "alertprod.orbit-refresh-chunk/1"


def run_id(night_mjd: int, base_version: str) -> str:
    """The fan-in record of the refresh of one night from one base catalog."""
    return f"orbit-refresh:{int(night_mjd)}:{base_version}"


def unit_key(chunk: int) -> str:
    """A chunk's key in its run's done-set."""
    return f"{int(chunk):05d}"


@dataclass(frozen=True)
class RefreshRequest:
    """Refresh the current base catalog for the night of the message's sending time.

    Attributes
    ----------
    reason : str
        Why (``"mpcorb-upload"``, ``"operator"``); logged.
    base_version : str
        The base catalog the sender loaded ("" when unknown); informative — the refresh uses
        whatever base catalog is current when it runs.
    night_mjd : int or None
        The night to refresh; None: the night of the time the message was sent.
    """

    reason: str = "request"
    base_version: str = ""
    night_mjd: int | None = None

    def to_message(self) -> str:
        """JSON body."""
        return json.dumps({"schema": REQUEST_SCHEMA, "reason": self.reason,
                           "baseVersion": self.base_version, "nightMjd": self.night_mjd})


@dataclass(frozen=True)
class RefreshChunk:
    """Integrate one chunk of the base catalog's records to one night.

    Attributes
    ----------
    night_mjd : int
        The night.
    base_version : str
        The base catalog the chunk's records come from.
    chunk, chunks : int
        Index of this chunk and the run's number of chunks.
    drift_limit_arcsec : float
        The NEO rule's limit (″).
    """

    night_mjd: int
    base_version: str
    chunk: int
    chunks: int
    drift_limit_arcsec: float

    def __post_init__(self) -> None:
        if not 0 <= self.chunk < self.chunks:
            raise OrbitError(f"chunk: {self.chunk} not in [0, {self.chunks})")
        if not self.base_version:
            raise OrbitError("base_version: must not be empty")
        if not self.drift_limit_arcsec > 0:
            raise OrbitError(f"drift_limit_arcsec: must be positive, got {self.drift_limit_arcsec}")

    @property
    def run_id(self) -> str:
        """The run's fan-in record."""
        return run_id(self.night_mjd, self.base_version)

    @property
    def unit_key(self) -> str:
        """This chunk's key in the run's done-set."""
        return unit_key(self.chunk)

    def to_message(self) -> str:
        """JSON body."""
        return json.dumps({"schema": CHUNK_SCHEMA, **{_camel(k): v for k, v in asdict(self).items()}})


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(w.title() for w in rest)


def parse_message(body: str) -> RefreshRequest | RefreshChunk:
    """The request or chunk a message body carries.

    Raises
    ------
    OrbitError
        When the body is neither (not JSON, unknown schema, missing or malformed fields).
    """
    try:
        doc: Any = json.loads(body)
    except (TypeError, ValueError) as exc:
        raise OrbitError(f"orbit-refresh message is not JSON: {exc}") from exc
    if not isinstance(doc, dict):
        raise OrbitError("orbit-refresh message is not a JSON object")
    schema = doc.get("schema")
    try:
        if schema == REQUEST_SCHEMA:
            night = doc.get("nightMjd")
            return RefreshRequest(str(doc.get("reason", "request")), str(doc.get("baseVersion", "")),
                                  None if night is None else int(night))
        if schema == CHUNK_SCHEMA:
            return RefreshChunk(int(doc["nightMjd"]), str(doc["baseVersion"]), int(doc["chunk"]),
                                int(doc["chunks"]), float(doc["driftLimitArcsec"]))
    except (KeyError, TypeError, ValueError) as exc:
        raise OrbitError(f"malformed orbit-refresh message ({schema}): {exc}") from exc
    raise OrbitError(f"unknown orbit-refresh message schema {schema!r}")

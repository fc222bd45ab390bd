"""What every per-user transport sends: one envelope per match, and what became of it.

An :class:`Outbound` is one match ready to go: its delivery id, the filter id and version
hash, the alert id, and the payload (the Confluent-framed Rubin packet, or a VOEvent 2.0
document). :func:`envelope` is the JSON form the SQS and webhook transports send::

    {"deliveryId": "9c1f...", "filterId": "f-...", "filterVersionHash": "ab12...",
     "alertId": 1234, "format": "avro", "payload": "<base64 of the framed packet>"}

(``"format": "voevent"`` carries the XML text in ``payload``; an Avro packet too large for
one SQS message is replaced by ``"claimCheck": "s3://.../alerts/....avro"``, as on the alert
topic.) Every transport returns a :class:`SendOutcome` naming what was delivered and what
failed, and never raises for a receiver's fault.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

__all__ = ["Outbound", "SendOutcome", "Transport", "envelope", "PAYLOAD_FORMATS"]

#: Payload formats a subscription may ask for.
PAYLOAD_FORMATS = ("avro", "voevent")


@dataclass(frozen=True)
class Outbound:
    """One match, ready to be sent.

    Attributes
    ----------
    delivery_id, filter_id, version_hash : str
        Identity of the match (receivers deduplicate on ``delivery_id``).
    user_id : str
        The filter's owner.
    alert_id : int
        ``diaSourceId`` of the alert.
    payload_format : str
        ``avro`` or ``voevent``.
    payload : bytes
        The framed packet, or the VOEvent XML.
    archive_uri : str
        ``s3://...`` of the archived packet (the claim-check when the payload is too large).
    summary : mapping
        A few fields for digests: ``band``, ``ra``, ``dec``, ``snr``, ``midpointMjdTai``.
    voevent : bytes
        The VOEvent document when a VTP transport needs it and the payload is Avro.
    """

    delivery_id: str
    filter_id: str
    version_hash: str
    user_id: str
    alert_id: int
    payload_format: str
    payload: bytes
    archive_uri: str = ""
    summary: Mapping[str, Any] = field(default_factory=dict)
    voevent: bytes = b""


@dataclass
class SendOutcome:
    """What one transport did with a list of :class:`Outbound`.

    Attributes
    ----------
    delivered : set of str
        Delivery ids the receiver accepted.
    failed : dict
        Delivery id → the last error.
    attempts : int
        Requests made, retries included.
    """

    delivered: set[str] = field(default_factory=set)
    failed: dict[str, str] = field(default_factory=dict)
    attempts: int = 0

    def merge(self, other: SendOutcome) -> None:
        self.delivered |= other.delivered
        self.failed.update(other.failed)
        self.attempts += other.attempts


class Transport(Protocol):
    """A user's transport: sends matches, reports per delivery id, never raises for the receiver."""

    kind: str

    def send(self, items: Sequence[Outbound]) -> SendOutcome: ...


def envelope(item: Outbound, *, claim_check: bool = False) -> dict[str, Any]:
    """The JSON envelope of one match (see the module docstring)."""
    out: dict[str, Any] = {"deliveryId": item.delivery_id, "filterId": item.filter_id,
                           "filterVersionHash": item.version_hash, "alertId": int(item.alert_id),
                           "format": item.payload_format}
    if claim_check:
        out["claimCheck"] = item.archive_uri
    elif item.payload_format == "voevent":
        out["payload"] = item.payload.decode("utf-8")
    else:
        out["payload"] = base64.b64encode(item.payload).decode("ascii")
    return out

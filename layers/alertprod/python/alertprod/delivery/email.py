"""Deliver matches as an e-mail digest through SES: one message per user and address per batch.

The digest lists, per match, the alert id, band, position, S/N, the filter and the delivery
id; the packets themselves are not attached (they stay in the archive, and the other
transports carry them). The sender address must be a verified SES identity.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from alertprod.delivery.envelope import Outbound, SendOutcome

__all__ = ["EmailDigestTransport", "digest_text", "MAX_DIGEST_LINES"]

#: Matches listed in one digest; the rest are counted ("and N more").
MAX_DIGEST_LINES = 500


def _fmt(value: Any, spec: str) -> str:
    try:
        return format(float(value), spec)
    except (TypeError, ValueError):
        return "-"


def digest_text(items: Sequence[Outbound]) -> str:
    """The plain-text body of a digest."""
    lines = [f"{len(items)} new match(es) of your alertprod filters.", "",
             "alertId              band  ra(deg)     dec(deg)    snr      filter                deliveryId"]
    for item in items[:MAX_DIGEST_LINES]:
        s = item.summary
        lines.append(f"{item.alert_id:<20d} {str(s.get('band') or '-'):<5s} {_fmt(s.get('ra'), '11.6f')} "
                     f"{_fmt(s.get('dec'), '11.6f')} {_fmt(s.get('snr'), '8.1f')} "
                     f"{item.filter_id:<21s} {item.delivery_id}")
    if len(items) > MAX_DIGEST_LINES:
        lines.append(f"... and {len(items) - MAX_DIGEST_LINES} more (see your other transports or "
                     "the counters endpoint)")
    return "\n".join(lines) + "\n"


class EmailDigestTransport:
    """Sends one SES message listing every item.

    Parameters
    ----------
    client : botocore client
        SES client (injected).
    sender : str
        Verified SES identity the digest comes from.
    to : str
        The user's address.
    """

    kind = "email"

    def __init__(self, client: Any, sender: str, to: str) -> None:
        self.client, self.sender, self.to = client, sender, to

    def send(self, items: Sequence[Outbound]) -> SendOutcome:
        out = SendOutcome()
        if not items:
            return out
        filters = sorted({i.filter_id for i in items})
        subject = f"alertprod: {len(items)} match(es) of {', '.join(filters)[:120]}"
        out.attempts = 1
        try:
            self.client.send_email(Source=self.sender, Destination={"ToAddresses": [self.to]},
                                   Message={"Subject": {"Data": subject, "Charset": "UTF-8"},
                                            "Body": {"Text": {"Data": digest_text(items), "Charset": "UTF-8"}}})
        except Exception as exc:  # botocore errors: the digest failed
            out.failed = {i.delivery_id: f"SES SendEmail failed: {exc}" for i in items}
        else:
            out.delivered = {i.delivery_id for i in items}
        return out

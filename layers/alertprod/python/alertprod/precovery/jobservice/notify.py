"""Completion notification of a precovery job: a signed webhook and/or an e-mail.

Requested at submission as ``"notify": {"webhook": url, "email": address}`` beside
``target`` and ``options``. The webhook is the alert webhooks' (:mod:`alertprod.delivery.webhook`):
the same address rules (no private addresses on AWS), the same signature
(``X-Alertprod-Signature: v1=HMAC-SHA256(secret, "<timestamp>." + body)``,
``X-Alertprod-Timestamp``) with a per-job secret returned once at submission, the same retries.
The e-mail goes through SES from the deployment's sender, as the e-mail digests do. A failed
notification is logged in the job's record (``notifyErrors``), never fails the job.
"""

from __future__ import annotations

import json
import logging
from typing import TYPE_CHECKING, Any

from alertprod.delivery.webhook import WebhookTransport
from alertprod.precovery.uws import job_json

if TYPE_CHECKING:
    from alertprod.precovery.jobservice.context import JobContext
    from alertprod.precovery.jobservice.records import JobRecord

__all__ = ["completion_body", "notify_completion"]

_LOG = logging.getLogger(__name__)


def completion_body(record: JobRecord) -> bytes:
    """The webhook's JSON body: the event and the job document."""
    return json.dumps({"event": "precovery.job.finished", "job": job_json(record.job)},
                      separators=(",", ":")).encode()


def _post(ctx: JobContext, url: str, secret: str, body: bytes, delivery_id: str) -> str:
    """POST with the alert webhooks' signing, address pinning and retries; "" when delivered."""
    if ctx.http_post is not None:
        return ctx.http_post(url, secret, body)
    transport = WebhookTransport(url, secret, ctx.settings.webhook, sleep=ctx.sleep)
    error = ""
    for _ in range(ctx.settings.webhook.max_attempts):
        # the transport's single signed POST (its public send() wraps alert envelopes)
        ok, retryable, error = transport._post_once(body, [delivery_id])
        if ok:
            return ""
        if not retryable:
            break
        ctx.sleep(ctx.settings.webhook.backoff_s)
    return error or "not delivered"


def notify_completion(ctx: JobContext, record: JobRecord) -> list[str]:
    """Send what the job asked for; returns the errors (also logged)."""
    notify: dict[str, Any] = dict(record.notify or {})
    errors = []
    if notify.get("webhook"):
        error = _post(ctx, notify["webhook"], notify.get("secret", ""), completion_body(record),
                      f"{record.job_id}:{record.job.phase}")
        if error:
            errors.append(f"webhook: {error}")
    if notify.get("email"):
        if not (ctx.ses is not None and ctx.settings.email_sender):
            errors.append("email: e-mail is not enabled on this deployment")
        else:
            j = record.job
            text = (f"Your precovery job {j.job_id} ended: {j.phase}.\n"
                    + (f"Error: {j.error}\n" if j.error else "")
                    + "".join(f"{rid}: {href}\n" for rid, href in j.results))
            try:
                ctx.ses.send_email(Source=ctx.settings.email_sender,
                                   Destination={"ToAddresses": [notify["email"]]},
                                   Message={"Subject": {"Data": f"alertprod precovery job {j.job_id}: {j.phase}",
                                                        "Charset": "UTF-8"},
                                            "Body": {"Text": {"Data": text, "Charset": "UTF-8"}}})
            except Exception as exc:  # botocore errors: reported, the job stands
                errors.append(f"email: SES SendEmail failed: {exc}")
    for e in errors:
        _LOG.warning("precovery job %s notification failed: %s", record.job_id, e)
    return errors

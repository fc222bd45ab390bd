"""The HTTP API's Lambda authorizer: payload format 2.0 with simple responses.

API Gateway calls it with the request's headers; it answers ``{"isAuthorized": bool,
"context": {"userId": ...}}``. The API function then finds the user in
``requestContext.authorizer.lambda.userId``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from alertprod.api.tokens import authenticate
from alertprod.distribution.store import ServiceStore
from alertprod.errors import StorageError

__all__ = ["authorize"]


def authorize(event: Mapping[str, Any], store: ServiceStore, *, now: float | None = None) -> dict[str, Any]:
    """The simple response for one authorizer event (payload 2.0).

    The token is read from the ``authorization`` header (headers are lower case in payload
    2.0; ``identitySource`` is used when the header is absent). A storage failure refuses.
    """
    headers = {str(k).lower(): v for k, v in (event.get("headers") or {}).items()}
    header = headers.get("authorization")
    if header is None:
        sources = event.get("identitySource") or []
        header = sources[0] if sources else None
    try:
        user_id = authenticate(store, header, now=now)
    except StorageError:
        user_id = None
    if user_id is None:
        return {"isAuthorized": False, "context": {}}
    return {"isAuthorized": True, "context": {"userId": user_id}}

"""API tokens: issued by an operator, random, stored only as their sha256, checked on every call.

A token is ``apt_`` followed by 43 URL-safe characters (256 random bits from :mod:`secrets`).
The store keeps its sha256 with the user id, a label, the creation and expiry times and a
revoked flag; the token itself is shown once, when issued, and never stored.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import time
from typing import NamedTuple

from alertprod.distribution.records import TokenRecord
from alertprod.distribution.store import ServiceStore
from alertprod.errors import ConfigError, NotFoundError

__all__ = ["IssuedToken", "TOKEN_PREFIX", "USER_ID_RE", "hash_token", "issue_token",
           "authenticate", "bearer_token", "revoke_token"]

TOKEN_PREFIX = "apt_"
#: User ids: letters, digits, ``_ . @ -``, 1-64 characters.
USER_ID_RE = re.compile(r"[A-Za-z0-9_.@\-]{1,64}")
_MAX_TOKEN_CHARS = 200


class IssuedToken(NamedTuple):
    """A newly issued token: the secret (shown once) and its stored record."""

    token: str
    record: TokenRecord


def hash_token(token: str) -> str:
    """sha256 (hex) of a token: what the store keeps."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def issue_token(store: ServiceStore, user_id: str, *, label: str = "", days: float = 365.0,
                now: float | None = None) -> IssuedToken:
    """Issue a token for ``user_id``, valid ``days`` days; store its hash.

    Raises
    ------
    ConfigError
        For a malformed user id, a label over 200 characters, or ``days`` not in (0, 3660].
    """
    if not isinstance(user_id, str) or not USER_ID_RE.fullmatch(user_id):
        raise ConfigError(f"user_id={user_id!r}: use 1-64 letters, digits, '_', '.', '@' or '-'")
    if len(label) > 200:
        raise ConfigError("label: at most 200 characters")
    if not 0 < days <= 3660:
        raise ConfigError(f"days={days}: must be in (0, 3660]")
    now = time.time() if now is None else now
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    record = TokenRecord(hash_token(token), user_id, label, now, now + days * 86400.0)
    store.put_token(record)
    return IssuedToken(token, record)


def bearer_token(authorization: str | None) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header value, or None."""
    if not authorization or len(authorization) > _MAX_TOKEN_CHARS + 7:
        return None
    scheme, _, token = authorization.strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token or " " in token:
        return None
    return token


def authenticate(store: ServiceStore, authorization: str | None, *, now: float | None = None) -> str | None:
    """The user id a bearer ``Authorization`` header authenticates, or None.

    None for a missing or malformed header, an unknown, revoked or expired token.
    """
    token = bearer_token(authorization)
    if token is None:
        return None
    record = store.get_token(hash_token(token))
    if record is None or not record.valid_at(time.time() if now is None else now):
        return None
    return record.user_id


def revoke_token(store: ServiceStore, token_id: str) -> TokenRecord:
    """Revoke the token whose id (:attr:`TokenRecord.token_id`, or the whole hash) is given.

    Raises
    ------
    NotFoundError
        When no token, or more than one, has that id.
    """
    if not re.fullmatch(r"[0-9a-f]{8,64}", token_id or ""):
        raise NotFoundError(f"token id {token_id!r}: expected 8-64 hex digits")
    matches = [t for t in store.list_tokens() if t.token_hash.startswith(token_id)]
    if len(matches) != 1:
        raise NotFoundError(f"token id {token_id!r} matches {len(matches)} tokens")
    return store.revoke_token(matches[0].token_hash)

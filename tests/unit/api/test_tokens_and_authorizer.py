"""Tokens are random, stored hashed, and refused when unknown, revoked or expired."""

from __future__ import annotations

import pytest
from distribution_harness import T0

from alertprod.api import authorize, hash_token, issue_token, revoke_token
from alertprod.api.tokens import authenticate, bearer_token
from alertprod.distribution import MemoryServiceStore
from alertprod.errors import ConfigError, NotFoundError
from alertprod.local.http import http_api_event

pytestmark = pytest.mark.unit


def _event(header):
    return http_api_event("GET", "/api/filters", {"authorization": header} if header else {}, b"")


def test_tokens_are_random_and_stored_hashed():
    store = MemoryServiceStore()
    a, b = (issue_token(store, "alice", now=T0) for _ in range(2))
    assert a.token != b.token and a.token.startswith("apt_") and len(a.token) > 40
    assert store.get_token(hash_token(a.token)).user_id == "alice"
    assert store.get_token(a.token) is None  # the token itself is no key


def test_authorizer_names_the_user_of_a_valid_token():
    store = MemoryServiceStore()
    token = issue_token(store, "alice", now=T0).token
    assert authorize(_event(f"Bearer {token}"), store, now=T0 + 1) == \
        {"isAuthorized": True, "context": {"userId": "alice"}}


@pytest.mark.parametrize("header", [None, "", "Bearer", "Basic abc", "Bearer apt_unknown", "Bearer a b",
                                    "Bearer " + "x" * 5000])
def test_authorizer_refuses_missing_malformed_and_unknown_tokens(header):
    store = MemoryServiceStore()
    issue_token(store, "alice", now=T0)
    assert authorize(_event(header), store, now=T0)["isAuthorized"] is False


def test_revoked_token_is_refused():
    store = MemoryServiceStore()
    issued = issue_token(store, "alice", now=T0)
    revoke_token(store, issued.record.token_id)
    assert authenticate(store, f"Bearer {issued.token}", now=T0) is None


def test_expired_token_is_refused():
    store = MemoryServiceStore()
    issued = issue_token(store, "alice", days=1, now=T0)
    assert authenticate(store, f"Bearer {issued.token}", now=T0 + 86399) == "alice"
    assert authenticate(store, f"Bearer {issued.token}", now=T0 + 86401) is None


def test_authorizer_reads_identity_source_when_headers_are_absent():
    store = MemoryServiceStore()
    token = issue_token(store, "alice", now=T0).token
    assert authorize({"identitySource": [f"Bearer {token}"]}, store, now=T0)["isAuthorized"]


def test_revoke_by_unknown_or_ambiguous_id_is_not_found():
    store = MemoryServiceStore()
    issue_token(store, "alice", now=T0)
    with pytest.raises(NotFoundError):
        revoke_token(store, "zz")
    with pytest.raises(NotFoundError):
        revoke_token(store, "00000000")


@pytest.mark.parametrize("user", ["", "a b", "x" * 65, "ü"])
def test_issue_refuses_malformed_user_ids(user):
    with pytest.raises(ConfigError, match="user_id"):
        issue_token(MemoryServiceStore(), user)


def test_bearer_token_parsing():
    assert bearer_token("bearer abc") == "abc"
    assert bearer_token("Bearer  abc ") == "abc"
    assert bearer_token("Token abc") is None

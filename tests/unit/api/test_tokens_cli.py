"""``alertprod tokens issue|list|revoke``: the token printed once, its hash stored, revocation by id."""

from __future__ import annotations

import json

import pytest

from alertprod.api import authenticate
from alertprod.cli import main
from alertprod.cli import tokens as cli_tokens
from alertprod.distribution import MemoryServiceStore

pytestmark = pytest.mark.unit


@pytest.fixture
def store(monkeypatch):
    store = MemoryServiceStore()
    monkeypatch.setattr(cli_tokens, "_store", lambda args: store)
    return store


def test_issue_prints_the_token_once_and_stores_its_hash(store, capsys):
    assert main(["tokens", "issue", "--user", "alice", "--label", "laptop", "--days", "30"]) == 0
    out = capsys.readouterr().out
    token = out.split("token: ")[1].split()[0]
    assert authenticate(store, f"Bearer {token}") == "alice"
    (record,) = store.list_tokens()
    assert record.label == "laptop" and token not in str(record)


def test_list_and_revoke(store, capsys):
    main(["tokens", "issue", "--user", "alice"])
    main(["tokens", "issue", "--user", "bob"])
    token = capsys.readouterr().out.split("token: ")[1].split()[0]  # alice's
    assert main(["tokens", "list", "--json"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["user"] for r in rows] == ["alice", "bob"] and not any(r["revoked"] for r in rows)
    assert main(["tokens", "revoke", rows[0]["id"]]) == 0
    assert capsys.readouterr().out.startswith(f"revoked {rows[0]['id']}")
    assert authenticate(store, f"Bearer {token}") is None
    main(["tokens", "list", "--user", "alice", "--json"])
    assert json.loads(capsys.readouterr().out)["revoked"] is True


def test_bad_input_exits_2_with_a_message(store, capsys):
    assert main(["tokens", "issue", "--user", "not a user"]) == 2
    assert "user_id" in capsys.readouterr().err
    assert main(["tokens", "revoke", "ffffffff"]) == 2


def test_without_a_table_it_says_so(monkeypatch, capsys):
    monkeypatch.delenv("SERVICE_TABLE", raising=False)
    assert main(["tokens", "list"]) == 2
    assert "SERVICE_TABLE" in capsys.readouterr().err

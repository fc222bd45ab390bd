"""``alertprod watchlists`` against the API served over loopback HTTP."""

from __future__ import annotations

import json

import pytest
from distribution_harness import harness

from alertprod.api import ApiContext, ApiHandler, issue_token
from alertprod.cli import main
from alertprod.distribution.watchlists import WatchlistLibrary
from alertprod.local.http import serve_function


@pytest.fixture
def served():
    h = harness()
    ctx = ApiContext(store=h.store, service=h.service, archive=h.service.archive, settings=h.settings,
                     clock=h.clock, watchlist_library=WatchlistLibrary(h.store, h.archive_blobs))
    handler = ApiHandler(ctx)
    token = issue_token(h.store, "alice", now=h.clock()).token
    with serve_function(lambda event: handler(event, None)) as endpoint:
        yield ["--api", endpoint.url, "--token", token]


def test_put_list_get_and_delete_round_trip(served, tmp_path, capsys):
    path = tmp_path / "targets.csv"
    path.write_text("ra,dec,radius,id\n10.5,-20.25,1.5,a\n359.0,89.0,3.0,b\n")
    assert main(["watchlists", *served, "put", "targets", str(path)]) == 0
    assert json.loads(capsys.readouterr().out)["entries"] == 2
    assert main(["watchlists", *served, "list"]) == 0
    assert [w["name"] for w in json.loads(capsys.readouterr().out)["watchlists"]] == ["targets"]
    assert main(["watchlists", *served, "get", "targets"]) == 0
    assert capsys.readouterr().out.splitlines() == ["ra,dec,radius,id", "10.5,-20.25,1.5,a", "359.0,89.0,3.0,b"]
    assert main(["watchlists", *served, "delete", "targets"]) == 0
    capsys.readouterr()
    assert main(["watchlists", *served, "show", "targets"]) == 1
    assert "404" in capsys.readouterr().err


def test_a_refused_file_exits_1_with_the_apis_reason(served, tmp_path, capsys):
    path = tmp_path / "bad.csv"
    path.write_text("ra,dec\n10,95\n")
    assert main(["watchlists", *served, "put", "bad", str(path)]) == 1
    assert "entry 0: dec" in capsys.readouterr().err


def test_json_file_and_default_radius(served, tmp_path, capsys):
    path = tmp_path / "list.json"
    path.write_text(json.dumps({"entries": [{"ra": 1.0, "dec": 2.0}]}))
    assert main(["watchlists", *served, "put", "j", str(path), "--radius-arcsec", "4"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["source_format"] == "json" and doc["max_radius_arcsec"] == 4.0

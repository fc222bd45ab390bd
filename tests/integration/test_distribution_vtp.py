"""A filter with a VTP transport: its matches reach a real VOEvent broker (comet) on loopback."""

from __future__ import annotations

import importlib.util

import pytest
from distribution_harness import add_filter, harness, make_alerts, messages

from alertprod.alerts.voevent import VOEventConfig, voevent_ivorn

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(importlib.util.find_spec("comet") is None,
                       reason="comet (VOEvent broker) not installed: pip install -e '.[dev]'"),
]

CONFIG = VOEventConfig(authority="alerts.example.org")


@pytest.fixture
def comet(tmp_path):
    from integration.test_vtp_comet import Comet

    broker = Comet(tmp_path)
    yield broker
    broker.stop()


def test_vtp_subscriber_receives_every_match_once(comet):
    h = harness()
    object.__setattr__(h.settings, "voevent", CONFIG)
    alerts = make_alerts(6, snr=[3, 30, 12, 45, 8, 60])
    h.archive(alerts)
    add_filter(h.store, "f-vtp", "alice", "diaSource.snr > 20",
               [{"kind": "vtp", "host": "127.0.0.1", "port": comet.port}])
    report = h.service.process_batch(messages(alerts))
    want = {voevent_ivorn(a["diaSourceId"], config=CONFIG) for a in alerts if a["diaSource"]["snr"] > 20}
    assert report.delivered == 3 and report.failed == 0
    assert set(comet.stored(3)) == want
    # redelivery: comet naks what it has seen; the records stay delivered, nothing is dead-lettered
    f = h.store.get_filter("f-vtp")
    again = h.service.redeliver(f, 0)
    assert again.redelivered == 3 and again.failed == 0 and not h.dead.bodies

"""The stream relay against loopback VTP receivers: subsets, once per broker, failures retried alone."""

from __future__ import annotations

import socket

import pytest
from distribution_harness import make_alerts, messages
from unit.delivery.test_vtp import ScriptedBroker, ack

from alertprod.alerts.voevent import voevent_ivorn
from alertprod.delivery.brokers import load_broker_config
from alertprod.delivery.vtp import encode_message, transport_message
from alertprod.distribution import AlertMessage, MemoryServiceStore
from alertprod.distribution.relay import StreamRelay

pytestmark = pytest.mark.unit

VTP = {"connect_timeout_s": 2.0, "response_timeout_s": 5.0, "retry_delay_s": 0.0, "max_attempts": 2}


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def brokers():
    made = []

    def make(script=ack):
        made.append(ScriptedBroker(script))
        return made[-1]

    yield make
    for b in made:
        b.close()


def _relay(store, *entries):
    config = load_broker_config({"voevent": {"authority": "alerts.example.org"}, "vtp": VTP,
                                 "brokers": list(entries)})
    return StreamRelay(store, config), config


def test_each_broker_gets_its_subset_once_and_a_redelivered_batch_sends_nothing(brokers):
    everything, bright = brokers(), brokers()
    store = MemoryServiceStore()
    relay, config = _relay(store, {"name": "all", "address": f"127.0.0.1:{everything.port}"},
                           {"name": "bright", "address": f"127.0.0.1:{bright.port}", "select": {"min_snr": 20}})
    alerts = make_alerts(5, snr=[5, 25, 8, 40, 12])
    report = relay.process_batch(messages(alerts))
    ivorn = {a["diaSourceId"]: voevent_ivorn(a["diaSourceId"], config=config.voevent) for a in alerts}
    assert sorted(everything.received) == sorted(ivorn.values())
    assert sorted(bright.received) == sorted(ivorn[a["diaSourceId"]] for a in alerts if a["diaSource"]["snr"] > 20)
    assert report.retry == [] and report.brokers["bright"].acked == 2
    again = relay.process_batch(messages(alerts))
    assert len(everything.received) == 5 and len(bright.received) == 2
    assert again.brokers["all"].known == 5 and again.retry == []


def test_a_broker_that_is_down_is_retried_alone_while_the_other_receives(brokers):
    up = brokers()
    store = MemoryServiceStore()
    down_port = _closed_port()
    relay, _ = _relay(store, {"name": "up", "address": f"127.0.0.1:{up.port}"},
                      {"name": "down", "address": f"127.0.0.1:{down_port}"})
    alerts = make_alerts(4)
    batch = messages(alerts)
    report = relay.process_batch(batch)
    assert report.brokers["up"].acked == 4 and report.brokers["down"].failed == 4
    assert report.retry == [0, 1, 2, 3] and report.brokers["down"].error
    # the queue redelivers the four messages; the broker is back (at a new loopback port)
    back = ScriptedBroker(ack)
    try:
        relay2, _ = _relay(store, {"name": "up", "address": f"127.0.0.1:{up.port}"},
                           {"name": "down", "address": f"127.0.0.1:{back.port}"})
        retried = relay2.process_batch([batch[k] for k in report.retry])
        assert retried.retry == [] and retried.brokers["down"].acked == 4
        assert retried.brokers["up"].known == 4 and len(up.received) == 4
    finally:
        back.close()


def test_a_nak_is_final_and_not_retried(brokers):
    def nak(conn, ivorn, n):
        conn.sendall(encode_message(transport_message("nak", ivorn, response="ivo://test/broker",
                                                      result="previously seen")))
        return False

    refusing = brokers(nak)
    store = MemoryServiceStore()
    relay, _ = _relay(store, {"name": "strict", "address": f"127.0.0.1:{refusing.port}"})
    report = relay.process_batch(messages(make_alerts(2)))
    assert report.brokers["strict"].naked == 2 and report.retry == []
    assert relay.process_batch(messages(make_alerts(2))).brokers["strict"].known == 2


def test_an_undecodable_message_is_dropped_and_a_repeat_in_the_batch_sent_once(brokers):
    receiver = brokers()
    relay, _ = _relay(MemoryServiceStore(), {"name": "all", "address": f"127.0.0.1:{receiver.port}"})
    alerts = make_alerts(2)
    report = relay.process_batch([AlertMessage("not an alert"), *messages(alerts), *messages(alerts[:1])])
    assert len(report.undecodable) == 1 and report.retry == [] and report.alerts == 2
    assert len(receiver.received) == 2


def test_without_brokers_the_relay_accepts_every_message():
    relay, _ = _relay(MemoryServiceStore())
    report = relay.process_batch(messages(make_alerts(3)))
    assert report.alerts == 3 and report.retry == [] and report.brokers == {}


def test_a_selection_filter_expression_picks_the_brokers_alerts(brokers):
    receiver = brokers()
    relay, config = _relay(MemoryServiceStore(), {"name": "g-band", "address": f"127.0.0.1:{receiver.port}",
                                                  "select": {"filter": "diaSource.band = 'g' AND diaSource.snr > 10"}})
    alerts = make_alerts(6, snr=[5, 25, 30, 40, 12, 3])
    relay.process_batch(messages(alerts))
    want = [voevent_ivorn(a["diaSourceId"], config=config.voevent) for a in alerts
            if a["diaSource"]["band"] == "g" and a["diaSource"]["snr"] > 10]
    assert want and sorted(receiver.received) == sorted(want)


def test_a_selection_filter_the_engine_refuses_stops_the_relay_from_starting():
    from alertprod.delivery.vtp import DeliveryError

    with pytest.raises(DeliveryError, match="selection filter is refused"):
        _relay(MemoryServiceStore(), {"name": "bad", "address": "127.0.0.1:8098", "select": {"filter": "snr >"}})

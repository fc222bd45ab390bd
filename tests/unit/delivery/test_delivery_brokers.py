"""Broker configuration and the relay: which broker gets which alert, as which VOEvent."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import numpy as np
import pytest

from alertprod.alerts import build_alert
from alertprod.alerts.examples import example_alert, example_row
from alertprod.delivery import (
    AlertSelection,
    BrokerConfig,
    DeliveryError,
    SendReport,
    load_broker_config,
    relay_alerts,
)

pytestmark = pytest.mark.unit

CONFIG = """
voevent:
  authority: alerts.example.org
  contact_email: alerts@example.org
vtp:
  response_timeout_s: 5
  max_attempts: 2
brokers:
  - name: community
    address: broker.example.org:8098
    select: {min_snr: 10, bands: [g, r], solar_system: exclude}
  - name: asteroids
    address: "[::1]:9000"
    select: {solar_system: only}
  - name: rehearsal
    address: localhost
    role: test
"""


def _alert(seed, **kw):
    return example_alert(seed, n_prv_sources=0, n_prv_forced=0, cutout_size_pix=8, **kw)


def _asteroid(seed=50):
    rng = np.random.default_rng(seed)
    src = example_row("diaSource", rng, diaSourceId=5000 + seed, diaObjectId=None,
                      ssObjectId=77, parentDiaSourceId=None, timeWithdrawnMjdTai=None,
                      midpointMjdTai=60900.2, timeProcessedMjdTai=60900.21, ra=10.0, dec=1.0,
                      snr=30.0, band="r")
    return build_alert(src, dia_object=None, prv_dia_sources=None, prv_dia_forced_sources=None,
                       ss_source=example_row("ssSource", rng), cutout_difference=None,
                       cutout_template=None)


class RecordingClient:
    """Stands in for VtpClient: acks everything and remembers what each broker was sent."""

    sent: dict[tuple[str, int], list[bytes]] = {}

    def __init__(self, host, port, *, config):
        self.key, self.config = (host, port), config

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        pass

    def send(self, documents):
        docs = list(documents)
        RecordingClient.sent[self.key] = docs
        return SendReport(acked=[ET.fromstring(d).get("ivorn") for d in docs])


@pytest.fixture(autouse=True)
def _clear():
    RecordingClient.sent = {}


def test_configuration_reads_authority_brokers_and_selections():
    cfg = load_broker_config(CONFIG)
    assert cfg.voevent.authority == "alerts.example.org"
    assert cfg.vtp.response_timeout_s == 5 and cfg.vtp.max_attempts == 2
    assert cfg.vtp.local_ivorn == "ivo://alerts.example.org/alertprod"
    community, asteroids, rehearsal = cfg.brokers
    assert community.host_port == ("broker.example.org", 8098)
    assert community.selection == AlertSelection(min_snr=10, bands=("g", "r"),
                                                 solar_system="exclude")
    assert asteroids.host_port == ("::1", 9000)
    assert rehearsal.host_port == ("localhost", 8098) and rehearsal.role == "test"


@pytest.mark.parametrize("text, words", [
    ("brokers: [{name: a, address: 'h:1', colour: red}]", "brokers[0]"),
    ("brokers: [{name: a, address: 'h:1', select: {min_snr: 1, bandz: [r]}}]", "bandz"),
    ("brokers: [{name: a, address: 'h:1', select: {bands: [q]}}]", "bands"),
    ("brokers: [{name: a, address: 'h:x'}]", "port"),
    ("brokers: [{name: a, address: 'h:1'}, {name: a, address: 'h:2'}]", "unique"),
    ("voevent: {authority: 'a b'}", "authority"),
    ("vtp: {max_attempts: 0}", "max_attempts"),
    ("brokerz: []", "brokerz"),
    ("[: not yaml", "YAML"),
])
def test_bad_configuration_is_refused_naming_the_key(text, words):
    with pytest.raises(DeliveryError, match=words.replace("[", r"\[").replace("]", r"\]")):
        load_broker_config(text)


def test_selection_by_snr_band_reliability_solar_system_and_novelty():
    bright_r, faint_r, bright_u = _alert(1, band="r", snr=20.0), _alert(2, band="r", snr=5.0), \
        _alert(3, band="u", snr=50.0)
    asteroid = _asteroid()
    sel = AlertSelection(min_snr=10, bands=("g", "r"), solar_system="exclude")
    assert [sel.matches(a) for a in (bright_r, faint_r, bright_u, asteroid)] == [
        True, False, False, False]
    assert AlertSelection(solar_system="only").matches(asteroid)
    assert not AlertSelection(solar_system="only").matches(bright_r)
    bright_r["diaSource"]["reliability"] = None
    assert not AlertSelection(min_reliability=0.5).matches(bright_r)
    first = _alert(4)
    first["diaObject"]["nDiaSources"] = 1
    assert AlertSelection(new_objects_only=True).matches(first)
    later = _alert(5)
    later["diaObject"]["nDiaSources"] = 4
    assert not AlertSelection(new_objects_only=True).matches(later)


def test_relay_sends_each_broker_its_subset_with_its_role():
    cfg = load_broker_config(CONFIG)
    alerts = [_alert(1, band="r", snr=20.0), _alert(2, band="u", snr=20.0), _asteroid()]
    reports = relay_alerts(alerts, cfg.brokers, voevent=cfg.voevent, vtp=cfg.vtp,
                           client_factory=RecordingClient)
    assert set(reports) == {"community", "asteroids", "rehearsal"}
    sent = RecordingClient.sent
    ids = {k: [ET.fromstring(d).get("ivorn").rsplit("#", 1)[1] for d in v] for k, v in sent.items()}
    assert ids[("broker.example.org", 8098)] == [str(alerts[0]["diaSourceId"])]
    assert ids[("::1", 9000)] == [str(alerts[2]["diaSourceId"])]
    assert ids[("localhost", 8098)] == [str(a["diaSourceId"]) for a in alerts]
    assert {ET.fromstring(d).get("role") for d in sent[("localhost", 8098)]} == {"test"}
    assert {ET.fromstring(d).get("role") for d in sent[("broker.example.org", 8098)]} == {
        "observation"}
    assert all(ET.fromstring(d).get("ivorn").startswith("ivo://alerts.example.org/alertprod#")
               for docs in sent.values() for d in docs)
    assert reports["community"].all_acked


def test_relay_with_a_filter_expression_uses_the_given_compiler():
    brokers = [BrokerConfig("f", "h:1", AlertSelection(filter_expression="diaSource.snr > 15"))]
    alerts = [_alert(1, snr=20.0), _alert(2, snr=10.0)]
    with pytest.raises(DeliveryError, match="compile_filter"):
        relay_alerts(alerts, brokers, client_factory=RecordingClient)

    def compile_filter(expression):
        assert expression == "diaSource.snr > 15"
        return lambda alert: alert["diaSource"]["snr"] > 15

    reports = relay_alerts(alerts, brokers, compile_filter=compile_filter,
                           client_factory=RecordingClient)
    assert [a.rsplit("#", 1)[1] for a in reports["f"].acked] == [str(alerts[0]["diaSourceId"])]


def test_broker_that_selects_nothing_is_not_contacted():
    brokers = [BrokerConfig("none", "h:1", AlertSelection(min_snr=1e9))]
    reports = relay_alerts([_alert(1)], brokers, client_factory=RecordingClient)
    assert reports["none"] == SendReport() and RecordingClient.sent == {}

"""Our VOEvents through a real VOEvent broker: comet (IVOA VTP), started on loopback.

comet validates every event it receives against the VOEvent 2.0 schema (with libxml2, a second
validator beside the tests' xmlschema), checks the ivorn's form, naks an ivorn it has seen
before, and (``--save-event``) writes each accepted event to a directory, where the tests read
back what arrived. comet is installed by the ``dev`` extra; without it these tests are skipped.
"""

from __future__ import annotations

import importlib.util
import socket
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest
import xmlschema

from alertprod.alerts import build_alert
from alertprod.alerts.examples import example_alert, example_row
from alertprod.alerts.voevent import VOEventConfig, voevent_bytes
from alertprod.delivery import (
    AlertSelection,
    BrokerConfig,
    VtpClient,
    VtpConfig,
    relay_alerts,
)

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(importlib.util.find_spec("comet") is None,
                       reason="comet (VOEvent broker) not installed: pip install -e '.[dev]'"),
]

XSD = Path(__file__).resolve().parents[1] / "data" / "voevent" / "VOEvent-v2.0.xsd"
BROKER_IVORN = "ivo://broker.test/comet"
CONFIG = VOEventConfig(authority="alerts.example.org")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Comet:
    """A comet broker receiving on a loopback port, saving events to ``events``."""

    def __init__(self, root: Path):
        self.root, self.port = root, _free_port()
        self.events = root / "events"
        self.log = root / "comet.log"
        cmd = [sys.executable, "-m", "twisted", "comet", "--receive",
               f"--receive-port={self.port}", f"--local-ivo={BROKER_IVORN}",
               f"--eventdb={root / 'eventdb'}", "--save-event",
               f"--save-event-directory={self.events}", "--author-whitelist=127.0.0.0/8"]
        (root / "eventdb").mkdir(parents=True, exist_ok=True)
        with open(self.log, "wb") as log:
            # cwd: comet's save-event plugin writes its lock files there
            self.process = subprocess.Popen(cmd, cwd=root, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 60
        while f"starting on {self.port}" not in self.log.read_text(errors="replace"):
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                pytest.fail(f"comet did not start:\n{self.log.read_text(errors='replace')}")
            time.sleep(0.1)

    def stored(self, expected: int, timeout_s: float = 10.0) -> dict[str, bytes]:
        """ivorn -> bytes of the saved events, once ``expected`` files exist (or the timeout)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            files = list(self.events.glob("*")) if self.events.exists() else []
            if len(files) >= expected:
                break
            time.sleep(0.05)
        time.sleep(0.1)   # the last file is written after its ack
        return {ET.fromstring(p.read_bytes()).get("ivorn"): p.read_bytes()
                for p in self.events.glob("*")} if self.events.exists() else {}

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)


@pytest.fixture
def comet(tmp_path):
    broker = Comet(tmp_path / "comet")
    yield broker
    broker.stop()


def _client(comet, **kw) -> VtpClient:
    cfg = VtpConfig(local_ivorn=CONFIG.author_ivorn, connect_timeout_s=5, response_timeout_s=15,
                    retry_delay_s=0.2, **kw)
    return VtpClient("127.0.0.1", comet.port, config=cfg)


def _asteroid_alert(seed=11):
    rng = np.random.default_rng(seed)
    src = example_row("diaSource", rng, diaSourceId=7000 + seed, diaObjectId=None,
                      ssObjectId=4242, parentDiaSourceId=None, timeWithdrawnMjdTai=None,
                      midpointMjdTai=60900.2, timeProcessedMjdTai=60900.21, ra=40.0, dec=12.0,
                      snr=18.0, band="r")
    return build_alert(src, dia_object=None, prv_dia_sources=None, prv_dia_forced_sources=None,
                       ss_source=example_row("ssSource", rng, designation="2014 QX17"),
                       cutout_difference=None, cutout_template=None)


def _alerts(n):
    return [example_alert(s, n_prv_sources=2, n_prv_forced=2, cutout_size_pix=8,
                          band="ugrizy"[s % 6], snr=5.0 + 3 * s) for s in range(n)]


def test_comet_acks_and_stores_every_event_sent(comet):
    docs = [voevent_bytes(a, config=CONFIG) for a in [*_alerts(20), _asteroid_alert()]]
    with _client(comet) as client:
        report = client.send(docs)
    sent = {ET.fromstring(d).get("ivorn"): d for d in docs}
    assert report.all_acked and report.acked == list(sent)
    stored = comet.stored(len(docs))
    assert stored == sent            # every event arrived, byte for byte


def test_comet_naks_an_ivorn_it_has_already_accepted(comet):
    good = voevent_bytes(_alerts(1)[0], config=CONFIG)
    ivorn = ET.fromstring(good).get("ivorn")
    with _client(comet) as client:
        report = client.send([good, good])
    assert report.acked == [ivorn] and not report.failed and report.attempts == 2
    assert "Previously seen" in report.naked[ivorn]
    assert list(comet.stored(1)) == [ivorn]


def test_comet_refuses_a_document_that_breaks_the_schema_with_the_schema_error(comet):
    doc = voevent_bytes(_alerts(2)[1], config=CONFIG).replace(
        b'dataType="float"', b'dataType="double"', 1)
    assert not xmlschema.XMLSchema(XSD).is_valid(doc.decode())   # both validators agree
    with _client(comet) as client:
        report = client.send([doc])
    (reason,) = report.naked.values()
    assert "dataType" in reason and "double" in reason
    assert comet.stored(0, timeout_s=0.5) == {}


def test_relay_sends_comet_only_the_selected_subset(comet):
    alerts = [*_alerts(12), _asteroid_alert()]
    brokers = [BrokerConfig("comet", f"127.0.0.1:{comet.port}",
                            AlertSelection(min_snr=20.0, solar_system="exclude"))]
    reports = relay_alerts(alerts, brokers, voevent=CONFIG,
                           vtp=VtpConfig(local_ivorn=CONFIG.author_ivorn, response_timeout_s=15))
    chosen = [a for a in alerts if a["diaSource"]["snr"] >= 20.0 and a.get("ssSource") is None]
    assert 0 < len(chosen) < len(alerts)
    expected = [f"{CONFIG.author_ivorn}#{a['diaSourceId']}" for a in chosen]
    assert reports["comet"].acked == expected and reports["comet"].all_acked
    assert sorted(comet.stored(len(expected))) == sorted(expected)


def test_broker_restart_mid_batch_loses_nothing(comet, tmp_path):
    docs = [voevent_bytes(a, config=CONFIG) for a in _alerts(6)]
    with _client(comet) as client:
        first = client.send(docs[:3])
    comet.stop()
    # nobody listens now: the client gives up after its tries, without hanging
    with _client(comet, max_attempts=2, max_consecutive_failures=1) as client:
        down = client.send(docs[3:])
    assert not down.acked and len(down.failed) == 3
    restarted = Comet(tmp_path / "comet2")
    try:
        with VtpClient("127.0.0.1", restarted.port,
                       config=VtpConfig(response_timeout_s=15)) as client:
            again = client.send(docs[3:])
        assert first.all_acked and again.all_acked
        assert len(restarted.stored(3)) == 3
    finally:
        restarted.stop()


@pytest.mark.slow
def test_every_voevent_of_a_replayed_survey_validates_and_reaches_comet(comet, tmp_path):
    from alertprod.cli import main
    from alertprod.replay.runner import replay
    from alertprod.sky import simulate_survey

    survey, export, xml_dir = tmp_path / "survey", tmp_path / "export", tmp_path / "voevents"
    simulate_survey(survey, preset="tiny", seed=3, progress=False)
    replay(survey, export, progress=False)
    avro = sorted((export / "alerts").glob("*.avro"))
    assert avro
    assert main(["alerts", "voevent", *map(str, avro), "--out", str(xml_dir),
                 "--authority", CONFIG.authority]) == 0
    schema = xmlschema.XMLSchema(XSD)
    docs = sorted(xml_dir.glob("*.xml"))
    assert len(docs) >= len(avro)
    for path in docs:
        schema.validate(str(path))
    sent = docs[::max(1, len(docs) // 40)]  # every document validated; a spread of 40 sent
    with _client(comet) as client:
        report = client.send([p.read_bytes() for p in sent])
    assert report.all_acked and len(report.acked) == len(sent)
    assert len(comet.stored(len(sent), timeout_s=30)) == len(sent)

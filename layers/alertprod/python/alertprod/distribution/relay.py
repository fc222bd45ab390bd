"""The stream relay: every alert (or each broker's configured subset) to public VOEvent brokers.

The relay function's queue is subscribed to the alert topic, as the filtering service's is.
For one batch of alert messages, :meth:`StreamRelay.process_batch` decodes the alerts as a
consumer does (framed packets, or claim-checks read from the archive), and for each broker of
the deployment's configuration (:func:`~alertprod.delivery.brokers.load_broker_config`):

1. keeps the alerts the broker's selection accepts, less those the broker has already accepted
   (:meth:`ServiceStore.relayed`: the relay is idempotent per (broker, alert), i.e. per ivorn);
2. sends their VOEvent 2.0 documents over VTP (:class:`~alertprod.delivery.vtp.VtpClient`:
   timeouts, retries with back-off, a circuit breaker), every broker in its own thread, so a
   broker that is down never delays the others;
3. records what the broker acked — or naked: a nak is the broker's final word (comet naks an
   ivorn it has seen, or a document it refuses), and sending it again would change nothing.

Alerts some broker could not be sent are reported for retry: the function returns them as
batch-item failures, the queue redelivers them (brokers that accepted them are skipped), and
after the queue's ``maxReceiveCount`` they wait in its dead-letter queue, without holding up
the rest of the stream.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from alertprod.alerts.client import decode_message
from alertprod.alerts.voevent import voevent_bytes, voevent_ivorn
from alertprod.delivery.brokers import BrokerConfig, DeliveryConfig
from alertprod.delivery.vtp import DeliveryError, VtpClient
from alertprod.distribution.messages import AlertMessage, unwrap_sns
from alertprod.distribution.store import ServiceStore
from alertprod.errors import AlertprodError, AlertSchemaError, StorageError
from alertprod.filtering.batch import AlertBatch
from alertprod.filtering.compiler import CompiledFilter, compile_filter

__all__ = ["BrokerOutcome", "RelayPendingError", "RelayReport", "StreamRelay"]

logger = logging.getLogger(__name__)


class RelayPendingError(DeliveryError):
    """An alert some broker has not accepted yet: the queue should deliver its message again."""


@dataclass
class BrokerOutcome:
    """What one batch did at one broker (counts of alerts)."""

    selected: int = 0
    known: int = 0
    acked: int = 0
    naked: int = 0
    failed: int = 0
    error: str = ""


@dataclass
class RelayReport:
    """What one batch did: per broker, and which messages to retry (positions in the batch)."""

    alerts: int = 0
    undecodable: list[str] = field(default_factory=list)
    retry: list[int] = field(default_factory=list)
    brokers: dict[str, BrokerOutcome] = field(default_factory=dict)


class StreamRelay:
    """Relays alert batches to the configured public VOEvent brokers.

    Parameters
    ----------
    store : ServiceStore
        Keeps which alerts each broker has accepted.
    config : DeliveryConfig
        Who we are (the IVOA authority), timeouts, the brokers and their selections.
    s3_client : botocore client, optional
        Reads claim-checks.
    client_factory : callable, optional
        ``client_factory(host, port, config=...) -> VtpClient``.
    clock : callable, optional
        Unix time.

    Raises
    ------
    DeliveryError
        A broker's selection ``filter`` is refused by the filter engine.
    """

    def __init__(self, store: ServiceStore, config: DeliveryConfig, *, s3_client: Any = None,
                 client_factory: Callable[..., VtpClient] = VtpClient, clock: Callable[[], float] = time.time):
        self.store, self.config, self.s3_client = store, config, s3_client
        self.client_factory, self.clock = client_factory, clock
        self._filters: dict[str, CompiledFilter] = {}
        for broker in config.brokers:
            if broker.selection.filter_expression:
                try:
                    self._filters[broker.name] = compile_filter(broker.selection.filter_expression)
                except AlertprodError as exc:
                    raise DeliveryError(f"broker {broker.name!r}: its selection filter is refused: {exc}") from exc

    def process_batch(self, messages: Sequence[AlertMessage]) -> RelayReport:
        """Relay one batch; ``report.retry`` lists the messages to deliver again.

        Raises
        ------
        StorageError
            When the store fails (the whole batch is then retried; nothing is sent twice to a
            broker that acked it before).
        """
        report = RelayReport()
        alerts: list[tuple[int, dict[str, Any]]] = []
        seen: set[int] = set()
        for k, m in enumerate(messages):
            try:
                record, _ = decode_message(unwrap_sns(m.body), self.s3_client)
            except AlertSchemaError as exc:  # never decodable: dropped (the archive keeps every alert)
                report.undecodable.append(f"message {k}: {exc}")
                continue
            except StorageError:  # a claim-check not readable yet
                report.retry.append(k)
                continue
            if int(record["diaSourceId"]) not in seen:
                seen.add(int(record["diaSourceId"]))
                alerts.append((k, record))
        report.alerts = len(alerts)
        if not alerts or not self.config.brokers:
            return report
        masks = {}
        if self._filters:  # selection filters: evaluated on the whole batch at once
            batch = AlertBatch.from_records([a for _, a in alerts])
            masks = {name: f.evaluate(batch) for name, f in self._filters.items()}
        with ThreadPoolExecutor(max_workers=len(self.config.brokers)) as pool:
            outcomes = list(pool.map(lambda b: self._relay(b, alerts, masks.get(b.name)), self.config.brokers))
        retry = set(report.retry)
        for broker, (outcome, failed_positions) in zip(self.config.brokers, outcomes, strict=True):
            report.brokers[broker.name] = outcome
            retry.update(failed_positions)
        report.retry = sorted(retry)
        return report

    def _relay(self, broker: BrokerConfig, alerts: list[tuple[int, dict[str, Any]]],
               mask: Any = None) -> tuple[BrokerOutcome, list[int]]:
        out = BrokerOutcome()
        chosen = [(k, a) for j, (k, a) in enumerate(alerts)
                  if broker.selection.matches(a) and (mask is None or mask[j])]
        out.selected = len(chosen)
        known = self.store.relayed(broker.name, [int(a["diaSourceId"]) for _, a in chosen])
        todo = [(k, a) for k, a in chosen if int(a["diaSourceId"]) not in known]
        out.known = len(chosen) - len(todo)
        if not todo:
            return out, []
        voevent = dataclasses.replace(self.config.voevent, role=broker.role)
        by_ivorn = {voevent_ivorn(a["diaSourceId"], config=voevent): (k, a) for k, a in todo}
        try:
            documents = [voevent_bytes(a, config=voevent) for _, a in todo]
            host, port = broker.host_port
            with self.client_factory(host, port, config=self.config.vtp) as client:
                sent = client.send(documents)
        except (AlertprodError, OSError) as exc:  # a whole batch refused before sending: retry it
            out.failed, out.error = len(todo), str(exc)[:300]
            logger.warning("relay to %s failed: %s", broker.name, out.error)
            return out, [k for k, _ in todo]
        done = [by_ivorn[i][1]["diaSourceId"] for i in [*sent.acked, *sent.naked] if i in by_ivorn]
        self.store.mark_relayed(broker.name, done, self.clock())
        out.acked, out.naked, out.failed = len(sent.acked), len(sent.naked), len(sent.failed)
        if sent.naked:
            logger.warning("broker %s refused %d event(s), e.g. %s", broker.name, len(sent.naked),
                           next(iter(sent.naked.items())))
        if sent.failed:
            out.error = next(iter(sent.failed.values()))[:300]
        return out, [by_ivorn[i][0] for i in sent.failed if i in by_ivorn]


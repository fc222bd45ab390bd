"""Send matches through their owners' transports, concurrently, and record what happened.

One task per (filter, transport) — per (user, address) for e-mail digests, so a user gets one
digest per batch — runs in a thread pool with bounded timeouts inside each transport: a slow
or failing receiver occupies one worker and never delays the others past its own timeout ×
attempts. A match is ``delivered`` when every transport of its filter accepted it; otherwise
it is ``failed``, and its record (with each transport's error) goes to the dead-letter queue.
"""

from __future__ import annotations

import json
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Any, Protocol

from alertprod.delivery.envelope import Outbound, SendOutcome
from alertprod.distribution.records import DeliveryRecord, FilterRecord
from alertprod.distribution.store import ServiceStore
from alertprod.distribution.transports import TransportFactory

__all__ = ["DeadLetters", "Dispatcher", "DispatchResult", "MemoryDeadLetters"]


class DeadLetters(Protocol):
    """Where failed deliveries go (``alertprod.aws.SqsQueue`` fits)."""

    def send(self, body: str) -> Any: ...


class MemoryDeadLetters:
    """Dead letters in a list (tests, tools)."""

    def __init__(self) -> None:
        self.bodies: list[str] = []

    def send(self, body: str) -> None:
        self.bodies.append(body)

    @property
    def records(self) -> list[dict[str, Any]]:
        return [json.loads(b) for b in self.bodies]


@dataclass
class DispatchResult:
    """Per filter: ids delivered and failed, and the delivery time."""

    delivered: dict[str, list[DeliveryRecord]] = field(default_factory=lambda: defaultdict(list))
    failed: dict[str, list[DeliveryRecord]] = field(default_factory=lambda: defaultdict(list))
    delivered_unix: float = 0.0


class Dispatcher:
    """Sends :class:`Outbound` matches through the transports of their filters.

    Parameters
    ----------
    store : ServiceStore
        Where delivery records are updated.
    factory : TransportFactory
        Builds each transport from the filter's settings.
    dead_letters : DeadLetters
        The per-service dead-letter queue.
    workers : int
        Transports called at once.
    budget_s : float
        Wall time the whole dispatch may take, seconds: transports not finished by then are
        reported failed (dead-lettered, redeliverable), so many broken receivers cannot push
        a batch past the function's timeout.
    clock : callable
        Unix time.
    """

    def __init__(self, store: ServiceStore, factory: TransportFactory, dead_letters: DeadLetters, *,
                 workers: int = 8, budget_s: float = 60.0, clock: Callable[[], float] = time.time):
        self.store, self.factory, self.dead_letters = store, factory, dead_letters
        self.workers, self.budget_s, self.clock = max(1, int(workers)), float(budget_s), clock

    def dispatch(self, jobs: Sequence[tuple[FilterRecord, Sequence[tuple[DeliveryRecord, Outbound]]]]
                 ) -> DispatchResult:
        """Send every job's matches; update each record (delivered / failed + dead letter)."""
        tasks: dict[tuple, tuple[dict, list[Outbound]]] = {}
        needed: dict[str, int] = defaultdict(int)  # delivery id -> transports it must pass
        for filt, pairs in jobs:
            if not pairs:
                continue
            for k, config in enumerate(filt.transports):
                key = (("email", filt.user_id, config.get("to")) if config.get("kind") == "email"
                       else ("filter", filt.filter_id, k))
                tasks.setdefault(key, (config, []))[1].extend(o for _, o in pairs)
                for record, _ in pairs:
                    needed[record.delivery_id] += 1
        outcomes: dict[str, list[tuple[str, str]]] = defaultdict(list)  # id -> [(kind, error)]
        passed: dict[str, int] = defaultdict(int)

        def run(config: dict, items: list[Outbound]) -> tuple[str, SendOutcome]:
            try:
                return config.get("kind", "?"), self.factory.build(config).send(items)
            except Exception as exc:  # a transport bug must not stop the others
                return config.get("kind", "?"), SendOutcome(
                    failed={i.delivery_id: f"{type(exc).__name__}: {exc}" for i in items})

        if tasks:
            pool = ThreadPoolExecutor(max_workers=min(self.workers, len(tasks)))
            futures = {pool.submit(run, config, items): (config, items) for config, items in tasks.values()}
            done, _ = wait(futures, timeout=self.budget_s)
            pool.shutdown(wait=False, cancel_futures=True)
            for future, (config, items) in futures.items():
                if future in done:
                    kind, outcome = future.result()
                else:
                    kind, outcome = config.get("kind", "?"), SendOutcome(failed={
                        i.delivery_id: f"not finished within the dispatch budget of {self.budget_s:g} s"
                        for i in items})
                for d in outcome.delivered:
                    passed[d] += 1
                for d, error in outcome.failed.items():
                    outcomes[d].append((kind, error))
        now = self.clock()
        result = DispatchResult(delivered_unix=now)
        for filt, pairs in jobs:
            for record, _ in pairs:
                d = record.delivery_id
                ok = passed[d] >= needed[d] and not outcomes.get(d)
                if ok:
                    done = record.replace(state="delivered", attempts=record.attempts + 1,
                                          delivered_unix=now, error="")
                    result.delivered[filt.filter_id].append(done)
                else:
                    errors = "; ".join(f"{k}: {e}" for k, e in outcomes.get(d, [])) or "not delivered"
                    done = record.replace(state="failed", attempts=record.attempts + 1, error=errors[:1000])
                    result.failed[filt.filter_id].append(done)
                    self.dead_letters.send(json.dumps({"reason": "delivery failed", "record": done.to_dict(),
                                                       "errors": outcomes.get(d, [])}))
                self.store.update_delivery(done)
        return result

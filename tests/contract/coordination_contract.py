"""The contract of the CCD ledger and the sky-cell leases, and the fixtures of the whole suite.

Imported through :mod:`contract.apdb_contract`, which documents the fixture API (``connect``,
``level1``, ``clock``). Cases are named after the guarantee they prove.
"""

from __future__ import annotations

import inspect
import threading
import time
from collections.abc import Callable

import numpy as np
import pytest

from alertprod.apdb import CcdState, Level1, leased
from alertprod.errors import ConflictError

__all__ = ["CONTRACT_FAILURES", "CcdLedgerContract", "FakeClock", "LeaseManagerContract",
           "Level1Contract", "crash_at", "run_case"]

#: What a failing case raises: a failed assertion, or ``pytest.raises`` that saw no error.
CONTRACT_FAILURES = (AssertionError, pytest.fail.Exception)


class FakeClock:
    """Unix time that moves only when advanced, or when someone sleeps on it.

    Pass ``clock`` and ``clock.sleep`` to a backend: a lease expires after ``advance(ttl)``,
    and an acquirer waiting for a cell sleeps through the holder's expiry without waiting.
    """

    def __init__(self, start: float = 1.7e9):
        self._now = float(start)
        self._lock = threading.Lock()

    def __call__(self) -> float:
        return self._now

    def advance(self, seconds: float) -> None:
        """Move time forward by ``seconds``."""
        with self._lock:
            self._now += float(seconds)

    def sleep(self, seconds: float) -> None:
        """Sleep without waiting: time moves forward by ``seconds``."""
        self.advance(max(float(seconds), 0.0))


def crash_at(n: int) -> Callable[[int], None]:
    """A ``before_transaction`` hook that crashes the writer before its ``n``-th transaction."""

    def hook(k: int) -> None:
        if k == n:
            raise RuntimeError(f"injected crash before transaction {n}")

    return hook


def run_case(contract: type, case: str, connect: Callable[..., Level1]) -> None:
    """Run one contract case directly on a ``connect`` (outside pytest's collection).

    The sensitivity tests use it to show that a case fails against a broken backend.
    """
    clock = FakeClock()
    method = getattr(contract(), case)
    fixtures = {"connect": connect, "clock": clock,
                "level1": connect(clock=clock, sleep=clock.sleep)}
    method(**{name: fixtures[name] for name in inspect.signature(method).parameters})


class Level1Contract:
    """The fixtures of the suite; a backend's subclass provides ``connect``."""

    @pytest.fixture
    def clock(self) -> FakeClock:
        return FakeClock()

    @pytest.fixture
    def connect(self) -> Callable[..., Level1]:
        raise NotImplementedError("a backend's contract subclass provides the 'connect' fixture")

    @pytest.fixture
    def level1(self, connect: Callable[..., Level1], clock: FakeClock) -> Level1:
        return connect(clock=clock, sleep=clock.sleep)


class CcdLedgerContract(Level1Contract):
    """What every :class:`~alertprod.apdb.CcdLedger` guarantees."""

    def test_ledger_moves_forward_and_merges_fields(self, level1, clock):
        ledger = level1.ledger
        assert ledger.get_ccd_record(7, 3) is None
        ledger.put_ccd_record(7, 3, "started", attempt=1)
        clock.advance(5)
        ledger.put_ccd_record(7, 3, CcdState.STORED, n_sources=12, plan={"ids": [1, 2]})
        record = ledger.get_ccd_record(7, 3)
        assert record["state"] is CcdState.STORED and record["updatedAt"] == clock()
        assert (record["attempt"], record["n_sources"], record["plan"]) == (1, 12, {"ids": [1, 2]})
        ledger.put_ccd_record(7, 3, "stored", n_sources=13)  # a retry repeats its state
        ledger.put_ccd_record(7, 3, "done")
        record = ledger.get_ccd_record(7, 3)
        assert record["state"] is CcdState.DONE and record["n_sources"] == 13
        assert ledger.get_ccd_record(7, 4) is None and ledger.get_ccd_record(8, 3) is None

    def test_ledger_refuses_backward_move(self, level1):
        ledger = level1.ledger
        ledger.put_ccd_record(7, 3, "started")
        ledger.put_ccd_record(7, 3, "stored", n_sources=1)
        with pytest.raises(ConflictError):
            ledger.put_ccd_record(7, 3, "planned", n_sources=2)
        with pytest.raises(ConflictError):
            ledger.put_ccd_record(7, 3, CcdState.STARTED)
        record = ledger.get_ccd_record(7, 3)
        assert record["state"] is CcdState.STORED and record["n_sources"] == 1  # unchanged

    def test_ledger_refuses_an_unknown_state(self, level1):
        with pytest.raises(ValueError, match="state"):
            level1.ledger.put_ccd_record(7, 3, "finished")
        assert level1.ledger.get_ccd_record(7, 3) is None

    def test_ledger_records_are_copies(self, level1):
        plan = {"ids": [1, 2]}
        level1.ledger.put_ccd_record(7, 3, "planned", plan=plan)
        plan["ids"].append(3)
        level1.ledger.get_ccd_record(7, 3)["plan"]["ids"].append(4)
        assert level1.ledger.get_ccd_record(7, 3)["plan"] == {"ids": [1, 2]}

    def test_concurrent_moves_end_at_the_latest_state(self, connect):
        states = ["started", "planned", "stored", "done"] * 3
        connections = [connect() for _ in states]
        barrier = threading.Barrier(len(states))
        refused = []

        def move(k):
            barrier.wait()
            try:
                connections[k].ledger.put_ccd_record(1, 1, states[k])
            except ConflictError:
                refused.append(states[k])

        threads = [threading.Thread(target=move, args=(k,)) for k in range(len(states))]
        for th in threads:
            th.start()
        for th in threads:
            th.join(timeout=60)
        assert connect().ledger.get_ccd_record(1, 1)["state"] is CcdState.DONE
        assert "done" not in refused

    def test_alert_marks_beyond_one_batch_are_all_recorded(self, level1):
        ledger = level1.ledger
        writes = level1.metrics.requests["batch_write_item"]
        ledger.mark_alerts(range(100, 160), "published")  # 60 marks > 25 per request
        assert level1.metrics.requests["batch_write_item"] - writes == 3
        ledger.mark_alert(5, "archived")
        marks = ledger.get_alert_marks(range(0, 200))  # 200 keys > 100 per request
        assert marks == {5: "archived", **dict.fromkeys(range(100, 160), "published")}
        ledger.mark_alerts([100, 100, 101], "retracted")  # marking twice is harmless
        assert ledger.get_alert_marks([100, 101, 102]) == {100: "retracted", 101: "retracted",
                                                           102: "published"}
        with pytest.raises(ValueError, match="state"):
            ledger.mark_alerts([1], "")

    def test_ledger_requests_are_counted_in_the_shared_metrics(self, level1):
        before = level1.metrics.total()
        level1.ledger.put_ccd_record(1, 1, "started")
        level1.ledger.get_ccd_record(1, 1)
        assert level1.metrics.total() - before == 2


class LeaseManagerContract(Level1Contract):
    """What every :class:`~alertprod.apdb.LeaseManager` guarantees."""

    def test_acquire_takes_all_cells_or_none(self, level1):
        leases = level1.leases
        held = leases.acquire([12, 20], "ccd-A", ttl_s=60)
        with pytest.raises(ConflictError, match="12"):
            leases.acquire([11, 12, 13], "ccd-B", ttl_s=60, wait_s=0)
        assert {c: h[0] for c, h in leases.holders([11, 12, 13, 20]).items()} == \
            {12: "ccd-A", 20: "ccd-A"}  # 11 and 13 untouched
        leases.release(held)
        taken = leases.acquire([13, 11, 12, 12], "ccd-B", ttl_s=60, wait_s=0)
        assert taken.cells == [11, 12, 13] and taken.tokens[12] > held.tokens[12]

    def test_tokens_strictly_increase_at_every_acquisition(self, level1, clock):
        leases, tokens = level1.leases, []
        for owner in ("ccd-A", "ccd-B", "ccd-A"):
            lease = leases.acquire([7], owner, ttl_s=60)
            tokens.append(lease.tokens[7])
            leases.release(lease)
        tokens.append(leases.acquire([7], "ccd-C", ttl_s=60).tokens[7])
        clock.advance(61)  # taken over without a release
        tokens.append(leases.acquire([7], "ccd-D", ttl_s=60, wait_s=0).tokens[7])
        assert all(b > a for a, b in zip(tokens, tokens[1:], strict=False))
        assert leases.holders([7])[7][:2] == ("ccd-D", tokens[-1])

    def test_tokens_increase_whatever_the_acquirers_clocks(self, connect):
        ahead = connect(clock=lambda: 2e9, sleep=lambda s: None).leases
        behind = connect(clock=lambda: 1e9, sleep=lambda s: None).leases
        first = ahead.acquire([7], "ccd-A", ttl_s=60)
        ahead.release(first)
        second = behind.acquire([7], "ccd-B", ttl_s=60, wait_s=0)
        assert second.tokens[7] > first.tokens[7]
        assert behind.holders([7])[7][1] == second.tokens[7]

    def test_unexpired_lease_is_not_taken(self, level1, clock):
        level1.leases.acquire([7, 8], "ccd-A", ttl_s=60)
        clock.advance(59)
        with pytest.raises(ConflictError):
            level1.leases.acquire([8], "ccd-B", ttl_s=60, wait_s=0)
        assert {h[0] for h in level1.leases.holders([7, 8]).values()} == {"ccd-A"}

    def test_lease_taken_over_after_expiry_fences_out_its_holder(self, level1, clock):
        leases = level1.leases
        stale = leases.acquire([7, 8], "ccd-A", ttl_s=60)
        clock.advance(61)
        fresh = leases.acquire([8], "ccd-B", ttl_s=60, wait_s=0)
        with pytest.raises(ConflictError):
            leases.renew(stale)
        leases.release(stale)  # gives 7 back, leaves 8 to its new holder
        state = leases.holders([7, 8])
        assert state[7][2] < clock() and state[8][0] == "ccd-B" and state[8][2] > clock()
        assert leases.renew(fresh, ttl_s=120).expires_at == clock() + 120

    def test_same_owner_reacquiring_fences_out_its_previous_holding(self, level1):
        first = level1.leases.acquire([7], "ccd-A", ttl_s=60)
        second = level1.leases.acquire([7], "ccd-A", ttl_s=60, wait_s=0)  # a retry
        assert second.tokens[7] > first.tokens[7]
        with pytest.raises(ConflictError):
            level1.leases.renew(first)
        level1.leases.renew(second)

    def test_renewed_lease_outlives_its_first_expiry(self, level1, clock):
        lease = level1.leases.acquire([7], "ccd-A", ttl_s=60)
        clock.advance(50)
        lease = level1.leases.renew(lease, ttl_s=60)
        assert lease.expires_at == clock() + 60
        clock.advance(50)
        with pytest.raises(ConflictError):
            level1.leases.acquire([7], "ccd-B", ttl_s=60, wait_s=0)

    def test_waiting_acquirer_gets_the_cells_once_the_holder_lapses(self, level1, clock):
        start = clock()
        level1.leases.acquire([7], "ccd-A", ttl_s=10)
        lease = level1.leases.acquire([7, 8], "ccd-B", ttl_s=60, wait_s=30)  # sleeps on clock
        assert lease.cells == [7, 8] and clock() - start > 10
        assert {h[0] for h in level1.leases.holders([7, 8]).values()} == {"ccd-B"}

    def test_waiting_acquirer_gives_up_after_wait_s_holding_nothing(self, level1, clock):
        start = clock()
        level1.leases.acquire([7], "ccd-A", ttl_s=60)
        with pytest.raises(ConflictError, match="7"):
            level1.leases.acquire([6, 7], "ccd-B", ttl_s=60, wait_s=5)
        assert 5 <= clock() - start < 60
        assert {c: h[0] for c, h in level1.leases.holders([6, 7]).items()} == {7: "ccd-A"}

    def test_more_cells_than_one_transaction_are_leased_whole(self, level1):
        cells = list(range(1000, 1150))
        lease = level1.leases.acquire(cells, "precovery", ttl_s=60)
        assert lease.cells == cells
        assert {h[0] for h in level1.leases.holders(cells).values()} == {"precovery"}
        lease = level1.leases.renew(lease)
        level1.leases.release(lease)
        assert all(h[2] == 0 for h in level1.leases.holders(cells).values())

    def test_big_acquisition_blocked_in_its_last_cell_gives_everything_back(self, level1):
        cells = list(range(1000, 1150))
        level1.leases.acquire([1149], "ccd-A", ttl_s=60)
        with pytest.raises(ConflictError):
            level1.leases.acquire(cells, "precovery", ttl_s=60, wait_s=0)
        held = {c: h[0] for c, h in level1.leases.holders(cells).items() if h[2] > 0}
        assert held == {1149: "ccd-A"}

    def test_uncontended_acquire_renew_and_release_cost_one_request_each(self, level1):
        cells = [101, 102, 103, 104, 105]
        for owner in ("ccd-A", "ccd-B"):  # new cells, then released ones
            before = level1.metrics.snapshot()
            lease = level1.leases.acquire(cells, owner)
            lease = level1.leases.renew(lease, ttl_s=120)
            level1.leases.release(lease)
            after = level1.metrics.snapshot()
            assert {k: after[k] - before.get(k, 0) for k in after
                    if after[k] != before.get(k, 0)} == {"transact_write_items": 3}

    def test_leased_block_gives_the_cells_back_on_error(self, level1):
        with pytest.raises(RuntimeError), leased(level1.leases, [7, 8], "ccd-A", ttl_s=60,
                                                 wait_s=0):
            raise RuntimeError("stage failed")
        assert all(h[2] == 0 for h in level1.leases.holders([7, 8]).values())
        level1.leases.acquire([7, 8], "ccd-B", ttl_s=60, wait_s=0)

    def test_acquire_refuses_empty_cells_owner_and_ttl(self, level1):
        with pytest.raises(ValueError, match="cells"):
            level1.leases.acquire([], "ccd-A")
        with pytest.raises(ValueError, match="owner"):
            level1.leases.acquire([7], "")
        with pytest.raises(ValueError, match="ttl_s"):
            level1.leases.acquire([7], "ccd-A", ttl_s=0)

    def test_contending_threads_never_share_a_cell(self, connect):
        rng = np.random.default_rng(11)
        plans = [[sorted(rng.choice(8, size=int(rng.integers(2, 5)), replace=False).tolist())
                  for _ in range(3)] for _ in range(4)]
        guard = threading.Lock()
        holder: dict[int, str] = {}
        shared: list[tuple[int, str, str]] = []
        done: list[int] = []

        def worker(k):
            leases = connect(clock=time.time, sleep=time.sleep).leases
            for n, cells in enumerate(plans[k]):
                name = f"t{k}-{n}"
                with leased(leases, cells, name, ttl_s=60, wait_s=60):
                    with guard:
                        shared.extend((c, holder[c], name) for c in cells if c in holder)
                        holder.update(dict.fromkeys(cells, name))
                    time.sleep(0.005)
                    with guard:
                        for c in cells:
                            holder.pop(c, None)
            done.append(k)

        threads = [threading.Thread(target=worker, args=(k,), daemon=True) for k in range(4)]
        for th in threads:
            th.start()
        for th in threads:
            th.join(timeout=120)
        assert sorted(done) == [0, 1, 2, 3]  # everyone finished: no deadlock
        assert shared == []

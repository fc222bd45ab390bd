"""Watchlist, precovery-order and relay guarantees of the service store, for every backend.

A backend's test module subclasses :class:`ServiceStoreExtensions` (with a ``Test`` name) and
provides the fixture ``store``: a fresh, empty :class:`~alertprod.distribution.ServiceStore`.
"""

from __future__ import annotations

import threading

from alertprod.distribution.records import PrecoveryOrder, WatchlistRecord

T0 = 1_800_000_000.0


def make_watchlist(user="alice", name="targets", *, entries=3, sha="a" * 64) -> WatchlistRecord:
    return WatchlistRecord(user, name, entries, 2.0, sha, f"watchlists/{user}/{name}/{sha[:32]}.npz", "csv", T0, T0)


class ServiceStoreExtensions:
    """Guarantees of the watchlist, precovery and relay parts of :class:`ServiceStore`."""

    # -- watchlists -----------------------------------------------------------------------
    def test_watchlist_round_trips_and_is_replaced_in_place(self, store):
        store.put_watchlist(make_watchlist())
        store.put_watchlist(make_watchlist(entries=9, sha="b" * 64))
        assert store.get_watchlist("alice", "targets") == make_watchlist(entries=9, sha="b" * 64)
        assert [w.name for w in store.list_watchlists("alice")] == ["targets"]

    def test_a_users_watchlists_are_not_anothers(self, store):
        store.put_watchlist(make_watchlist("alice", "b-list"))
        store.put_watchlist(make_watchlist("alice", "a-list"))
        store.put_watchlist(make_watchlist("bob", "b-list"))
        assert [w.name for w in store.list_watchlists("alice")] == ["a-list", "b-list"]
        assert store.get_watchlist("carol", "b-list") is None
        store.delete_watchlist("bob", "b-list")
        assert store.get_watchlist("bob", "b-list") is None
        assert store.get_watchlist("alice", "b-list") is not None

    # -- precovery admissions and orders --------------------------------------------------
    def test_admission_stops_at_the_cap_and_readmits_the_admitted(self, store):
        assert [store.admit_precovery("f-1", "2027-01-15", a, 2) for a in (1, 2, 3)] == [True, True, False]
        assert store.admit_precovery("f-1", "2027-01-15", 2, 2)  # again: admitted, not counted twice
        assert not store.admit_precovery("f-1", "2027-01-15", 4, 2)
        assert store.admit_precovery("f-1", "2027-01-16", 3, 2)  # a new day
        assert store.admit_precovery("f-2", "2027-01-15", 3, 2)  # another filter

    def test_a_cap_of_zero_admits_nothing(self, store):
        assert not store.admit_precovery("f-1", "2027-01-15", 1, 0)

    def test_concurrent_admissions_never_exceed_the_cap(self, store):
        admitted = []

        def admit(k):
            if store.admit_precovery("f-1", "2027-01-15", k, 5):
                admitted.append(k)

        threads = [threading.Thread(target=admit, args=(k,)) for k in range(20)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert len(admitted) == 5

    def test_precovery_order_claim_is_put_if_absent_and_update_overwrites(self, store):
        order = PrecoveryOrder("f-1", "alice", 7, "2027-01-15", "capped", T0)
        assert store.claim_precovery_order(order) == (order, True)
        stored, created = store.claim_precovery_order(order.replace(state="ordered", job_id="pj-1"))
        assert (stored, created) == (order, False)
        store.update_precovery_order(order.replace(state="ordered", job_id="pj-2"))
        assert store.get_precovery_order("f-1", 7).job_id == "pj-2"
        assert store.get_precovery_order("f-1", 8) is None

    # -- relay marks ----------------------------------------------------------------------
    def test_relay_marks_are_per_broker_and_idempotent(self, store):
        assert store.relayed("community", [1, 2, 3]) == set()
        store.mark_relayed("community", [1, 2], T0)
        store.mark_relayed("community", [2], T0)
        assert store.relayed("community", [1, 2, 3]) == {1, 2}
        assert store.relayed("rehearsal", [1, 2, 3]) == set()

    def test_relay_marks_cover_batches_larger_than_one_request(self, store):
        ids = list(range(10**12, 10**12 + 260))
        store.mark_relayed("community", ids[:230], T0)
        assert store.relayed("community", ids) == set(ids[:230])

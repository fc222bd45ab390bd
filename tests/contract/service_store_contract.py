"""The contract every service-store backend passes (memory; DynamoDB on the embedded stack).

A backend's test module subclasses :class:`ServiceStoreContract` (with a ``Test`` name) and
provides one fixture, ``store``: a fresh, empty :class:`~alertprod.distribution.ServiceStore`.
"""

from __future__ import annotations

import threading

import pytest

from alertprod.api.tokens import hash_token, issue_token
from alertprod.distribution.records import DeliveryRecord, FilterRecord, Notice, delivery_id
from alertprod.distribution.store import MAX_NOTICES
from alertprod.errors import ConflictError, NotFoundError

T0 = 1_800_000_000.0


def make_filter(fid="f-1", user="alice", *, t=T0, expression="diaSource.snr > 5", **kw) -> FilterRecord:
    base = dict(filter_id=fid, user_id=user, name="bright", expression=expression,
                normalized=expression, version_hash="h1", version=1, state="active", payload="avro",
                transports=[{"kind": "webhook", "url": "https://example.org/hook", "secret": "s3cr3t"}],
                quota_per_day=100, created_unix=t, updated_unix=t, expires_unix=t + 180 * 86400)
    base.update(kw)
    return FilterRecord(**base)


def make_delivery(fid="f-1", alert=1, *, t=T0, state="pending") -> DeliveryRecord:
    return DeliveryRecord(delivery_id(fid, "h1", alert), fid, "alice", "h1", alert,
                          f"alerts/00000001/001/{alert}.avro", t, state=state)


class ServiceStoreContract:
    """Guarantees of :class:`ServiceStore` (see its Notes)."""

    # -- tokens ---------------------------------------------------------------------------
    def test_token_is_stored_only_as_its_hash(self, store):
        issued = issue_token(store, "alice", label="laptop", now=T0)
        stored = store.get_token(hash_token(issued.token))
        assert stored is not None and stored.user_id == "alice" and stored.label == "laptop"
        assert issued.token not in repr(store.list_tokens())
        assert all(issued.token not in str(v) for v in stored.to_dict().values())

    def test_revoked_token_stays_listed_and_revoked(self, store):
        issued = issue_token(store, "bob", now=T0)
        store.revoke_token(issued.record.token_hash)
        (token,) = store.list_tokens("bob")
        assert token.revoked and not token.valid_at(T0 + 1)

    def test_revoking_an_unknown_token_is_not_found(self, store):
        with pytest.raises(NotFoundError):
            store.revoke_token("0" * 64)

    def test_tokens_listed_per_user(self, store):
        for user in ("alice", "bob", "alice"):
            issue_token(store, user, now=T0)
        assert [t.user_id for t in store.list_tokens("alice")] == ["alice", "alice"]
        assert len(store.list_tokens()) == 3

    # -- filters --------------------------------------------------------------------------
    def test_filter_round_trips_with_its_transports_and_secret(self, store):
        f = make_filter()
        store.create_filter(f)
        assert store.get_filter("f-1") == f

    def test_second_create_with_the_same_id_conflicts(self, store):
        store.create_filter(make_filter())
        with pytest.raises(ConflictError):
            store.create_filter(make_filter(name="other"))

    def test_list_filters_returns_only_the_owners(self, store):
        store.create_filter(make_filter("f-1", "alice"))
        store.create_filter(make_filter("f-2", "bob", t=T0 + 1))
        store.create_filter(make_filter("f-3", "alice", t=T0 + 2))
        assert [f.filter_id for f in store.list_filters("alice")] == ["f-1", "f-3"]
        assert [f.filter_id for f in store.list_filters()] == ["f-1", "f-2", "f-3"]

    def test_update_keeps_every_version(self, store):
        f = make_filter()
        store.create_filter(f)
        g = f.replace(expression="diaSource.snr > 9", version=2, version_hash="h2", updated_unix=T0 + 5)
        store.update_filter(g, expected_updated_unix=T0)
        assert store.get_filter("f-1").version_hash == "h2"
        assert [(v.version, v.version_hash) for v in store.filter_versions("f-1")] == [(1, "h1"), (2, "h2")]

    def test_update_from_a_stale_read_conflicts(self, store):
        f = make_filter()
        store.create_filter(f)
        store.update_filter(f.replace(name="a", updated_unix=T0 + 1), expected_updated_unix=T0)
        with pytest.raises(ConflictError):
            store.update_filter(f.replace(name="b", updated_unix=T0 + 2), expected_updated_unix=T0)
        assert store.get_filter("f-1").name == "a"

    def test_update_of_a_deleted_filter_is_not_found(self, store):
        f = make_filter()
        store.create_filter(f)
        store.delete_filter("f-1")
        assert store.get_filter("f-1") is None
        with pytest.raises(NotFoundError):
            store.update_filter(f.replace(updated_unix=T0 + 1), expected_updated_unix=T0)

    def test_api_update_keeps_the_services_hold_count_and_notices(self, store):
        f = make_filter()
        store.create_filter(f)
        store.add_held("f-1", 7)
        store.add_notice("f-1", Notice("quota_hold", "held", T0 + 1))
        store.update_filter(f.replace(name="renamed", updated_unix=T0 + 2), expected_updated_unix=T0)
        got = store.get_filter("f-1")
        assert (got.name, got.held_pending, len(got.notices)) == ("renamed", 7, 1)

    def test_notices_are_bounded_newest_kept(self, store):
        store.create_filter(make_filter())
        for k in range(MAX_NOTICES + 5):
            store.add_notice("f-1", Notice("n", f"message {k}", T0 + k), expiry_warned=True)
        got = store.get_filter("f-1")
        assert len(got.notices) == MAX_NOTICES and got.notices[-1]["message"] == f"message {MAX_NOTICES + 4}"
        assert got.expiry_warned

    # -- counters -------------------------------------------------------------------------
    def test_counts_add_up_across_concurrent_batches(self, store):
        def work():
            for _ in range(5):
                store.add_counts("f-1", "2027-01-15", {"evaluated": 10, "matched": 1})

        threads = [threading.Thread(target=work) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        row = store.get_counts("f-1", ["2027-01-15", "2027-01-16"])
        assert list(row) == ["2027-01-15"]
        assert (row["2027-01-15"]["evaluated"], row["2027-01-15"]["matched"]) == (200, 20)

    def test_last_delivery_and_max_lag_are_maxima(self, store):
        store.add_counts("f-1", "d", {"delivered": 1}, last_delivery_unix=T0 + 10, lag_max_s=3.0)
        store.add_counts("f-1", "d", {"delivered": 1}, last_delivery_unix=T0 + 5, lag_max_s=1.5)
        row = store.get_counts("f-1", ["d"])["d"]
        assert (row["delivered"], row["last_delivery_unix"], row["lag_max_s"]) == (2, T0 + 10, 3.0)

    # -- deliveries -----------------------------------------------------------------------
    def test_claim_is_put_if_absent(self, store):
        first, created = store.claim_delivery(make_delivery(state="pending"))
        assert created
        again, created = store.claim_delivery(make_delivery(state="held", t=T0 + 60))
        assert not created and again == first

    def test_updated_delivery_is_read_back(self, store):
        rec, _ = store.claim_delivery(make_delivery())
        store.update_delivery(rec.replace(state="delivered", attempts=1, delivered_unix=T0 + 1))
        got = store.get_delivery("f-1", rec.delivery_id)
        assert (got.state, got.attempts, got.delivered_unix) == ("delivered", 1, T0 + 1)

    def test_deliveries_since_are_in_time_order_and_filtered(self, store):
        for k, state in enumerate(["delivered", "held", "held", "failed"]):
            store.claim_delivery(make_delivery(alert=10 - k, t=T0 + 100 * k, state=state))
        store.claim_delivery(make_delivery("f-2", alert=99, t=T0 + 150))
        got = store.deliveries_since("f-1", T0 + 100)
        assert [r.alert_id for r in got] == [9, 8, 7]
        assert [r.alert_id for r in store.deliveries_since("f-1", 0, state="held", limit=1)] == [9]

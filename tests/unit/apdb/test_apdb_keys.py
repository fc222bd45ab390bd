"""Item keys: distinct per entity, sortable where order matters, and within AWS limits."""

import pytest

from alertprod.apdb.dynamodb import _keys as keys
from alertprod.apdb.dynamodb._calls import MAX_BATCH_WRITE, batch_write, transact_write
from alertprod.errors import StorageError


def test_version_sort_keys_sort_like_their_times():
    times = [59999.9, 60000.0, 60000.000001, 60123.5, 100000.25]
    sks = [keys.obj_version(7, t)["sk"]["S"] for t in times]
    assert sks == sorted(sks)


def test_keys_of_different_entities_never_collide():
    ks = [keys.obj_last(1), keys.obj_version(1, 60000.0), keys.pixel_index(1), keys.history(1, 2000),
          keys.history(1, 2000, ss=True), keys.new_objects(60000, 1), keys.lease(1), keys.ccd_record(1, 1),
          keys.alert_mark(1), keys.image_index(1, 2000), keys.ss_object(1), keys.orbit_pointer(),
          keys.orbit_chunk("abc", 1), keys.orbit_night_pointer(61000),
          keys.orbit_night_pointer(61001), keys.orbit_night_chunk("abc", 1),
          keys.orbit_night_chunk("abc", 2)]
    assert len({keys.split_key(k) for k in ks}) == len(ks)


def test_history_key_is_per_object_and_bucket():
    assert keys.history(42, 2000) == {"pk": {"S": "HIST#42"}, "sk": {"S": "T#002000"}}


class _Recorder:
    def __init__(self):
        self.sizes = []

    def batch_write_item(self, RequestItems, **kw):
        self.sizes.extend(len(v) for v in RequestItems.values())
        return {}


def test_batch_write_never_sends_more_than_25():
    rec = _Recorder()
    items = [{**keys.alert_mark(i), "state": {"S": "x"}} for i in range(26 * 3 + 1)]
    assert batch_write(rec, "t", puts=items) == 4
    assert max(rec.sizes) == MAX_BATCH_WRITE and sum(rec.sizes) == len(items)


def test_transaction_over_100_items_or_touching_an_item_twice_is_refused():
    ops = [{"ConditionCheck": {"TableName": "t", "Key": keys.lease(i)}} for i in range(101)]
    with pytest.raises(StorageError, match="100"):
        transact_write(object(), ops)
    with pytest.raises(StorageError, match="twice"):
        transact_write(object(), ops[:1] * 2)


class _Conflicting:
    """A client whose first transaction loses a race (TransactionConflict), then succeeds."""

    def __init__(self, codes):
        self.calls, self.codes = 0, codes

    def transact_write_items(self, **kw):
        self.calls += 1
        if self.calls == 1:
            exc = Exception("cancelled")
            exc.response = {"Error": {"Code": "TransactionCanceledException"},
                            "CancellationReasons": [{"Code": c} for c in self.codes]}
            raise exc
        return {}


def test_transaction_conflicts_are_retried_but_failed_conditions_are_not():
    from alertprod.apdb.dynamodb._calls import TransactionCancelledError

    ops = [{"ConditionCheck": {"TableName": "t", "Key": k_lease}} for k_lease in
           (keys.lease(1), keys.lease(2))]
    racing = _Conflicting(["TransactionConflict", "None"])
    transact_write(racing, ops)
    assert racing.calls == 2
    refused = _Conflicting(["ConditionalCheckFailed", "None"])
    with pytest.raises(TransactionCancelledError) as info:
        transact_write(refused, ops)
    assert refused.calls == 1 and info.value.reasons[0]["Code"] == "ConditionalCheckFailed"

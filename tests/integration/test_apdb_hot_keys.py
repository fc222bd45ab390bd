"""Hot keys: CCDs of one night in different sky cells share no item in their transactions.

Before, every new DiaObject wrote one of 128 ``NEWOBJ#day`` shard items inside its CCD's
transaction, so the CCDs of a visit collided on them (``TransactionConflict`` on DynamoDB).
The day's new objects are now indexed after the transactions, one item per CCD. These tests
record the items each CCD's TransactWriteItems calls touch on the DynamoDB backend (moto's
server), show the former layout's collisions on the same plans, and cover the window between
the last transaction and the index write.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from alertprod.apdb import DynamoApdb
from alertprod.apdb._layout import NEW_OBJECT_SHARDS
from alertprod.apdb.testing import make_ccd_writes, make_objects
from alertprod.local.dynamodb import FailAfter, create_level1_table, moto_dynamodb

pytest.importorskip("moto")
pytestmark = pytest.mark.integration

T0 = 60000.2


class RecordingClient:
    """A DynamoDB client that records the (pk, sk) of every item its transactions touch."""

    def __init__(self, client):
        self._client, self.items = client, set()

    def __getattr__(self, name):
        attr = getattr(self._client, name)
        if name != "transact_write_items":
            return attr

        def call(*, TransactItems, **kwargs):  # noqa: N803 - boto3's parameter name
            for op in TransactItems:
                body = next(iter(op.values()))
                k = body.get("Item", body.get("Key"))
                self.items.add((k["pk"]["S"], k["sk"]["S"]))
            return attr(TransactItems=TransactItems, **kwargs)

        return call


@pytest.fixture(scope="module")
def client():
    with moto_dynamodb() as c:
        yield c


def _ccd_fields(n_ccds: int, n_new: int):
    """New objects of ``n_ccds`` CCDs of visit 1, 0.3° apart (no lease cell in common), with
    the ids the pipeline gives them: the creating diaSourceId, ``(visit·1000 + detector)·10⁵ + i``."""
    return [make_objects(n_new, 150.0 + 0.3 * k, 2.0, 0.02, first_id=(1000 + k) * 100_000 + 1,
                         seed=k) for k in range(n_ccds)]


def test_ccds_of_one_visit_share_no_item_in_their_transactions(client):
    table = create_level1_table(client)
    touched = []
    for k, objs in enumerate(_ccd_fields(8, 40)):
        recorder = RecordingClient(client)
        DynamoApdb(recorder, table).store_ccd(make_ccd_writes(objs, 1, k, T0, new=True), lease=None)
        touched.append(recorder.items)
    shared = [(a, b, touched[a] & touched[b]) for a, b in itertools.combinations(range(8), 2)
              if touched[a] & touched[b]]
    assert shared == []
    assert not any(pk.startswith("NEWOBJ#") for items in touched for pk, _ in items)
    # the same plans in the former layout: one shard item per new object, inside the transaction
    shards = [{int(i) % NEW_OBJECT_SHARDS for i in objs["diaObjectId"]} for objs in _ccd_fields(8, 40)]
    colliding = sum(1 for a, b in itertools.combinations(range(8), 2) if shards[a] & shards[b])
    assert colliding == 20  # of 28 pairs: the detector steps ids by 10⁵ ≡ 32 (mod 128)


def test_new_objects_are_listed_once_their_ccd_is_stored(client):
    table = create_level1_table(client)
    apdb = DynamoApdb(client, table)
    objs = make_objects(30, 150.0, 2.0, 0.02)
    apdb.store_ccd(make_ccd_writes(objs, 1, 1, T0, new=True), lease=None)
    later = make_objects(5, 150.3, 2.0, 0.02, first_id=1000)
    apdb.store_ccd(make_ccd_writes(later, 2, 1, T0 + 0.01, new=True), lease=None)
    night = apdb.new_dia_objects(60000.0, 60001.0)
    assert list(night["diaObjectId"]) == sorted([*objs["diaObjectId"], *later["diaObjectId"]])
    assert np.allclose(night["ra"][:30], objs["ra"])


def test_crash_between_the_transactions_and_the_index_is_repaired_by_the_retry(client):
    table = create_level1_table(client)
    objs = make_objects(12, 150.0, 2.0, 0.02)
    writes = make_ccd_writes(objs, 1, 1, T0, new=True)
    crashing = DynamoApdb(FailAfter(client, 0, methods=("batch_write_item",)), table)
    with pytest.raises(RuntimeError, match="injected crash"):
        crashing.store_ccd(writes, lease=None)  # every transaction committed, no index yet
    apdb = DynamoApdb(client, table)
    assert len(apdb.get_dia_objects_by_id(objs["diaObjectId"])) == 12
    assert len(apdb.new_dia_objects(60000.0, 60001.0)) == 0
    stats = apdb.store_ccd(writes, lease=None)  # the redelivered plan
    assert (stats.objects_written, stats.objects_already_done) == (0, 12)
    assert list(apdb.new_dia_objects(60000.0, 60001.0)["diaObjectId"]) == list(objs["diaObjectId"])


def test_new_objects_of_the_former_shard_layout_are_still_read(client):
    """Days written before the change (shard items ``S#<k>`` with ``o<id>`` entries) and after
    (per-CCD items) read together."""
    from alertprod.apdb.dynamodb import _keys as keys
    from alertprod.apdb.dynamodb._store import pack_new_object

    table = create_level1_table(client)
    apdb = DynamoApdb(client, table)
    client.put_item(TableName=table, Item={**keys.new_objects(60000, 7),
                                           keys.new_object_attr(7): {"B": pack_new_object(150.1, 2.1, T0)}})
    objs = make_objects(3, 150.0, 2.0, 0.02, first_id=100)
    apdb.store_ccd(make_ccd_writes(objs, 1, 1, T0, new=True), lease=None)
    got = apdb.new_dia_objects(60000.0, 60001.0)
    assert list(got["diaObjectId"]) == [7, 100, 101, 102]
    assert got["ra"][0] == 150.1

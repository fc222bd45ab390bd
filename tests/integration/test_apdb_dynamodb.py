"""The DynamoDB APDB on moto's server: round trips, version chains, retries, leases, fencing."""

import threading

import numpy as np
import pytest
from astropy.table import Table

from alertprod.apdb import PREV_VALIDITY_COLUMN as PREV
from alertprod.apdb import CcdWrites, DynamoApdb, cells_for_footprint
from alertprod.apdb.dynamodb import DynamoLeaseManager as LeaseManager
from alertprod.apdb.dynamodb import _leases as leases_module
from alertprod.apdb.dynamodb._calls import InstrumentedClient
from alertprod.apdb.dynamodb._leases import fence_checks
from alertprod.apdb.testing import make_ccd_writes, make_objects, make_sources
from alertprod.errors import ConflictError
from alertprod.local.dynamodb import FailAfter, create_level1_table, moto_dynamodb
from alertprod.pixelization import pixel_of, pixels_in_cone

pytest.importorskip("moto")
pytestmark = pytest.mark.integration

RA, DEC, RADIUS = 150.0, 2.0, 0.02
T0 = 60000.2


@pytest.fixture(scope="module")
def client():
    with moto_dynamodb() as c:
        yield c


@pytest.fixture
def table(client):
    return create_level1_table(client)


@pytest.fixture
def apdb(client, table):
    return DynamoApdb(client, table)


def _created(apdb, n=12, visit=1, seed=0):
    objs = make_objects(n, RA, DEC, RADIUS, seed=seed)
    apdb.store_ccd(make_ccd_writes(objs, visit, 1, T0, new=True), lease=None)
    return apdb.get_dia_objects(pixels_in_cone(RA, DEC, RADIUS))


def test_stored_objects_read_back_by_pixel_and_id(apdb):
    got = _created(apdb)
    assert len(got) == 12
    assert np.all(got["validityStartMjdTai"] == T0)
    assert np.all(got["validityEndMjdTai"].mask) if hasattr(got["validityEndMjdTai"], "mask") \
        else np.all(np.isnan(got["validityEndMjdTai"]))
    one_pixel = int(pixel_of(got["ra"][0], got["dec"][0]))
    in_pixel = apdb.get_dia_objects([one_pixel])
    assert 0 < len(in_pixel) <= 12
    assert set(in_pixel["diaObjectId"]) == {
        i for i, r, d in zip(got["diaObjectId"], got["ra"], got["dec"], strict=True)
        if int(pixel_of(r, d)) == one_pixel}
    by_id = apdb.get_dia_objects_by_id([got["diaObjectId"][3], 999999])
    assert list(by_id["diaObjectId"]) == [got["diaObjectId"][3]]
    sources = apdb.get_dia_sources(got["diaObjectId"], T0 + 1)
    assert sorted(sources["diaObjectId"]) == sorted(got["diaObjectId"])


def test_version_chain_closes_old_version_at_new_start(apdb):
    got = _created(apdb)
    detected = np.arange(len(got)) < 5
    stats = apdb.store_ccd(make_ccd_writes(got, 2, 1, T0 + 1, detected=detected), lease=None)
    assert stats.objects_written == 5 and stats.forced_sources_written == 7
    hist = apdb.export()["DiaObjectHistory"]
    for oid in got["diaObjectId"]:
        rows = hist[hist["diaObjectId"] == oid]
        rows.sort("validityStartMjdTai")
        end = np.asarray(rows["validityEndMjdTai"], float)
        assert np.sum(np.isnan(end)) == 1 and np.isnan(end[-1])
        assert np.array_equal(end[:-1], np.asarray(rows["validityStartMjdTai"], float)[1:])
    assert len(hist) == len(got) + 5
    forced = apdb.get_dia_forced_sources(got["diaObjectId"], T0 + 2)
    assert len(forced) == 7


def test_retry_after_crash_mid_store_completes_without_duplicates(client, table):
    setup = DynamoApdb(client, table)
    got = _created(setup, n=40)
    writes = make_ccd_writes(got, 2, 1, T0 + 1, detected=np.arange(40) < 30)
    crashing = DynamoApdb(FailAfter(client, 1), table)
    with pytest.raises(RuntimeError, match="injected crash"):
        crashing.store_ccd(writes, lease=None)
    partial = setup.export()["DiaObjectHistory"]
    assert len(got) < len(partial) < len(got) + 30  # the crash left work half done
    stats = setup.store_ccd(writes, lease=None)
    assert stats.objects_already_done > 0 and stats.objects_written > 0
    again = setup.store_ccd(writes, lease=None)
    assert again.objects_written == 0 and again.objects_already_done == 30
    out = setup.export()
    assert len(out["DiaObjectHistory"]) == len(got) + 30
    assert len(out["DiaObject"]) == len(got)
    assert len(out["DiaSource"]) == len(set(out["DiaSource"]["diaSourceId"])) == len(got) + 30
    assert len(out["DiaForcedSource"]) == 10


def test_stale_previous_version_is_a_conflict(apdb):
    got = _created(apdb)
    apdb.store_ccd(make_ccd_writes(got, 2, 1, T0 + 1), lease=None)
    with pytest.raises(ConflictError):  # built from the versions before visit 2
        apdb.store_ccd(make_ccd_writes(got, 3, 1, T0 + 2), lease=None)


def test_creating_an_existing_object_from_another_ccd_is_a_conflict(apdb):
    objs = make_objects(3, RA, DEC, RADIUS)
    apdb.store_ccd(make_ccd_writes(objs, 1, 1, T0, new=True), lease=None)
    with pytest.raises(ConflictError):
        apdb.store_ccd(make_ccd_writes(objs, 1, 2, T0, new=True), lease=None)


def test_history_window_is_twelve_months_before_the_visit(apdb):
    t = 60400.0
    times = np.array([t - 360.0 - 1e-6, t - 360.0, t - 1e-6, t, t + 1.0])
    src = make_sources(np.full(5, 77), np.full(5, RA), np.full(5, DEC), 9, 1, 0.0)
    src["midpointMjdTai"] = times
    src["diaSourceId"] = np.arange(100, 105)
    empty = make_objects(0, RA, DEC, RADIUS)
    apdb.store_ccd(CcdWrites(9, 1, t, src, Table(), empty), lease=None)
    got = apdb.get_dia_sources([77], t)
    assert list(got["midpointMjdTai"]) == [t - 360.0, t - 1e-6]


def test_contending_ccds_serialize_on_overlapping_cells(client, table):
    corners = np.array([[RA - 0.1, DEC - 0.1], [RA + 0.1, DEC - 0.1], [RA + 0.1, DEC + 0.1],
                        [RA - 0.1, DEC + 0.1]])
    cells_a = cells_for_footprint(corners)
    cells_b = cells_for_footprint(corners + [0.15, 0.0])
    assert set(cells_a) & set(cells_b)
    events: list[str] = []
    barrier = threading.Barrier(2)

    def ccd(name, cells):
        leases = LeaseManager(client, table)
        barrier.wait()
        lease = leases.acquire(cells, name, ttl_s=30, wait_s=30)
        events.append(f"{name}+")
        threading.Event().wait(0.2)  # hold it while the other one tries
        events.append(f"{name}-")
        leases.release(lease)

    threads = [threading.Thread(target=ccd, args=(n, c)) for n, c in (("A", cells_a),
                                                                      ("B", cells_b))]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert events in (["A+", "A-", "B+", "B-"], ["B+", "B-", "A+", "A-"])


def test_fencing_rejects_a_stale_lease_holder(client, table):
    now = [1000.0]
    leases = LeaseManager(client, table, clock=lambda: now[0], sleep=lambda s: None)
    apdb = DynamoApdb(client, table)
    objs = make_objects(4, RA, DEC, RADIUS)
    cells = [int(pixel_of(RA, DEC, order=8))]
    stale = leases.acquire(cells, "ccd-A", ttl_s=60)
    now[0] += 61  # A stalls past its expiry; B takes the cell over
    fresh = leases.acquire(cells, "ccd-B", ttl_s=60, wait_s=0)
    assert fresh.tokens[cells[0]] == stale.tokens[cells[0]] + 1
    with pytest.raises(ConflictError):
        apdb.store_ccd(make_ccd_writes(objs, 1, 1, T0, new=True), lease=stale)
    assert len(apdb.get_dia_objects(pixels_in_cone(RA, DEC, RADIUS))) == 0
    with pytest.raises(ConflictError):
        leases.renew(stale)
    apdb.store_ccd(make_ccd_writes(objs, 1, 1, T0, new=True), lease=fresh)
    assert len(apdb.get_dia_objects(pixels_in_cone(RA, DEC, RADIUS))) == 4
    with pytest.raises(ConflictError):  # still held by B
        leases.acquire(cells, "ccd-C", wait_s=0)


def test_ccd_whose_cells_partly_overlap_a_held_lease_gets_none_of_them(client, table):
    leases = LeaseManager(client, table, sleep=lambda s: None)
    held = leases.acquire([12, 20], "ccd-A", ttl_s=60)
    with pytest.raises(ConflictError, match="12"):
        leases.acquire([11, 12, 13], "ccd-B", ttl_s=60, wait_s=0)
    state = leases.holders([11, 12, 13, 20])
    assert {c: h[0] for c, h in state.items()} == {12: "ccd-A", 20: "ccd-A"}  # 11, 13 untouched
    leases.release(held)
    taken = leases.acquire([11, 12, 13], "ccd-B", ttl_s=60, wait_s=0)
    assert taken.cells == [11, 12, 13]
    assert taken.tokens[12] > held.tokens[12]


def test_uncontended_acquire_renew_and_release_cost_one_request_each(client, table):
    counted = InstrumentedClient(client)
    leases = LeaseManager(counted, table)
    cells = cells_for_footprint(np.array([[RA - 0.11, DEC - 0.11], [RA + 0.11, DEC - 0.11],
                                          [RA + 0.11, DEC + 0.11], [RA - 0.11, DEC + 0.11]]))
    assert len(cells) >= 4
    for owner in ("ccd-A", "ccd-B"):  # new lease items, then existing released ones
        before = counted.metrics.total()
        lease = leases.acquire(cells, owner)
        lease = leases.renew(lease, ttl_s=120)
        leases.release(lease)
        assert counted.metrics.total() - before == 3
        assert counted.metrics.requests["transact_write_items"] == counted.metrics.total()
    assert {h[0] for h in leases.holders(cells).values()} == {"ccd-B"}
    assert all(h[2] == 0 for h in leases.holders(cells).values())  # released: expired


def test_tokens_increase_even_when_the_acquirer_clock_is_behind(client, table):
    ahead = LeaseManager(client, table, clock=lambda: 2e9)
    behind = LeaseManager(client, table, clock=lambda: 1e9)  # a fresh manager knows no token
    first = ahead.acquire([7], "ccd-A", ttl_s=60)
    ahead.release(first)
    second = behind.acquire([7], "ccd-B", ttl_s=60, wait_s=0)
    assert second.tokens[7] > first.tokens[7]
    assert leases_token(behind, 7) == second.tokens[7]


def leases_token(leases, cell):
    return leases.holders([cell])[cell][1]


def test_more_cells_than_one_transaction_are_taken_in_ordered_chunks(client, table, monkeypatch):
    monkeypatch.setattr(leases_module, "MAX_TRANSACT_ITEMS", 4)  # chunks of 4 instead of 100
    counted = InstrumentedClient(client)
    leases = LeaseManager(counted, table, sleep=lambda s: None)
    blocker = leases.acquire([9], "ccd-A", ttl_s=60)
    with pytest.raises(ConflictError):
        leases.acquire(range(10), "precovery", ttl_s=60, wait_s=0)
    # cells 0-7 (two chunks) were taken, then given back when 9 stayed busy
    assert {c: h[0] for c, h in leases.holders(range(10)).items() if h[2] > 0} == {9: "ccd-A"}
    leases.release(blocker)
    before = counted.metrics.total()
    big = leases.acquire(range(10), "precovery", ttl_s=60, wait_s=0)
    assert counted.metrics.total() - before == 3  # ⌈10/4⌉ transactions
    assert big.cells == list(range(10)) and len(fence_checks(big, table)) == 10
    leases.release(big)
    assert all(h[2] == 0 for h in leases.holders(range(10)).values())


def test_threads_taking_random_overlapping_cells_never_deadlock_or_share_a_cell(client, table):
    rng = np.random.default_rng(11)
    plans = [[sorted(rng.choice(12, size=int(rng.integers(2, 6)), replace=False).tolist())
              for _ in range(3)] for _ in range(8)]
    guard = threading.Lock()
    holder: dict[int, str] = {}
    shared: list[tuple[int, str, str]] = []
    done: list[str] = []

    def worker(k):
        leases = LeaseManager(client, table)
        for n, cells in enumerate(plans[k]):
            name = f"t{k}-{n}"
            lease = leases.acquire(cells, name, ttl_s=60, wait_s=60)
            with guard:
                shared.extend((c, holder[c], name) for c in cells if c in holder)
                holder.update({c: name for c in cells})
            threading.Event().wait(0.005)
            with guard:
                for c in cells:
                    holder.pop(c, None)
            leases.release(lease)
        done.append(f"t{k}")

    threads = [threading.Thread(target=worker, args=(k,), daemon=True) for k in range(8)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(timeout=60)
    assert sorted(done) == sorted(f"t{k}" for k in range(8))  # everyone finished: no deadlock
    assert shared == []


def test_store_counts_requests_per_operation(client, table):
    apdb = DynamoApdb(InstrumentedClient(client), table)
    objs = make_objects(30, RA, DEC, RADIUS)
    stats = apdb.store_ccd(make_ccd_writes(objs, 1, 1, T0, new=True), lease=None)
    assert stats.requests["transact_write_items"] == stats.transactions >= 1
    assert stats.requests["batch_get_item"] >= 1
    assert stats.total_requests == sum(stats.requests.values())


def test_object_moving_across_a_pixel_border_is_found_in_its_new_pixel_only(apdb):
    got = _created(apdb, n=1)
    old_pixel = int(pixel_of(got["ra"][0], got["dec"][0]))
    moved = got.copy()
    moved["ra"] = got["ra"][0] + 0.2  # several order-10 pixels away
    writes = make_ccd_writes(moved, 2, 1, T0 + 1)
    writes.dia_objects[PREV] = T0
    apdb.store_ccd(writes, lease=None)
    new_pixel = int(pixel_of(moved["ra"][0], moved["dec"][0]))
    assert new_pixel != old_pixel
    assert len(apdb.get_dia_objects([old_pixel])) == 0
    assert list(apdb.get_dia_objects([new_pixel])["diaObjectId"]) == list(got["diaObjectId"])


def test_sources_of_solar_system_objects_are_stored_and_exported(apdb):
    src = make_sources(np.zeros(2, np.int64), np.full(2, RA), np.full(2, DEC), 5, 1, T0)
    src["diaObjectId"] = np.ma.masked_all(2, dtype=np.int64)
    src["ssObjectId"] = np.array([11, 12], np.int64)
    apdb.store_ccd(CcdWrites(5, 1, T0, src, Table(), make_objects(0, RA, DEC, RADIUS)),
                   lease=None)
    exported = apdb.export()["DiaSource"]
    assert sorted(exported["ssObjectId"]) == [11, 12]
    assert np.all(np.ma.getmaskarray(exported["diaObjectId"]))

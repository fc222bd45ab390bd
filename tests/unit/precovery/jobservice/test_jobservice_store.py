"""The job store's contract, run against the memory backend and DynamoDB on moto's server."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest
from distribution_harness import create_service_table

from alertprod.errors import ConflictError, NotFoundError
from alertprod.local.dynamodb import moto_dynamodb
from alertprod.precovery.jobservice import DynamoJobStore, JobRecord, MemoryJobStore
from alertprod.precovery.jobservice.store import QueueEntry, Schedule
from alertprod.precovery.uws import new_job, transition

T = datetime(2027, 3, 10, 12, 0, tzinfo=UTC)


def _record(job_id: str, owner: str = "alice", *, minutes: int = 0) -> JobRecord:
    job = new_job(job_id, owner, {"target": {"kind": "position", "ra": 1.0, "dec": 2.0}, "options": {}},
                  now=T + timedelta(minutes=minutes))
    return JobRecord(job, submitted_s=(T + timedelta(minutes=minutes)).timestamp(),
                     notify={"webhook": "https://example.org/hook", "secret": "s"})


class JobStoreContract:
    """What every backend guarantees (alertprod.precovery.jobservice.store.JobStore)."""

    @pytest.fixture
    def store(self):
        raise NotImplementedError

    def test_a_record_round_trips_with_every_field(self, store):
        r = _record("pj-1")
        store.create(r)
        got = store.get("alice", "pj-1")
        eta = T + timedelta(hours=1)
        queued = got.replace(job=transition(got.job, "QUEUED", now=T, queue_position=3, eta=eta),
                             n_units=5, n_cached=2, n_recreated=3, dispatched=1, eta_submitted=eta)
        store.save(queued)
        again = store.get("alice", "pj-1")
        assert again.job == queued.job and again.n_recreated == 3 and again.eta_submitted == eta
        assert again.notify == r.notify and again.version == queued.version + 1

    def test_an_id_is_created_once(self, store):
        store.create(_record("pj-1"))
        with pytest.raises(ConflictError):
            store.create(_record("pj-1"))

    def test_another_users_job_is_not_found(self, store):
        store.create(_record("pj-1"))
        assert store.get("bob", "pj-1") is None and store.list_jobs("bob") == []

    def test_of_two_writers_of_one_version_exactly_one_wins(self, store):
        store.create(_record("pj-1"))
        read = store.get("alice", "pj-1")
        store.save(read.replace(dispatched=1))
        with pytest.raises(ConflictError):
            store.save(read.replace(dispatched=2))
        assert store.get("alice", "pj-1").dispatched == 1

    def test_saving_a_deleted_job_is_not_found(self, store):
        store.create(_record("pj-1"))
        read = store.get("alice", "pj-1")
        store.enqueue(QueueEntry("alice", "pj-1", 1.0))
        store.delete("alice", "pj-1")
        assert store.get("alice", "pj-1") is None and store.queued() == []
        with pytest.raises(NotFoundError):
            store.save(read)

    def test_jobs_list_newest_first_and_final_ones_are_not_in_flight(self, store):
        for k in range(3):
            store.create(_record(f"pj-{k}", minutes=k))
        assert [r.job_id for r in store.list_jobs("alice")] == ["pj-2", "pj-1", "pj-0"]
        done = store.get("alice", "pj-1")
        store.save(done.replace(job=transition(done.job, "ABORTED", now=T)))
        assert store.count_in_flight("alice") == 2 and store.count_in_flight("bob") == 0

    def test_the_queue_is_idempotent_and_oldest_first(self, store):
        store.enqueue(QueueEntry("bob", "pj-b", 20.0))
        store.enqueue(QueueEntry("alice", "pj-a", 10.0))
        store.enqueue(QueueEntry("alice", "pj-a", 10.0))
        assert [e.job_id for e in store.queued()] == ["pj-a", "pj-b"]
        store.dequeue("pj-a")
        store.dequeue("pj-a")
        assert store.queued() == [QueueEntry("bob", "pj-b", 20.0)]

    def test_concurrent_submissions_never_exceed_the_hourly_limit(self, store):
        taken = []

        def take():
            taken.append(store.take_submission("alice", "2027031012", limit=5, expires_s=1e10))

        threads = [threading.Thread(target=take) for _ in range(12)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert sum(taken) == 5
        assert store.take_submission("alice", "2027031013", limit=5, expires_s=1e10)  # a new hour
        assert store.take_submission("bob", "2027031012", limit=5, expires_s=1e10)  # per user

    def test_measured_unit_costs_move_the_means(self, store):
        before = store.unit_costs()
        for _ in range(20):
            store.observe_unit(30.0, recreated=True)
        after = store.unit_costs()
        assert after.recreated_s > before.recreated_s + 10 and after.cached_s == before.cached_s

    def test_the_schedule_round_trips(self, store):
        assert store.get_schedule() is None
        store.put_schedule(Schedule(100.0, {"pj-1": (2, 35.5)}, 12.0))
        assert store.get_schedule() == Schedule(100.0, {"pj-1": (2, 35.5)}, 12.0)
        store.put_schedule(Schedule(200.0, {}, 0.0, ("bob", "alice"), swept_s=150.0))
        assert store.get_schedule() == Schedule(200.0, {}, 0.0, ("bob", "alice"), 150.0)

    def test_many_jobs_are_read_at_once_and_absent_or_foreign_keys_left_out(self, store):
        for i in range(130):  # more than one BatchGetItem (100 keys)
            store.create(_record(f"pj-{i}", owner="alice" if i % 2 else "bob"))
        keys = [("alice" if i % 2 else "bob", f"pj-{i}") for i in range(130)]
        got = store.get_many([*keys, ("alice", "pj-0"), ("carol", "pj-404"), keys[5]])
        assert sorted(got) == sorted(f"pj-{i}" for i in range(130))  # pj-0 is bob's
        assert got["pj-7"] == store.get("alice", "pj-7")
        assert store.get_many([]) == {}


@pytest.mark.unit
class TestMemoryJobStore(JobStoreContract):
    @pytest.fixture
    def store(self):
        return MemoryJobStore()


@pytest.fixture(scope="module")
def dynamodb():
    with moto_dynamodb() as client:
        yield client


@pytest.mark.integration
class TestDynamoJobStore(JobStoreContract):
    @pytest.fixture
    def store(self, dynamodb):
        return DynamoJobStore(dynamodb, create_service_table(dynamodb))

    def test_a_finished_job_expires_at_least_30_days_after_its_end(self, store, dynamodb):
        store.create(_record("pj-1"))
        r = store.get("alice", "pj-1")
        assert "expires_at" not in dynamodb.get_item(
            TableName=store.table_name, Key={"pk": {"S": "PJOB#alice"}, "sk": {"S": "J#pj-1"}})["Item"]
        end = T + timedelta(hours=2)
        store.save(r.replace(job=transition(r.job, "ABORTED", now=end)))
        item = dynamodb.get_item(TableName=store.table_name,
                                 Key={"pk": {"S": "PJOB#alice"}, "sk": {"S": "J#pj-1"}})["Item"]
        assert int(item["expires_at"]["N"]) >= (end + timedelta(days=30)).timestamp()

"""The job store on the service table (``pk`` S / ``sk`` S, TTL on ``expires_at``).

Layout, beside the filter service's partitions (:mod:`alertprod.distribution.store.dynamodb`):

========================  ==================  ==============================================
pk                        sk                  item
========================  ==================  ==============================================
``PJOB#{owner}``          ``J#{job_id}``      a job record (``data`` JSON, ``version``,
                                              ``phase``); ``expires_at`` = end + retention
                                              once final
``PJQUEUE``               ``J#{job_id}``      a queued job (owner, submission time)
``PJRATE#{owner}``        ``H#{YYYYMMDDHH}``  submissions in the hour (conditional ADD)
``PJMETA``                ``COSTS``           measured unit, plan, assembly costs
``PJMETA``                ``SCHEDULE``        the dispatcher's latest queue positions/ETAs
========================  ==================  ==============================================

A user's jobs are one partition (list, count in flight: one Query); a job record is small
(the API bounds the request body), unit lists and results live in S3. Saves are conditional
on ``version``. Takes an injected low-level client and never imports boto3.
"""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

from alertprod.aws.dynamo_table import DynamoTable
from alertprod.aws.dynamo_table import attr_n as _n
from alertprod.aws.dynamo_table import attr_s as _s
from alertprod.errors import ConflictError, NotFoundError
from alertprod.precovery.jobservice.records import JobRecord
from alertprod.precovery.jobservice.store import JobStore, QueueEntry, Schedule
from alertprod.precovery.scheduling import UnitCosts
from alertprod.precovery.uws import RETENTION

__all__ = ["DynamoJobStore"]


class DynamoJobStore(DynamoTable, JobStore):
    """:class:`JobStore` on one DynamoDB table (the service table, ``ServiceTable``).

    Constructed as :class:`~alertprod.aws.dynamo_table.DynamoTable` (client, table name,
    ``clock`` for the costs' and schedule's bookkeeping). A cancelled transaction is a
    conflict here, as a failed condition is.
    """

    CONFLICT_CODES = ("ConditionalCheckFailedException", "TransactionCanceledException")

    # -- job records ------------------------------------------------------------------------
    @staticmethod
    def _item(record: JobRecord) -> dict[str, Any]:
        item = {"pk": _s(f"PJOB#{record.owner}"), "sk": _s(f"J#{record.job_id}"),
                "data": _s(json.dumps(record.to_dict())), "version": _n(record.version),
                "phase": _s(record.job.phase)}
        if record.final and record.job.end_time is not None:
            item["expires_at"] = _n(int((record.job.end_time + RETENTION).timestamp()) + 86400)
        return item

    @staticmethod
    def _record(item: dict[str, Any]) -> JobRecord:
        record = JobRecord.from_dict(json.loads(item["data"]["S"]))
        return replace(record, version=int(item["version"]["N"]))

    def create(self, record: JobRecord) -> None:
        self._call("put_item", Item=self._item(replace(record, version=1)),
                   ConditionExpression="attribute_not_exists(pk)")

    def get(self, owner: str, job_id: str) -> JobRecord | None:
        item = self._get(f"PJOB#{owner}", f"J#{job_id}")
        return None if item is None else self._record(item)

    def get_many(self, keys: list[tuple[str, str]]) -> dict[str, JobRecord]:
        """One BatchGetItem per 100 keys (:meth:`DynamoTable._batch_get`)."""
        wanted = [{"pk": _s(f"PJOB#{o}"), "sk": _s(f"J#{j}")} for o, j in dict.fromkeys(keys)]
        return {r.job_id: r for r in map(self._record, self._batch_get(wanted))}

    def save(self, record: JobRecord) -> JobRecord:
        saved = replace(record, version=record.version + 1)
        try:
            self._call("put_item", Item=self._item(saved),
                       ConditionExpression="attribute_exists(pk) AND version = :v",
                       ExpressionAttributeValues={":v": _n(record.version)})
        except ConflictError:
            if self.get(record.owner, record.job_id) is None:
                raise NotFoundError(f"no job {record.job_id!r}") from None
            raise
        return saved

    def delete(self, owner: str, job_id: str) -> None:
        self._call("delete_item", Key={"pk": _s(f"PJOB#{owner}"), "sk": _s(f"J#{job_id}")})
        self.dequeue(job_id)

    def list_jobs(self, owner: str) -> list[JobRecord]:
        records = [self._record(i) for i in self._query(f"PJOB#{owner}")]
        return sorted(records, key=lambda r: (r.job.creation_time, r.job_id), reverse=True)

    def count_in_flight(self, owner: str) -> int:
        items = self._query(f"PJOB#{owner}", ProjectionExpression="phase")
        return sum(i["phase"]["S"] not in ("COMPLETED", "ERROR", "ABORTED") for i in items)

    # -- the queue --------------------------------------------------------------------------
    def enqueue(self, entry: QueueEntry) -> None:
        self._call("put_item", Item={"pk": _s("PJQUEUE"), "sk": _s(f"J#{entry.job_id}"),
                                     "owner": _s(entry.owner), "submitted_s": _n(entry.submitted_s)})

    def dequeue(self, job_id: str) -> None:
        self._call("delete_item", Key={"pk": _s("PJQUEUE"), "sk": _s(f"J#{job_id}")})

    def queued(self) -> list[QueueEntry]:
        out = [QueueEntry(i["owner"]["S"], i["sk"]["S"][2:], float(i["submitted_s"]["N"]))
               for i in self._query("PJQUEUE")]
        return sorted(out, key=lambda e: (e.submitted_s, e.job_id))

    # -- quotas -----------------------------------------------------------------------------
    def take_submission(self, owner: str, window: str, *, limit: int, expires_s: float) -> bool:
        try:
            self._call("update_item", Key={"pk": _s(f"PJRATE#{owner}"), "sk": _s(f"H#{window}")},
                       UpdateExpression="ADD n :one SET expires_at = :e",
                       ConditionExpression="attribute_not_exists(n) OR n < :limit",
                       ExpressionAttributeValues={":one": _n(1), ":limit": _n(limit), ":e": _n(int(expires_s))})
        except ConflictError:
            return False
        return True

    # -- unit costs, schedule ---------------------------------------------------------------
    @staticmethod
    def _costs(item: dict[str, Any] | None) -> UnitCosts:
        if item is None:
            return UnitCosts()
        d = json.loads(item["data"]["S"])  # a record from before plans were measured has units only
        return UnitCosts(**{k: float(v) for k, v in d.items() if k in UnitCosts().means()})

    def unit_costs(self) -> UnitCosts:
        return self._costs(self._get("PJMETA", "COSTS"))

    def observe_step(self, step: str, seconds: float) -> None:
        for _ in range(3):  # best effort: a lost update only delays the mean's convergence
            item = self._get("PJMETA", "COSTS")
            costs = self._costs(item)
            version = 0 if item is None else int(item["version"]["N"])
            costs.observe_step(step, seconds)
            try:
                self._call("put_item", Item={"pk": _s("PJMETA"), "sk": _s("COSTS"),
                                             "data": _s(json.dumps(costs.means())),
                                             "version": _n(version + 1)},
                           ConditionExpression="attribute_not_exists(pk) OR version = :v",
                           ExpressionAttributeValues={":v": _n(version)})
                return
            except ConflictError:
                continue

    def put_schedule(self, schedule: Schedule) -> None:
        data = json.dumps({"as_of_s": schedule.as_of_s, "drain_s": schedule.drain_s,
                           "rotation": list(schedule.rotation), "swept_s": schedule.swept_s,
                           "jobs": {j: [int(p), float(f)] for j, (p, f) in schedule.jobs.items()}})
        self._call("put_item", Item={"pk": _s("PJMETA"), "sk": _s("SCHEDULE"), "data": _s(data)})

    def get_schedule(self) -> Schedule | None:
        item = self._get("PJMETA", "SCHEDULE")
        if item is None:
            return None
        d = json.loads(item["data"]["S"])
        return Schedule(float(d["as_of_s"]), {j: (int(p), float(f)) for j, (p, f) in d["jobs"].items()},
                        float(d.get("drain_s", 0.0)), tuple(d.get("rotation", ())),
                        float(d.get("swept_s", 0.0)))

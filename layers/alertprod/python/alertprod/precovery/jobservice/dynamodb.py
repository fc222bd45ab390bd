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
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from alertprod.errors import ConflictError, NotFoundError, StorageError
from alertprod.precovery.jobservice.records import JobRecord
from alertprod.precovery.jobservice.store import JobStore, QueueEntry, Schedule
from alertprod.precovery.scheduling import UnitCosts
from alertprod.precovery.uws import RETENTION

__all__ = ["DynamoJobStore"]


def _s(v: str) -> dict[str, str]:
    return {"S": v}


def _n(v: float) -> dict[str, str]:
    return {"N": repr(float(v)) if not float(v).is_integer() else str(int(v))}


def _code(exc: BaseException) -> str:
    return (getattr(exc, "response", None) or {}).get("Error", {}).get("Code", "")


class DynamoJobStore(JobStore):
    """:class:`JobStore` on one DynamoDB table.

    Parameters
    ----------
    client : botocore client
        Low-level DynamoDB client (injected).
    table_name : str
        The service table (``ServiceTable``).
    clock : callable, keyword-only
        Unix time (for the costs' and schedule's bookkeeping).
    """

    def __init__(self, client: Any, table_name: str, *, clock: Callable[[], float] | None = None):
        import time

        if not table_name:
            raise StorageError("table_name must not be empty")
        self._db, self.table_name = client, table_name
        self._clock = clock or time.time

    def _call(self, name: str, **kwargs: Any) -> Any:
        try:
            return getattr(self._db, name)(TableName=self.table_name, **kwargs)
        except Exception as exc:  # botocore's errors, told apart by code
            code = _code(exc)
            if code in ("ConditionalCheckFailedException", "TransactionCanceledException"):
                raise ConflictError(f"{name}: condition failed") from exc
            raise StorageError(f"DynamoDB {name} on {self.table_name} failed: {code or exc}") from exc

    def _query(self, pk: str, **kwargs: Any) -> list[dict[str, Any]]:
        items, start = [], None
        while True:
            extra = {"ExclusiveStartKey": start} if start else {}
            page = self._call("query", KeyConditionExpression="pk = :pk",
                              ExpressionAttributeValues={":pk": _s(pk)}, ConsistentRead=True,
                              **kwargs, **extra)
            items += page.get("Items", [])
            start = page.get("LastEvaluatedKey")
            if not start:
                return items

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
        item = self._call("get_item", Key={"pk": _s(f"PJOB#{owner}"), "sk": _s(f"J#{job_id}")},
                          ConsistentRead=True).get("Item")
        return None if item is None else self._record(item)

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
        return self._costs(self._call("get_item", Key={"pk": _s("PJMETA"), "sk": _s("COSTS")},
                                      ConsistentRead=True).get("Item"))

    def observe_step(self, step: str, seconds: float) -> None:
        for _ in range(3):  # best effort: a lost update only delays the mean's convergence
            item = self._call("get_item", Key={"pk": _s("PJMETA"), "sk": _s("COSTS")},
                              ConsistentRead=True).get("Item")
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
                           "rotation": list(schedule.rotation),
                           "jobs": {j: [int(p), float(f)] for j, (p, f) in schedule.jobs.items()}})
        self._call("put_item", Item={"pk": _s("PJMETA"), "sk": _s("SCHEDULE"), "data": _s(data)})

    def get_schedule(self) -> Schedule | None:
        item = self._call("get_item", Key={"pk": _s("PJMETA"), "sk": _s("SCHEDULE")},
                          ConsistentRead=True).get("Item")
        if item is None:
            return None
        d = json.loads(item["data"]["S"])
        return Schedule(float(d["as_of_s"]), {j: (int(p), float(f)) for j, (p, f) in d["jobs"].items()},
                        float(d.get("drain_s", 0.0)), tuple(d.get("rotation", ())))

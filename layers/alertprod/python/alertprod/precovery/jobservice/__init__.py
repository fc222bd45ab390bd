"""The precovery service's backend: jobs submitted through the API, run by queues and workers.

- :mod:`.config` — typed settings (quotas, dispatch cap, waiting, retention) and resource names;
- :mod:`.records`, :mod:`.store`, :mod:`.dynamodb` — the job record and its store (memory,
  DynamoDB on the service table);
- :mod:`.messages` — what the job, tick and unit queues carry;
- :mod:`.service` — what the API calls: submit (quotas), read, wait, abort, delete, results;
- :mod:`.execution` — plan, fair-share dispatch, unit work, assembly;
- :mod:`.notify` — completion webhook and e-mail;
- :mod:`.handlers` — the Lambda functions' per-message entry points.

The lifecycle and its decisions are in docs/precovery-service.md.
"""

from alertprod.precovery.jobservice.config import JobServiceResources, JobServiceSettings
from alertprod.precovery.jobservice.context import JobContext
from alertprod.precovery.jobservice.dynamodb import DynamoJobStore
from alertprod.precovery.jobservice.execution import assemble, dispatch, plan_submitted, run_unit
from alertprod.precovery.jobservice.messages import MemoryQueue
from alertprod.precovery.jobservice.records import JobRecord
from alertprod.precovery.jobservice.service import (
    QuotaError,
    abort_job,
    delete_job,
    get_job,
    job_document,
    job_documents,
    list_jobs,
    read_result,
    submit_job,
    wait_job,
)
from alertprod.precovery.jobservice.store import JobStore, MemoryJobStore

__all__ = ["DynamoJobStore", "JobContext", "JobRecord", "JobServiceResources", "JobServiceSettings",
           "JobStore", "MemoryJobStore", "MemoryQueue", "QuotaError", "abort_job", "assemble",
           "delete_job", "dispatch", "get_job", "job_document", "job_documents", "list_jobs", "plan_submitted",
           "read_result", "run_unit", "submit_job", "wait_job"]

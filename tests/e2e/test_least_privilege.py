"""Least privilege, checked against what the code does: a replayed night on the embedded stack.

Every AWS call each function makes while a simulated survey is replayed (ingest, archive,
daily precovery, orbit refresh, the filter service, the HTTP API and its authorizer, with the
demo users' filters registered through the API) is recorded with the function that made it,
turned into the IAM action and resource ARN AWS would authorise, and checked against the role
the template gives that function (SAM policy templates expanded from the translator's own
definitions, inline statements resolved by the stack's resolver):

- every call is allowed by the function's role — a missing grant would fail only on AWS;
- every policy the template lists for a function is used by at least one of its calls — a grant
  nobody uses is a privilege to remove (or, for the few the replay cannot reach, a documented
  reason below).

The recorder wraps botocore's ``_make_api_call`` to observe calls; nothing is changed or stubbed.
"""

from __future__ import annotations

import contextlib
import fnmatch
import io
import json
import logging
import os
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, NamedTuple
from urllib.parse import urlparse

import botocore.client
import pytest
import samtranslator

from alertprod.cli.demo_filters import DemoFilters
from alertprod.replay.runner import replay
from alertprod.sky import simulate_survey

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

ACCOUNT, REGION = "123456789012", "us-east-1"

#: Policies a clean replayed night does not exercise, with the reason each is still needed
#: (the scenario that does exercise it is named).
UNEXERCISED_OK: dict[tuple[str, str], str] = {
    ("IngestFunction", "S3WritePolicy:UploadBucket"):
        "quarantine records of refused uploads (tests/e2e/test_replay_bad_inputs.py)",
    ("IngestFunction", "S3ReadPolicy:AlertBucket"):
        "a retried CCD replays its staged plan from staging/ (the reliability tests)",
    ("FilterServiceFunction", "S3ReadPolicy:AlertBucket"):
        "claim-checked alerts, too big for an SNS message, are read from the alert bucket",
    ("FilterServiceFunction", "SQSSendMessagePolicy:PrecoveryJobQueue"):
        "precovery ordered by a filter that asks for it (tests/unit/distribution, the stack's "
        "filter-ordered precovery test); the demo's filters do not",
    ("FilterServiceFunction", "SQSSendMessagePolicy:DeliveryDLQ"):
        "a webhook that keeps failing is dead-lettered (tests/integration/test_distribution_stack.py)",
    ("ApiFunction", "SQSSendMessagePolicy:DeliveryDLQ"):
        "a redelivery to a failing webhook is dead-lettered, as the filter service's",
    ("PrecoveryJobsFunction", "Statement:ses:SendEmail"):
        "a precovery job's completion e-mail, sent when the job asked for one (notify.email)",
    ("PrecoveryUnitFunction", "S3ReadPolicy:ArchiveBucket"):
        "a unit re-created from the archive (this night's job is measured on the cached "
        "difference; tests/integration/test_precovery_service_stack.py measures both)",
    ("ApiFunction", "DynamoDBReadPolicy:Level1Table"):
        "units done of an EXECUTING precovery job, from the fan-in's run record (a job read "
        "while it runs: tests/integration/test_precovery_service_stack.py)",
}

_TEMPLATES = json.loads((Path(samtranslator.__file__).parent / "policy_templates_data"
                         / "policy_templates.json").read_text())["Templates"]


class Call(NamedTuple):
    function: str
    action: str
    resource: str


def _s3_arn(bucket: str, key: str | None = None) -> str:
    return f"arn:aws:s3:::{bucket}" + (f"/{key}" if key is not None else "")


def _table_arn(table: str, index: str | None = None) -> str:
    return f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/{table}" + (f"/index/{index}" if index else "")


def _queue_arn(url: str) -> str:
    return f"arn:aws:sqs:{REGION}:{ACCOUNT}:{urlparse(url).path.rstrip('/').rsplit('/', 1)[-1]}"


_S3_ACTIONS = {"GetObject": "s3:GetObject", "HeadObject": "s3:GetObject", "PutObject": "s3:PutObject",
               "DeleteObject": "s3:DeleteObject", "DeleteObjects": "s3:DeleteObject",
               "ListObjectsV2": "s3:ListBucket", "ListObjects": "s3:ListBucket",
               "HeadBucket": "s3:ListBucket", "CreateMultipartUpload": "s3:PutObject",
               "UploadPart": "s3:PutObject", "CompleteMultipartUpload": "s3:PutObject",
               "AbortMultipartUpload": "s3:AbortMultipartUpload"}
_BUCKET_LEVEL = {"ListObjectsV2", "ListObjects", "HeadBucket"}
_TRANSACT = {"Put": "PutItem", "Update": "UpdateItem", "Delete": "DeleteItem",
             "ConditionCheck": "ConditionCheckItem", "Get": "GetItem"}


def iam_calls(function: str, service: str, operation: str, params: dict[str, Any]) -> list[Call]:
    """The (action, resource) pairs IAM authorises for one API call."""
    if service == "s3":
        action = _S3_ACTIONS.get(operation, f"s3:{operation}")
        out = []
        if operation == "CopyObject":
            src = params["CopySource"]
            src = src if isinstance(src, dict) else dict(zip(("Bucket", "Key"), str(src).lstrip("/").split("/", 1),
                                                             strict=True))
            out.append(Call(function, "s3:GetObject", _s3_arn(src["Bucket"], src["Key"])))
            action = "s3:PutObject"
        key = None if operation in _BUCKET_LEVEL else params.get("Key", "")
        return [*out, Call(function, action, _s3_arn(params["Bucket"], key))]
    if service == "dynamodb":
        if operation in ("TransactWriteItems", "TransactGetItems"):
            out = []
            for item in params["TransactItems"]:
                (kind, body), = item.items()
                out.append(Call(function, f"dynamodb:{_TRANSACT[kind]}", _table_arn(body["TableName"])))
            return out
        if operation in ("BatchWriteItem", "BatchGetItem"):
            return [Call(function, f"dynamodb:{operation}", _table_arn(t)) for t in params["RequestItems"]]
        return [Call(function, f"dynamodb:{operation}", _table_arn(params["TableName"], params.get("IndexName")))]
    if service == "sqs":
        action = "sqs:SendMessage" if operation.startswith("SendMessage") else f"sqs:{operation}"
        if operation == "GetQueueUrl":
            return [Call(function, action, f"arn:aws:sqs:{REGION}:{ACCOUNT}:{params['QueueName']}")]
        return [Call(function, action.removesuffix("Batch"), _queue_arn(params["QueueUrl"]))]
    if service == "sns":
        return [Call(function, "sns:Publish", params.get("TopicArn") or params.get("TargetArn", "*"))]
    if service == "ses":
        return [Call(function, f"ses:{operation}", f"arn:aws:ses:{REGION}:{ACCOUNT}:identity/*")]
    return [Call(function, f"{service}:{operation}", "*")]


def _listify(value: Any) -> list:
    return value if isinstance(value, list) else [value]


def _substitute(node: Any, values: dict[str, Any]) -> Any:
    """A SAM policy template's ``{"Ref": Parameter}`` replaced by the template's value."""
    if isinstance(node, dict):
        if set(node) == {"Ref"} and node["Ref"] in values:
            return values[node["Ref"]]
        return {k: _substitute(v, values) for k, v in node.items()}
    if isinstance(node, list):
        return [_substitute(v, values) for v in node]
    return node


def policy_label(entry: Any) -> str:
    """``S3ReadPolicy:AlertBucket`` for a SAM policy template, ``Statement:<Sids or actions>`` else."""
    (name, body), = entry.items()
    if name == "Statement":
        return "Statement:" + ",".join(str(s.get("Sid") or _listify(s.get("Action"))[0]) for s in _listify(body))
    (value,) = body.values()
    ref = value.get("Ref") or (value.get("Fn::GetAtt") or ["?"])[0] if isinstance(value, dict) else value
    return f"{name}:{ref}"


def role_statements(stack, function_id: str) -> list[list[dict[str, Any]]]:
    """Each entry of a function's ``Policies``, as resolved IAM statements (one list per entry)."""
    props = stack.template["Resources"][function_id]["Properties"]
    out = []
    for entry in props.get("Policies") or []:
        if isinstance(entry, str):
            raise AssertionError(f"{function_id}: managed policy {entry} cannot be checked")
        (name, body), = entry.items()
        if name == "Statement":
            statements = body
        else:
            params = stack.resolver.resolve(body)
            statements = _substitute(_TEMPLATES[name]["Definition"]["Statement"], params)
        out.append([stack.resolver.resolve(s) for s in _listify(statements)])
    return out


def allows(statements: list[dict[str, Any]], call: Call) -> bool:
    """Whether one policy entry allows the call (Allow statements only; the template has no Deny)."""
    for s in statements:
        actions = [a.lower() for a in _listify(s.get("Action", []))]
        if s.get("Effect") == "Allow" and any(fnmatch.fnmatchcase(call.action.lower(), a) for a in actions) \
                and any(fnmatch.fnmatchcase(call.resource, r) for r in _listify(s.get("Resource", []))):
            return True
    return False


@pytest.fixture(scope="module")
def audited(tmp_path_factory):
    root = tmp_path_factory.mktemp("least-privilege")
    simulate_survey(root / "survey", preset="tiny", seed=5, progress=False)
    seen: dict[str, Any] = {}
    calls: set[Call] = set()
    original = botocore.client.BaseClient._make_api_call

    def recording(self, operation, params):
        function = os.environ.get("AWS_LAMBDA_FUNCTION_NAME")
        if function:
            service = self.meta.service_model.endpoint_prefix
            calls.update(iam_calls(function, service, operation, params))
        return original(self, operation, params)

    filters = DemoFilters()

    def on_start(stack):
        seen["stack"] = stack
        filters.register(stack)

    def before_export(stack):
        # an operator-facing path a quiet night does not take: bob asks for his matches again
        bob = filters.filters["demo-bob"]
        since = (datetime.now(UTC) - timedelta(hours=6)).isoformat()
        seen["redelivered"] = filters._call("POST", f"/api/filters/{bob['filter_id']}/redeliver",
                                            "demo-bob", {"since": since})
        # the precovery service: a job at one of the night's sources run to its light curve,
        # another aborted, the first deleted (the API's, planner's, dispatcher's, workers' calls)
        from astropy.table import Table

        src = Table.read(sorted((root / "survey" / "diasources").rglob("*.fits"))[0], hdu=1)[0]
        body = {"target": {"kind": "position", "ra": float(src["ra"]), "dec": float(src["dec"])},
                "options": {"mjd_min": 50000.0, "mjd_max": 99999.0}}
        job = filters._call("POST", "/api/precovery/jobs", "demo-bob", body)
        stack.run_until_idle(timeout_s=600)
        seen["precovery"] = filters._call(
            "GET", f"/api/precovery/jobs/{job['jobId']}/results/lightcurve?format=json", "demo-bob")
        other = filters._call("POST", "/api/precovery/jobs", "demo-bob", body)
        filters._call("POST", f"/api/precovery/jobs/{other['jobId']}/phase", "demo-bob", {"PHASE": "ABORT"})
        filters._call("DELETE", f"/api/precovery/jobs/{job['jobId']}", "demo-bob")
        stack.run_until_idle(timeout_s=120)

    class Capture(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            lines.append(self.format(record))

    lines: list[str] = []
    capture = Capture(level=logging.DEBUG)
    root_logger = logging.getLogger()
    root_logger.addHandler(capture)
    botocore.client.BaseClient._make_api_call = recording
    out, err = io.StringIO(), io.StringIO()  # Powertools loggers write to standard output
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            replay(root / "survey", root / "out", progress=False, on_start=on_start,
                   before_export=before_export, log_level="INFO",
                   parameter_overrides={"WebhookAllowPrivate": "1"})
    finally:
        botocore.client.BaseClient._make_api_call = original
        root_logger.removeHandler(capture)
    seen["secrets"] = [*filters.tokens.values(), filters.receiver.secret]
    seen["log"] = [*lines, *out.getvalue().splitlines(), *err.getvalue().splitlines()]
    stack = seen["stack"]
    by_name = {fn.name: fn.logical_id for fn in stack.lambdas.functions.values()}
    per_function: dict[str, set[Call]] = defaultdict(set)
    for c in calls:
        per_function[by_name[c.function]].add(c)
    return stack, per_function, seen


def test_every_call_a_function_makes_is_granted_by_its_role(audited):
    stack, per_function, _ = audited
    denied = {}
    for function_id, calls in per_function.items():
        policies = role_statements(stack, function_id)
        missing = sorted({(c.action, c.resource) for c in calls if not any(allows(p, c) for p in policies)})
        if missing:
            denied[function_id] = missing[:10]
    assert not denied, f"calls the template's roles do not allow (they would fail on AWS): {denied}"


def test_every_policy_a_role_lists_is_used(audited):
    stack, per_function, _ = audited
    unused = {}
    for function_id in per_function:
        entries = stack.template["Resources"][function_id]["Properties"]["Policies"]
        for entry, policy in zip(entries, role_statements(stack, function_id), strict=True):
            label = policy_label(entry)
            if (function_id, label) in UNEXERCISED_OK:
                continue
            if not any(allows(policy, c) for c in per_function[function_id]):
                unused.setdefault(function_id, []).append(label)
    assert not unused, f"policies no call used (remove, or document why in UNEXERCISED_OK): {unused}"


def test_the_night_exercised_every_nightly_function(audited):
    _, per_function, seen = audited
    nightly = {"IngestFunction", "ArchiveFunction", "PrecoveryPlannerFunction", "PrecoveryWorkerFunction",
               "FilterServiceFunction", "ApiFunction", "ApiAuthorizerFunction", "PrecoveryJobsFunction",
               "PrecoveryDispatcherFunction", "PrecoveryUnitFunction"}
    assert seen["precovery"]["rows"], "the precovery job measured the source's images"
    assert nightly <= set(per_function), sorted(nightly - set(per_function))


def test_bearer_tokens_and_webhook_secrets_never_reach_the_logs(audited):
    *_, seen = audited
    assert len(seen["log"]) > 100, "the night logged (the capture works)"
    assert all(len(secret) >= 20 for secret in seen["secrets"])
    leaked = [s[:6] + "..." for s in seen["secrets"] if any(s in line for line in seen["log"])]
    assert not leaked, f"secrets found in the logs: {leaked}"

"""The SAM template transforms offline into the CloudFormation resources the system needs."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import numpy as np
import pytest
from samtranslator.translator.transform import transform

from alertprod.local.template import load_template

pytestmark = pytest.mark.unit

TEMPLATE = Path(__file__).parents[3] / "infra" / "template.yaml"


class StubManagedPolicyLoader:
    """Stands in for the IAM lookup of AWS managed policy ARNs (an external service)."""

    def load(self) -> dict[str, str]:
        names = ["AWSLambdaBasicExecutionRole", "AWSXrayWriteOnlyAccess", "AWSLambdaSQSQueueExecutionRole",
                 "AWSXRayDaemonWriteAccess", "AWSLambdaRole"]
        return {n: f"arn:aws:iam::aws:policy/service-role/{n}" for n in names}


@pytest.fixture(scope="module")
def cfn() -> dict:
    template = copy.deepcopy(load_template(TEMPLATE))
    # `sam package` replaces local CodeUri/ContentUri folders by S3 locations before the transform.
    for logical_id, spec in template["Resources"].items():
        props = spec.get("Properties", {})
        for key in ("CodeUri", "ContentUri"):
            if key in props:
                props[key] = f"s3://artifacts/{logical_id}.zip"
    with pytest.MonkeyPatch.context() as mp:  # the translator asks boto3 for a region
        mp.setenv("AWS_DEFAULT_REGION", "us-east-1")
        return transform(template, {"AWS::Region": "us-east-1", "AWS::AccountId": "123456789012"},
                         StubManagedPolicyLoader())


def _of_type(cfn: dict, rtype: str) -> dict[str, dict]:
    return {k: v for k, v in cfn["Resources"].items() if v["Type"] == rtype}


def test_transform_leaves_only_cloudformation_resources(cfn):
    types = {spec["Type"] for spec in cfn["Resources"].values()}
    assert not any(t.startswith("AWS::Serverless::") for t in types)
    assert {"AWS::Lambda::Function", "AWS::IAM::Role", "AWS::Lambda::EventSourceMapping",
            "AWS::Events::Rule", "AWS::Lambda::Permission", "AWS::Lambda::LayerVersion"} <= types


def test_functions_run_python_on_arm64_with_the_layer_and_tracing(cfn):
    functions = _of_type(cfn, "AWS::Lambda::Function")
    assert set(functions) == {"IngestFunction", "PrecoveryPlannerFunction", "PrecoveryWorkerFunction",
                              "OrbitRefreshPlannerFunction", "OrbitRefreshWorkerFunction",
                              "ArchiveFunction", "ApiFunction", "ApiAuthorizerFunction",
                              "FilterServiceFunction", "PrecoveryJobsFunction",
                              "PrecoveryDispatcherFunction", "PrecoveryUnitFunction",
                              "VoeventRelayFunction"}
    layer_id = next(iter(_of_type(cfn, "AWS::Lambda::LayerVersion")))
    for spec in functions.values():
        p = spec["Properties"]
        assert p["Runtime"] == "python3.12" and p["Architectures"] == ["arm64"]
        assert p["Handler"] == "app.lambda_handler" and p["TracingConfig"] == {"Mode": "Active"}
        assert p["Layers"] == [{"Ref": layer_id}]
        assert set(p["Environment"]["Variables"]) >= {"UPLOAD_BUCKET", "IMAGE_BUCKET", "ALERT_BUCKET",
                                                       "LEVEL1_TABLE", "POWERTOOLS_SERVICE_NAME"}
    for name in ("ApiFunction", "ApiAuthorizerFunction", "FilterServiceFunction"):
        assert "SERVICE_TABLE" in functions[name]["Properties"]["Environment"]["Variables"], name


def test_sqs_sources_report_partial_batch_failures(cfn):
    mappings = _of_type(cfn, "AWS::Lambda::EventSourceMapping")
    assert set(mappings) == {"IngestFunctionUpload", "PrecoveryWorkerFunctionWorkUnit",
                             "OrbitRefreshWorkerFunctionChunk", "ArchiveFunctionImage",
                             "FilterServiceFunctionAlerts", "PrecoveryJobsFunctionJobMessage",
                             "PrecoveryDispatcherFunctionTick", "PrecoveryUnitFunctionUnit",
                             "VoeventRelayFunctionAlerts"}
    for spec in mappings.values():
        p = spec["Properties"]
        assert p["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert mappings["IngestFunctionUpload"]["Properties"]["EventSourceArn"] == {
        "Fn::GetAtt": ["UploadQueue", "Arn"]}


def _schedules(cfn: dict) -> dict[str, str]:
    """Schedule expression of each scheduled function."""
    return {r["Properties"]["Targets"][0]["Arn"]["Fn::GetAtt"][0]: r["Properties"]["ScheduleExpression"]
            for r in _of_type(cfn, "AWS::Events::Rule").values()}


def test_planner_runs_daily_at_midday_in_chile(cfn):
    assert _schedules(cfn)["PrecoveryPlannerFunction"] == "cron(0 15 * * ? *)"


def test_orbit_refresh_runs_daily_after_the_night_rolls_over_and_before_the_next(cfn):
    # 12:00 UTC: the night label (dayObs, UTC-12 h) rolls over; Chile's nights start ~23:00 UTC
    assert _schedules(cfn) == {"PrecoveryPlannerFunction": "cron(0 15 * * ? *)",
                               "OrbitRefreshPlannerFunction": "cron(0 12 * * ? *)"}
    mappings = _of_type(cfn, "AWS::Lambda::EventSourceMapping")
    chunk = mappings["OrbitRefreshWorkerFunctionChunk"]["Properties"]
    assert chunk["EventSourceArn"] == {"Fn::GetAtt": ["OrbitRefreshQueue", "Arn"]}
    assert chunk["BatchSize"] == 1
    worker = cfn["Resources"]["OrbitRefreshWorkerFunction"]["Properties"]
    assert worker["MemorySize"] == 1769  # one full vCPU, as the cost report assumes
    queue = cfn["Resources"]["OrbitRefreshQueue"]["Properties"]
    assert queue["VisibilityTimeout"] >= 6 * worker["Timeout"]
    assert queue["RedrivePolicy"] == {"deadLetterTargetArn": {"Fn::GetAtt": ["OrbitRefreshDLQ", "Arn"]},
                                      "maxReceiveCount": 3}
    alarm = cfn["Resources"]["OrbitRefreshDLQAlarm"]["Properties"]
    assert alarm["Dimensions"][0]["Value"] == {"Fn::GetAtt": ["OrbitRefreshDLQ", "QueueName"]}
    env = cfn["Resources"]["IngestFunction"]["Properties"]["Environment"]["Variables"]
    assert env["ORBIT_REFRESH_QUEUE_URL"] == {"Ref": "OrbitRefreshQueue"}


def test_orbit_refresh_roles_reach_only_the_staging_prefix_and_their_queue(cfn):
    for function in ("OrbitRefreshPlannerFunction", "OrbitRefreshWorkerFunction"):
        role = json.dumps(cfn["Resources"][f"{function}Role"])
        assert "staging/orbit-refresh/*" in role and '"AlertTopic"' not in role
        assert '"OrbitRefreshQueue"' in role and '"UploadQueue"' not in role
        assert '"PrecoveryQueue"' not in role and '"ImageBucket"' not in role
        s3 = [st for p in cfn["Resources"][f"{function}Role"]["Properties"]["Policies"]
              for st in p["PolicyDocument"]["Statement"]
              if any(str(a).startswith("s3:") for a in np.atleast_1d(st["Action"]))]
        assert {json.dumps(st["Resource"]) for st in s3} == {
            json.dumps({"Fn::Sub": "${AlertBucket.Arn}/staging/orbit-refresh/*"}),
            json.dumps({"Fn::GetAtt": ["AlertBucket", "Arn"]})}
    # the ingest asks for a refresh after loading an orbit catalog
    assert '"OrbitRefreshQueue"' in json.dumps(cfn["Resources"]["IngestFunctionRole"])


def test_function_roles_scope_data_access_to_named_resources(cfn):
    for role_id, role in _of_type(cfn, "AWS::IAM::Role").items():
        for policy in role["Properties"].get("Policies", []):
            for statement in policy["PolicyDocument"]["Statement"]:
                actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
                if any(a.split(":")[0] in ("s3", "dynamodb", "sns", "sqs") for a in actions):
                    assert statement["Resource"] != "*", (role_id, actions)
    ingest = json.dumps(cfn["Resources"]["IngestFunctionRole"])
    worker = json.dumps(cfn["Resources"]["PrecoveryWorkerFunctionRole"])
    assert '"AlertTopic"' in ingest and '"AlertTopic"' not in worker
    assert "sqs:SendMessage" in json.dumps(cfn["Resources"]["PrecoveryPlannerFunctionRole"])
    # the worker sends only the run's finalisation back to its own queue (fan-in)
    assert "sqs:SendMessage" in worker and '"PrecoveryQueue"' in worker and '"UploadQueue"' not in worker


def test_archive_role_reads_the_cache_writes_the_archive_and_indexes_only(cfn):
    role = cfn["Resources"]["ArchiveFunctionRole"]
    statements = [s for p in role["Properties"]["Policies"] for s in p["PolicyDocument"]["Statement"]]
    by_sid = {s["Sid"]: s for s in statements}
    assert by_sid["ReadCachedImages"]["Action"] == "s3:GetObject"
    assert by_sid["ReadCachedImages"]["Resource"] == {"Fn::Sub": "${ImageBucket.Arn}/visits/*"}
    assert "s3:PutObject" in by_sid["WriteArchive"]["Action"]
    assert all("ArchiveBucket" in json.dumps(r) for r in by_sid["WriteArchive"]["Resource"])
    index = by_sid["IndexArchive"]
    assert index["Action"] == "dynamodb:UpdateItem"
    assert index["Condition"] == {"ForAllValues:StringLike": {"dynamodb:LeadingKeys": ["ARC#*"]}}
    text = json.dumps(role)
    assert "sns:" not in text and "sqs:SendMessage" not in text and "s3:DeleteObject" not in text


def test_only_science_and_template_uploads_reach_the_archive_queue(cfn):
    config = cfn["Resources"]["ImageBucket"]["Properties"]["NotificationConfiguration"]
    rules = [{r["Name"]: r["Value"] for r in c["Filter"]["S3Key"]["Rules"]}
             for c in config["QueueConfigurations"]]
    assert rules == [{"prefix": "visits/", "suffix": "/science.fits"},
                     {"prefix": "visits/", "suffix": "/template.fits"}]
    transitions = cfn["Resources"]["ArchiveBucket"]["Properties"]["LifecycleConfiguration"]["Rules"][0]
    assert [(t["StorageClass"], t["TransitionInDays"]) for t in transitions["Transitions"]] == [
        ("GLACIER_IR", 0)]
    assert "ExpirationInDays" not in json.dumps(cfn["Resources"]["ArchiveBucket"])


def test_upload_queue_outlives_six_ingest_timeouts_and_redrives_after_three(cfn):
    queue = cfn["Resources"]["UploadQueue"]["Properties"]
    timeout = cfn["Resources"]["IngestFunction"]["Properties"]["Timeout"]
    assert queue["VisibilityTimeout"] >= 6 * timeout
    assert queue["RedrivePolicy"] == {"deadLetterTargetArn": {"Fn::GetAtt": ["UploadDLQ", "Arn"]},
                                      "maxReceiveCount": 3}

"""The distribution resources of the template lint clean and transform into what the filter API
and the filtering service need."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
from cfnlint.api import lint_file
from samtranslator.translator.transform import transform

from alertprod.local.template import load_template

pytestmark = pytest.mark.unit

INFRA = Path(__file__).parents[3] / "infra"


def merged() -> dict:
    """The template (the distribution resources were merged into it from their fragment)."""
    template = copy.deepcopy(load_template(INFRA / "template.yaml"))
    for name in ("HttpApi", "ApiFunction", "ApiAuthorizerFunction", "FilterServiceFunction",
                 "ServiceTable", "FilterServiceQueue", "DeliveryDLQ"):
        assert name in template["Resources"], name
    return template


@pytest.fixture(scope="module")
def cfn() -> dict:
    template = merged()
    for logical_id, spec in template["Resources"].items():
        props = spec.get("Properties", {})
        for key in ("CodeUri", "ContentUri"):
            if key in props:
                props[key] = f"s3://artifacts/{logical_id}.zip"

    class Policies:
        def load(self):
            names = ["AWSLambdaBasicExecutionRole", "AWSXrayWriteOnlyAccess", "AWSLambdaSQSQueueExecutionRole",
                     "AWSXRayDaemonWriteAccess", "AWSLambdaRole"]
            return {n: f"arn:aws:iam::aws:policy/service-role/{n}" for n in names}

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("AWS_DEFAULT_REGION", "us-east-1")
        return transform(template, {"AWS::Region": "us-east-1", "AWS::AccountId": "123456789012"}, Policies())


def test_merged_template_passes_cfn_lint(tmp_path):
    path = tmp_path / "template.json"
    path.write_text(json.dumps(merged()))
    assert [str(m) for m in lint_file(path)] == []


def test_http_api_checks_bearer_tokens_with_the_lambda_authorizer(cfn):
    schemes = cfn["Resources"]["HttpApi"]["Properties"]["Body"]["components"]["securitySchemes"]
    p = schemes["BearerTokenAuthorizer"]["x-amazon-apigateway-authorizer"]
    assert p["type"] == "request" and p["authorizerPayloadFormatVersion"] == "2.0"
    assert p["enableSimpleResponses"] is True and p["identitySource"] == ["$request.header.Authorization"]
    assert "ApiAuthorizerFunction" in json.dumps(p["authorizerUri"])


def test_filter_routes_need_the_authorizer_and_openapi_is_public(cfn):
    body = cfn["Resources"]["HttpApi"]["Properties"]["Body"]
    paths = body["paths"]
    assert {"/api/filters", "/api/filters/{proxy+}", "/api/openapi.json"} <= set(paths)
    for path in ("/api/filters", "/api/filters/{proxy+}"):
        assert paths[path]["x-amazon-apigateway-any-method"]["security"] == [{"BearerTokenAuthorizer": []}]
    assert paths["/api/openapi.json"]["get"]["security"] == [{"NONE": []}]  # SAM's mark for no authorizer


def test_filter_service_reads_its_queue_on_the_alert_topic(cfn):
    r = cfn["Resources"]
    mapping = r["FilterServiceFunctionAlerts"]["Properties"]
    assert mapping["EventSourceArn"] == {"Fn::GetAtt": ["FilterServiceQueue", "Arn"]}
    assert mapping["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    sub = r["FilterServiceSubscription"]["Properties"]
    assert sub["TopicArn"] == {"Ref": "AlertTopic"} and sub["RawMessageDelivery"] is True
    queue = r["FilterServiceQueue"]["Properties"]
    assert queue["RedrivePolicy"]["deadLetterTargetArn"] == {"Fn::GetAtt": ["FilterServiceDLQ", "Arn"]}
    assert queue["VisibilityTimeout"] >= 6 * r["FilterServiceFunction"]["Properties"]["Timeout"]


def test_authorizer_may_only_read_the_service_table(cfn):
    role = cfn["Resources"]["ApiAuthorizerFunctionRole"]["Properties"]
    actions = {a for p in role.get("Policies", []) for s in p["PolicyDocument"]["Statement"]
               for a in ([s["Action"]] if isinstance(s["Action"], str) else s["Action"])}
    assert actions and all(a.startswith("dynamodb:") for a in actions)
    assert not any(w in a for a in actions for w in ("Put", "Update", "Delete", "Write"))

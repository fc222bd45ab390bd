"""The template passes cfn-lint and states the security properties the deployment relies on."""

from __future__ import annotations

from pathlib import Path

import pytest
from cfnlint.api import lint_file

from alertprod.local.template import load_template

pytestmark = pytest.mark.unit

TEMPLATE = Path(__file__).parents[3] / "infra" / "template.yaml"


@pytest.fixture(scope="module")
def template() -> dict:
    return load_template(TEMPLATE)


def test_cfn_lint_finds_nothing():
    matches = lint_file(TEMPLATE)
    assert [str(m) for m in matches] == []


def test_buckets_are_encrypted_private_and_tls_only(template):
    resources = template["Resources"]
    buckets = [k for k, v in resources.items() if v["Type"] == "AWS::S3::Bucket"]
    assert sorted(buckets) == ["AlertBucket", "ArchiveBucket", "ImageBucket", "PrecoveryJobBucket",
                               "UploadBucket"]
    policies = {v["Properties"]["Bucket"]["Ref"]: v["Properties"]["PolicyDocument"]
                for v in resources.values() if v["Type"] == "AWS::S3::BucketPolicy"}
    for bucket in buckets:
        props = resources[bucket]["Properties"]
        assert props["BucketEncryption"]["ServerSideEncryptionConfiguration"]
        assert all(props["PublicAccessBlockConfiguration"].values())
        (deny,) = policies[bucket]["Statement"]
        assert deny["Effect"] == "Deny" and deny["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}


def test_image_cache_expiry_is_a_parameter_of_30_days(template):
    assert template["Parameters"]["ImageCacheDays"]["Default"] == 30
    rules = template["Resources"]["ImageBucket"]["Properties"]["LifecycleConfiguration"]["Rules"]
    expire = next(r for r in rules if "ExpirationInDays" in r)
    assert expire["Prefix"] == "visits/" and expire["ExpirationInDays"] == {"Ref": "ImageCacheDays"}


def test_tables_have_the_documented_keys_ttl_and_recovery(template):
    level1 = template["Resources"]["Level1Table"]["Properties"]
    assert [k["AttributeName"] for k in level1["KeySchema"]] == ["pk", "sk"]
    assert level1["BillingMode"] == "PAY_PER_REQUEST"
    assert level1["TimeToLiveSpecification"] == {"AttributeName": "ttl", "Enabled": True}
    assert level1["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"] is True
    idem = template["Resources"]["IdempotencyTable"]["Properties"]
    assert idem["TimeToLiveSpecification"]["AttributeName"] == "expiration"


def test_every_resource_has_outputs(template):
    values = str(template["Outputs"])
    for logical_id, spec in template["Resources"].items():
        if spec["Type"].endswith("Policy"):
            continue
        assert f"'{logical_id}'" in values, logical_id

"""Create the template's resources on moto through the AWS APIs.

One function per resource type turns the resolved template properties into the API calls
CloudFormation would make. S3 notifications are configured through the S3 API (moto skips
them when a template is deployed through its CloudFormation); moto then sends ``s3:TestEvent``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from alertprod.aws.clients import AwsClients
from alertprod.errors import ConfigError

__all__ = ["resource_attributes", "local_bucket_policy", "create_resource", "lifecycle_rules_api", "CREATION_ORDER", "NOT_ON_MOTO"]

#: Resource types in the order they are created (dependencies first).
CREATION_ORDER = (
    "AWS::SQS::Queue",
    "AWS::SNS::Topic",
    "AWS::DynamoDB::Table",
    "AWS::S3::Bucket",
    "AWS::S3::BucketPolicy",
    "AWS::SQS::QueuePolicy",
    "AWS::SNS::Subscription",
    "AWS::SES::EmailIdentity",
    "AWS::Logs::LogGroup",
    "AWS::CloudWatch::Alarm",
    "AWS::Serverless::LayerVersion",
    "AWS::Serverless::HttpApi",
    "AWS::Serverless::Function",
)
#: Types the embedded stack provides itself instead of moto: the local Lambda service runs
#: functions, the installed package is the layer, ``serve_http`` is the HTTP API.
NOT_ON_MOTO = ("AWS::Serverless::Function", "AWS::Serverless::LayerVersion", "AWS::Serverless::HttpApi")


def _arn(service: str, region: str, account: str, rest: str) -> str:
    return f"arn:aws:{service}:{region}:{account}:{rest}"


def resource_attributes(rtype: str, name: str, region: str, account: str) -> dict[str, str]:
    """Ref and GetAtt values of a resource of type ``rtype`` named ``name`` (queues add ``Ref`` later)."""
    if rtype == "AWS::S3::Bucket":
        return {"Ref": name, "Arn": f"arn:aws:s3:::{name}", "DomainName": f"{name}.s3.amazonaws.com",
                "RegionalDomainName": f"{name}.s3.{region}.amazonaws.com"}
    if rtype == "AWS::DynamoDB::Table":
        return {"Ref": name, "Arn": _arn("dynamodb", region, account, f"table/{name}")}
    if rtype == "AWS::SNS::Topic":
        arn = _arn("sns", region, account, name)
        return {"Ref": arn, "TopicArn": arn, "TopicName": name}
    if rtype == "AWS::SQS::Queue":
        return {"Arn": _arn("sqs", region, account, name), "QueueName": name}
    if rtype == "AWS::Serverless::Function":
        return {"Ref": name, "Arn": _arn("lambda", region, account, f"function:{name}")}
    if rtype == "AWS::Serverless::LayerVersion":
        return {"Ref": _arn("lambda", region, account, f"layer:{name}:1")}
    if rtype == "AWS::CloudWatch::Alarm":
        return {"Ref": name, "Arn": _arn("cloudwatch", region, account, f"alarm:{name}")}
    if rtype == "AWS::Logs::LogGroup":
        return {"Ref": name, "Arn": _arn("logs", region, account, f"log-group:{name}:*")}
    return {"Ref": name}


def lifecycle_rules_api(rules: list[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Template-form lifecycle rules (``ExpirationInDays``, ``Prefix``) in S3 API form."""
    out = []
    for rule in rules:
        api: dict[str, Any] = {"ID": rule.get("Id", "rule"), "Status": rule["Status"]}
        api["Filter"] = {"Prefix": rule.get("Prefix", rule.get("Filter", {}).get("Prefix", ""))}
        if "ExpirationInDays" in rule:
            api["Expiration"] = {"Days": int(rule["ExpirationInDays"])}
        if "NoncurrentVersionExpiration" in rule:
            api["NoncurrentVersionExpiration"] = {
                "NoncurrentDays": int(rule["NoncurrentVersionExpiration"]["NoncurrentDays"])}
        if "AbortIncompleteMultipartUpload" in rule:
            api["AbortIncompleteMultipartUpload"] = {
                "DaysAfterInitiation": int(rule["AbortIncompleteMultipartUpload"]["DaysAfterInitiation"])}
        if "Transitions" in rule:
            api["Transitions"] = [{"Days": int(t["TransitionInDays"]), "StorageClass": t["StorageClass"]}
                                  for t in rule["Transitions"]]
        out.append(api)
    return out


def _notifications(config: Mapping[str, Any]) -> dict[str, Any]:
    if config.get("LambdaConfigurations"):
        raise ConfigError("S3 -> Lambda notifications are not emulated; route them through SQS")
    api: dict[str, Any] = {}
    for key, target, arn_key in (("QueueConfigurations", "Queue", "QueueArn"),
                                 ("TopicConfigurations", "Topic", "TopicArn")):
        items = []
        for c in config.get(key, []):
            item: dict[str, Any] = {arn_key: c[target], "Events": [c["Event"]]}
            rules = c.get("Filter", {}).get("S3Key", {}).get("Rules")
            if rules:
                item["Filter"] = {"Key": {"FilterRules": [{"Name": r["Name"], "Value": r["Value"]}
                                                          for r in rules]}}
            items.append(item)
        if items:
            api[key] = items
    return api


_QUEUE_ATTRS = ("VisibilityTimeout", "MessageRetentionPeriod", "DelaySeconds", "MaximumMessageSize",
                "ReceiveMessageWaitTimeSeconds", "FifoQueue", "ContentBasedDeduplication",
                "SqsManagedSseEnabled")


def create_resource(clients: AwsClients, rtype: str, name: str, props: Mapping[str, Any],
                    **aws: Any) -> dict[str, str]:
    """Create one resource (resolved properties) named ``name``; returns extra attributes.

    Raises
    ------
    ConfigError
        For a resource type the embedded stack does not emulate.
    """
    if rtype == "AWS::SQS::Queue":
        attrs = {k: str(props[k]).lower() if isinstance(props[k], bool) else str(props[k])
                 for k in _QUEUE_ATTRS if k in props}
        if "RedrivePolicy" in props:
            attrs["RedrivePolicy"] = json.dumps(props["RedrivePolicy"])
        url = clients.sqs.create_queue(QueueName=name, Attributes=attrs)["QueueUrl"]
        return {"Ref": url, "QueueUrl": url}
    if rtype == "AWS::SNS::Topic":
        attrs = {"DisplayName": str(props["DisplayName"])} if "DisplayName" in props else {}
        clients.sns.create_topic(Name=name, Attributes=attrs)
        for sub in props.get("Subscription", []):
            clients.sns.subscribe(TopicArn=aws["arn"], Protocol=sub["Protocol"], Endpoint=sub["Endpoint"])
    elif rtype == "AWS::SNS::Subscription":
        kwargs = {"TopicArn": props["TopicArn"], "Protocol": props["Protocol"], "Endpoint": props["Endpoint"]}
        attributes = {}
        if "FilterPolicy" in props:
            attributes["FilterPolicy"] = json.dumps(props["FilterPolicy"])
        if "RawMessageDelivery" in props:
            attributes["RawMessageDelivery"] = str(props["RawMessageDelivery"]).lower()
        if attributes:
            kwargs["Attributes"] = attributes
        clients.sns.subscribe(**kwargs)
    elif rtype == "AWS::SES::EmailIdentity":
        aws["ses"].verify_email_identity(EmailAddress=props["EmailIdentity"])
    elif rtype == "AWS::DynamoDB::Table":
        _create_table(clients.dynamodb, name, props)
    elif rtype == "AWS::S3::Bucket":
        _create_bucket(clients.s3, name, props, aws["region"])
    elif rtype == "AWS::S3::BucketPolicy":
        policy = local_bucket_policy(props["PolicyDocument"])
        if policy["Statement"]:
            clients.s3.put_bucket_policy(Bucket=props["Bucket"], Policy=json.dumps(policy))
    elif rtype == "AWS::SQS::QueuePolicy":
        for url in props["Queues"]:
            clients.sqs.set_queue_attributes(QueueUrl=url, Attributes={"Policy": json.dumps(props["PolicyDocument"])})
    elif rtype == "AWS::CloudWatch::Alarm":
        kwargs = {k: v for k, v in props.items() if k != "AlarmName"}
        aws["cloudwatch"].put_metric_alarm(AlarmName=name, **kwargs)
    elif rtype == "AWS::Logs::LogGroup":
        aws["logs"].create_log_group(logGroupName=name)
    elif rtype not in NOT_ON_MOTO:
        raise ConfigError(f"the embedded stack does not emulate resource type {rtype}")
    return {}


def local_bucket_policy(document: Mapping[str, Any]) -> dict[str, Any]:
    """A bucket policy without its TLS-only statements, which moto would enforce against the
    embedded stack's plain-HTTP loopback endpoint (every request would be denied)."""
    statements = document.get("Statement", [])
    statements = [statements] if isinstance(statements, Mapping) else list(statements)
    kept = [s for s in statements
            if "aws:SecureTransport" not in json.dumps(s.get("Condition", {}))]
    return {**document, "Statement": kept}


def _create_table(dynamodb: Any, name: str, props: Mapping[str, Any]) -> None:
    kwargs: dict[str, Any] = {
        "TableName": name,
        "AttributeDefinitions": props["AttributeDefinitions"],
        "KeySchema": props["KeySchema"],
        "BillingMode": props.get("BillingMode", "PROVISIONED"),
    }
    if "ProvisionedThroughput" in props:
        kwargs["ProvisionedThroughput"] = {k: int(v) for k, v in props["ProvisionedThroughput"].items()}
    for key in ("GlobalSecondaryIndexes", "LocalSecondaryIndexes", "StreamSpecification"):
        if key in props:
            kwargs[key] = props[key]
    dynamodb.create_table(**kwargs)
    ttl = props.get("TimeToLiveSpecification")
    if ttl:
        dynamodb.update_time_to_live(TableName=name, TimeToLiveSpecification={
            "AttributeName": ttl["AttributeName"], "Enabled": bool(ttl.get("Enabled", True))})
    pitr = props.get("PointInTimeRecoverySpecification", {})
    if pitr.get("PointInTimeRecoveryEnabled"):
        dynamodb.update_continuous_backups(TableName=name, PointInTimeRecoverySpecification={
            "PointInTimeRecoveryEnabled": True})


def _create_bucket(s3: Any, name: str, props: Mapping[str, Any], region: str) -> None:
    kwargs: dict[str, Any] = {"Bucket": name}
    if region != "us-east-1":
        kwargs["CreateBucketConfiguration"] = {"LocationConstraint": region}
    s3.create_bucket(**kwargs)
    if "BucketEncryption" in props:
        rules = [{"ApplyServerSideEncryptionByDefault": r["ServerSideEncryptionByDefault"],
                  **({"BucketKeyEnabled": r["BucketKeyEnabled"]} if "BucketKeyEnabled" in r else {})}
                 for r in props["BucketEncryption"]["ServerSideEncryptionConfiguration"]]
        s3.put_bucket_encryption(Bucket=name, ServerSideEncryptionConfiguration={"Rules": rules})
    if "PublicAccessBlockConfiguration" in props:
        s3.put_public_access_block(Bucket=name, PublicAccessBlockConfiguration=props["PublicAccessBlockConfiguration"])
    if "OwnershipControls" in props:
        s3.put_bucket_ownership_controls(Bucket=name, OwnershipControls=props["OwnershipControls"])
    if props.get("VersioningConfiguration", {}).get("Status"):
        s3.put_bucket_versioning(Bucket=name, VersioningConfiguration={
            "Status": props["VersioningConfiguration"]["Status"]})
    rules = props.get("LifecycleConfiguration", {}).get("Rules")
    if rules:
        s3.put_bucket_lifecycle_configuration(Bucket=name, LifecycleConfiguration={
            "Rules": lifecycle_rules_api(rules)})
    if props.get("NotificationConfiguration"):
        s3.put_bucket_notification_configuration(
            Bucket=name, NotificationConfiguration=_notifications(props["NotificationConfiguration"]))

"""Schedule expressions and lifecycle rules of the template, as the embedded stack reads them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from alertprod.errors import ConfigError
from alertprod.local.lifecycle import expiry_time
from alertprod.local.schedule import parse_schedule
from alertprod.local.template import Resolver

pytestmark = pytest.mark.unit

T0 = datetime(2027, 1, 1, 0, 0, tzinfo=UTC)  # a Friday


def test_daily_cron_fires_once_per_day_at_15_utc():
    times = parse_schedule("cron(0 15 * * ? *)").fire_times(T0, T0 + timedelta(days=3), anchor=T0)
    assert times == [T0 + timedelta(days=d, hours=15) for d in range(3)]


def test_cron_day_of_week_counts_from_sunday_as_aws_does():
    weekdays = parse_schedule("cron(30 9 ? * MON-FRI *)").fire_times(T0, T0 + timedelta(days=7), anchor=T0)
    assert [t.strftime("%a") for t in weekdays] == ["Fri", "Mon", "Tue", "Wed", "Thu"]
    sundays = parse_schedule("cron(0 0 ? * 1 *)").fire_times(T0, T0 + timedelta(days=14), anchor=T0)
    assert [t.strftime("%a %d") for t in sundays] == ["Sun 03", "Sun 10"]


def test_rate_fires_from_its_creation_time():
    start = T0 + timedelta(minutes=7)
    times = parse_schedule("rate(6 hours)").fire_times(start, start + timedelta(days=1), anchor=start)
    assert times == [start + timedelta(hours=6 * k) for k in range(1, 5)]


@pytest.mark.parametrize("expression", ["cron(0 15 * * ?)", "cron(0 15 L * ? *)", "every day", "rate(0 days)"])
def test_unsupported_schedules_are_refused(expression):
    with pytest.raises(ConfigError):
        parse_schedule(expression)


def test_s3_expiry_rounds_up_to_the_next_midnight_utc():
    created = datetime(2027, 1, 1, 13, 30, tzinfo=UTC)
    assert expiry_time(created, 30) == datetime(2027, 2, 1, tzinfo=UTC)
    assert expiry_time(datetime(2027, 1, 1, tzinfo=UTC), 30) == datetime(2027, 1, 31, tzinfo=UTC)


def test_resolver_evaluates_refs_subs_and_conditions():
    template = {
        "Parameters": {"Days": {"Type": "Number", "Default": 30}, "Action": {"Type": "String", "Default": ""}},
        "Conditions": {"HasAction": {"Fn::Not": [{"Fn::Equals": [{"Ref": "Action"}, ""]}]}},
        "Resources": {"Bucket": {"Type": "AWS::S3::Bucket"}},
    }
    attrs = {("Bucket", "Ref"): "b-1", ("Bucket", "Arn"): "arn:aws:s3:::b-1"}
    r = Resolver(template, {"AWS::Region": "eu-west-1"}, lambda lid, name: attrs[(lid, name)])
    node = {"Name": {"Fn::Sub": "${Bucket}-${AWS::Region}-${Bucket.Arn}/*"}, "Days": {"Ref": "Days"},
            "Actions": {"Fn::If": ["HasAction", [{"Ref": "Action"}], {"Ref": "AWS::NoValue"}]},
            "List": [{"Fn::GetAtt": ["Bucket", "Arn"]}, {"Fn::Join": ["/", ["a", {"Ref": "Bucket"}]]}]}
    assert r.resolve(node) == {"Name": "b-1-eu-west-1-arn:aws:s3:::b-1/*", "Days": 30,
                               "List": ["arn:aws:s3:::b-1", "a/b-1"]}
    overridden = Resolver(template, {}, lambda lid, name: attrs[(lid, name)], {"Action": "arn:topic"})
    assert overridden.resolve(node["Actions"]) == ["arn:topic"]

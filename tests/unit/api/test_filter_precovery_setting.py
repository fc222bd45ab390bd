"""The filter API's precovery setting: validated on entry, stored, shown, changed."""

from __future__ import annotations

import pytest

QUEUE = "https://sqs.us-east-1.amazonaws.com/210987654321/alice-alerts"


def _create(client, **extra):
    return client.call("POST", "/api/filters", {"name": "p", "expression": "diaSource.snr > 5",
                                                "transports": [{"kind": "sqs", "queue_url": QUEUE}], **extra})


def test_precovery_setting_is_stored_and_shown_with_its_defaults(api):
    status, doc, _ = _create(api["alice"], precovery={"enabled": True, "dailyCap": 5})
    assert status == 201, doc
    assert doc["precovery"] == {"enabled": True, "daily_cap": 5, "lookback_days": 3650.0,
                                "options": {"stamps": False, "images": "nightly"}}
    status, changed, _ = api["alice"].call("PATCH", f"/api/filters/{doc['filter_id']}",
                                           {"precovery": {"enabled": False}})
    assert status == 200 and changed["precovery"]["enabled"] is False
    assert _create(api["alice"])[1]["precovery"] is None


@pytest.mark.parametrize(("setting", "needle"), [
    ({"dailyCap": 0}, "dailyCap"),
    ({"dailyCap": 100000}, "dailyCap"),
    ({"enabled": True, "options": {"sed": "x"}}, "sed"),
    ({"options": {"images": "weekly"}}, "images"),
    ({"lookback_days": -1}, "lookback_days"),
    ({"enable": True}, "enable"),
])
def test_a_malformed_precovery_setting_is_a_400_naming_the_field(api, setting, needle):
    status, error, _ = _create(api["alice"], precovery=setting)
    assert status == 400 and needle in error["error"], error

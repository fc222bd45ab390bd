"""``alertprod reprocess`` on the embedded stack: refused re-upload, reprocess, accepted re-upload.

The whole path of an operator's reprocessing on DynamoDB and S3 (moto's server) with the
functions run by the local runner: the upload queue, the ingest function, the alert topic.
"""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
from astropy.io import fits
from ccdsky import CcdSky, put_upload

from alertprod.alerts.client import AlertConsumer
from alertprod.apdb import CcdState, DynamoApdb, dynamo_level1
from alertprod.cli import main
from alertprod.local.stack import EmbeddedStack

pytestmark = pytest.mark.integration

SKY = CcdSky(n_detectors=1)
T1 = 60000.10


@pytest.fixture
def stack():
    with EmbeddedStack(stack_name="reproc") as s:
        yield s


def _sources(n=5, seed=4):
    rng = np.random.default_rng(seed)
    return [(*SKY.radec(0, *rng.uniform(20, SKY.npix - 20, 2)), float(rng.uniform(3000, 8000)), True)
            for _ in range(n)]


def _other_content(upload, offset=70_000):
    key, cat, images = upload
    with fits.open(io.BytesIO(cat)) as hdul:
        hdul[1].data["diaSourceId"] += offset
        hdul[1].data["psfFlux"] *= 2.0
        buf = io.BytesIO()
        hdul.writeto(buf)
    return key, buf.getvalue(), images


def _quarantine_reasons(stack) -> list[str]:
    s3, bucket = stack.clients.s3, stack.resources.upload_bucket
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket, Prefix="quarantine/").get("Contents", [])]
    return [json.loads(s3.get_object(Bucket=bucket, Key=k)["Body"].read()).get("reason") for k in keys]


def test_reprocess_command_withdraws_and_the_new_upload_is_alerted(stack, monkeypatch, capsys):
    res = stack.resources
    c = stack.clients
    apdb = DynamoApdb(c.dynamodb, res.level1_table)
    with AlertConsumer(c.sqs, c.sns, c.s3, res.alert_topic_arn) as consumer:
        upload = SKY.upload(1, 0, T1, _sources())
        put_upload(stack, *upload)
        stack.run_until_idle()
        first = sorted(a.alert_id for a in consumer.poll(max_messages=10, wait_s=0.5))
        assert len(first) == 5
        other = _other_content(upload)
        put_upload(stack, *other)  # without the command: refused, nothing written
        stack.run_until_idle()
        assert _quarantine_reasons(stack) == ["already_processed"]
        assert len(apdb.export()["DiaSource"]) == 5

        for name, value in res.to_env().items():
            monkeypatch.setenv(name, value)
        monkeypatch.setenv("AWS_ENDPOINT_URL", stack.endpoint_url)
        assert main(["reprocess", "--visit", "1", "--detector", "0"]) == 0
        summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])  # after the logs
        assert (summary["diaSourcesWithdrawn"], summary["diaObjectsVersioned"]) == (5, 5)
        assert main(["reprocess", "--visit", "1", "--detector", "0"]) == 1  # nothing to redo
        assert "already withdrawn" in capsys.readouterr().err

        put_upload(stack, *other)
        stack.run_until_idle()
        second = sorted(a.alert_id for a in consumer.poll(max_messages=10, wait_s=0.5))
    assert second == [i + 70_000 for i in first]  # alerts re-issued for the new sources only
    out = apdb.export()
    src = out["DiaSource"]
    withdrawn = np.isfinite(np.ma.filled(np.ma.asarray(src["timeWithdrawnMjdTai"], float), np.nan))
    assert sorted(np.asarray(src["diaSourceId"])[withdrawn].tolist()) == first
    assert sorted(np.asarray(src["diaSourceId"])[~withdrawn].tolist()) == second
    assert np.all(np.asarray(out["DiaObject"]["nDiaSources"]) == 1)
    assert len(out["DiaObjectHistory"]) == 5 * 3  # created, withdrawn, reprocessed
    record = dynamo_level1(c.dynamodb, res.level1_table).ledger.get_ccd_record(1, 0)
    assert record["state"] is CcdState.DONE and record["withdrawals"] == 1

"""End to end: ``alertprod replay`` of a survey with bad uploads beside a good CCD — nothing
disappears without a record.

A zero-length catalog alone in its visit, a catalog at a key that breaks the contract's
zero-padding and a corpus catalog cut inside its rows are quarantined with their reasons
(``quarantine.json``); a message no function can handle ends in the upload dead-letter queue
and is exported with its queue and body (``dead_letters.json``); the good CCD is processed.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from alertprod.aws import SqsQueue
from alertprod.replay.runner import replay

pytestmark = [pytest.mark.e2e]

CORPUS = Path(__file__).resolve().parents[1] / "data" / "bad_inputs"


def _put(root: Path, rel: str, data: bytes) -> None:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def test_replay_quarantines_bad_uploads_and_exports_dead_letters(tmp_path):
    survey, out = tmp_path / "survey", tmp_path / "export"
    _put(survey, "diasources/00000001/000.fits", (CORPUS / "good" / "catalog.fits").read_bytes())
    for kind in ("science", "difference", "template"):
        _put(survey, f"images/visits/00000001/000/{kind}.fits",
             (CORPUS / "good" / f"{kind}.fits").read_bytes())
    _put(survey, "diasources/00000009/000.fits", b"")  # alone in its visit: no time at all
    _put(survey, "diasources/1/1.fits", (CORPUS / "good" / "catalog.fits").read_bytes())
    _put(survey, "diasources/00000004/002.fits",
         (CORPUS / "catalog" / "truncated_in_rows.fits").read_bytes())

    def poison(stack):
        SqsQueue(stack.clients.sqs, stack.physical_id("UploadQueue")).send("not an S3 event")
        stack.run_until_idle(timeout_s=60)

    result = replay(survey, out, progress=False, before_export=poison)
    quarantined = {r["key"]: r["reason"] for r in json.loads((out / "quarantine.json").read_text())}
    assert quarantined == {"diasources/00000009/000.fits": "empty_file",
                           "diasources/1/1.fits": "bad_key",
                           "diasources/00000004/002.fits": "truncated_file"}
    dead = json.loads((out / "dead_letters.json").read_text())
    assert [(d["queue"], d["body"]) for d in dead] == [("UploadDLQ", "not an S3 event")]
    assert dead[0]["receiveCount"] >= 1 and dead[0]["keys"] == []
    assert result.summary["ccdsProcessed"] == 1 and result.summary["alerts"] == 12
    assert result.summary["quarantined"] == 3 and result.summary["deadLetters"] == 1

"""The bad-input corpus (tests/data/bad_inputs): every upload refused with its own reason, or
processed when it is legal; nothing lost, nothing of a refused upload written.

Every case goes through the ingest path's checks — :func:`alertprod.ingest.validate_upload`,
then, for a case that is only wrong against stored data (a reused id, a re-upload),
:func:`alertprod.pipeline.dispatch.check_against_level1` after its prerequisite CCDs were
processed. A sample goes end to end through :func:`alertprod.pipeline.dispatch.handle_upload`
with the nightly pipeline on the in-memory backend: the quarantine record, an untouched Level 1
database and no alert for a refusal; the ledger and the alerts for a legal upload.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from alertprod.alerts import AlertMarksLedger, AlertPublisher
from alertprod.apdb import CcdState, memory_level1
from alertprod.aws import MemoryBlobStore
from alertprod.errors import ContractError, NotFoundError
from alertprod.formats import parse_key
from alertprod.ingest import REASONS, validate_upload
from alertprod.pipeline import NightlyPipeline
from alertprod.pipeline.config import PipelineConfig
from alertprod.pipeline.dispatch import check_against_level1, handle_upload

CORPUS = Path(__file__).resolve().parents[2] / "data" / "bad_inputs"
MANIFEST = json.loads((CORPUS / "manifest.json").read_text())
CASES = MANIFEST["cases"]
PROCESSED = "processed"


def _make_corpus():
    """The corpus script, loaded from its file (tests/data is not a package)."""
    if "make_corpus" in sys.modules:
        return sys.modules["make_corpus"]
    spec = importlib.util.spec_from_file_location("make_corpus", CORPUS / "make_corpus.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["make_corpus"] = module
    spec.loader.exec_module(module)
    return module


def _bytes(rel: str) -> bytes:
    path = CORPUS / rel
    if not path.exists() and rel == "catalog/over_row_limit.fits":
        # 16 MB of rows: not committed (.gitignore), written by the corpus script on demand
        path.write_bytes(_make_corpus().oversized())
    return path.read_bytes()


def _upload(case: dict) -> tuple[str, bytes, dict[str, bytes]]:
    """(catalog key, catalog bytes, {image key: bytes}) of a case: its base CCD with the
    case's file in place of the file of its kind."""
    base = MANIFEST["bases"][case.get("base", "good")]
    key = case.get("key", base["key"])
    catalog = _bytes(base["files"]["catalog"])
    images = {base["images"][k]: _bytes(base["files"][k]) for k in base["images"]}
    kind = case["kind"]
    if kind == "catalog":
        catalog = _bytes(case["file"])
    elif kind == "all-images":
        images = {}
    else:
        ikey = base["images"].get(kind) or base["images"]["science"].replace("science", kind)
        if case["file"] is None:
            del images[ikey]
        else:
            images[ikey] = _bytes(case["file"])
    return key, catalog, images


class _Topic:
    """An alert topic that keeps what it is sent."""

    def __init__(self):
        self.messages = []

    def publish_batch(self, entries, *, on_batch=None):
        entries = list(entries)
        self.messages += entries
        if on_batch is not None:
            on_batch(list(range(len(entries))))
        return [str(i) for i in range(len(entries))]


class _Deployment:
    """Upload bucket, image cache, Level 1 database, alert archive and topic, in memory."""

    def __init__(self):
        self.level1 = memory_level1(sleep=lambda s: None)
        self.uploads, self.images = MemoryBlobStore("uploads"), MemoryBlobStore("images")
        self.archive, self.topic = MemoryBlobStore("alerts"), _Topic()
        self.services = SimpleNamespace(uploads=self.uploads, images=self.images)

    def pipeline(self) -> NightlyPipeline:
        publisher = AlertPublisher(self.archive, self.topic,
                                   ledger=AlertMarksLedger(self.level1.ledger), max_workers=1)
        return NightlyPipeline(self.level1, self.archive, publisher,
                               PipelineConfig(lease_wait_s=5.0))

    def ingest(self, key: str, catalog: bytes, images: dict[str, bytes]):
        for ikey, data in images.items():  # images first: the catalog is the trigger
            self.images.put(ikey, data)
        self.uploads.put(key, catalog)
        return handle_upload(self.services, "uploads", key, pipeline=self.pipeline())

    def rows(self) -> dict[str, int]:
        return {name: len(t) for name, t in self.level1.apdb.export().items()}


def _prepared(case: dict) -> _Deployment | None:
    """A deployment where the case's prerequisite CCDs were processed (None without any)."""
    if not case.get("after"):
        return None
    dep = _Deployment()
    for name in case["after"]:
        base = MANIFEST["bases"][name]
        out = dep.ingest(base["key"], _bytes(base["files"]["catalog"]),
                         {base["images"][k]: _bytes(base["files"][k]) for k in base["images"]})
        assert out.status == PROCESSED, out
    return dep


def _outcome(case: dict) -> str:
    """The case's outcome by the ingest path's checks: a reason code or ``processed``.

    Any exception other than ContractError propagates: the case would be lost.
    """
    key, catalog, images = _upload(case)
    dep = _prepared(case)

    def get(ikey):
        if ikey not in images:
            raise NotFoundError(ikey)
        return images[ikey]

    try:
        parse_key(key)
        upload = validate_upload(catalog, key, get)
        if dep is not None:
            check_against_level1(upload, dep.level1)
    except ContractError as exc:
        assert exc.reason in REASONS, exc.reason
        return exc.reason
    return PROCESSED


def test_corpus_is_large_and_names_only_known_reasons():
    assert len(CASES) >= 50
    files = [c["file"] for c in CASES if c["file"]]
    assert len(set(files)) == len(files) >= 50
    assert {c["expected"] for c in CASES} - {PROCESSED} <= set(REASONS)
    assert MANIFEST["rowLimit"] == _make_corpus().MAX_CATALOG_ROWS


def test_every_corpus_file_is_refused_with_its_reason_or_processed(capsys):
    refused = processed = 0
    lost, wrong = [], []
    for case in CASES:
        try:
            got = _outcome(case)
        except Exception as exc:  # anything else would end in the dead-letter queue
            lost.append((case["name"], f"{type(exc).__name__}: {exc}"))
            continue
        if got == PROCESSED:
            processed += 1
        else:
            refused += 1
        if got != case["expected"]:
            wrong.append((case["name"], case["expected"], got))
    with capsys.disabled():
        print(f"\nbad-input corpus: refused with reason {refused} / processed {processed} / "
              f"lost {len(lost)}")
    assert lost == []
    assert wrong == []


# -- end to end on the in-memory backend ------------------------------------------------------
SAMPLE = [
    "catalog/good.fits", "catalog/zero_length.fits", "catalog/truncated_in_rows.fits",
    "catalog/duplicate_column_ra.fits", "catalog/null_id.fits", "catalog/unpadded_key.fits",
    "catalog/reused_ids.fits", "catalog/reupload_other_content.fits",
    "catalog/reupload_same_content.fits", "catalog/zero_rows.fits",
    "catalog/hostile_long_object.fits", "catalog/hostile_band.fits",
    "images/missing_template", "images/difference_psf_even.fits",
    "images/difference_shape_not_detsize.fits", "images/difference_negative_variance.fits",
    "images/difference_tile_compressed.fits", "images/difference_truncated.fits",
]


def _case(name: str) -> dict:
    return next(c for c in CASES if c["name"] == name)


@pytest.mark.parametrize("name", SAMPLE)
def test_sample_end_to_end_refuses_without_writing_or_processes(name):
    case = _case(name)
    dep = _prepared(case) or _Deployment()
    before, sent = dep.rows(), len(dep.topic.messages)
    key, catalog, images = _upload(case)
    out = dep.ingest(key, catalog, images)
    parsed = _key_ids(key)
    if case["expected"] == PROCESSED:
        assert out.status in ("processed", "duplicate"), out
        if out.status == "processed":
            record = dep.level1.ledger.get_ccd_record(*parsed)
            assert record["state"] == CcdState.DONE
            n = len(np.asarray(_table(catalog)))
            assert len(dep.topic.messages) - sent == n  # one alert per DiaSource
            if "negative_variance" in case["name"]:
                assert any(w.startswith("negative_variance:difference:") for w in record["warnings"])
        else:
            assert dep.rows() == before and len(dep.topic.messages) == sent
        return
    assert (out.status, out.reason) == ("quarantined", case["expected"]), out
    qkeys = [k for k in dep.uploads.list() if k.startswith("quarantine/")]
    assert len(qkeys) == 1
    record = json.loads(dep.uploads.get(qkeys[0]))
    assert record["reason"] == case["expected"] and record["key"] == key
    assert record["detail"].isascii() and len(record["detail"]) <= 1000
    assert dep.rows() == before, "a refused upload wrote to the Level 1 database"
    assert len(dep.topic.messages) == sent, "a refused upload sent alerts"


def _key_ids(key: str) -> tuple[int, int] | None:
    try:
        parsed = parse_key(key)
    except ContractError:
        return None
    return parsed.visit, parsed.detector


def _table(catalog: bytes):
    from alertprod.formats import read_diasource_catalog
    return read_diasource_catalog(catalog).table["diaSourceId"]


def test_other_content_is_refused_by_the_pipeline_itself_not_only_before_the_lease():
    dep = _prepared({"after": ["good"]})
    key, catalog, images = _upload(_case("catalog/reupload_other_content.fits"))
    upload = validate_upload(catalog, key, dep.images)  # the images of the processed CCD
    before = dep.rows()
    with pytest.raises(ContractError) as info:  # e.g. two uploads of the CCD raced the check
        dep.pipeline().process_ccd(upload)
    assert info.value.reason == "already_processed"
    assert dep.rows() == before
    record = dep.level1.ledger.get_ccd_record(1, 0)
    assert record["state"] == CcdState.DONE and record["catalogSha256"] != upload.catalog_sha256

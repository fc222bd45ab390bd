"""The fault-injection matrix: every fault ends with the Level 1 database and the alert stream of
a clean run (nothing lost, nothing twice), on the embedded stack with the real functions.

Faults (``alertprod.local.faults``) are injected in botocore, below the adapters, so botocore's
retries, the adapters' retries and SQS redelivery run as on AWS. The night and the comparison
are in ``faultnight.py``; docs/reliability.md has the matrix and its results.

Faults aimed at one CCD's processing (kills, AWS errors, a late image) hit CCD 0 of visit 2 —
association to known objects, a new object, forced photometry, history, alerts, publishing,
the image index — and compare the state right after it with the clean run's at the same point.
Faults that reach across CCDs or into the day (duplicated and reordered events, the clock, a
lease lost to a neighbour) compare the whole night, daytime precovery included.

``make test`` runs a reduced matrix (every kind of fault, kills at a spread of calls);
``make faults`` (``ALERTPROD_FAULTS=full``) kills the ingest function at *every* AWS call of
the CCD's processing, before the request is sent and after its response came back, and
injects every AWS error rule.
"""

from __future__ import annotations

import dataclasses
import os
from collections import Counter

import faultnight as fn
import pytest

from alertprod.local.faults import CallRecord, ErrorRule, FaultInjector, KillAt
from alertprod.local.stack import EmbeddedStack

pytestmark = [pytest.mark.integration, pytest.mark.slow]

FULL = os.environ.get("ALERTPROD_FAULTS", "") == "full"
#: Kill points of the reduced matrix (``make test``), spread over the calls (each killed
#: before and after): the first and the last call.
REDUCED_KILL_POINTS = 2


class Night:
    """One stack for the whole matrix, the night's uploads, and the state after visit 1."""

    def __init__(self, stack: EmbeddedStack):
        self.stack = stack
        self.uploads = fn.build_uploads()
        self.stream = fn.subscribe_stream(stack)
        fn.quiet_schedules(stack)
        fn.wipe(stack)
        fn.reset_clock(stack)
        for d in (0, 1):
            fn.upload(stack, self.uploads[(1, d)])
        stack.run_until_idle(timeout_s=300)
        self.after_visit_1 = fn.save(stack, self.stream)

    def start(self) -> None:
        """Back to the state after visit 1, the ingest function cold."""
        fn.restore(self.stack, self.after_visit_1, self.stream)
        fn.reset_clock(self.stack)
        self.stack.lambdas.function("IngestFunction").unload()

    def injector(self, kill: KillAt | None = None, **kwargs) -> FaultInjector:
        """Faults for the ingest function; a killed CCD's leases expire before it returns
        (the lease TTL, 120 s, is shorter than the queue's visibility timeout, 720 s)."""
        return FaultInjector(self.stack, "IngestFunction", kill=kill,
                             on_kill=lambda: fn.expire_leases(self.stack), **kwargs)

    def visit_2_ccd_0(self, injector: FaultInjector | None = None) -> fn.NightContent:
        """CCD 0 of visit 2 alone, under ``injector``; the state right after it."""
        fn.upload(self.stack, self.uploads[(2, 0)])
        if injector is None:
            self.stack.run_until_idle(timeout_s=300)
        else:
            with injector:
                self.stack.run_until_idle(timeout_s=300)
        return fn.night_content(self.stack, self.stream, drain=False)

    def rest(self) -> fn.NightContent:
        """CCD 1 of visit 2, visit 3, the daytime precovery; what the night left."""
        fn.upload(self.stack, self.uploads[(2, 1)])
        self.stack.run_until_idle(timeout_s=300)
        fn.upload(self.stack, self.uploads[(3, 0)])
        fn.end_night(self.stack)
        return fn.night_content(self.stack, self.stream)


@pytest.fixture(scope="module")
def night():
    with EmbeddedStack(clock_start=fn.NIGHT_START) as stack:
        yield Night(stack)


@pytest.fixture(scope="module")
def clean(night):
    """The clean night: the state after visit 2 CCD 0, the AWS calls of its processing, and
    the whole night."""
    night.start()
    counter = night.injector()
    ccd = night.visit_2_ccd_0(counter)
    whole = night.rest()
    assert ccd.tables["DiaSource"] and ccd.stream and not ccd.quarantined
    assert ccd.tables["DiaForcedSource"], "the CCD must exercise forced photometry"
    assert len(whole.tables["DiaForcedSource"]) > len(ccd.tables["DiaForcedSource"])
    return ccd, list(counter.calls), whole


def _kill_points(n: int) -> list[KillAt]:
    if FULL:
        calls = range(1, n + 1)
    else:
        calls = sorted({round(1 + i * (n - 1) / (REDUCED_KILL_POINTS - 1))
                        for i in range(REDUCED_KILL_POINTS)})
    return [KillAt(k, after=after) for k in calls for after in (False, True)]


def test_a_clean_rerun_of_the_ccd_is_identical(night, clean):
    ccd, calls, _ = clean
    night.start()
    counter = night.injector()
    assert fn.differences(ccd, night.visit_2_ccd_0(counter)) == []
    assert counter.calls == calls  # the kill points below name the same calls in every run


def test_killed_at_every_aws_call_then_redelivered_ends_as_the_clean_run(night, clean):
    ccd, calls, _ = clean
    assert len(calls) > 30
    failures, duplicates = [], 0
    points = _kill_points(len(calls))
    for point in points:
        night.start()
        injector = night.injector(point)
        got = night.visit_2_ccd_0(injector)
        assert injector.killed == 1, f"{point}: the kill did not happen"
        diff = fn.differences(ccd, got)
        print(f"kill {point.call:3d} {'after ' if point.after else 'before'} "
              f"{calls[point.call - 1].operation}: {diff or 'equal'}", flush=True)
        if diff:
            failures.append((point, calls[point.call - 1], diff))
        duplicates = max(duplicates, got.stream_duplicates)
    print(f"\nkill matrix: {len(points)} kills over {len(calls)} calls, "
          f"{len(failures)} ended differently; most duplicates on the stream {duplicates}")
    assert not failures, failures[:5]
    assert duplicates <= 10  # at most one batch of 10 re-sent per crash (docs/pipeline.md)


ERRORS = {
    "dynamodb_throttled_30pc": [ErrorRule("dynamodb", (), "ProvisionedThroughputExceededException",
                                          rate=0.3)],
    "dynamodb_throttled_past_botocore_retries": [
        ErrorRule("dynamodb", ("BatchGetItem",), "ProvisionedThroughputExceededException",
                  first_n=5)],
    "transaction_conflicts_50pc": [ErrorRule("dynamodb", ("TransactWriteItems",),
                                             "TransactionConflict", rate=0.5)],
    "transaction_conflicts_past_retries": [ErrorRule("dynamodb", ("TransactWriteItems",),
                                                     "TransactionConflict", first_n=8)],
    "sns_internal_errors_50pc": [ErrorRule("sns", ("PublishBatch",), "InternalError",
                                           status=500, rate=0.5)],
    "sns_down_past_botocore_retries": [ErrorRule("sns", ("PublishBatch",), "InternalError",
                                                 status=500, first_n=6)],
    "s3_slow_down_20pc": [ErrorRule("s3", (), "SlowDown", status=503, rate=0.2)],
}
REDUCED_ERRORS = ("dynamodb_throttled_past_botocore_retries", "transaction_conflicts_past_retries",
                  "sns_down_past_botocore_retries")


@pytest.mark.parametrize("name", [n for n in ERRORS if FULL or n in REDUCED_ERRORS])
def test_aws_errors_end_as_the_clean_run(night, clean, name):
    ccd, _, _ = clean
    night.start()
    injector = night.injector(errors=ERRORS[name], seed=1)
    got = night.visit_2_ccd_0(injector)
    assert sum(r.injected for r in injector.errors) > 0, f"{name}: no fault was injected"
    assert fn.differences(ccd, got) == [], name


def test_an_image_uploaded_after_its_catalog_is_waited_for(night, clean):
    ccd, _, _ = clean
    night.start()
    stack = night.stack
    key, cat, images = night.uploads[(2, 0)]
    late = {k: v for k, v in images.items() if k.endswith("difference.fits")}
    fn.put_images(stack, {k: v for k, v in images.items() if k not in late})
    fn.put_catalog(stack, key, cat)
    stack.lambdas.poll_once()
    ingest = [i for i in stack.invocations if i.function_id == "IngestFunction"]
    assert ingest[-1].outcome != "ok"  # refused for now (missing_image): back on the queue
    fn.put_images(stack, late)
    stack.run_until_idle(timeout_s=300)
    assert fn.differences(ccd, fn.night_content(stack, night.stream, drain=False)) == []


def test_duplicated_and_reordered_events_end_as_the_clean_night(night, clean):
    _, _, whole = clean
    night.start()
    stack, u = night.stack, night.uploads
    sqs, queue = stack.clients.sqs, stack.physical_id("UploadQueue")
    # CCD 1 of visit 2 before CCD 0, each event delivered twice, and a stale duplicate of
    # visit 1's event arriving after visit 2
    fn.upload(stack, u[(2, 1)])
    fn.upload(stack, u[(2, 0)])
    bodies = [m["Body"] for m in sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10,
                                                     VisibilityTimeout=0).get("Messages", [])]
    assert len(bodies) == 2
    for b in reversed(bodies):
        sqs.send_message(QueueUrl=queue, MessageBody=b)
    stack.run_until_idle(timeout_s=300)
    fn.put_catalog(stack, *u[(1, 0)][:2])  # the same bytes again: a new event
    stack.run_until_idle(timeout_s=300)
    fn.upload(stack, u[(3, 0)])
    fn.end_night(stack)
    assert fn.differences(whole, fn.night_content(stack, night.stream)) == []


@pytest.fixture(scope="module")
def neighbour_first(night) -> fn.NightContent:
    """The clean night in the order a lease takeover makes it: visit 3's CCD 0 (the
    neighbour) commits before visit 2's CCD 0."""
    night.start()
    stack, u = night.stack, night.uploads
    fn.upload(stack, u[(3, 0)])
    stack.run_until_idle(timeout_s=300)
    fn.upload(stack, u[(2, 0)])
    stack.run_until_idle(timeout_s=300)
    fn.upload(stack, u[(2, 1)])
    fn.end_night(stack)
    return fn.night_content(stack, night.stream)


def _takeover(night, when) -> tuple[fn.NightContent, FaultInjector, list[str]]:
    """Visit 2 CCD 0 loses its lease at the call ``when`` picks: its leases expire and visit 3's
    CCD 0, which shares its cells, is processed meanwhile (another Lambda)."""
    night.start()
    stack, u = night.stack, night.uploads
    fn.put_images(stack, u[(3, 0)][2])  # visit 3's images are in the cache; its catalog comes
    outcomes: list[str] = []

    def neighbour(call: CallRecord) -> None:
        if not outcomes and when(call):
            fn.expire_leases(stack)
            fn.put_catalog(stack, *u[(3, 0)][:2])
            outcomes.append(fn.process_now(stack, u[(3, 0)][0]))

    injector = night.injector(on_call=neighbour)
    fn.upload(stack, u[(2, 0)])
    with injector:
        stack.run_until_idle(timeout_s=300)
    fn.upload(stack, u[(2, 1)])
    fn.end_night(stack)
    return fn.night_content(stack, night.stream), injector, outcomes


def _staging(call: CallRecord) -> bool:
    return call.operation == "PutObject" and call.target.startswith("staging/00000002/000")


def test_lease_lost_mid_plan_recovers_by_itself(night, neighbour_first):
    """The lease expires while the CCD computes and a neighbour updates its objects: the
    CCD notices before its plan counts (renewal refused), takes the lease again and
    recomputes — no ConflictError, no dead letter, no operator."""
    reference = neighbour_first
    got, injector, outcomes = _takeover(night, _staging)
    assert outcomes == ["processed"]
    assert injector.killed == 0
    assert fn.differences(reference, got) == []


def test_stale_plan_after_a_kill_is_recomputed_by_the_redelivery(night, neighbour_first):
    """The CCD dies right after its plan is staged (ledger ``planned``); its lease expires and
    a neighbour updates its objects before the message returns. The redelivery finds the
    staged plan stale with nothing of it committed, computes it again and succeeds."""
    reference = neighbour_first
    ledger_writes = []

    def planned(call: CallRecord) -> bool:  # the ledger's second update: STARTED, PLANNED
        if call.operation == "UpdateItem":
            ledger_writes.append(call)
        return len(ledger_writes) == 2 and call.operation == "UpdateItem"

    night.start()
    # kill just after the PLANNED update, then the neighbour runs before the redelivery
    got, injector, outcomes = _takeover_after_kill(night, planned)
    assert outcomes == ["planned", "processed"] and injector.killed == 1
    assert fn.differences(reference, got) == []


def _takeover_after_kill(night, at) -> tuple[fn.NightContent, FaultInjector, list[str]]:
    stack, u = night.stack, night.uploads
    fn.put_images(stack, u[(3, 0)][2])
    outcomes: list[str] = []
    kill_at: list[int] = []

    def watch(call: CallRecord) -> None:
        if not kill_at and at(call):
            kill_at.append(len(injector.calls))
            injector.kill = KillAt(kill_at[0], after=True)

    def neighbour() -> None:
        outcomes.append(fn.ledger_state(stack, 2, 0))
        fn.expire_leases(stack)
        fn.put_catalog(stack, *u[(3, 0)][:2])
        outcomes.append(fn.process_now(stack, u[(3, 0)][0]))

    injector = FaultInjector(stack, "IngestFunction", on_call=watch, on_kill=neighbour)
    fn.upload(stack, u[(2, 0)])
    with injector:
        stack.run_until_idle(timeout_s=300)
    fn.upload(stack, u[(2, 1)])
    fn.end_night(stack)
    return fn.night_content(stack, night.stream), injector, outcomes


def _clock_jump_night(night, calls, *, next_day: bool = False) -> fn.NightContent:
    night.start()
    jumped = []

    def jump(call: CallRecord) -> None:
        if len(injector.calls) == len(calls) // 2 and not jumped:
            jumped.append(night.stack.advance_clock(by=fn.day()))  # fires the day's precovery

    injector = night.injector(on_call=jump)
    night.visit_2_ccd_0(injector)
    if not next_day:
        got = night.rest()
    else:  # the rest of the night, then the next day's precovery (15:00 UTC a day later)
        stack = night.stack
        fn.upload(stack, night.uploads[(2, 1)])
        stack.run_until_idle(timeout_s=300)
        fn.upload(stack, night.uploads[(3, 0)])
        fn.end_night(stack)
        stack.advance_clock(to=fn.NIGHT_START.replace(hour=15, minute=30) + fn.day())
        stack.run_until_idle(timeout_s=300)
        got = fn.night_content(stack, night.stream)
    assert jumped
    return got


_VALIDITY = ("validityStartMjdTai", "validityEndMjdTai")


def _without_validity(content: fn.NightContent) -> fn.NightContent:
    """The night with the DiaObject versions' validity times left out (``DiaObject`` and
    ``DiaObjectHistory``, rows re-sorted)."""
    tables, columns = dict(content.tables), dict(content.columns)
    for name in ("DiaObject", "DiaObjectHistory"):
        keep = [i for i, c in enumerate(columns[name]) if c not in _VALIDITY]
        tables[name] = sorted((tuple(r[i] for i in keep) for r in tables[name]), key=repr)
        columns[name] = [columns[name][i] for i in keep]
    return dataclasses.replace(content, tables=tables, columns=columns)


@pytest.mark.skipif(not FULL, reason="the whole night: make faults")
def test_clock_jumping_a_day_mid_ccd_loses_and_repeats_nothing_of_the_night(night, clean):
    """The night's detections, alerts and stream are the clean night's; nothing is refused or
    dead-lettered. (The daytime precovery is not: see the next test.)"""
    _, calls, whole = clean
    got = _clock_jump_night(night, calls)
    assert got.tables["DiaSource"] == whole.tables["DiaSource"]
    assert got.archive == whole.archive and got.stream == whole.stream
    assert not got.quarantined and not any(got.dead_letters.values())
    assert set(got.ledger.values()) == {"done"}


def test_clock_jumping_a_day_mid_ccd_precovers_the_late_object_once_at_the_next_run(night, clean):
    """The day's precovery ran while the CCD was in flight, so it could not plan the CCD's new
    object; the next day's run does (the object was claimed by no run). The night then equals
    the clean one — the same precovery rows, each once — except that this object's precovery
    version starts at the run that made it, a day later."""
    _, calls, whole = clean
    got = _clock_jump_night(night, calls, next_day=True)
    assert fn.differences(_without_validity(whole), _without_validity(got)) == []
    start = whole.columns["DiaObject"].index("validityStartMjdTai")
    clean_starts = Counter(r[start] for r in whole.tables["DiaObject"])
    got_starts = Counter(r[start] for r in got.tables["DiaObject"])
    (late,), (on_time,) = got_starts - clean_starts, clean_starts - got_starts
    assert abs(late - on_time - 1.0) < 1e-6  # one version, made by the next day's run

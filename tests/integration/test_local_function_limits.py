"""The local Lambda service enforces each function's Timeout and (isolated) MemorySize as AWS does.

Handlers written to a temporary ``CodeUri``; the SQS case runs on moto's server, where a
failed invocation's message returns to its queue and its RedrivePolicy dead-letters it.
"""

from __future__ import annotations

import json
import os
import textwrap
import time

import pytest
from moto_server import moto_environment

from alertprod.local._worker import MEMORY_HEADROOM_MB, FunctionError, FunctionTimeoutError
from alertprod.local.lambdas import LocalFunction, LocalLambdaService, SqsSource

pytestmark = pytest.mark.integration

HANDLERS = '''
import os
import time

COLD_STARTS = [0]
COLD_STARTS[0] += 1


def spin(event, context):
    """Busy in Python until stopped (a lease wait, a slow loop)."""
    while True:
        time.sleep(0.01)


def spin_catching(event, context):
    """As Powertools' batch processor: every Exception of a record is caught."""
    try:
        spin(event, context)
    except Exception:
        return {"batchItemFailures": []}


def sleep_in_c(event, context):
    time.sleep(float(event["seconds"]))
    return "woke"


def allocate(event, context):
    block = bytearray(int(event["mb"]) * 1024 * 1024)
    block[::4096] = b"x" * len(block[::4096])  # touched: resident, as a real table would be
    return {"pid": os.getpid(), "mb": len(block) // 2**20, "cold": COLD_STARTS[0],
            "remaining_ms": context.get_remaining_time_in_millis()}


def allocate_caught(event, context):
    try:
        return allocate(event, context)
    except MemoryError:
        return {"batchItemFailures": [{"itemIdentifier": "m"}]}
'''


@pytest.fixture
def code_dir(tmp_path):
    (tmp_path / "app.py").write_text(textwrap.dedent(HANDLERS))
    return tmp_path


def _fn(code_dir, handler, *, timeout_s=1.0, memory_mb=256, sources=()):
    return LocalFunction(handler, f"fn-{handler}", f"arn:aws:lambda:us-east-1:1:function:{handler}",
                         code_dir, f"app.{handler}", {"LIMITS_TEST": "1"}, timeout_s=timeout_s,
                         memory_mb=memory_mb, sqs_sources=list(sources))


def _service(*fns, isolate=False, sqs=None):
    return LocalLambdaService({f.logical_id: f for f in fns}, sqs, "us-east-1", isolate=isolate)


def test_function_over_its_timeout_fails_as_task_timed_out(code_dir):
    service = _service(_fn(code_dir, "spin", timeout_s=0.5))
    t0 = time.perf_counter()
    with pytest.raises(FunctionTimeoutError, match=r"Task timed out after 0\.50 seconds"):
        service.invoke("spin", {})
    assert 0.5 <= time.perf_counter() - t0 < 3.0
    (entry,) = service.log
    assert entry.outcome == "error" and "timed out" in entry.error
    assert service.function("spin")._module is None  # the next invocation is a cold start


def test_handler_that_catches_every_exception_cannot_swallow_its_timeout(code_dir):
    service = _service(_fn(code_dir, "spin_catching", timeout_s=0.3))
    with pytest.raises(FunctionTimeoutError):
        service.invoke("spin_catching", {})


def test_function_within_its_timeout_is_not_interrupted_afterwards(code_dir):
    service = _service(_fn(code_dir, "sleep_in_c", timeout_s=0.4))
    for _ in range(5):  # the watchdog never fires into the invoker after a handler returned
        assert service.invoke("sleep_in_c", {"seconds": 0.3}) == "woke"
    time.sleep(0.5)
    assert [e.outcome for e in service.log] == ["ok"] * 5


def test_timed_out_sqs_batch_returns_to_its_queue_and_is_dead_lettered(code_dir):
    with moto_environment():
        import boto3

        sqs = boto3.client("sqs", region_name="us-east-1")
        dlq = sqs.create_queue(QueueName="limits-dlq")["QueueUrl"]
        dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"])[
            "Attributes"]["QueueArn"]
        queue = sqs.create_queue(QueueName="limits", Attributes={"RedrivePolicy": json.dumps(
            {"deadLetterTargetArn": dlq_arn, "maxReceiveCount": "2"})})["QueueUrl"]
        arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])[
            "Attributes"]["QueueArn"]
        source = SqsSource("Queue", queue, arn, 10, True)
        service = _service(_fn(code_dir, "spin_catching", timeout_s=0.3, sources=[source]),
                           sqs=sqs)
        sqs.send_message(QueueUrl=queue, MessageBody="ccd")
        for _ in range(4):
            service.poll_once()
        dead = sqs.receive_message(QueueUrl=dlq, MaxNumberOfMessages=10).get("Messages", [])
    assert [m["Body"] for m in dead] == ["ccd"]
    assert [e.outcome for e in service.log] == ["error", "error"]  # two receives, then the DLQ


def test_isolated_function_runs_in_its_own_process_within_its_limits(code_dir):
    service = _service(_fn(code_dir, "allocate", memory_mb=512, timeout_s=30), isolate=True)
    try:
        first = service.invoke("allocate", {"mb": 64})
        second = service.invoke("allocate", {"mb": 64})
    finally:
        service.close()
    assert first["pid"] != os.getpid() and second["pid"] == first["pid"]  # one warm worker
    assert (first["cold"], second["cold"]) == (1, 1) and first["mb"] == 64
    assert 0 < first["remaining_ms"] <= 30_000


def test_isolated_function_over_its_memory_fails_and_the_next_starts_cold(code_dir):
    # 512 MB: room for the worker's baseline (numpy, astropy, the package)
    fn = _fn(code_dir, "allocate", memory_mb=512, timeout_s=30)
    service = _service(fn, isolate=True)
    try:
        with pytest.raises(FunctionError, match="OutOfMemory"):
            service.invoke("allocate", {"mb": 512 + MEMORY_HEADROOM_MB + 256})
        after = service.invoke("allocate", {"mb": 16})  # a new worker: the sandbox was reset
    finally:
        service.close()
    assert after["mb"] == 16
    assert [e.outcome for e in service.log] == ["error", "ok"]


def test_isolated_worker_is_not_charged_with_its_large_parent_s_memory(code_dir):
    # Linux carries a parent's resident size into a forked child's ru_maxrss, across exec: a
    # worker started from a large test process must still count only its own pages
    ballast = bytearray(1536 * 2**20)
    ballast[::4096] = b"x" * len(ballast[::4096])
    service = _service(_fn(code_dir, "allocate", memory_mb=512, timeout_s=30), isolate=True)
    try:
        assert service.invoke("allocate", {"mb": 64})["mb"] == 64
    finally:
        service.close()
        del ballast


def test_isolated_function_that_catches_its_memory_error_still_fails(code_dir):
    # peak resident memory past MemorySize fails the invocation, as Lambda's limit does
    service = _service(_fn(code_dir, "allocate_caught", memory_mb=512, timeout_s=30), isolate=True)
    try:
        with pytest.raises(FunctionError, match="OutOfMemory"):
            service.invoke("allocate_caught", {"mb": 600})
    finally:
        service.close()


def test_isolated_function_over_its_timeout_is_killed_even_inside_a_c_call(code_dir):
    service = _service(_fn(code_dir, "sleep_in_c", timeout_s=1.0, memory_mb=512), isolate=True)
    try:
        assert service.invoke("sleep_in_c", {"seconds": 0}) == "woke"
        t0 = time.perf_counter()
        with pytest.raises(FunctionTimeoutError, match=r"Task timed out after 1\.00 seconds"):
            service.invoke("sleep_in_c", {"seconds": 60})
        assert time.perf_counter() - t0 < 5.0
        assert service.invoke("sleep_in_c", {"seconds": 0}) == "woke"
    finally:
        service.close()

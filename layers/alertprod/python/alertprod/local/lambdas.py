"""A local Lambda service: imports each function's handler and feeds it real event shapes.

moto runs Lambda code only in Docker; this service imports ``CodeUri/Handler`` in-process with
the function's environment applied, polls each SQS event source as Lambda's poller does
(batch size, partial batch responses, failures visible again at once so the queue's
RedrivePolicy moves them to the dead-letter queue), and logs every invocation.

Each function's ``Timeout`` is enforced (a watchdog in process); with ``isolate=True`` each
function runs in a worker process of its own whose memory is limited to its ``MemorySize``
(:mod:`alertprod.local._worker`; docs/local-stack.md "Limits").
"""

from __future__ import annotations

import base64
import contextlib
import importlib.util
import logging
import os
import sys
import threading
import time
import traceback
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any, NamedTuple

from alertprod.aws import waiting
from alertprod.aws.sqs import SqsMessage, SqsQueue
from alertprod.errors import ConfigError, NotFoundError
from alertprod.local._worker import (
    FunctionTimeoutError,
    TimeoutInterrupt,
    WorkerProcess,
    deadline,
    timeout_message,
)

#: Failed invocations and partial batch failures, as CloudWatch Logs would show them.
_LOG = logging.getLogger("alertprod.local.lambdas")

__all__ = ["LambdaContext", "LocalFunction", "SqsSource", "Invocation", "LocalLambdaService"]

_ENV_LOCK = threading.RLock()
_INVOKING = threading.local()  # depth of in-process invocations on this thread


@contextlib.contextmanager
def _invoking() -> Iterator[None]:
    _INVOKING.depth = getattr(_INVOKING, "depth", 0) + 1
    try:
        yield
    finally:
        _INVOKING.depth -= 1


@contextlib.contextmanager
def _environment(values: Mapping[str, str]) -> Iterator[None]:
    """Apply environment variables for the duration of a block (one invocation at a time)."""
    with _ENV_LOCK:
        saved = {k: os.environ.get(k) for k in values}
        os.environ.update(values)
        try:
            yield
        finally:
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v


class LambdaContext:
    """Stand-in for the context object Lambda passes to a handler."""

    def __init__(self, function_name: str, arn: str, memory_mb: int, timeout_s: float) -> None:
        self.function_name = function_name
        self.function_version = "$LATEST"
        self.invoked_function_arn = arn
        self.memory_limit_in_mb = int(memory_mb)
        self.aws_request_id = str(uuid.uuid4())
        self.log_group_name = f"/aws/lambda/{function_name}"
        self.log_stream_name = f"local/{self.aws_request_id}"
        self._deadline = time.monotonic() + float(timeout_s)

    def get_remaining_time_in_millis(self) -> int:
        """Milliseconds left before the function's configured timeout."""
        return max(0, int((self._deadline - time.monotonic()) * 1000))


class SqsSource(NamedTuple):
    """An SQS event source of a function."""

    queue_logical_id: str
    queue_url: str
    queue_arn: str
    batch_size: int
    report_batch_item_failures: bool


@dataclass
class LocalFunction:
    """A function of the template, as the local service runs it."""

    logical_id: str
    name: str
    arn: str
    code_dir: Path
    handler: str
    environment: dict[str, str]
    timeout_s: float = 3.0
    memory_mb: int = 128
    sqs_sources: list[SqsSource] = field(default_factory=list)
    _module: ModuleType | None = None

    def load(self) -> Any:
        """Import the handler (once) by file path with the function's environment applied."""
        module_name, _, attr = self.handler.rpartition(".")
        if self._module is None:
            path = self.code_dir / (module_name.replace(".", "/") + ".py")
            if not path.is_file():
                raise ConfigError(f"{self.logical_id}: handler file {path.name} not found in CodeUri")
            unique = f"_alertprod_local_{self.name.replace('-', '_')}_{id(self):x}"
            spec = importlib.util.spec_from_file_location(unique, path)
            module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
            sys.modules[unique] = module
            # Loaded by file path alone: our handlers are one file each, everything else comes
            # from the layer (the installed package), so the interpreter path is left alone.
            try:
                with _environment(self.environment):
                    spec.loader.exec_module(module)  # type: ignore[union-attr]
            except BaseException:
                sys.modules.pop(unique, None)
                raise
            self._module = module
        return getattr(self._module, attr)

    def unload(self) -> None:
        """Forget the imported module (the next invocation is a cold start)."""
        if self._module is not None:
            sys.modules.pop(self._module.__name__, None)
            self._module = None


@dataclass
class Invocation:
    """One entry of the invocation log."""

    function_id: str
    event: Any
    outcome: str  #: ``"ok"``, ``"partial"`` (some batch items failed) or ``"error"``
    duration_s: float
    response: Any = None
    error: str | None = None
    request_id: str = ""


class LocalLambdaService:
    """Runs the functions of one embedded stack.

    Parameters
    ----------
    functions : mapping of str to LocalFunction
        By logical id.
    sqs_client : botocore.client.SQS
        Client of the embedded stack, for the event-source pollers.
    region : str
        Region reported in events.
    retry_delay_s : int
        Visibility timeout given to a failed message (0: visible again at once).
    isolate : bool, keyword-only
        Run each function in a worker process of its own with its ``MemorySize`` applied as
        a resource limit (slower: a cold start per worker); by default functions run in this
        process, their ``Timeout`` enforced by a watchdog.
    """

    def __init__(
        self,
        functions: Mapping[str, LocalFunction],
        sqs_client: Any,
        region: str,
        *,
        retry_delay_s: int = 0,
        isolate: bool = False,
    ) -> None:
        self.functions = dict(functions)
        self.sqs_client = sqs_client
        self.region = region
        self.retry_delay_s = int(retry_delay_s)
        self.isolate = bool(isolate)
        self.log: list[Invocation] = []
        self._lock = threading.RLock()
        self._workers: dict[str, WorkerProcess] = {}
        self._previous_sleeper = waiting.set_sleeper(self._cooperative_sleep)

    def function(self, function_id: str) -> LocalFunction:
        """The function with logical id (or physical name) ``function_id``."""
        for fn in self.functions.values():
            if function_id in (fn.logical_id, fn.name):
                return fn
        raise NotFoundError(f"no function {function_id!r} in the stack")

    def invoke(self, function_id: str, event: Any) -> Any:
        """Invoke a function synchronously (RequestResponse); exceptions propagate, and are logged."""
        fn = self.function(function_id)
        with self._lock:
            context = LambdaContext(fn.name, fn.arn, fn.memory_mb, fn.timeout_s)
            env = {**fn.environment, "AWS_LAMBDA_FUNCTION_NAME": fn.name,
                   "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(fn.memory_mb),
                   "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST", "_X_AMZN_TRACE_ID": ""}
            start = time.perf_counter()
            try:
                try:
                    response = self._run(fn, env, event, context)
                except TimeoutInterrupt:
                    fn.unload()  # Lambda resets the sandbox after a timeout: a cold start next
                    raise FunctionTimeoutError(timeout_message(fn.timeout_s)) from None
            except Exception as exc:
                error = "".join(traceback.format_exception_only(exc)).strip()
                self.log.append(Invocation(fn.logical_id, event, "error", time.perf_counter() - start,
                                           error=error, request_id=context.aws_request_id))
                # as CloudWatch shows a failed invocation: the function, the request, the error
                _LOG.error("%s failed (request %s): %s", fn.logical_id, context.aws_request_id, error)
                raise
            failures = response.get("batchItemFailures") if isinstance(response, dict) else None
            outcome = "partial" if failures else "ok"
            if failures:
                records = len(event.get("Records", [])) if isinstance(event, dict) else 0
                _LOG.warning("%s: %d of %d records failed and go back to the queue (request %s): %s",
                             fn.logical_id, len(failures), records, context.aws_request_id,
                             ", ".join(str(f.get("itemIdentifier")) for f in failures[:5]))
            self.log.append(Invocation(fn.logical_id, event, outcome, time.perf_counter() - start,
                                       response=response, request_id=context.aws_request_id))
            return response

    def _run(self, fn: LocalFunction, env: dict[str, str], event: Any,
             context: LambdaContext) -> Any:
        """One handler call, under the function's limits (in process, or in its worker)."""
        if self.isolate:
            worker = self._workers.get(fn.logical_id)
            if worker is None:
                worker = self._workers[fn.logical_id] = WorkerProcess(
                    fn.code_dir, fn.handler, {**fn.environment, **env}, fn.memory_mb)
            return worker.invoke(event, (fn.name, fn.arn, fn.memory_mb, fn.timeout_s),
                                 fn.timeout_s)
        handler = fn.load()  # an import error is an invocation error, as on Lambda
        with _environment(env), deadline(fn.timeout_s), _invoking():
            return handler(event, context)

    def _cooperative_sleep(self, seconds: float) -> None:
        """A handler's deliberate wait (:mod:`alertprod.aws.waiting`): others run meanwhile.

        Invocations run one at a time; a handler that waits (the precovery API's ``?wait=``)
        would otherwise hold up the workers it waits for. Only a top-level invocation on this
        thread lets go of the locks; anything else just sleeps.
        """
        if getattr(_INVOKING, "depth", 0) != 1:
            time.sleep(seconds)
            return
        _ENV_LOCK.release()
        self._lock.release()
        try:
            time.sleep(seconds)
        finally:
            self._lock.acquire()
            _ENV_LOCK.acquire()

    def sqs_event(self, source: SqsSource, messages: list[SqsMessage]) -> dict[str, Any]:
        """The event Lambda's SQS poller hands to a function for a batch of messages."""
        return {"Records": [{
            "messageId": m.message_id,
            "receiptHandle": m.receipt_handle,
            "body": m.body,
            "attributes": m.attributes,
            "messageAttributes": {
                name: {
                    "stringValue": v.get("StringValue"),
                    "binaryValue": base64.b64encode(v["BinaryValue"]).decode() if "BinaryValue" in v else None,
                    "stringListValues": [], "binaryListValues": [],
                    "dataType": v.get("DataType"),
                } for name, v in m.message_attributes.items()
            },
            "md5OfBody": _md5(m.body),
            "eventSource": "aws:sqs",
            "eventSourceARN": source.queue_arn,
            "awsRegion": self.region,
        } for m in messages]}

    def poll_once(self) -> int:
        """Receive one batch from every SQS event source and invoke; returns messages handled."""
        handled = 0
        for fn in self.functions.values():
            for source in fn.sqs_sources:
                queue = SqsQueue(self.sqs_client, source.queue_url)
                messages = queue.receive(min(source.batch_size, 10), 0,
                                         visibility_timeout_s=max(30, int(fn.timeout_s)))
                if messages:
                    handled += len(messages)
                    self._deliver(fn, source, queue, messages)
        return handled

    def _deliver(self, fn: LocalFunction, source: SqsSource, queue: SqsQueue,
                 messages: list[SqsMessage]) -> None:
        try:
            response = self.invoke(fn.logical_id, self.sqs_event(source, messages))
        except Exception:
            # Lambda deletes nothing of a failed batch; the messages come back after the
            # visibility timeout (here: retry_delay_s) and the RedrivePolicy counts receives.
            for m in messages:
                queue.change_visibility(m.receipt_handle, self.retry_delay_s)
            return
        failed: set[str] = set()
        if source.report_batch_item_failures and isinstance(response, dict):
            failed = {f.get("itemIdentifier") for f in response.get("batchItemFailures") or []}
        for m in messages:
            if m.message_id in failed:
                queue.change_visibility(m.receipt_handle, self.retry_delay_s)
            else:
                queue.delete(m.receipt_handle)

    def _busy(self) -> bool:
        for fn in self.functions.values():
            for source in fn.sqs_sources:
                queue = SqsQueue(self.sqs_client, source.queue_url)
                if queue.approximate_depth() or queue.approximate_in_flight():
                    return True
        return False

    def run_until_idle(self, timeout_s: float = 60.0) -> int:
        """Poll until every source queue is empty with nothing in flight; returns messages handled.

        Raises
        ------
        TimeoutError
            When the queues are still busy after ``timeout_s`` (wall-clock seconds).
        """
        deadline = time.monotonic() + float(timeout_s)
        total = 0
        while True:
            n = self.poll_once()
            total += n
            if n == 0 and not self._busy():
                return total
            if time.monotonic() > deadline:
                raise TimeoutError(f"event sources still busy after {timeout_s} s")
            if n == 0:
                time.sleep(0.05)

    def run_forever(self, stop_event: threading.Event, *, idle_sleep_s: float = 0.25) -> None:
        """Poll until ``stop_event`` is set (for ``alertprod stack up``); errors are logged, not raised."""
        while not stop_event.is_set():
            try:
                n = self.poll_once()
            except Exception:  # keep serving; the invocation log has handler errors
                traceback.print_exc()
                n = 0
            if n == 0:
                stop_event.wait(idle_sleep_s)

    def close(self) -> None:
        """Unload every imported handler and stop the workers."""
        for fn in self.functions.values():
            fn.unload()
        for worker in self._workers.values():
            worker.stop()
        self._workers.clear()
        waiting.set_sleeper(self._previous_sleeper)


def _md5(text: str) -> str:
    import hashlib

    return hashlib.md5(text.encode("utf-8")).hexdigest()  # noqa: S324 - SQS's own checksum

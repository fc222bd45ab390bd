"""Faults on purpose: kill a function at its k-th AWS call, or answer AWS calls with AWS's errors.

moto never throttles, never cancels a transaction for a conflict, never fails a publish, and a
process never dies at a chosen instruction. Reliability tests need all four. This module makes
them happen *below* the adapters, in botocore, for every client of the process:

- a **kill** (:class:`KillAt`) raises :class:`InjectedKill` — a ``BaseException``, so no
  ``except Exception`` of the handler or of Powertools' batch processor can swallow it — at the
  k-th AWS call (before it is sent, or after its response arrived), and every later call of the
  same invocation fails too (a dead process calls nothing). The embedded stack then sees the
  invocation fail as a killed Lambda's does: no batch response, every message of the batch back
  on its queue; the function's module is unloaded, so the redelivery is a cold start;
- an **error** (:class:`ErrorRule`) replaces the HTTP response of chosen calls by the one AWS
  sends (``ProvisionedThroughputExceededException``, ``TransactionCanceledException`` with a
  ``TransactionConflict`` reason, SNS ``InternalError``, ...), so that botocore's retries, the
  adapters' own retries and SQS redelivery all run exactly as they would against AWS.

Hand-written because no library injects faults into botocore below its retry handler
(``botocore.stub.Stubber`` replaces the service, where moto must answer every call that is not
a fault). Used by ``tests/integration/test_fault_matrix.py`` and the contention load test.
"""

from __future__ import annotations

import json
import random
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from botocore.awsrequest import AWSResponse
from botocore.client import BaseClient
from botocore.endpoint import Endpoint

__all__ = ["InjectedKill", "FunctionKilledError", "KillAt", "ErrorRule", "FaultInjector",
           "CallRecord"]


class InjectedKill(BaseException):  # noqa: N818 - a kill, not an error the code may handle
    """The process dies here (raised at an AWS call; every later call of the invocation too)."""


class FunctionKilledError(Exception):
    """What the embedded stack sees of a killed invocation (the batch returns to its queue)."""


@dataclass(frozen=True)
class CallRecord:
    """One AWS call of the function under test: ``service`` (botocore's name), ``operation``,
    and ``target``: the object key of an S3 call, the table of a DynamoDB call, else ""."""

    service: str
    operation: str
    target: str = ""


@dataclass
class KillAt:
    """Kill the process at AWS call number ``call`` (1-based) of the function under test.

    ``after=False`` kills before the request is sent (the call never happens); ``after=True``
    after its response arrived (the call took effect, the process never learns it).
    """

    call: int
    after: bool = False


@dataclass
class ErrorRule:
    """Answer matching AWS calls with an AWS error response instead of sending them.

    Parameters
    ----------
    service : str
        botocore service name (``"dynamodb"``, ``"sns"``, ``"s3"``, ...).
    operations : sequence of str
        Operation names (``"TransactWriteItems"``); empty matches every operation.
    code : str
        The AWS error code. ``"TransactionConflict"`` answers a TransactWriteItems call with a
        ``TransactionCanceledException`` whose reasons name one item as conflicting.
    rate : float
        Probability that a matching HTTP attempt fails (botocore's retries are attempts too).
    first_n : int or None
        Fail only the first ``first_n`` matching attempts (then let every call through).
    status : int
        HTTP status of the error (400 for throttling and cancellations, 500 for
        ``InternalError``).
    """

    service: str
    operations: Sequence[str] = ()
    code: str = "ProvisionedThroughputExceededException"
    rate: float = 1.0
    first_n: int | None = None
    status: int = 400
    injected: int = field(default=0, init=False)

    def matches(self, service: str, operation: str) -> bool:
        return service == self.service and (not self.operations or operation in self.operations)


class _Raw:
    """The raw body botocore reads an HTTP response from."""

    def __init__(self, body: bytes):
        self._body = body

    def stream(self, **_: Any) -> Iterator[bytes]:
        yield self._body


def _error_response(protocol: str, rule: ErrorRule, operation: str, params: dict[str, Any],
                    url: str, rng: random.Random) -> AWSResponse:
    """An HTTP response carrying ``rule.code`` as the service's protocol spells errors."""
    message = f"injected fault: {rule.code}"
    headers = {"x-amzn-RequestId": "injected-fault", "x-amz-request-id": "injected-fault"}
    if protocol == "json":
        body: dict[str, Any] = {"__type": f"com.amazonaws.dynamodb.v20120810#{rule.code}",
                                "message": message}
        if rule.code == "TransactionConflict" and operation == "TransactWriteItems":
            n = len(params.get("TransactItems", [])) or 1
            reasons = [{"Code": "None"} for _ in range(n)]
            reasons[rng.randrange(n)] = {"Code": "TransactionConflict",
                                         "Message": "Transaction is ongoing for the item"}
            body = {"__type": "com.amazonaws.dynamodb.v20120810#TransactionCanceledException",
                    "Message": "Transaction cancelled, please refer cancellation reasons for "
                               "specific reasons [" + ", ".join(r["Code"] for r in reasons) + "]",
                    "CancellationReasons": reasons}
        headers["Content-Type"] = "application/x-amz-json-1.0"
        return AWSResponse(url, rule.status, headers, _Raw(json.dumps(body).encode()))
    if protocol == "query":
        kind = "Receiver" if rule.status >= 500 else "Sender"
        xml = (f"<ErrorResponse><Error><Type>{kind}</Type><Code>{rule.code}</Code>"
               f"<Message>{message}</Message></Error><RequestId>injected-fault</RequestId>"
               f"</ErrorResponse>")
    else:  # rest-xml (S3)
        xml = (f"<Error><Code>{rule.code}</Code><Message>{message}</Message>"
               f"<RequestId>injected-fault</RequestId></Error>")
    headers["Content-Type"] = "text/xml"
    return AWSResponse(url, rule.status, headers, _Raw(xml.encode()))


class FaultInjector:
    """Inject kills and AWS errors into the AWS calls of the process (a context manager).

    Parameters
    ----------
    stack : alertprod.local.stack.EmbeddedStack or None
        With a stack, faults apply only while ``function_id`` runs on it (its invocations are
        wrapped; a killed one is unloaded so the next is a cold start). Without one, every
        call of the process is subject to them (for code a test drives itself).
    function_id : str
        Logical id of the function under test.
    kill : KillAt or None
        Where to kill the function.
    errors : sequence of ErrorRule
        AWS errors to answer.
    seed : int
        Seed of the error draws (a scenario is reproducible).
    on_call : callable, optional
        Called with each :class:`CallRecord` before the call (and before any kill): a scenario
        can act at a chosen call (e.g. expire a lease there).
    on_kill : callable, optional
        Called after a killed invocation ended (e.g. to let the dead holder's leases expire
        before the redelivery, as time does on AWS).

    Attributes
    ----------
    calls : list of CallRecord
        Every AWS call of the function under test, in order.
    killed : int
        Invocations killed so far.
    """

    def __init__(self, stack: Any = None, function_id: str = "IngestFunction", *,
                 kill: KillAt | None = None, errors: Sequence[ErrorRule] = (), seed: int = 0,
                 on_call: Callable[[CallRecord], None] | None = None,
                 on_kill: Callable[[], None] | None = None):
        self.stack, self.function_id = stack, function_id
        self.kill, self.errors = kill, list(errors)
        self.on_call, self.on_kill = on_call, on_kill
        self.calls: list[CallRecord] = []
        self.killed = 0
        self._rng = random.Random(seed)
        self._lock = threading.RLock()
        self._armed = stack is None
        self._dead = False
        self._local = threading.local()
        self._saved: list[tuple[Any, str, Any]] = []

    # -- installing --------------------------------------------------------------------------
    def __enter__(self) -> FaultInjector:
        injector = self
        make_api_call, send = BaseClient._make_api_call, Endpoint._send

        def _make_api_call(client: BaseClient, operation: str, params: dict[str, Any]) -> Any:
            if not injector._armed:
                return make_api_call(client, operation, params)
            model = client.meta.service_model
            target = params.get("Key") if model.service_name == "s3" else params.get("TableName")
            record = CallRecord(model.service_name, operation, target if isinstance(target, str) else "")
            n = injector._before(record)
            injector._local.context = (model.protocol, record, params)
            try:
                return make_api_call(client, operation, params)
            finally:  # an answer that is an AWS error came back too: a kill after it holds
                injector._local.context = None
                injector._after(n)

        def _send(endpoint: Endpoint, request: Any) -> Any:
            context = getattr(injector._local, "context", None)
            if context is not None and injector._armed:
                response = injector._fault_response(*context, request.url)
                if response is not None:
                    return response
            return send(endpoint, request)

        self._patch(BaseClient, "_make_api_call", _make_api_call)
        self._patch(Endpoint, "_send", _send)
        if self.stack is not None:
            service = self.stack.lambdas
            invoke = service.invoke

            def _invoke(function_id: str, event: Any) -> Any:
                fn = service.function(function_id)
                if fn.logical_id != injector.function_id:
                    return invoke(function_id, event)
                injector._armed, injector._dead = True, False
                try:
                    return invoke(function_id, event)
                except InjectedKill as exc:
                    injector.killed += 1
                    fn.unload()  # the process is gone: the next invocation is a cold start
                    injector._armed, injector._dead = False, False
                    if injector.on_kill is not None:
                        injector.on_kill()
                    raise FunctionKilledError(f"{function_id} killed: {exc}") from None
                finally:
                    injector._armed, injector._dead = False, False

            self._saved.append((service, "invoke", None))
            service.invoke = _invoke
        return self

    def __exit__(self, *exc: object) -> None:
        for owner, name, value in reversed(self._saved):
            if value is None:
                vars(owner).pop(name, None)  # the instance attribute: back to the class's
            else:
                setattr(owner, name, value)
        self._saved.clear()

    def _patch(self, owner: Any, name: str, value: Any) -> None:
        self._saved.append((owner, name, getattr(owner, name)))
        setattr(owner, name, value)

    @contextmanager
    def disarmed(self) -> Iterator[None]:
        """Let calls through untouched inside the block (e.g. an ``on_call`` action's own)."""
        armed, self._armed = self._armed, False
        try:
            yield
        finally:
            self._armed = armed

    # -- faults --------------------------------------------------------------------------------
    def _before(self, record: CallRecord) -> int:
        """Count the call (its number is returned), act on it, kill before it if asked."""
        with self._lock:
            if self._dead:
                raise InjectedKill(f"the process is dead ({record.operation} not sent)")
            self.calls.append(record)
            n = len(self.calls)
        if self.on_call is not None:
            with self.disarmed():
                self.on_call(record)
        if self.kill is not None and n == self.kill.call and not self.kill.after:
            self._die(f"killed before call {n} ({record.service} {record.operation})")
        return n

    def _after(self, n: int) -> None:
        """Kill after call number ``n`` if asked (its number, not the count: calls made from
        several threads of the function overlap)."""
        if self.kill is not None and n == self.kill.call and self.kill.after:
            self._die(f"killed after call {n}")

    def _die(self, why: str) -> None:
        self._dead = True
        self.kill = None  # one kill per scenario: the redelivery runs to its end
        raise InjectedKill(why)

    def _fault_response(self, protocol: str, record: CallRecord, params: dict[str, Any],
                        url: str) -> AWSResponse | None:
        with self._lock:
            for rule in self.errors:
                if not rule.matches(record.service, record.operation):
                    continue
                if rule.first_n is not None and rule.injected >= rule.first_n:
                    continue
                if self._rng.random() < rule.rate:
                    rule.injected += 1
                    return _error_response(protocol, rule, record.operation, params, url,
                                           self._rng)
        return None

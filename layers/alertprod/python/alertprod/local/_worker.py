"""Limits of a local invocation as Lambda applies them: Timeout always, MemorySize in a worker.

Two ways the local Lambda service (:mod:`alertprod.local.lambdas`) runs a handler:

- **in process** (the default): a watchdog raises :class:`TimeoutInterrupt` in the invoking
  thread when the function's ``Timeout`` passes (``PyThreadState_SetAsyncExc``: delivered at
  the handler's next Python bytecode, so a handler stuck inside one long C call stops when the
  call returns). The exception derives from ``BaseException``, so a handler's ``except
  Exception`` (Powertools' batch processor) does not swallow it: the whole invocation fails
  and its SQS messages return, as on AWS. Memory is not limited.
- **in a worker process per function** (``isolate=True``): the handler runs in a child
  interpreter whose data segment is limited (``RLIMIT_DATA``) to ``MemorySize`` plus
  :data:`MEMORY_HEADROOM_MB`, so a runaway allocation fails there with ``MemoryError``; an
  invocation fails as out of memory when a ``MemoryError`` escapes the handler or when the
  worker's peak resident memory (:func:`peak_rss_mb`) passed ``MemorySize`` (what Lambda limits), even if the
  handler caught the error per record. At the timeout the worker is killed (its start-up,
  Lambda's init phase, is not counted against the timeout). After either, the
  next invocation starts a new worker (a cold start: Lambda resets the sandbox too).

Either way :class:`FunctionTimeoutError` (``Task timed out after N seconds``) or
:class:`FunctionError` is what the invoker sees, and the SQS poller returns the batch's messages
to their queue, whose RedrivePolicy counts the receive.

``RLIMIT_DATA`` counts the writable memory a process has *reserved*, not only what it has
touched (its RSS, what Lambda limits): with numpy, astropy and boto3 imported, a Python process
reserves ~120 MB more than it touches, and every thread another 8 MB of stack. The headroom
covers that, so a function is refused memory a little later than on AWS, never earlier
(docs/local-stack.md "Limits").

Written here because no library runs a Lambda handler under its configured limits outside
Docker (moto runs Lambda code only in Docker containers).
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import pickle
import socket
import subprocess
import sys
import threading
import traceback
from collections.abc import Iterator
from multiprocessing.connection import Connection
from typing import Any

from alertprod.errors import AlertprodError

__all__ = ["MEMORY_HEADROOM_MB", "FunctionError", "FunctionTimeoutError", "TimeoutInterrupt",
           "WorkerProcess", "deadline", "timeout_message"]

#: Reserved-but-untouched memory of a Python process with the layer imported (MiB), added to
#: ``MemorySize`` for ``RLIMIT_DATA``.
MEMORY_HEADROOM_MB = 256
#: Longest a worker may take to start and import its handler (s): the init phase, which Lambda
#: does not count against the function's Timeout either.
INIT_TIMEOUT_S = 120.0


class FunctionError(AlertprodError):
    """A local invocation failed as Lambda reports it (the runtime's error message)."""


class FunctionTimeoutError(FunctionError):
    """A function ran past its ``Timeout`` (``Task timed out after N seconds``)."""


class TimeoutInterrupt(BaseException):
    """Raised inside a handler at its deadline (in-process mode).

    A ``BaseException``, like ``KeyboardInterrupt``: handlers that catch ``Exception`` let it
    through, so the invocation fails as a whole, as on AWS; the invoker turns it into
    :class:`FunctionTimeoutError`.
    """


def timeout_message(timeout_s: float) -> str:
    """Lambda's report of a timed-out invocation."""
    return f"Task timed out after {float(timeout_s):.2f} seconds"


@contextlib.contextmanager
def deadline(timeout_s: float) -> Iterator[None]:
    """Raise :class:`TimeoutInterrupt` in this thread if the block runs past ``timeout_s``.

    The exception is injected at most once and never after the block: leaving the block
    disarms the timer and clears an injection not yet delivered.
    """
    tid = threading.get_ident()
    lock = threading.Lock()
    state = {"armed": True, "fired": False}

    def fire() -> None:
        with lock:
            if state["armed"]:
                state["fired"] = True
                ctypes.pythonapi.PyThreadState_SetAsyncExc(
                    ctypes.c_ulong(tid), ctypes.py_object(TimeoutInterrupt))

    timer = threading.Timer(float(timeout_s), fire)
    timer.daemon = True
    timer.start()
    try:
        yield
    finally:
        timer.cancel()
        with lock:
            state["armed"] = False
            if state["fired"]:  # delivered already, or pending: clear a pending one
                ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(tid), None)


class WorkerProcess:
    """One function's worker interpreter: its handler imported once, invoked over a pipe.

    Parameters
    ----------
    code_dir : path
        The function's ``CodeUri``.
    handler : str
        ``module.function`` in ``code_dir``.
    environment : dict
        The function's environment (added to this process's).
    memory_mb : int
        ``MemorySize``; the worker's ``RLIMIT_DATA`` is this plus ``headroom_mb``.
    headroom_mb : int, keyword-only
        See :data:`MEMORY_HEADROOM_MB`.
    """

    def __init__(self, code_dir: Any, handler: str, environment: dict[str, str], memory_mb: int,
                 *, headroom_mb: int = MEMORY_HEADROOM_MB):
        self.code_dir = str(code_dir)
        self.handler = handler
        self.environment = dict(environment)
        self.memory_mb = int(memory_mb)
        self.limit_bytes = (int(memory_mb) + int(headroom_mb)) * 1024 * 1024
        self._proc: subprocess.Popen | None = None
        self._conn: Connection | None = None

    def _start(self) -> None:
        mine, theirs = socket.socketpair()
        env = {**os.environ, **self.environment}
        self._proc = subprocess.Popen(  # noqa: S603 - this interpreter, our own module
            [sys.executable, "-m", "alertprod.local._worker", str(theirs.fileno()),
             self.code_dir, self.handler, str(self.limit_bytes)],
            env=env, pass_fds=(theirs.fileno(),), stdin=subprocess.DEVNULL)
        theirs.close()
        self._conn = Connection(mine.detach())
        # the init phase (interpreter, imports, the handler's module) is not the invocation's
        if not self._conn.poll(INIT_TIMEOUT_S):
            self.stop()
            raise FunctionError(f"Init timed out after {INIT_TIMEOUT_S:.0f} seconds")
        self._conn.recv()

    def invoke(self, event: Any, context_args: tuple, timeout_s: float) -> Any:
        """Run the handler on ``event`` in the worker; its response.

        Raises
        ------
        FunctionTimeoutError
            After ``timeout_s`` (the worker is killed).
        FunctionError
            When the handler raised (its error, as the runtime reports it), ran out of memory,
            or the worker died.
        """
        if self._proc is None or self._proc.poll() is not None:
            self.stop()
            self._start()
        assert self._conn is not None
        try:
            self._conn.send((event, context_args, self.memory_mb))
            ready = self._conn.poll(float(timeout_s))
        except (OSError, EOFError) as exc:
            self.stop()
            raise FunctionError(f"Runtime exited: the worker is gone ({exc})") from exc
        if not ready:
            self.stop()
            raise FunctionTimeoutError(timeout_message(timeout_s))
        try:
            status, payload = self._conn.recv()
        except (OSError, EOFError) as exc:
            code = self._proc.wait()
            self.stop()
            raise FunctionError(f"Runtime exited with error: exit code {code}") from exc
        if status == "ok":
            return payload
        if status == "oom":
            self.stop()  # Lambda resets the sandbox after an out-of-memory error
        raise FunctionError(payload)

    def stop(self) -> None:
        """Kill the worker (the next invocation starts a new one)."""
        if self._conn is not None:
            with contextlib.suppress(OSError):
                self._conn.close()
            self._conn = None
        if self._proc is not None:
            if self._proc.poll() is None:
                self._proc.kill()
            self._proc.wait()
            self._proc = None


def peak_rss_mb() -> float:
    """This process image's peak resident memory, MB (``VmHWM``; ``ru_maxrss`` off Linux).

    Not ``getrusage``'s ``ru_maxrss`` on Linux: the kernel carries the parent's resident size
    at ``fork`` into the child's ``ru_maxrss`` and keeps it across ``exec``, so a worker
    started from a large test process would report that process's size as its own.
    ``VmHWM`` is the high-water mark of the current address space, new at ``exec``.
    """
    import resource

    with contextlib.suppress(OSError), open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024  # kB
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def _serve(fd: int, code_dir: str, handler: str, limit_bytes: int) -> None:
    """The worker's loop: limit memory, import the handler, answer invocations until EOF."""
    import resource
    from pathlib import Path

    from alertprod.local.lambdas import LambdaContext, LocalFunction

    resource.setrlimit(resource.RLIMIT_DATA, (limit_bytes, limit_bytes))
    conn = Connection(fd)
    fn = LocalFunction("worker", "worker", "", Path(code_dir), handler, {})
    # the init phase; an error here is raised again, and reported, by each invocation
    with contextlib.suppress(BaseException):
        fn.load()
    conn.send(("ready", None))
    while True:
        try:
            event, context_args, memory_mb = conn.recv()
        except EOFError:
            return
        try:
            func = fn.load()
            response = func(event, LambdaContext(*context_args))
            pickle.dumps(response)
            reply: tuple[str, Any] = ("ok", response)
        except MemoryError:
            reply = ("oom", f"Runtime.OutOfMemory: the function ran out of memory "
                            f"(RLIMIT_DATA {limit_bytes // 2**20} MiB)")
        except BaseException as exc:  # noqa: BLE001 - everything a handler raises is its error
            reply = ("error", "".join(traceback.format_exception_only(exc)).strip())
        peak_mb = peak_rss_mb()
        if reply[0] != "oom" and peak_mb > memory_mb:
            reply = ("oom", f"Runtime.OutOfMemory: peak resident memory {peak_mb:.0f} MB "
                            f"exceeded MemorySize {memory_mb} MB")
        conn.send(reply)


if __name__ == "__main__":  # pragma: no cover - the worker's entry point
    _serve(int(sys.argv[1]), sys.argv[2], sys.argv[3], int(sys.argv[4]))

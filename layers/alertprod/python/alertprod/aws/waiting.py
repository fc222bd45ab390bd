"""How a function waits inside its runtime: ``time.sleep`` on Lambda, cooperative on one host.

A handler that blocks on purpose (the precovery API's UWS ``?wait=``) calls :func:`sleep`. On
Lambda that is :func:`time.sleep`. A host running several functions in one process — the
embedded stack's Lambda runner, which runs one invocation at a time — registers a sleeper with
:func:`set_sleeper` that lets the other functions run while this one waits; otherwise a waiting
request would hold up the very workers it waits for.
"""

from __future__ import annotations

import time
from collections.abc import Callable

__all__ = ["set_sleeper", "sleep"]

_sleeper: Callable[[float], None] = time.sleep


def sleep(seconds: float) -> None:
    """Wait ``seconds`` (the registered sleeper; :func:`time.sleep` by default)."""
    _sleeper(float(seconds))


def set_sleeper(sleeper: Callable[[float], None] | None) -> Callable[[float], None]:
    """Register the host's sleeper (None: :func:`time.sleep`); returns the previous one."""
    global _sleeper
    previous, _sleeper = _sleeper, (sleeper or time.sleep)
    return previous

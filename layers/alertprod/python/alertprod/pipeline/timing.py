"""Per-stage wall-clock timing of one CCD's processing."""

from __future__ import annotations

import time
from contextlib import contextmanager

__all__ = ["StageTimer"]


class StageTimer:
    """Accumulates seconds per named stage; ``with timer("associate"): ...``."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self._t0 = time.perf_counter()

    @contextmanager
    def __call__(self, stage: str):
        t = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[stage] = self.seconds.get(stage, 0.0) + time.perf_counter() - t

    @property
    def total_s(self) -> float:
        """Seconds since the timer was created."""
        return time.perf_counter() - self._t0

"""Exactly-once and concurrency: the per-CCD ledger and sky-cell leases, as interfaces.

The nightly pipeline and precovery depend on these two abstract classes, never on a backend:

- :class:`CcdLedger` — where each CCD stands (:class:`CcdState`, forward only) and which of its
  alerts have been published, so that a redelivered upload redoes nothing;
- :class:`LeaseManager` — leases on coarse sky cells with fencing tokens, so that two CCDs that
  could see one real object never associate it at once (:func:`leased` holds one for a block).

Backends: :mod:`alertprod.apdb.dynamodb` (items in the Level 1 table) and
:mod:`alertprod.apdb.memory`; both pass the contract suite in ``tests/contract/``.
"""

from __future__ import annotations

import enum
import random
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np

from alertprod.errors import ConflictError
from alertprod.pixelization import pixels_covering

__all__ = ["LEASE_ORDER", "CcdLedger", "CcdState", "Lease", "LeaseManager", "cells_for_footprint",
           "leased"]

#: HEALPix order of the lease cells (nside 256, ≈13.7′ pixels).
LEASE_ORDER = 8
#: Cap of the jittered backoff between acquisition attempts (s).
_MAX_BACKOFF_S = 1.0


class CcdState(enum.StrEnum):
    """Where the processing of one CCD stands; it only ever moves forward.

    ``STARTED`` → ``PLANNED`` (computed and staged: a retry replays the plan) → ``STORED``
    (the Level 1 database holds it: a retry resumes at publishing) → ``DONE`` (alerts
    published, images indexed: a retry is acknowledged and does nothing).
    """

    STARTED = "started"
    PLANNED = "planned"
    STORED = "stored"
    DONE = "done"

    @classmethod
    def of(cls, value: CcdState | str) -> CcdState:
        """The state named ``value``; ValueError naming the valid states otherwise."""
        try:
            return cls(value)
        except ValueError as exc:
            raise ValueError(f"state: expected one of {[s.value for s in cls]}, got {value!r}") \
                from exc

    def and_earlier(self) -> list[CcdState]:
        """This state and every state before it (those a record may move from to this one)."""
        members = list(CcdState)
        return members[:members.index(self) + 1]


def cells_for_footprint(corners_radec: np.ndarray, *, margin_arcsec: float = 20.0) -> list[int]:
    """Sorted lease cells covering a CCD footprint padded by a margin.

    Parameters
    ----------
    corners_radec : ndarray, shape (n, 2)
        Footprint corners, degrees (one repeated corner gives the cells of a cone).
    margin_arcsec : float, keyword-only
        Padding, arcseconds (Rubin loads objects 20″ beyond the CCD).

    Notes
    -----
    An exact cover (:func:`alertprod.pixelization.pixels_covering`): every cell holding a point
    within ``margin_arcsec`` of the footprint, and essentially no other. Two padded footprints
    that overlap therefore always share a cell.
    """
    corners = np.asarray(corners_radec, dtype=float)
    if corners.ndim != 2 or corners.shape[1] != 2 or len(corners) < 3:
        raise ValueError(f"corners_radec: expected shape (n >= 3, 2), got {corners.shape}")
    pix = pixels_covering(corners, margin_arcsec=margin_arcsec, order=LEASE_ORDER)
    return sorted(int(p) for p in pix)


@dataclass(frozen=True)
class Lease:
    """Leases held on sky cells.

    Attributes
    ----------
    owner : str
        Who holds it (e.g. ``"ccd:1234:42:<random>"``).
    tokens : dict
        Cell -> fencing token obtained at acquisition; writes fenced by the lease succeed only
        while every cell still carries this owner and token.
    expires_at : float
        Unix time (s) at which the lease lapses unless renewed.
    """

    owner: str
    tokens: dict[int, int]
    expires_at: float

    @property
    def cells(self) -> list[int]:
        """Leased cells, sorted."""
        return sorted(self.tokens)


class LeaseManager(ABC):
    """Acquire, renew and release leases on sky cells.

    A backend provides one attempt at taking a chunk of cells (:meth:`_try_take`), a poll of
    busy cells (:meth:`_busy`), its chunking (:meth:`_chunks`), and ``_clock``/``_sleep``;
    the waiting and backing off of :meth:`acquire` is shared.

    Notes
    -----
    Guarantees (contract suite): all cells of an acquisition are taken at once or none are
    (no hold-and-wait, so no deadlock); a cell's fencing token strictly increases at every
    acquisition; a lease taken over (after it expired) fences its old holder's writes out.
    """

    _clock: Callable[[], float]
    _sleep: Callable[[float], None]

    def acquire(self, cells: Iterable[int], owner: str, *, ttl_s: float = 60.0,
                wait_s: float = 30.0) -> Lease:
        """Take the leases of all cells at once (all or none: no hold-and-wait, no deadlock).

        Parameters
        ----------
        cells : iterable of int
            Lease cells (see :func:`cells_for_footprint`).
        owner : str
            Unique holder name; the same owner may re-acquire (a retry), which fences out the
            previous holding.
        ttl_s : float, keyword-only
            Lease lifetime in seconds (renew with :meth:`renew` for longer work).
        wait_s : float, keyword-only
            How long to wait for busy cells, seconds, retrying with full-jitter exponential
            backoff while holding nothing.

        Raises
        ------
        ConflictError
            When a cell is still held by another owner after ``wait_s``.

        Notes
        -----
        Up to 100 cells are taken in one transaction: one request when uncontended. A larger
        set (never a CCD's: a 13.6′ CCD needs ~5 cells) is taken in chunks of 100 in ascending
        cell order; a chunk is held while waiting for the next, which the global order keeps
        deadlock-free, and all are given back on timeout.
        """
        ordered = sorted({int(c) for c in cells})
        if not ordered:
            raise ValueError("cells: at least one cell is required")
        if not owner:
            raise ValueError("owner: must be a non-empty string")
        if not ttl_s > 0:
            raise ValueError(f"ttl_s: must be > 0, got {ttl_s}")
        deadline = self._clock() + max(float(wait_s), 0.0)
        held: dict[int, int] = {}
        for chunk in self._chunks(ordered):
            attempt = 0
            while True:
                tokens, busy = self._try_take(chunk, owner, ttl_s)
                if tokens is not None:
                    held.update(tokens)
                    break
                # Wait by polling the busy cells (a read per round) and retry the take once
                # they look free; nothing busy means "retry at once".
                while busy:
                    now = self._clock()
                    if now >= deadline:
                        if held:
                            self.release(Lease(owner, held, 0.0))
                        holders = ", ".join(f"{c} ({h})" for c, h in sorted(busy.items()))
                        raise ConflictError(f"cells: still leased by another owner after "
                                            f"{wait_s} s: {holders}")
                    # Full-jitter exponential backoff (AWS architecture blog), capped, never
                    # sleeping past the deadline.
                    self._sleep(min(random.uniform(0, min(_MAX_BACKOFF_S, 0.02 * 2**attempt)),
                                    deadline - now))
                    attempt += 1
                    busy = self._busy(sorted(busy), owner)
        return Lease(owner, held, self._clock() + ttl_s)

    @abstractmethod
    def _try_take(self, cells: list[int], owner: str,
                  ttl_s: float) -> tuple[dict[int, int] | None, dict[int, str]]:
        """One all-or-none attempt: ``(tokens, {})``, or ``(None, busy cell -> holder)``."""

    @abstractmethod
    def _busy(self, cells: list[int], owner: str) -> dict[int, str]:
        """Cells held by another owner and unexpired (a strongly consistent read)."""

    @abstractmethod
    def _chunks(self, cells: Sequence[int]) -> list[list[int]]:
        """Cells split into the backend's transactions (at most 100 each)."""

    @abstractmethod
    def renew(self, lease: Lease, *, ttl_s: float = 60.0) -> Lease:
        """Extend a lease. Raises ConflictError when any cell has been taken over."""

    @abstractmethod
    def release(self, lease: Lease) -> None:
        """Give the cells back (cells taken over meanwhile are left alone)."""

    @abstractmethod
    def holders(self, cells: Sequence[int]) -> dict[int, tuple[str, int, float]]:
        """Current ``(owner, token, expiresAt)`` of each cell that has been leased."""


@contextmanager
def leased(leases: LeaseManager, cells: Iterable[int], owner: str, *, ttl_s: float,
           wait_s: float) -> Iterator[Lease]:
    """Hold the leases of ``cells`` for the duration of a ``with`` block, releasing them after.

    The one way the pipeline and precovery take leases (a release is never forgotten on an
    exception).
    """
    lease = leases.acquire(cells, owner, ttl_s=ttl_s, wait_s=wait_s)
    try:
        yield lease
    finally:
        leases.release(lease)


class CcdLedger(ABC):
    """Per-CCD processing records and per-alert publish marks.

    Notes
    -----
    Guarantees (contract suite): a record only moves forward through :class:`CcdState` (a
    backward move raises :class:`~alertprod.errors.ConflictError` and changes nothing); reads
    are strongly consistent; marking an alert twice is harmless.
    """

    @abstractmethod
    def get_ccd_record(self, visit: int, detector: int) -> dict[str, Any] | None:
        """``{"state": CcdState, "updatedAt": unix s, **fields}`` of a CCD, or None."""

    @abstractmethod
    def put_ccd_record(self, visit: int, detector: int, state: CcdState | str,
                       **fields: Any) -> None:
        """Move a CCD to ``state`` (same or later than its current one), merging ``fields``
        (JSON-serialisable values).

        Raises
        ------
        ConflictError
            When the CCD is already in a later state.
        """

    @abstractmethod
    def reopen_ccd_record(self, visit: int, detector: int, *, catalog_sha256: str,
                          **fields: Any) -> None:
        """Reopen a ``DONE`` CCD for reprocessing: the one move backwards, an operator's.

        The record returns to ``STARTED`` without its ``catalogSha256`` (so the next upload of
        the CCD, whatever its content, is accepted), with ``reopenedFrom`` set to the catalog
        it was processed from and ``fields`` merged. Called only once the CCD's rows are
        withdrawn (:func:`alertprod.pipeline.reprocess.reprocess_ccd`).

        Parameters
        ----------
        visit, detector : int
            The CCD.
        catalog_sha256 : str, keyword-only
            The ``catalogSha256`` the record must name: a CCD processed again meanwhile is
            not reopened by a stale request.

        Raises
        ------
        ConflictError
            When the record is not ``DONE`` from that catalog, unless it is already reopened
            from it (a repeated call changes nothing).
        """

    @abstractmethod
    def mark_alerts(self, dia_source_ids: Iterable[int], state: str) -> None:
        """Record the same publish state (e.g. ``"published"``) for many alerts."""

    @abstractmethod
    def get_alert_marks(self, dia_source_ids: Iterable[int]) -> dict[int, str]:
        """State of each alert that has a mark (alerts without one are absent)."""

    def mark_alert(self, dia_source_id: int, state: str) -> None:
        """Record the publish state of one alert."""
        self.mark_alerts([dia_source_id], state)


"""Leases on coarse sky cells: how concurrent CCD functions never duplicate a DiaObject.

A CCD function leases every HEALPix cell (order :data:`LEASE_ORDER`, ≈14′) that its footprint
padded by 20″ touches, reads the DiaObjects there, associates, writes, then releases. Two CCDs
that could both see one real object share at least one cell, so they run one after the other
and the second reads what the first committed.

Each cell's lease item holds a monotonically increasing fencing token (incremented at every
acquisition, never reset: releasing keeps the item). :meth:`Lease.fence_checks` yields
TransactWriteItems ``ConditionCheck`` operations that fail once any cell of the lease has been
taken over, so a holder that stalled past its expiry cannot commit anything.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from alertprod.apdb.calls import error_code, num
from alertprod.apdb.keys import lease as lease_key
from alertprod.errors import ConflictError, StorageError
from alertprod.pixelization import pixels_covering

__all__ = ["LEASE_ORDER", "Lease", "LeaseManager", "cells_for_footprint"]

#: HEALPix order of the lease cells (nside 256, ≈13.7′ pixels).
LEASE_ORDER = 8


def cells_for_footprint(corners_radec: np.ndarray, *, margin_arcsec: float = 20.0) -> list[int]:
    """Sorted lease cells covering a CCD footprint padded by a margin.

    Parameters
    ----------
    corners_radec : ndarray, shape (n, 2)
        Footprint corners, degrees.
    margin_arcsec : float, keyword-only
        Padding, arcseconds (Rubin loads objects 20″ beyond the CCD).

    Notes
    -----
    A superset of the exact cover (bounding cone), so two overlapping padded footprints always
    share a cell.
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
    table_name : str
        The Level 1 table holding the lease items.
    owner : str
        Who holds it (e.g. ``"ccd/00001234/042/<request id>"``).
    tokens : dict
        Cell -> fencing token obtained at acquisition.
    expires_at : float
        Unix time (s) at which the lease lapses unless renewed.
    """

    table_name: str
    owner: str
    tokens: dict[int, int]
    expires_at: float

    @property
    def cells(self) -> list[int]:
        """Leased cells, sorted."""
        return sorted(self.tokens)

    def fence_checks(self) -> list[dict[str, Any]]:
        """One TransactWriteItems ``ConditionCheck`` per cell: owner and token unchanged."""
        return [{"ConditionCheck": {
            "TableName": self.table_name, "Key": lease_key(cell),
            "ConditionExpression": "#o = :o AND #t = :t",
            "ExpressionAttributeNames": {"#o": "owner", "#t": "token"},
            "ExpressionAttributeValues": {":o": {"S": self.owner}, ":t": num(int(token))},
        }} for cell, token in sorted(self.tokens.items())]


class LeaseManager:
    """Acquire, renew and release leases on sky cells in the Level 1 table.

    Parameters
    ----------
    client : botocore client
        Low-level DynamoDB client (injected).
    table_name : str
        The Level 1 table.
    clock : callable, keyword-only
        Returns the current Unix time in seconds (injectable for tests).
    sleep : callable, keyword-only
        Sleeps for a number of seconds (injectable for tests).
    """

    def __init__(self, client: Any, table_name: str, *, clock: Callable[[], float] = time.time,
                 sleep: Callable[[float], None] = time.sleep):
        self._client = client
        self._table = table_name
        self._clock = clock
        self._sleep = sleep

    def _take(self, cell: int, owner: str, ttl_s: float) -> int | None:
        now = self._clock()
        try:
            response = self._client.update_item(
                TableName=self._table, Key=lease_key(cell),
                UpdateExpression="SET #o = :o, #e = :e, #ttl = :ttl ADD #t :one",
                ConditionExpression="attribute_not_exists(pk) OR #e < :now OR #o = :o",
                ExpressionAttributeNames={"#o": "owner", "#e": "expiresAt", "#t": "token",
                                          "#ttl": "ttl"},
                ExpressionAttributeValues={":o": {"S": owner}, ":e": num(now + ttl_s),
                                           ":now": num(now), ":one": {"N": "1"},
                                           ":ttl": num(int(now + 30 * 86400))},
                ReturnValues="ALL_NEW")
        except Exception as exc:
            if error_code(exc) == "ConditionalCheckFailedException":
                return None
            raise StorageError(f"lease of cell {cell}: {exc}") from exc
        return int(response["Attributes"]["token"]["N"])

    def acquire(self, cells: Iterable[int], owner: str, *, ttl_s: float = 60.0,
                wait_s: float = 30.0) -> Lease:
        """Take the leases of all cells, in sorted order (no deadlock between CCDs).

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
            How long to wait for busy cells, seconds, with jittered exponential backoff.

        Raises
        ------
        ConflictError
            When a cell is still held by another owner after ``wait_s``; cells already taken
            are released first.
        """
        ordered = sorted({int(c) for c in cells})
        if not ordered:
            raise ValueError("cells: at least one cell is required")
        if not owner:
            raise ValueError("owner: must be a non-empty string")
        deadline = self._clock() + wait_s
        tokens: dict[int, int] = {}
        for cell in ordered:
            attempt = 0
            while True:
                token = self._take(cell, owner, ttl_s)
                if token is not None:
                    tokens[cell] = token
                    break
                if self._clock() >= deadline:
                    self.release(Lease(self._table, owner, tokens, 0.0))
                    raise ConflictError(f"cells: cell {cell} still leased by another owner "
                                        f"after {wait_s} s")
                self._sleep(random.uniform(0, min(1.0, 0.02 * 2**attempt)))
                attempt += 1
        return Lease(self._table, owner, tokens, self._clock() + ttl_s)

    def renew(self, lease: Lease, *, ttl_s: float = 60.0) -> Lease:
        """Extend a lease; raises ConflictError when any cell has been taken over."""
        now = self._clock()
        for cell, token in sorted(lease.tokens.items()):
            try:
                self._client.update_item(
                    TableName=self._table, Key=lease_key(cell),
                    UpdateExpression="SET #e = :e",
                    ConditionExpression="#o = :o AND #t = :t",
                    ExpressionAttributeNames={"#o": "owner", "#e": "expiresAt", "#t": "token"},
                    ExpressionAttributeValues={":o": {"S": lease.owner}, ":t": num(token),
                                               ":e": num(now + ttl_s)})
            except Exception as exc:
                if error_code(exc) == "ConditionalCheckFailedException":
                    raise ConflictError(f"lease: cell {cell} was taken over") from exc
                raise StorageError(f"renew of cell {cell}: {exc}") from exc
        return Lease(self._table, lease.owner, dict(lease.tokens), now + ttl_s)

    def release(self, lease: Lease) -> None:
        """Give the cells back (expire them now); cells taken over meanwhile are left alone."""
        for cell, token in sorted(lease.tokens.items()):
            try:
                self._client.update_item(
                    TableName=self._table, Key=lease_key(cell),
                    UpdateExpression="SET #e = :zero",
                    ConditionExpression="#o = :o AND #t = :t",
                    ExpressionAttributeNames={"#o": "owner", "#e": "expiresAt", "#t": "token"},
                    ExpressionAttributeValues={":o": {"S": lease.owner}, ":t": num(token),
                                               ":zero": {"N": "0"}})
            except Exception as exc:
                if error_code(exc) != "ConditionalCheckFailedException":
                    raise StorageError(f"release of cell {cell}: {exc}") from exc

    def holders(self, cells: Sequence[int]) -> dict[int, tuple[str, int, float]]:
        """Current ``(owner, token, expiresAt)`` of each cell that has a lease item."""
        out = {}
        for cell in cells:
            item = self._client.get_item(TableName=self._table, Key=lease_key(cell),
                                         ConsistentRead=True).get("Item")
            if item:
                out[int(cell)] = (item["owner"]["S"], int(item["token"]["N"]),
                                  float(item["expiresAt"]["N"]))
        return out

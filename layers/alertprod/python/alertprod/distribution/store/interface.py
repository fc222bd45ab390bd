"""Everything the filter API and the filtering service keep, as one interface.

Tokens (hashed), filters and their versions, per-day counters, and delivery records (which are
also the held matches and the redelivery log). Backends:
:class:`~alertprod.distribution.store.MemoryServiceStore` (tests, tools, the embedded demo) and
:class:`~alertprod.distribution.store.DynamoServiceStore` (one DynamoDB table); both pass the
contract suite ``tests/contract/service_store_contract.py``.

Notes
-----
Guarantees every backend gives:

- :meth:`ServiceStore.claim_delivery` is a put-if-absent: the first claim of a delivery id
  wins and later claims return the stored record unchanged, so a redelivered alert batch
  never records (or counts) a match twice;
- :meth:`ServiceStore.update_filter` is conditional on the version the caller read
  (``expected_updated_unix``): a lost race raises :class:`~alertprod.errors.ConflictError`;
- :meth:`ServiceStore.add_counts` adds atomically (concurrent batches never lose a count);
- :meth:`ServiceStore.deliveries_since` returns records in ``created_unix`` order;
- :meth:`ServiceStore.admit_precovery` admits an alert at most ``cap`` times per filter and day,
  atomically, and admitting the same alert again is admitted again without counting twice;
- :meth:`ServiceStore.claim_precovery_order` is a put-if-absent, as ``claim_delivery``;
- watchlists are keyed by (user, name): one user never reads another's.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence

from alertprod.distribution.records import (
    DeliveryRecord,
    FilterRecord,
    FilterVersion,
    Notice,
    PrecoveryOrder,
    TokenRecord,
    WatchlistRecord,
)

__all__ = ["ServiceStore", "MAX_NOTICES", "MAX_TRANSPORTS"]

#: Notices kept per filter (oldest dropped first): keeps a filter item small.
MAX_NOTICES = 20

#: Transports per filter (keeps a filter item far below DynamoDB's 400 KB).
MAX_TRANSPORTS = 8


class ServiceStore(ABC):
    """Storage of the filter API and the filtering service."""

    # -- tokens ---------------------------------------------------------------------------
    @abstractmethod
    def put_token(self, token: TokenRecord) -> None:
        """Store a new token record (its hash must be new)."""

    @abstractmethod
    def get_token(self, token_hash: str) -> TokenRecord | None:
        """The token with this sha256, or None."""

    @abstractmethod
    def list_tokens(self, user_id: str | None = None) -> list[TokenRecord]:
        """Every token (of ``user_id`` when given), oldest first."""

    @abstractmethod
    def revoke_token(self, token_hash: str) -> TokenRecord:
        """Mark a token revoked; returns it. NotFoundError when there is none."""

    # -- filters --------------------------------------------------------------------------
    @abstractmethod
    def create_filter(self, record: FilterRecord) -> None:
        """Store a new filter and its first version. ConflictError if the id exists."""

    @abstractmethod
    def get_filter(self, filter_id: str) -> FilterRecord | None:
        """The filter, or None."""

    @abstractmethod
    def list_filters(self, user_id: str | None = None) -> list[FilterRecord]:
        """Every filter (of ``user_id`` when given), by creation time."""

    @abstractmethod
    def update_filter(self, record: FilterRecord, *, expected_updated_unix: float) -> None:
        """Replace a filter if it still has ``updated_unix == expected_updated_unix``.

        When ``record.version`` is new, the version is added to its history. The service's own
        fields (``held_pending``, ``notices``) are kept as stored.
        Raises ConflictError on a lost race, NotFoundError when the filter is gone.
        """

    @abstractmethod
    def delete_filter(self, filter_id: str) -> None:
        """Delete a filter (its counters and delivery records expire on their own)."""

    @abstractmethod
    def filter_versions(self, filter_id: str) -> list[FilterVersion]:
        """The filter's versions, oldest first."""

    @abstractmethod
    def add_held(self, filter_id: str, delta: int) -> None:
        """Add ``delta`` (may be negative) to the filter's ``held_pending`` (atomic)."""

    @abstractmethod
    def add_notice(self, filter_id: str, notice: Notice, *, expiry_warned: bool | None = None) -> None:
        """Append a notice (the newest :data:`MAX_NOTICES` are kept); optionally set ``expiry_warned``."""

    # -- counters -------------------------------------------------------------------------
    @abstractmethod
    def add_counts(self, filter_id: str, day: str, counts: Mapping[str, float], *,
                   last_delivery_unix: float | None = None, lag_max_s: float | None = None) -> None:
        """Atomically add ``counts`` (names from ``COUNTER_NAMES``) to the filter's day.

        ``last_delivery_unix`` and ``lag_max_s`` are kept as maxima.
        """

    @abstractmethod
    def get_counts(self, filter_id: str, days: list[str]) -> dict[str, dict[str, float]]:
        """Counters of the given days (days without counts are left out)."""

    # -- deliveries -----------------------------------------------------------------------
    @abstractmethod
    def claim_delivery(self, record: DeliveryRecord) -> tuple[DeliveryRecord, bool]:
        """Put the record unless its delivery id is known; returns (stored record, created)."""

    @abstractmethod
    def update_delivery(self, record: DeliveryRecord) -> None:
        """Overwrite a claimed record (state, attempts, delivered time, error)."""

    @abstractmethod
    def get_delivery(self, filter_id: str, delivery_id: str) -> DeliveryRecord | None:
        """One delivery record, or None."""

    @abstractmethod
    def deliveries_since(self, filter_id: str, since_unix: float, *, state: str | None = None,
                         limit: int | None = None) -> list[DeliveryRecord]:
        """The filter's delivery records created at or after ``since_unix``, oldest first."""

    # -- watchlists -----------------------------------------------------------------------
    @abstractmethod
    def put_watchlist(self, record: WatchlistRecord) -> None:
        """Store (or replace) the user's watchlist of that name."""

    @abstractmethod
    def get_watchlist(self, user_id: str, name: str) -> WatchlistRecord | None:
        """The user's watchlist of that name, or None."""

    @abstractmethod
    def list_watchlists(self, user_id: str) -> list[WatchlistRecord]:
        """The user's watchlists, by name."""

    @abstractmethod
    def delete_watchlist(self, user_id: str, name: str) -> None:
        """Forget the user's watchlist of that name (nothing when there is none)."""

    # -- precovery ordered by filters -----------------------------------------------------
    @abstractmethod
    def admit_precovery(self, filter_id: str, day: str, alert_id: int, cap: int) -> bool:
        """Admit ``alert_id`` to the filter's precovery orders of ``day`` unless ``cap`` are admitted.

        Atomic; an alert admitted before is admitted again (and counted once).
        """

    @abstractmethod
    def claim_precovery_order(self, order: PrecoveryOrder) -> tuple[PrecoveryOrder, bool]:
        """Put the order unless one exists for (filter, alert); returns (stored order, created)."""

    @abstractmethod
    def update_precovery_order(self, order: PrecoveryOrder) -> None:
        """Overwrite the order of (filter, alert)."""

    @abstractmethod
    def get_precovery_order(self, filter_id: str, alert_id: int) -> PrecoveryOrder | None:
        """The order of (filter, alert), or None."""

    # -- the stream relay to public VOEvent brokers --------------------------------------
    @abstractmethod
    def relayed(self, broker: str, alert_ids: Sequence[int]) -> set[int]:
        """Which of ``alert_ids`` the broker has already accepted."""

    @abstractmethod
    def mark_relayed(self, broker: str, alert_ids: Sequence[int], now_unix: float) -> None:
        """Record that the broker accepted ``alert_ids`` (idempotent)."""

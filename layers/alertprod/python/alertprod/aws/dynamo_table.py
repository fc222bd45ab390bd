"""One DynamoDB table (``pk`` S / ``sk`` S) behind an injected low-level client.

The plumbing the service table's stores share (the filter service's
:mod:`~alertprod.distribution.store.dynamodb` and the precovery job store
:mod:`~alertprod.precovery.jobservice.dynamodb`): calls named by operation with the table
filled in, botocore's errors told apart by code (a failed condition is a
:class:`~alertprod.errors.ConflictError`, anything else a
:class:`~alertprod.errors.StorageError` naming the table), a consistent GetItem and a paged
Query of one partition. Never imports boto3.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from alertprod.errors import ConflictError, StorageError

__all__ = ["DynamoTable", "attr_n", "attr_s", "error_code"]


def error_code(exc: BaseException) -> str:
    """botocore's error code of ``exc`` (``""`` for anything else)."""
    response = getattr(exc, "response", None) or {}
    return response.get("Error", {}).get("Code", "")


def attr_s(v: str) -> dict[str, str]:
    """A string attribute value."""
    return {"S": v}


def attr_n(v: float) -> dict[str, str]:
    """A number attribute value (integers written without a decimal point)."""
    return {"N": str(int(v)) if float(v).is_integer() else repr(float(v))}


class DynamoTable:
    """Calls on one table through an injected client.

    Parameters
    ----------
    client : botocore client
        Low-level DynamoDB client (injected).
    table_name : str
        The table.
    clock : callable, keyword-only
        Unix time, for the subclass's bookkeeping (TTLs, measured costs).
    """

    #: Error codes raised as :class:`~alertprod.errors.ConflictError`.
    CONFLICT_CODES: tuple[str, ...] = ("ConditionalCheckFailedException",)

    def __init__(self, client: Any, table_name: str, *, clock: Callable[[], float] | None = None):
        import time

        if not table_name:
            raise StorageError("table_name must not be empty")
        self._db, self.table_name = client, table_name
        self._clock = clock or time.time

    def _call(self, name: str, **kwargs: Any) -> Any:
        try:
            return getattr(self._db, name)(TableName=self.table_name, **kwargs)
        except Exception as exc:  # botocore's ClientError/BotoCoreError, named by code
            code = error_code(exc)
            if code in self.CONFLICT_CODES:
                raise ConflictError(f"{name}: condition failed") from exc
            raise StorageError(f"DynamoDB {name} on {self.table_name} failed: {code or exc}") from exc

    def _batch_get(self, keys: list[dict[str, Any]], *, projection: str | None = None
                   ) -> list[dict[str, Any]]:
        """The items of ``keys`` that exist (consistent reads; only ``projection``'s attributes
        when given): BatchGetItem, 100 keys a call, the keys DynamoDB left unprocessed asked
        again with backoff."""
        import time

        items: list[dict[str, Any]] = []
        extra = {"ProjectionExpression": projection} if projection else {}
        for start in range(0, len(keys), 100):
            request = {self.table_name: {"Keys": keys[start:start + 100], "ConsistentRead": True,
                                         **extra}}
            for attempt in range(8):
                try:
                    page = self._db.batch_get_item(RequestItems=request)
                except Exception as exc:  # botocore's errors, named by code
                    raise StorageError(f"DynamoDB batch_get_item on {self.table_name} failed: "
                                       f"{error_code(exc) or exc}") from exc
                items.extend(page.get("Responses", {}).get(self.table_name, []))
                request = page.get("UnprocessedKeys") or {}
                if not request:
                    break
                time.sleep(min(1.0, 0.05 * 2**attempt))
            else:
                raise StorageError(f"BatchGetItem on {self.table_name}: keys left unprocessed")
        return items

    def _get(self, pk: str, sk: str) -> dict[str, Any] | None:
        return self._call("get_item", Key={"pk": attr_s(pk), "sk": attr_s(sk)},
                          ConsistentRead=True).get("Item")

    def _query(self, pk: str, **kwargs: Any) -> list[dict[str, Any]]:
        """Every item of partition ``pk`` (consistent, all pages); ``kwargs`` go to Query."""
        items: list[dict[str, Any]] = []
        values = {":pk": attr_s(pk), **kwargs.pop("ExpressionAttributeValues", {})}
        start = None
        while True:
            extra = {"ExclusiveStartKey": start} if start else {}
            page = self._call("query", KeyConditionExpression="pk = :pk",
                              ExpressionAttributeValues=values, ConsistentRead=True, **kwargs, **extra)
            items.extend(page.get("Items", []))
            start = page.get("LastEvaluatedKey")
            if not start:
                return items

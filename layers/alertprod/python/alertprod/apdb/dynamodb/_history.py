"""History items and their hour parts, as ``store_ccd``'s transactions write them.

A history item ``HIST#<id> / T#<bucket>`` (``SSHIST#`` for an SSObject) takes rows while the
bytes counted into it (``b``) stay within :data:`~alertprod.apdb._layout.HISTORY_HEAD_BYTES`;
a transaction whose rows would pass that is cancelled by the item's condition, and the planner
then writes the item's rows to hour parts ``T#<bucket>#P<hour>`` and records the hours in the
item's number set ``parts`` (docs/apdb.md "Item sizes").
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from alertprod.apdb._layout import HISTORY_HEAD_BYTES
from alertprod.apdb.dynamodb import _keys as keys
from alertprod.apdb.dynamodb._calls import num

__all__ = ["HeadKey", "is_history", "part_key", "row_bytes", "history_ops", "set_op"]

#: An item's ``(pk, sk)``.
HeadKey = tuple[str, str]


def is_history(k: HeadKey) -> bool:
    """Whether the item is a history item (or one of its parts)."""
    return k[0].startswith(("HIST#", "SSHIST#"))


def part_key(k: HeadKey, part: int) -> HeadKey:
    """The ``(pk, sk)`` of one hour part of a history item."""
    return keys.split_key(keys.part(keys.key(*k), part))


def set_op(table: str, k: tuple[str, str], attrs: dict[str, bytes]) -> dict[str, Any]:
    """A transaction's ``Update`` setting binary attributes of one item."""
    names = {f"#a{i}": a for i, a in enumerate(sorted(attrs))}
    values = {f":v{i}": {"B": attrs[a]} for i, a in enumerate(sorted(attrs))}
    return {"Update": {"TableName": table, "Key": keys.key(*k),
                       "UpdateExpression": "SET " + ", ".join(f"#a{i} = :v{i}"
                                                              for i in range(len(attrs))),
                       "ExpressionAttributeNames": names, "ExpressionAttributeValues": values}}


def row_bytes(attrs: dict[str, bytes]) -> int:
    """Bytes of rows in an item, as DynamoDB counts them (attribute names and values)."""
    return sum(len(a) + len(v) for a, v in attrs.items())


def history_ops(table: str, k: HeadKey, attrs: dict[str, bytes], parts: dict[str, int],
                 full: set[HeadKey]) -> list[dict[str, Any]]:
    """The ops writing rows to one history item: counted into it, or into its hour parts."""
    if k not in full:
        op = set_op(table, k, attrs)
        body, n_bytes = op["Update"], row_bytes(attrs)
        body["UpdateExpression"] += " ADD #b :nb"
        body["ExpressionAttributeNames"]["#b"] = "b"
        body["ExpressionAttributeValues"].update({":nb": num(n_bytes),
                                                  ":room": num(HISTORY_HEAD_BYTES - n_bytes)})
        body["ConditionExpression"] = "attribute_not_exists(#b) OR #b <= :room"
        return [op]
    by_part: dict[int, dict[str, bytes]] = defaultdict(dict)
    for a, v in attrs.items():
        by_part[parts[a]][a] = v
    ops = [set_op(table, part_key(k, p), by_part[p]) for p in sorted(by_part)]
    ops.append({"Update": {"TableName": table, "Key": keys.key(*k), "UpdateExpression": "ADD #p :p",
                           "ExpressionAttributeNames": {"#p": "parts"},
                           "ExpressionAttributeValues": {":p": {"NS": [str(p) for p in
                                                                      sorted(by_part)]}}}})
    return ops



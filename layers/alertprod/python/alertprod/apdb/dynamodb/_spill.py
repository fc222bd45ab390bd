"""Index items that never pass 400 KB: a head item, then continuation parts once it is full.

The image-cache index, the archive index and the SSObject observation sets add entries to
one item per key with ``UpdateItem`` (a ``SET`` of the entry's own attribute, or an ``ADD`` to
a set). Each write also adds the entry's bytes to the head's counter ``b``, on condition that
it stays within :data:`~alertprod.apdb._layout.SPILL_HEAD_BYTES`: one request, as before,
while the head has room. Once it has not, the entry's bytes are added to the head's spill
counter ``sb`` (``UPDATED_NEW`` gives its new value) and the entry goes to part
``1 + (sb − 1) // SPILL_PART_BYTES`` (``<sk>#P<part>``): three requests. A reader fetches the
heads, then the parts their ``sb`` names (a second BatchGetItem, only for full heads).

A head written before the counter existed may already hold up to 400 KB: when DynamoDB refuses
a write to it for its size, the entry spills as if the head were full. A re-indexed entry may
then sit in the head and in a part: readers take the later one (parts after the head, in
order), which is the newer.
"""

from __future__ import annotations

from typing import Any

from alertprod.apdb._layout import (
    MAX_SPILL_ENTRY_BYTES,
    SPILL_HEAD_BYTES,
    SPILL_PART_BYTES,
    spill_parts,
)
from alertprod.apdb.dynamodb import _keys as keys
from alertprod.apdb.dynamodb._calls import batch_get, error_code, num

__all__ = ["write_entry", "read_items"]


def _too_large(exc: BaseException) -> bool:
    return error_code(exc) == "ValidationException" and "Item size" in str(exc)


def write_entry(client: Any, table: str, head: keys.Key, name: str, value: dict[str, Any],
                n_bytes: int, *, add: bool = False) -> None:
    """Write one entry: ``SET <name> = value`` (or ``ADD`` to the set ``name`` with
    ``add=True``) on the head, or on its current part once the head is full.

    Parameters
    ----------
    head : dict
        The key of the index item.
    name : str
        The entry's attribute (``add=True``: the set attribute).
    value : dict
        The attribute value (low-level format).
    n_bytes : int
        The entry's size as DynamoDB counts it (attribute name and value, or set members).
    """
    if not 0 < n_bytes <= MAX_SPILL_ENTRY_BYTES:
        raise ValueError(f"{name}: an index entry of {n_bytes} bytes (limit "
                         f"{MAX_SPILL_ENTRY_BYTES})")
    action = "ADD #e :e," if add else "SET #e = :e ADD"
    try:
        client.update_item(TableName=table, Key=head, UpdateExpression=f"{action} #b :nb",
                           ConditionExpression="attribute_not_exists(#b) OR #b <= :room",
                           ExpressionAttributeNames={"#e": name, "#b": "b"},
                           ExpressionAttributeValues={":e": value, ":nb": num(n_bytes),
                                                      ":room": num(SPILL_HEAD_BYTES - n_bytes)})
        return
    except Exception as exc:  # botocore ClientError (this module does not import botocore)
        if error_code(exc) != "ConditionalCheckFailedException" and not _too_large(exc):
            raise
    spilled = client.update_item(TableName=table, Key=head, UpdateExpression="ADD #s :nb",
                                 ExpressionAttributeNames={"#s": "sb"},
                                 ExpressionAttributeValues={":nb": num(n_bytes)},
                                 ReturnValues="UPDATED_NEW")["Attributes"]["sb"]["N"]
    part = 1 + (int(spilled) - 1) // SPILL_PART_BYTES
    client.update_item(TableName=table, Key=keys.part(head, part),
                       UpdateExpression="ADD #e :e" if add else "SET #e = :e",
                       ExpressionAttributeNames={"#e": name}, ExpressionAttributeValues={":e": value})


def read_items(client: Any, table: str, heads: list[keys.Key]) -> dict[tuple[str, str], list[dict]]:
    """The stored items of these heads: head -> [head item, part 1, part 2, ...] (present ones)."""
    found = batch_get(client, table, heads)
    out: dict[tuple[str, str], list[dict]] = {keys.split_key(i): [i] for i in found}
    wanted = [keys.part(keys.key(*hk), p) for hk, (item,) in list(out.items())
              for p in spill_parts(int(item.get("sb", {"N": "0"})["N"]))]
    if wanted:
        by_key = {keys.split_key(i): i for i in batch_get(client, table, wanted)}
        for k in wanted:
            pk, sk = keys.split_key(k)
            if (pk, sk) in by_key:
                out[(pk, sk.rsplit("#P", 1)[0])].append(by_key[(pk, sk)])
    return out

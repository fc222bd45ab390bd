"""The day's new-object index as precovery reads it: claims of index entries by runs.

A CCD writes its new DiaObjects into ``NEWOBJ#<day>`` after its transactions (``C#visit#
detector#k`` items; older tables may hold ``S#shard`` items too). A CCD stored after its day's
precovery ran — a delayed upload, a late redelivery — must still be precovered, once. So each
run *claims* what it plans: a small mark item ``M#<entry sort key>`` (``run`` = run id) beside
each index entry, in the same partition. A run plans the entries of its window (back to the
image cache's 30 days) that carry no mark or its own mark. Marks are separate items, not an
attribute of the entry, so claiming writes < 0.1 KB an entry (one BatchWriteItem per 25)
instead of rewriting entries of up to 320 KB.

Two *different* runs claiming at the same moment is not guarded (runs are a day apart; a
duplicated scheduled event carries the same run id, which the idempotency layer and the
rerun rule make harmless).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from astropy.table import Table

from alertprod.apdb._layout import new_objects_table, unpack_new_objects
from alertprod.apdb.dynamodb import _keys as keys
from alertprod.apdb.dynamodb._calls import batch_write, query_all
from alertprod.apdb.dynamodb._store import unpack_new_object

__all__ = ["MARK_PREFIX", "entry_rows", "claim_new_objects"]

#: Sort-key prefix of a claim mark (``M#`` + the claimed entry's sort key).
MARK_PREFIX = "M#"


def entry_rows(item: dict[str, Any]) -> list[tuple[int, float, float, float]]:
    """``(id, ra, dec, validityStart)`` rows of one index entry (either layout); none of a mark."""
    rows: list[tuple[int, float, float, float]] = []
    for attr, value in item.items():
        if attr == "objs":
            rows.extend(unpack_new_objects(value["B"]))
        elif attr[0] == "o" and attr[1:].isdigit():
            rows.append((int(attr[1:]), *unpack_new_object(value["B"])))
    return rows


def claim_new_objects(client: Any, table: str, run_id: str, mjd_start: float,
                      mjd_end: float) -> Table:
    """See :meth:`alertprod.apdb.interface.Apdb.claim_new_dia_objects`: one Query per day (and
    MB) of the window, then the new marks, 25 per BatchWriteItem."""
    found: dict[int, tuple[int, float, float, float]] = {}
    marks: list[dict[str, Any]] = []
    for d in range(int(np.floor(mjd_start)), int(np.floor(mjd_end)) + 1):
        pk = keys.new_objects_partition(d)
        items = list(query_all(client, table, pk, "", projection=None))
        owners = {it["sk"]["S"][len(MARK_PREFIX):]: it["run"]["S"] for it in items
                  if it["sk"]["S"].startswith(MARK_PREFIX)}
        for it in items:
            sk = it["sk"]["S"]
            owner = owners.get(sk)
            if sk.startswith(MARK_PREFIX) or owner not in (None, run_id):
                continue
            rows = [r for r in entry_rows(it) if mjd_start <= r[3] < mjd_end]
            if not rows:  # an entry outside the window stays for the run whose window it is in
                continue
            found.update((r[0], r) for r in rows)
            if owner is None:
                marks.append({"pk": {"S": pk}, "sk": {"S": MARK_PREFIX + sk}, "run": {"S": run_id}})
    if marks:
        batch_write(client, table, puts=marks)
    return new_objects_table(list(found.values()))

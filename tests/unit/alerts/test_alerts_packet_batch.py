"""A CCD's alerts built at once (build_alerts) are the alerts built one DiaSource at a time."""

from __future__ import annotations

import numpy as np
import pytest
from astropy.table import MaskedColumn, Table, vstack

from alertprod.alerts import build_alert, serialize_alert
from alertprod.alerts.examples import example_row
from alertprod.alerts.packet import AlertFieldError, build_alerts
from alertprod.apdb.schema import conform
from alertprod.errors import AlertSchemaError

pytestmark = pytest.mark.unit


def _table(rows: list[dict], name: str) -> Table:
    cols = {}
    for key in rows[0]:
        values = [r[key] for r in rows]
        mask = [v is None for v in values]
        fill = next((v for v in values if v is not None), 0)
        cols[key] = MaskedColumn([fill if v is None else v for v in values], mask=mask)
    return conform(Table(cols), name)


def _ccd(rng: np.random.Generator):
    """Six sources of four objects (one object twice, one source without object), with history."""
    object_ids = [11, 12, 12, 13, 14, 0]
    common = {"ssObjectId": None, "parentDiaSourceId": None, "timeWithdrawnMjdTai": None}
    sources = _table([example_row("diaSource", rng, diaSourceId=100 + k, diaObjectId=oid, **common)
                      for k, oid in enumerate(object_ids)], "DiaSource")
    objects = _table([example_row("diaObject", rng, diaObjectId=oid) for oid in (11, 12, 13)],
                     "DiaObject")
    history = _table([example_row("diaSource", rng, diaObjectId=oid, **common)
                      for oid in (12, 11, 12, 13, 12, 11)], "DiaSource")
    forced = _table([example_row("diaForcedSource", rng, diaObjectId=oid, timeWithdrawnMjdTai=None)
                     for oid in (13, 11, 11, 12)], "DiaForcedSource")
    return sources, objects, history, forced


def _one_by_one(sources, objects, history, forced, cutouts):
    def group(table):
        order = np.lexsort((np.asarray(table["midpointMjdTai"]), np.asarray(table["diaObjectId"])))
        t = table[order]
        return {oid: t[t["diaObjectId"] == oid] for oid in set(t["diaObjectId"].tolist())}

    by_obj = {int(r["diaObjectId"]): r for r in objects}
    hist, fhist = group(history), group(forced)
    out = []
    for k, row in enumerate(sources):
        oid = int(row["diaObjectId"])
        out.append(build_alert(row, dia_object=by_obj.get(oid) if oid else None,
                               prv_dia_sources=hist.get(oid, []) if oid else [],
                               prv_dia_forced_sources=fhist.get(oid, []) if oid else [],
                               cutout_difference=cutouts[k], cutout_template=b"T"))
    return out


def test_ccd_batch_gives_the_same_packets_as_one_alert_at_a_time():
    sources, objects, history, forced = _ccd(np.random.default_rng(4))
    cutouts = [f"D{k}".encode() for k in range(len(sources))]
    batch = build_alerts(sources, dia_objects=objects, prv_dia_sources=history,
                         prv_dia_forced_sources=forced, cutouts_difference=cutouts,
                         cutouts_template=[b"T"] * len(sources))
    single = _one_by_one(sources, objects, history, forced, cutouts)
    assert [serialize_alert(a) for a in batch] == [serialize_alert(a) for a in single]
    assert [len(a["prvDiaSources"]) for a in batch] == [2, 3, 3, 1, 0, 0]
    assert batch[5]["diaObject"] is None and batch[4]["diaObject"] is None
    # the object with two sources: equal histories, but separate dicts
    assert batch[1]["prvDiaSources"] == batch[2]["prvDiaSources"]
    assert batch[1]["prvDiaSources"][0] is not batch[2]["prvDiaSources"][0]


def test_ccd_batch_accepts_histories_grouped_by_object():
    sources, objects, history, forced = _ccd(np.random.default_rng(5))
    by_obj = {int(r["diaObjectId"]): r for r in objects}
    grouped = {oid: history[history["diaObjectId"] == oid] for oid in (11, 12, 13)}
    batch = build_alerts(sources, dia_objects=by_obj, prv_dia_sources=grouped,
                         prv_dia_forced_sources=None, cutouts_difference=None, cutouts_template=None)
    assert [a["prvDiaForcedSources"] for a in batch] == [None] * len(sources)
    assert batch[0]["diaObject"] == build_alert(sources[0], dia_object=by_obj[11], prv_dia_sources=[],
                                                prv_dia_forced_sources=[], cutout_difference=None,
                                                cutout_template=None)["diaObject"]
    assert len(batch[1]["prvDiaSources"]) == 3 and batch[5]["prvDiaSources"] == []


def test_ccd_batch_errors_name_the_field_path_and_the_argument():
    sources, objects, history, forced = _ccd(np.random.default_rng(6))
    history.remove_column("visit")
    with pytest.raises(AlertFieldError) as err:
        build_alerts(sources, dia_objects=objects, prv_dia_sources=history,
                     prv_dia_forced_sources=forced, cutouts_difference=None, cutouts_template=None)
    assert err.value.path == "prvDiaSources[0].visit"
    with pytest.raises(AlertSchemaError, match="cutouts_template"):
        build_alerts(sources, dia_objects=None, prv_dia_sources=None, prv_dia_forced_sources=None,
                     cutouts_difference=None, cutouts_template=[b"T"])
    with pytest.raises(AlertSchemaError, match="dia_sources"):
        build_alerts([dict(sources[0])], dia_objects=None, prv_dia_sources=None,
                     prv_dia_forced_sources=None, cutouts_difference=None, cutouts_template=None)
    assert build_alerts(vstack([sources[:0]]), dia_objects=None, prv_dia_sources=None,
                        prv_dia_forced_sources=None, cutouts_difference=None,
                        cutouts_template=None) == []

"""A filter on past nights before it is enabled, and why it matched one archived alert.

Both run the same compiled code as the service (:func:`~alertprod.filtering.compiler.compile_filter`).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from alertprod.distribution.archive import AlertArchive
from alertprod.filtering.batch import AlertBatch
from alertprod.filtering.compiler import compile_filter

__all__ = ["TrialResult", "trial_run", "explain_alert", "unix_to_mjd_tai"]

_TAI_MINUS_UTC_S = 37.0  # since 2017-01-01; no leap second announced since


def unix_to_mjd_tai(unix_s: float) -> float:
    """TAI MJD of a Unix time (UTC)."""
    return (unix_s + _TAI_MINUS_UTC_S) / 86400.0 + 40587.0


@dataclass
class TrialResult:
    """What a filter would have selected on the archive.

    Attributes
    ----------
    nights : int
        Nights looked back.
    evaluated, matched : int
        Alerts evaluated and matched.
    cost : float
        The filter's estimated cost per batch (whole-array passes).
    elapsed_s : float
        Wall time of the evaluation.
    sample_alert_ids : list of int
        The first matches (up to 20).
    truncated : bool
        Whether ``max_alerts`` stopped the scan.
    """

    nights: int
    evaluated: int = 0
    matched: int = 0
    cost: float = 0.0
    elapsed_s: float = 0.0
    sample_alert_ids: list[int] = field(default_factory=list)
    truncated: bool = False


def trial_run(expression: str, archive: AlertArchive, *, nights: int, now_unix: float,
              max_alerts: int, watchlists: Mapping[str, Any] | None = None) -> TrialResult:
    """Evaluate ``expression`` on the archived alerts of the last ``nights`` nights.

    Raises
    ------
    FilterError
        For an expression the engine refuses.
    """
    compiled = compile_filter(expression, watchlists=watchlists)
    result = TrialResult(nights=nights, cost=compiled.cost)
    start = time.perf_counter()
    min_mjd = unix_to_mjd_tai(now_unix) - nights
    result.truncated = archive.count_keys() > max_alerts
    for records in archive.scan(min_mjd_tai=min_mjd, max_alerts=max_alerts):
        mask = compiled.evaluate(AlertBatch.from_records(records, fields=compiled.fields))
        result.evaluated += len(records)
        result.matched += int(mask.sum())
        room = 20 - len(result.sample_alert_ids)
        if room > 0:
            result.sample_alert_ids += [int(records[i]["diaSourceId"]) for i in mask.nonzero()[0][:room]]
    result.elapsed_s = time.perf_counter() - start
    return result


def explain_alert(expression: str, archive: AlertArchive, alert_id: int, *, visit: int | None = None,
                  detector: int | None = None, watchlists: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The explain trace of ``expression`` on one archived alert, as JSON-able data.

    Raises
    ------
    FilterError
        For an expression the engine refuses.
    NotFoundError
        When the alert is not in the archive.
    """
    compiled = compile_filter(expression, watchlists=watchlists)
    record = archive.get(archive.find(alert_id, visit=visit, detector=detector))
    trace = compiled.explain(record)
    return {"alertId": int(alert_id), "normalized": compiled.normalized,
            "matched": bool(trace.matched),
            "trace": str(trace), "tree": _tree(trace)}


def _tree(trace: Any) -> Any:
    root = getattr(trace, "root", None)
    if root is None:
        return None

    def node(n: Any) -> dict[str, Any]:
        value = n.value
        if hasattr(value, "item"):
            value = value.item()
        if not isinstance(value, (str, int, float, bool, type(None))):
            value = str(value)
        return {"text": n.text, "value": value, "decides": bool(n.decides),
                "children": [node(c) for c in n.children]}

    return node(root)

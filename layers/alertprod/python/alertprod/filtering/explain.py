"""Why a filter matched an alert or not: the value of every sub-expression, as a tree.

Users of filtering services ask first for "why did (or didn't) my filter pass this alert?".
:meth:`CompiledFilter.explain` runs the filter on one alert with every node's result recorded,
and :class:`ExplainTrace` prints it as an indented tree, marking the sub-expressions that decided
each ``AND``/``OR``/``IN``::

    not matched: the filter is UNKNOWN for alert 1234 (only TRUE matches)
    diaSource.snr > 5 AND diaObject.r_psfFluxMean > 1000  →  UNKNOWN
    ├── diaSource.snr > 5  →  TRUE
    │   └── diaSource.snr  →  25.0
    └── diaObject.r_psfFluxMean > 1000  →  UNKNOWN  ◀ decides
        └── diaObject.r_psfFluxMean  →  NULL
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from alertprod.filtering.syntax import BoolOp, Literal, Node, Not, children, to_text

__all__ = ["ExplainNode", "ExplainTrace", "explain_tree"]


@dataclass(frozen=True)
class ExplainNode:
    """One sub-expression: its normalised text, its value for the alert, and its parts.

    Attributes
    ----------
    text : str
        Normalised text of the sub-expression.
    value : Any
        ``"TRUE"``, ``"FALSE"``, ``"UNKNOWN"`` for conditions; a number, a string, a bool or
        None (NULL) for values.
    decides : bool
        Whether this part decided its parent's value (e.g. the FALSE operand of a FALSE AND).
    children : tuple of ExplainNode
        Sub-expressions (literals are left out: their value is their text).
    """

    text: str
    value: Any
    decides: bool = False
    children: tuple[ExplainNode, ...] = field(default_factory=tuple)

    def lines(self, prefix: str = "", last: bool = True, top: bool = True) -> list[str]:
        shown = _show(self.value)
        mark = "  ◀ decides" if self.decides else ""
        head = "" if top else prefix + ("└── " if last else "├── ")
        out = [f"{head}{self.text}  →  {shown}{mark}"]
        inner = prefix if top else prefix + ("    " if last else "│   ")
        for i, child in enumerate(self.children):
            out.extend(child.lines(inner, i == len(self.children) - 1, False))
        return out


@dataclass(frozen=True)
class ExplainTrace:
    """The explanation of one filter on one alert.

    Attributes
    ----------
    matched : bool
        Whether the alert matches (the filter is TRUE).
    value : str
        ``"TRUE"``, ``"FALSE"`` or ``"UNKNOWN"``.
    dia_source_id : int or None
        The alert's ``diaSourceId``.
    root : ExplainNode
        The tree.
    """

    matched: bool
    value: str
    dia_source_id: int | None
    root: ExplainNode

    @property
    def summary(self) -> str:
        """One line: matched or not, and why."""
        who = f" for alert {self.dia_source_id}" if self.dia_source_id is not None else ""
        if self.matched:
            return f"matched: the filter is TRUE{who}"
        return f"not matched: the filter is {self.value}{who} (only TRUE matches)"

    def __str__(self) -> str:
        return "\n".join([self.summary, *self.root.lines()])


def _show(value: Any) -> str:
    if value is None:
        return "NULL"
    if isinstance(value, str) and value in ("TRUE", "FALSE", "UNKNOWN"):
        return value
    if isinstance(value, str):
        return "'" + value.replace("'", "''") + "'"
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    return repr(value)


def _value_of(entry: Any, node_type: str) -> Any:
    if entry is None:
        return "not evaluated"
    tag, a, b = entry
    a, b = np.asarray(a).reshape(-1)[:1], np.asarray(b).reshape(-1)[:1]
    if tag == "truth":
        return "TRUE" if a[0] else "FALSE" if b[0] else "UNKNOWN"
    if b[0]:
        return None
    v = a[0].item()
    if node_type == "bool":
        return bool(v)
    return v


def _deciders(node: Node, values: list[Any], value: Any) -> list[bool]:
    if isinstance(node, BoolOp):
        # AND is FALSE because of its FALSE parts, UNKNOWN because of its UNKNOWN ones; OR alike
        if (node.op == "AND" and value == "FALSE") or (node.op == "OR" and value == "TRUE"):
            return [v == value for v in values]
        if value == "UNKNOWN":
            return [v == "UNKNOWN" for v in values]
    if isinstance(node, Not):
        return [True] * len(values)
    return [False] * len(values)


def _tree(node: Node, types: Mapping[Node, str], trace: Mapping[Node, Any], decides: bool) -> ExplainNode:
    value = _value_of(trace.get(node), types.get(node, ""))
    kids = [c for c in children(node) if not isinstance(c, Literal)]
    sub = [_value_of(trace.get(c), types.get(c, "")) for c in kids]
    marks = _deciders(node, sub, value)
    return ExplainNode(to_text(node), value, decides,
                       tuple(_tree(c, types, trace, m) for c, m in zip(kids, marks, strict=True)))


def explain_tree(root: Node, types: Mapping[Node, str], trace: Mapping[Node, Any],
                 record: Mapping[str, Any]) -> ExplainTrace:
    """Build the :class:`ExplainTrace` from a traced evaluation of ``root`` on ``record``."""
    tree = _tree(root, types, trace, False)
    value = tree.value if tree.value in ("TRUE", "FALSE", "UNKNOWN") else "UNKNOWN"
    return ExplainTrace(value == "TRUE", value, record.get("diaSourceId"), tree)

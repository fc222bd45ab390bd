"""``compile_filter``: filter text to a :class:`CompiledFilter` that evaluates a whole batch at once.

Steps: parse (:mod:`~alertprod.filtering._parser`), type-check against the alert schema
(:mod:`~alertprod.filtering._types`), estimate the cost, build the numpy closures
(:mod:`~alertprod.filtering._vector`). Every refusal is a :class:`~alertprod.errors.FilterError`
naming the token and its 0-based position; nothing the user wrote is executed as code.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from typing import Any

import numpy as np

from alertprod.errors import FilterError
from alertprod.filtering._parser import _TOKEN_RE, _string, parse_filter
from alertprod.filtering._types import check_types
from alertprod.filtering._vector import build
from alertprod.filtering.batch import AlertBatch
from alertprod.filtering.explain import ExplainTrace, explain_tree
from alertprod.filtering.syntax import (
    Arith,
    Between,
    BoolOp,
    Call,
    Compare,
    Field,
    FilterAst,
    InList,
    Literal,
    Neg,
    Node,
    Not,
    children,
)
from alertprod.filtering.watch import Watchlist, Watchmap

__all__ = ["ENGINE_VERSION", "MAX_COST", "CompiledFilter", "compile_filter", "filter_cost"]

#: Version of the filter engine; part of :attr:`CompiledFilter.version_hash`, so a change of
#: semantics gives every stored filter a new hash.
ENGINE_VERSION = "1"

#: Default bound on :attr:`CompiledFilter.cost`: 50,000 µs (0.05 s) per 10,000 alerts on one
#: core, i.e. 0.5 % of a visit's 10-s budget for 1,000 filters.
MAX_COST = 50_000.0

# Estimated µs per 10,000 alerts on one core, per node (calibrated with
# tests/benchmarks/test_bench_filters.py; columns are extracted once per batch, not per filter).
_CALL_COST = {"abs": 5.0, "sqrt": 25.0, "log10": 60.0, "cone": 140.0, "in_watchlist": 30.0,
              "in_watchmap": 30.0, "days_since_first_detection": 20.0}
_COMPARE_COST = {"str": 25.0}


def filter_cost(root: Node, types: Mapping[Node, str] | None = None) -> float:
    """Estimated cost of evaluating ``root``: µs per 10,000 alerts on one core.

    A watchlist's or watchmap's membership is computed once per batch and shared by every filter
    naming it; its first use costs more (``tests/benchmarks/results/filters.json``,
    ``watchlist_first_use_ms``), which this per-filter figure does not include.
    """
    types = types or {}
    total, stack = 0.0, [root]
    while stack:
        node = stack.pop()
        stack.extend(children(node))
        if isinstance(node, (Literal, Field)):
            continue
        if isinstance(node, Call):
            total += _CALL_COST.get(node.name, 25.0)
        elif isinstance(node, Arith):
            total += 10.0 * len(node.rest) + 8.0
        elif isinstance(node, BoolOp):
            total += 2.0 * (len(node.operands) - 1)
        elif isinstance(node, InList):
            text = types.get(node.operand) == "str"
            total += (40.0 if text else 20.0) + (0.3 if text else 0.1) * len(node.items)
        elif isinstance(node, Compare):
            total += _COMPARE_COST.get(types.get(node.left, ""), 12.0)
        elif isinstance(node, Between):
            total += 24.0
        elif isinstance(node, Neg):
            total += 5.0
        else:  # NOT, IS NULL
            total += 2.0 if isinstance(node, Not) else 5.0
    return total


def _token_at(text: str):
    """``token_at(position)``: the source token starting at a node's position (for errors)."""
    def token_at(pos: int) -> str:
        m = _TOKEN_RE.match(text, pos)
        if m is None:
            return text[pos:pos + 1]
        if m.lastgroup == "str":
            return _string(text, pos)[0].text
        return m.group()
    return token_at


class CompiledFilter:
    """A checked, compiled filter. Build it with :func:`compile_filter`.

    Attributes
    ----------
    text : str
        The filter as written.
    normalized : str
        Its canonical text (keywords in capitals, minimal parentheses).
    version_hash : str
        sha256 (hex) of :data:`ENGINE_VERSION` and :attr:`normalized`: two filters with the same
        hash select the same alerts.
    fields : tuple of str
        Alert fields it reads (including those functions read: ``cone`` reads the diaSource
        position), sorted.
    cost : float
        Estimated cost: µs per 10,000 alerts on one core (see :func:`filter_cost`).
    ast : FilterAst
        The syntax tree.
    """

    def __init__(self, ast: FilterAst, types: Mapping[Node, Any], watch: Mapping[str, Any],
                 cost: float):
        self.ast = ast
        self.text = ast.text
        self.normalized = ast.normalized
        self.version_hash = hashlib.sha256(f"alertprod-filter/{ENGINE_VERSION}\n{self.normalized}"
                                           .encode()).hexdigest()
        self.cost = cost
        self._types = types
        self._watch = dict(watch)
        self.fields = _fields_of(ast.root)
        self._run = build(ast.root, types, watch=self._watch)

    def __repr__(self) -> str:
        return f"CompiledFilter({self.normalized!r})"

    def truth(self, batch: AlertBatch) -> tuple[np.ndarray, np.ndarray]:
        """TRUE and FALSE masks, shape ``(n,)``; neither is UNKNOWN."""
        n = len(batch)
        with np.errstate(all="ignore"):
            t, f = self._run(batch)
        return np.broadcast_to(t, (n,)).copy(), np.broadcast_to(f, (n,)).copy()

    def evaluate(self, batch: AlertBatch) -> np.ndarray:
        """Which alerts match: the filter is TRUE (not FALSE, not UNKNOWN). Shape ``(n,)``, bool."""
        n = len(batch)
        with np.errstate(all="ignore"):
            t, _ = self._run(batch)
        return np.broadcast_to(np.asarray(t, bool), (n,)).copy()

    def explain(self, record: Mapping[str, Any]) -> ExplainTrace:
        """Every sub-expression's value for one alert record, and why it matched or not."""
        trace: dict[Node, Any] = {}
        run = build(self.ast.root, self._types, watch=self._watch, trace=trace)
        batch = AlertBatch.from_records([record])
        with np.errstate(all="ignore"):
            run(batch)
        return explain_tree(self.ast.root, self._types, trace, record)


def _fields_of(root: Node) -> tuple[str, ...]:
    out, stack = set(), [root]
    while stack:
        node = stack.pop()
        stack.extend(children(node))
        if isinstance(node, Field):
            out.add(node.path)
        elif isinstance(node, Call) and node.name in ("cone", "in_watchlist", "in_watchmap"):
            out.update(("diaSource.ra", "diaSource.dec"))
        elif isinstance(node, Call) and node.name == "days_since_first_detection":
            out.update(("diaSource.midpointMjdTai", "diaObject.firstDiaSourceMjdTai"))
    return tuple(sorted(out))


_NAME_RE = re.compile(r"[A-Za-z0-9_.\-]{1,64}")


def compile_filter(text: str, *, watchlists: Mapping[str, Any] | None = None,
                   max_cost: float | None = MAX_COST) -> CompiledFilter:
    """Parse, type-check and compile a filter.

    Parameters
    ----------
    text : str
        The filter (interfaces.md §4; docs/filters.md).
    watchlists : mapping of str to Watchlist or Watchmap, optional
        What ``in_watchlist('name')`` and ``in_watchmap('name')`` may reference, by name.
    max_cost : float or None
        Refuse a filter whose :attr:`~CompiledFilter.cost` exceeds this; None: no bound.

    Returns
    -------
    CompiledFilter

    Raises
    ------
    FilterError
        For anything refused, naming the token and its 0-based position.
    """
    ast = parse_filter(text)
    watch = dict(watchlists or {})
    for name, obj in watch.items():
        if not isinstance(name, str) or not _NAME_RE.fullmatch(name) or \
                not isinstance(obj, (Watchlist, Watchmap)):
            raise ValueError(f"watchlists: {name!r} must name a Watchlist or Watchmap "
                             "(names: letters, digits, _ . -; up to 64)")
    types = check_types(ast.root, _token_at(text), watch_kinds={k: v.kind for k, v in watch.items()})
    cost = filter_cost(ast.root, types)
    if max_cost is not None and cost > max_cost:
        raise FilterError(f"the filter is too expensive (cost {cost:,.0f} > {max_cost:,.0f})",
                          position=0, token=_token_at(text)(ast.root.pos))
    return CompiledFilter(ast, types, watch, cost)

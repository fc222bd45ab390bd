"""Compilation of a type-checked filter into numpy closures over an :class:`AlertBatch`.

Each node becomes a Python closure built once per filter; calling the root closure on a batch
runs a handful of whole-array numpy operations per node, so the per-alert cost is that of numpy's
inner loops (nanoseconds), not of a Python interpreter walking the tree per alert. Nothing the
user wrote is executed: closures are chosen from this module's fixed table by node kind and
operator; field names only index the batch's column dictionary.

Values are ``(values, null)`` pairs; conditions are ``(true, false)`` pairs of masks, so SQL's
three-valued logic is two mask operations per connective (UNKNOWN = neither):

=========  ==========================  ==========================
           TRUE mask                   FALSE mask
=========  ==========================  ==========================
a AND b    t_a & t_b                   f_a | f_b
a OR b     t_a | t_b                   f_a & f_b
NOT a      f_a                         t_a
=========  ==========================  ==========================

Literals stay numpy scalars and broadcast. Arithmetic runs in float64 (SQL REAL), and any
non-finite result (``x/0``, overflow) is NULL; ``sqrt`` of a negative and ``log10`` of zero or less
are NULL. Comparisons of two integers (fields, literals) are exact in int64.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from alertprod.errors import FilterError
from alertprod.filtering.batch import AlertBatch, radec_to_xyz
from alertprod.filtering.syntax import (
    Arith,
    Between,
    BoolOp,
    Call,
    Compare,
    Field,
    InList,
    IsNull,
    Literal,
    Neg,
    Node,
    Not,
)

__all__ = ["build", "Closure"]

Closure = Callable[[AlertBatch], tuple[Any, Any]]

_COMPARE = {"=": np.equal, "!=": np.not_equal, "<": np.less, "<=": np.less_equal,
            ">": np.greater, ">=": np.greater_equal}
_ARITH = {"+": np.add, "-": np.subtract, "*": np.multiply, "/": np.true_divide}
_FALSE = np.False_
_TRUE = np.True_


def _finite(values: Any, null: Any) -> tuple[Any, Any]:
    bad = ~np.isfinite(values)
    return np.where(bad, 0.0, values), null | bad


class _Builder:
    def __init__(self, types: Mapping[Node, str], watch: Mapping[str, Any],
                 trace: dict[Node, Any] | None):
        self.types = types
        self.watch = watch
        self.trace = trace

    def _record(self, node: Node, fn: Closure, tag: str) -> Closure:
        if self.trace is None:
            return fn
        trace = self.trace

        def traced(batch: AlertBatch):
            out = fn(batch)
            trace[node] = (tag, *out)
            return out
        return traced

    # -- values: (values, null) --------------------------------------------------------------
    def value(self, node: Node) -> Closure:
        if self.types[node] == "bool" and not isinstance(node, (Field, Literal)):
            truth = self.truth(node)

            def as_value(batch):
                t, f = truth(batch)
                return t, ~(t | f)
            return as_value
        return self._record(node, self._value(node), "value")

    def _value(self, node: Node) -> Closure:
        if isinstance(node, Literal):
            const = _constant(node)
            return lambda batch: const
        if isinstance(node, Field):
            path = node.path
            return lambda batch: batch.column(path)
        if isinstance(node, Neg):
            inner = self.value(node.operand)

            def neg(batch):
                v, n = inner(batch)
                return np.negative(v, dtype=np.float64), n
            return neg
        if isinstance(node, Arith):
            return self._arith(node)
        if isinstance(node, Call):
            return self._call_value(node)
        raise TypeError(f"no value for {type(node).__name__}")  # pragma: no cover

    def _arith(self, node: Arith) -> Closure:
        first = self.value(node.first)
        rest = [(_ARITH[op], self.value(x)) for op, x in node.rest]

        def arith(batch):
            v, n = first(batch)
            v = np.asarray(v, np.float64)
            with np.errstate(all="ignore"):
                for ufunc, operand in rest:
                    w, m = operand(batch)
                    v, n = ufunc(v, w, dtype=np.float64), n | m
            return _finite(v, n)
        return arith

    def _call_value(self, node: Call) -> Closure:
        if node.name == "days_since_first_detection":
            def days(batch):
                t, obj = batch.column("diaSource.midpointMjdTai"), batch.column("diaObject.firstDiaSourceMjdTai")
                return _finite(t.values - obj.values, t.null | obj.null)
            return days
        (arg,) = (self.value(a) for a in node.args)
        name = node.name

        def call(batch):
            v, n = arg(batch)
            v = np.asarray(v, np.float64)
            with np.errstate(all="ignore"):
                if name == "abs":
                    return np.abs(v), n
                if name == "sqrt":
                    return _finite(np.sqrt(v), n | (v < 0))
                return _finite(np.log10(v), n | (v <= 0))  # log10
        return call

    # -- conditions: (true, false) -----------------------------------------------------------
    def truth(self, node: Node) -> Closure:
        return self._record(node, self._truth(node), "truth")

    def _truth(self, node: Node) -> Closure:
        if isinstance(node, Literal):
            tf = (_FALSE, _FALSE) if node.value is None else (np.bool_(node.value), np.bool_(not node.value))
            return lambda batch: tf
        if isinstance(node, Field):  # a boolean field inside a value context only (type checker)
            path = node.path

            def field(batch):
                v, n = batch.column(path)
                return v & ~n, ~v & ~n
            return field
        if isinstance(node, Compare):
            if "null" in (self.types[node.left], self.types[node.right]):
                return self._unknown([node.left, node.right])
            return self._compare(node.op, self.value(node.left), self.value(node.right))
        if isinstance(node, InList):
            return self._in(node)
        if isinstance(node, Between):
            x, lo, hi = self.value(node.operand), self.value(node.low), self.value(node.high)
            ge, le = self._compare_nodes(">=", node.operand, node.low, x, lo), \
                self._compare_nodes("<=", node.operand, node.high, x, hi)

            def between(batch):
                (t1, f1), (t2, f2) = ge(batch), le(batch)
                t, f = t1 & t2, f1 | f2
                return (f, t) if node.negated else (t, f)
            return between
        if isinstance(node, IsNull):
            inner = self.value(node.operand)

            def is_null(batch):
                _, n = inner(batch)
                n = np.asarray(n)
                return (~n, n) if node.negated else (n, ~n)
            return is_null
        if isinstance(node, Not):
            inner = self.truth(node.operand)

            def negate(batch):
                t, f = inner(batch)
                return f, t
            return negate
        if isinstance(node, BoolOp):
            parts = [self.truth(x) for x in node.operands]
            if node.op == "AND":
                def conj(batch):
                    t, f = parts[0](batch)
                    for p in parts[1:]:
                        t2, f2 = p(batch)
                        t, f = t & t2, f | f2
                    return t, f
                return conj

            def disj(batch):
                t, f = parts[0](batch)
                for p in parts[1:]:
                    t2, f2 = p(batch)
                    t, f = t | t2, f & f2
                return t, f
            return disj
        if isinstance(node, Call):
            return self._call_truth(node)
        raise TypeError(f"no truth value for {type(node).__name__}")  # pragma: no cover

    def _compare_nodes(self, op: str, left_node: Node, right_node: Node, left: Closure,
                       right: Closure) -> Closure:
        if "null" in (self.types[left_node], self.types[right_node]):
            return lambda batch: (_FALSE, _FALSE)  # a comparison with NULL is UNKNOWN
        return self._compare(op, left, right)

    @staticmethod
    def _compare(op: str, left: Closure, right: Closure) -> Closure:
        ufunc = _COMPARE[op]

        def compare(batch):
            (a, na), (b, nb) = left(batch), right(batch)
            r = np.asarray(ufunc(a, b), dtype=bool)
            valid = ~(na | nb)
            return r & valid, ~r & valid
        return compare

    def _unknown(self, nodes: list[Node]) -> Closure:
        """A comparison with the NULL literal: UNKNOWN (operands still run when tracing)."""
        operands = [self.value(x) for x in nodes] if self.trace is not None else []

        def unknown(batch):
            for operand in operands:
                operand(batch)
            return _FALSE, _FALSE
        return unknown

    def _in(self, node: InList) -> Closure:
        if self.types[node.operand] == "null":
            return self._unknown([node.operand, *node.items])
        x = self.value(node.operand)
        if all(isinstance(i, Literal) for i in node.items):
            has_null = any(i.kind == "null" for i in node.items)
            consts = [i.value for i in node.items if i.kind != "null"]
            table = np.array(consts) if consts else None

            def in_consts(batch):
                v, n = x(batch)
                hit = np.isin(v, table) if table is not None else np.zeros(np.shape(v), bool)
                t = hit & ~n
                f = _FALSE if has_null else ~hit & ~n
                return (f, t) if node.negated else (t, f)
            return in_consts
        eqs = [self._compare_nodes("=", node.operand, i, x, self.value(i)) for i in node.items]

        def in_exprs(batch):
            t, f = eqs[0](batch)
            for eq in eqs[1:]:
                t2, f2 = eq(batch)
                t, f = t | t2, f & f2
            return (f, t) if node.negated else (t, f)
        return in_exprs

    def _call_truth(self, node: Call) -> Closure:
        if node.name == "cone":
            ra, dec, radius = (self.value(a) for a in node.args)
            return lambda batch: _cone(batch, ra(batch), dec(batch), radius(batch))
        watched = self.watch[node.args[0].value]
        key = ("watch", watched)  # the object itself: an id could be reused after collection

        def in_watch(batch):
            hit, null = batch.cached(key, lambda: watched.match(batch))
            return hit & ~null, ~hit & ~null
        return in_watch


def _constant(node: Literal) -> tuple[Any, Any]:
    if node.kind == "null":
        return np.float64(0.0), _TRUE
    if node.kind == "int":
        return np.int64(node.value), _FALSE
    if node.kind == "float":
        return np.float64(node.value), _FALSE
    if node.kind == "bool":
        return np.bool_(node.value), _FALSE
    return np.str_(node.value), _FALSE


def _cone(batch: AlertBatch, ra: tuple, dec: tuple, radius: tuple) -> tuple[Any, Any]:
    """Great-circle cone test: chord distance between unit vectors against 2 sin(r / 2)."""
    xyz, null = batch.unit_vectors()
    null = null | ra[1] | dec[1] | radius[1]
    r_rad = np.radians(np.asarray(radius[0], np.float64) / 3600.0)
    with np.errstate(all="ignore"):
        centre = radec_to_xyz(np.asarray(ra[0], np.float64), np.asarray(dec[0], np.float64))
        diff = xyz - centre
        d2 = np.einsum("...i,...i->...", diff, diff)
        chord = 2.0 * np.sin(np.minimum(r_rad, math.pi) / 2.0)
        inside = (d2 <= chord * chord) & (r_rad >= 0)
    valid = ~null
    return inside & valid, ~inside & valid


def build(root: Node, types: Mapping[Node, str], *, watch: Mapping[str, Any] | None = None,
          trace: dict[Node, Any] | None = None) -> Closure:
    """The closure computing ``(true, false)`` masks of the filter ``root`` over a batch.

    Parameters
    ----------
    root : Node
        The type-checked filter.
    types : mapping
        Node -> type, from :func:`alertprod.filtering._types.check_types`.
    watch : mapping, optional
        Watchlists/watchmaps by name.
    trace : dict, optional
        When given, every node's result is stored in it (for :meth:`CompiledFilter.explain`).
    """
    try:
        return _Builder(types, watch or {}, trace).truth(root)
    except KeyError as exc:  # a node the type checker did not see: an internal error
        raise FilterError("internal error compiling the filter", position=root.pos, token="") from exc

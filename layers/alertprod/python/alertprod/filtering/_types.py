"""Type checking of a parsed filter against the alert schema, before anything runs.

Types are ``"int"`` and ``"float"`` (both numbers), ``"str"``, ``"bool"`` and ``"null"`` (the
``NULL`` literal, which fits anywhere). Rules (docs/filters.md "Types"):

- arithmetic, unary minus, ``abs``/``sqrt``/``log10`` and ``cone`` take numbers; arithmetic
  gives a real (``"float"``);
- the two sides of a comparison, ``IN`` items and ``BETWEEN`` bounds have the type of the
  left-hand side (numbers with numbers, strings with strings, booleans with booleans);
  booleans have no order, so only ``=``, ``!=``, ``IN`` and ``IS`` apply to them;
- where a condition is needed (the whole filter, ``NOT``, ``AND``, ``OR``) the expression must be
  a comparison, predicate, boolean function, ``TRUE``/``FALSE``/``NULL`` or a combination of
  those: a bare field (even a boolean one: write ``diaSource.isDipole = TRUE``), number or string
  is refused.
"""

from __future__ import annotations

from typing import NamedTuple

from alertprod.errors import FilterError
from alertprod.filtering.fields import FILTER_RECORDS, filter_fields, suggest_field
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

__all__ = ["FunctionSpec", "FUNCTIONS", "check_types"]


class FunctionSpec(NamedTuple):
    """A function of the language: argument types (``"num"``, ``"name"``), result type, extension?"""

    args: tuple[str, ...]
    result: str
    extension: bool
    doc: str


#: Functions of the language (core) and its extensions, by lower-case name.
FUNCTIONS: dict[str, FunctionSpec] = {
    "abs": FunctionSpec(("num",), "float", False, "absolute value"),
    "sqrt": FunctionSpec(("num",), "float", False, "square root; NULL for a negative number"),
    "log10": FunctionSpec(("num",), "float", False, "decimal logarithm; NULL for zero or less"),
    "cone": FunctionSpec(("num", "num", "num"), "bool", False,
                         "cone(ra_deg, dec_deg, radius_arcsec): diaSource position within the radius"),
    "in_watchlist": FunctionSpec(("name",), "bool", True,
                                 "in_watchlist('name'): diaSource position within an entry's radius"),
    "in_watchmap": FunctionSpec(("name",), "bool", True,
                                "in_watchmap('name'): diaSource position inside the MOC"),
    "days_since_first_detection": FunctionSpec((), "float", True,
                                               "diaSource.midpointMjdTai - diaObject.firstDiaSourceMjdTai, days"),
}

_GROUP = {"int": "number", "float": "number", "str": "string", "bool": "boolean", "null": "null"}


def _err(node: Node, message: str, token_at) -> FilterError:
    return FilterError(message, position=node.pos, token=token_at(node.pos))


def check_types(root: Node, token_at, *, watch_kinds: dict[str, str] | None = None,
                ) -> dict[Node, str]:
    """Type of every node of the tree; raises :class:`FilterError` on the first misfit.

    Parameters
    ----------
    root : Node
        The parsed filter.
    token_at : callable
        ``token_at(position) -> str``, the source token at a 0-based position (for errors).
    watch_kinds : dict, optional
        Watchlists and watchmaps the filter may reference: name -> ``"watchlist"`` or ``"watchmap"``.
    """
    types: dict[Node, str] = {}
    checker = _Checker(types, token_at, dict(watch_kinds or {}))
    checker.condition(root, "the filter")
    return types


class _Checker:
    def __init__(self, types, token_at, watch_kinds):
        self.types = types
        self.token_at = token_at
        self.watch_kinds = watch_kinds

    def condition(self, node: Node, where: str) -> None:
        t = self.type(node)
        if isinstance(node, Field):
            raise _err(node, f"a bare field is not a condition ({where} needs one): compare "
                             f"{node.path} with something, e.g. {node.path} "
                             + ("= TRUE" if t == "bool" else "IS NOT NULL"), self.token_at)
        if t not in ("bool", "null"):
            raise _err(node, f"a {_GROUP[t]} is not a condition ({where} needs one)", self.token_at)

    def want(self, node: Node, group: str, what: str) -> str:
        t = self.type(node)
        if t != "null" and _GROUP[t] != group:
            raise _err(node, f"{what} needs a {group}, not a {_GROUP[t]}", self.token_at)
        return t

    def type(self, node: Node) -> str:
        t = self._type(node)
        self.types[node] = t
        return t

    def _type(self, node: Node) -> str:
        if isinstance(node, Literal):
            return node.kind
        if isinstance(node, Field):
            return self.field(node)
        if isinstance(node, Call):
            return self.call(node)
        if isinstance(node, Neg):
            self.want(node.operand, "number", "unary minus")
            return "float"
        if isinstance(node, Arith):
            for op, x in ((node.rest[0][0], node.first), *node.rest):
                self.want(x, "number", f"'{op}'")
            return "float"
        if isinstance(node, Compare):
            group = self.comparable(node.left, node.right, f"'{node.op}'")
            if group == "boolean" and node.op not in ("=", "!="):
                raise _err(node, f"booleans have no order: '{node.op}' needs numbers or strings",
                           self.token_at)
            return "bool"
        if isinstance(node, InList):
            groups = {self.comparable(node.operand, item, "IN") for item in node.items}
            if len(groups - {"null"}) > 1:  # NULL IN (1, 'a'): items must agree among themselves
                first = next(i for i in node.items if self.types[i] != "null")
                for item in node.items:
                    self.comparable(first, item, "IN")
            return "bool"
        if isinstance(node, Between):
            g1 = self.comparable(node.operand, node.low, "BETWEEN")
            g2 = self.comparable(node.operand, node.high, "BETWEEN")
            if "boolean" in (g1, g2):
                raise _err(node, "booleans have no order: BETWEEN needs numbers or strings",
                           self.token_at)
            return "bool"
        if isinstance(node, IsNull):
            self.type(node.operand)
            return "bool"
        if isinstance(node, Not):
            self.condition(node.operand, "NOT")
            return "bool"
        if isinstance(node, BoolOp):
            for x in node.operands:
                self.condition(x, node.op)
            return "bool"
        raise TypeError(f"not a filter node: {node!r}")  # pragma: no cover

    def comparable(self, left: Node, right: Node, what: str) -> str:
        tl, tr = self.type(left), self.type(right)
        gl, gr = _GROUP[tl], _GROUP[tr]
        if "null" in (gl, gr) or gl == gr:
            return gr if gl == "null" else gl
        raise _err(right, f"{what} compares a {gl} with a {gr}", self.token_at)

    def field(self, node: Field) -> str:
        info = filter_fields().get(node.path)
        if info is not None:
            return info.type
        head = node.path.split(".", 1)[0]
        if head in FILTER_RECORDS and "." not in node.path:
            key = {"diaSource": "diaSourceId", "diaObject": "diaObjectId", "ssSource": "ssObjectId"}[head]
            msg = (f"'{node.path}' is a record, not a field: name one of its fields (to test "
                   f"whether the alert has one, write {head}.{key} IS NULL)")
        elif head in ("prvDiaSources", "prvDiaForcedSources", "mpc_orbits") or head.startswith("cutout"):
            msg = f"'{head}' is not filterable (only scalar fields of diaSource, diaObject, ssSource and the top level)"
        else:
            msg = f"unknown field '{node.path}'"
            hint = suggest_field(node.path) if len(node.path) <= 100 else None
            if hint:
                msg += f" (did you mean '{hint}'?)"
        raise _err(node, msg, self.token_at)

    def call(self, node: Call) -> str:
        spec = FUNCTIONS.get(node.name)
        if spec is None:
            raise _err(node, f"unknown function '{node.name}' (functions: {', '.join(FUNCTIONS)})",
                       self.token_at)
        if len(node.args) != len(spec.args):
            raise _err(node, f"{node.name}() takes {len(spec.args)} argument"
                             f"{'' if len(spec.args) == 1 else 's'}, not {len(node.args)}",
                       self.token_at)
        for arg, kind in zip(node.args, spec.args, strict=True):
            if kind == "num":
                self.want(arg, "number", f"{node.name}()")
            else:  # a watchlist / watchmap name: a string literal naming a registered one
                if not (isinstance(arg, Literal) and arg.kind == "str"):
                    raise _err(arg, f"{node.name}() takes the name of a watchlist as a string "
                                    "literal", self.token_at)
                self.types[arg] = "str"
                kind = node.name.removeprefix("in_")
                known = sorted(k for k, v in self.watch_kinds.items() if v == kind)
                if arg.value not in known:
                    raise _err(arg, f"no {kind} named {arg.value!r} (known: "
                                    f"{', '.join(known) or 'none given'})", self.token_at)
        return spec.result

"""The syntax tree of a filter, and its normalised text.

A filter is parsed (:mod:`alertprod.filtering._parser`) into these immutable nodes; every node
keeps the 0-based character offset of the token that starts it, so that a later stage (type
checking, the compiler) can name the offending token in its errors. ``AND``/``OR`` chains and
left-associative ``+ -`` / ``* /`` chains are n-ary nodes: a flat chain of 500 terms is one node
(one nesting level), never a 500-deep tree.

:func:`to_text` prints the normalised form: keywords in capitals, function names in lower case,
fields as written, one space around binary operators, parentheses only where precedence needs
them. Parsing the normalised text gives the same tree (a property the tests check), so it is the
canonical text that :attr:`CompiledFilter.version_hash` hashes.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "Literal", "Field", "Call", "Neg", "Arith", "Compare", "InList", "Between", "IsNull",
    "Not", "BoolOp", "Node", "FilterAst", "to_text", "children",
]


@dataclass(frozen=True, eq=False)
class Literal:
    """A literal: ``kind`` is ``"int"``, ``"float"``, ``"str"``, ``"bool"`` or ``"null"``."""

    value: object
    kind: str
    pos: int


@dataclass(frozen=True, eq=False)
class Field:
    """A dotted path into the alert packet, e.g. ``diaSource.snr`` (case-sensitive)."""

    path: str
    pos: int


@dataclass(frozen=True, eq=False)
class Call:
    """A function call; ``name`` is in lower case (function names are case-insensitive)."""

    name: str
    args: tuple[Node, ...]
    pos: int


@dataclass(frozen=True, eq=False)
class Neg:
    """Unary minus."""

    operand: Node
    pos: int


@dataclass(frozen=True, eq=False)
class Arith:
    """A left-associative chain ``first op1 x1 op2 x2 ...`` of ``+ -`` or of ``* /``."""

    first: Node
    rest: tuple[tuple[str, Node], ...]
    pos: int

    @property
    def level(self) -> int:
        return _PRODUCT if self.rest[0][0] in "*/" else _SUM


@dataclass(frozen=True, eq=False)
class Compare:
    """``left op right`` with ``op`` one of ``= != < <= > >=`` (``<>`` is read as ``!=``)."""

    op: str
    left: Node
    right: Node
    pos: int


@dataclass(frozen=True, eq=False)
class InList:
    """``operand [NOT] IN (items...)``."""

    operand: Node
    items: tuple[Node, ...]
    negated: bool
    pos: int


@dataclass(frozen=True, eq=False)
class Between:
    """``operand [NOT] BETWEEN low AND high`` (inclusive)."""

    operand: Node
    low: Node
    high: Node
    negated: bool
    pos: int


@dataclass(frozen=True, eq=False)
class IsNull:
    """``operand IS [NOT] NULL``."""

    operand: Node
    negated: bool
    pos: int


@dataclass(frozen=True, eq=False)
class Not:
    """``NOT operand``."""

    operand: Node
    pos: int


@dataclass(frozen=True, eq=False)
class BoolOp:
    """An ``AND`` or ``OR`` chain of two or more operands."""

    op: str
    operands: tuple[Node, ...]
    pos: int


Node = Literal | Field | Call | Neg | Arith | Compare | InList | Between | IsNull | Not | BoolOp

# printing precedence, loosest first (interfaces.md §4)
_OR, _AND, _NOT, _PRED, _SUM, _PRODUCT, _UNARY, _ATOM = range(1, 9)


def _level(node: Node) -> int:
    if isinstance(node, BoolOp):
        return _OR if node.op == "OR" else _AND
    if isinstance(node, Not):
        return _NOT
    if isinstance(node, (Compare, InList, Between, IsNull)):
        return _PRED
    if isinstance(node, Arith):
        return node.level
    if isinstance(node, Neg) or (isinstance(node, Literal) and node.kind in ("int", "float")
                                 and node.value < 0):
        return _UNARY
    return _ATOM


def _literal_text(node: Literal) -> str:
    if node.kind == "str":
        return "'" + str(node.value).replace("'", "''") + "'"
    if node.kind == "bool":
        return "TRUE" if node.value else "FALSE"
    if node.kind == "null":
        return "NULL"
    return repr(node.value) if node.kind == "float" else str(node.value)


def to_text(node: Node, min_level: int = 0) -> str:
    """Normalised text of ``node``, in parentheses when its precedence is below ``min_level``."""
    text = _text(node)
    return f"({text})" if _level(node) < min_level else text


def _text(node: Node) -> str:
    if isinstance(node, Literal):
        return _literal_text(node)
    if isinstance(node, Field):
        return node.path
    if isinstance(node, Call):
        return f"{node.name}({', '.join(to_text(a) for a in node.args)})"
    if isinstance(node, Neg):
        inner = to_text(node.operand, _UNARY)
        return "-" + (f"({inner})" if inner.startswith("-") else inner)
    if isinstance(node, Arith):
        parts = [to_text(node.first, node.level)]
        parts += [f"{op} {to_text(x, node.level + 1)}" for op, x in node.rest]
        return " ".join(parts)
    if isinstance(node, Compare):
        return f"{to_text(node.left, _SUM)} {node.op} {to_text(node.right, _SUM)}"
    if isinstance(node, InList):
        items = ", ".join(to_text(x) for x in node.items)
        return f"{to_text(node.operand, _SUM)} {'NOT IN' if node.negated else 'IN'} ({items})"
    if isinstance(node, Between):
        kw = "NOT BETWEEN" if node.negated else "BETWEEN"
        return (f"{to_text(node.operand, _SUM)} {kw} {to_text(node.low, _SUM)} AND "
                f"{to_text(node.high, _SUM)}")
    if isinstance(node, IsNull):
        return f"{to_text(node.operand, _SUM)} IS {'NOT NULL' if node.negated else 'NULL'}"
    if isinstance(node, Not):
        return "NOT " + to_text(node.operand, _NOT)
    if isinstance(node, BoolOp):
        lvl = _level(node)
        return f" {node.op} ".join(to_text(x, lvl + 1 if lvl == _OR else lvl + 1) for x in node.operands)
    raise TypeError(f"not a filter node: {node!r}")  # pragma: no cover


def children(node: Node) -> tuple[Node, ...]:
    """The direct sub-expressions of ``node``, in reading order."""
    if isinstance(node, Call):
        return node.args
    if isinstance(node, (Neg, Not, IsNull)):
        return (node.operand,)
    if isinstance(node, Arith):
        return (node.first, *(x for _, x in node.rest))
    if isinstance(node, Compare):
        return (node.left, node.right)
    if isinstance(node, InList):
        return (node.operand, *node.items)
    if isinstance(node, Between):
        return (node.operand, node.low, node.high)
    if isinstance(node, BoolOp):
        return node.operands
    return ()


@dataclass(frozen=True, eq=False)
class FilterAst:
    """A parsed filter: the syntax tree and the text it came from.

    Attributes
    ----------
    root : Node
        The top of the tree.
    text : str
        The filter as the user wrote it.
    """

    root: Node
    text: str

    @property
    def normalized(self) -> str:
        """The canonical text (see :func:`to_text`)."""
        return to_text(self.root)

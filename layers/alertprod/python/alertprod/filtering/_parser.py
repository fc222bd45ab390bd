"""Tokenizer and recursive-descent parser of the filter language (interfaces.md §4, docs/filters.md).

Hand-written rather than generated with lark, for three reasons: the 50-level nesting limit is
enforced while descending (the parser never builds, nor recurses into, anything deeper, and
names the token that opens level 51); every refusal names the token and its 0-based position in
the user's own terms ("comparisons do not chain", "comments are not part of the language")
rather than in a generated parser's terminal names; and it is linear in the input (one token of
look-ahead, no backtracking) with no dependency in the Lambda layer. The tests check it
against the same grammar written for lark (tests/unit/filtering/test_filtering_grammar.py).

The tokenizer is ASCII-only outside string literals: any other character (a Cyrillic look-alike,
a non-breaking space, ``;``, ``"``, ``#``) is refused where it stands.
"""

from __future__ import annotations

import math
import re
from typing import NamedTuple

from alertprod.errors import FilterError
from alertprod.filtering.syntax import (
    Arith,
    Between,
    BoolOp,
    Call,
    Compare,
    Field,
    FilterAst,
    InList,
    IsNull,
    Literal,
    Neg,
    Node,
    Not,
)

__all__ = ["parse_filter", "MAX_CHARS", "MAX_NESTING", "KEYWORDS"]

#: Longest filter accepted, characters.
MAX_CHARS = 10_000
#: Deepest nesting accepted: each parenthesis pair (grouping, call, IN list), NOT and unary minus
#: opens one level.
MAX_NESTING = 50
#: Reserved words (case-insensitive).
KEYWORDS = frozenset({"AND", "OR", "NOT", "IN", "BETWEEN", "IS", "NULL", "TRUE", "FALSE"})

_INT64_MAX = 2**63 - 1

#: SQL words users bring from other brokers' filters; refused by name (they are not fields).
SQL_WORDS = frozenset({
    "SELECT", "FROM", "WHERE", "UNION", "DROP", "INSERT", "UPDATE", "DELETE", "CREATE", "ALTER",
    "LIKE", "ILIKE", "GLOB", "REGEXP", "MATCH", "EXISTS", "CASE", "WHEN", "THEN", "ELSE", "END",
    "CAST", "JOIN", "LIMIT", "ORDER", "GROUP", "HAVING", "AS", "ESCAPE", "COLLATE", "XOR", "DIV",
    "MOD", "ALL", "ANY", "SOME",
})


class Token(NamedTuple):
    kind: str   # NUM, STR, NAME, KW, OP, END
    text: str   # as written (KW: upper case)
    pos: int
    value: object = None


_TOKEN_RE = re.compile(r"""
    (?P<ws>[ \t\r\n]+)
  | (?P<comment>--|/\*)
  | (?P<num>(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?)
  | (?P<name>[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*)
  | (?P<str>')
  | (?P<op><>|!=|<=|>=|[=<>+\-*/(),])
""", re.VERBOSE | re.ASCII)


def _number(text: str, pos: int) -> Token:
    value = float(text)
    if not math.isfinite(value):
        raise FilterError("numeric literal outside the float64 range", position=pos, token=text)
    if re.fullmatch(r"[0-9]+", text):
        digits = text.lstrip("0") or "0"
        if len(digits) <= 19 and int(digits) <= _INT64_MAX:
            return Token("NUM", text, pos, int(digits))
    return Token("NUM", text, pos, value)


def _string(text: str, pos: int) -> tuple[Token, int]:
    i, parts = pos + 1, []
    while True:
        j = text.find("'", i)
        if j < 0:
            raise FilterError("unterminated string literal", position=pos, token=text[pos:])
        parts.append(text[i:j])
        nul = text.find("\x00", i, j)
        if nul >= 0:
            raise FilterError("a NUL character cannot appear in a string literal", position=nul,
                              token="\x00")
        if text.startswith("''", j):
            parts.append("'")
            i = j + 2
            continue
        return Token("STR", text[pos:j + 1], pos, "".join(parts)), j + 1


def tokenize(text: str) -> list[Token]:
    """The tokens of ``text``, ending with an ``END`` token; refuses characters outside the language."""
    tokens, i, n = [], 0, len(text)
    while i < n:
        m = _TOKEN_RE.match(text, i)
        if m is None:
            ch = text[i]
            if ch == ".":
                raise FilterError("'.' outside a field name: attribute access is not part of the "
                                  "language", position=i, token=ch)
            raise FilterError(f"character {ch!r} (U+{ord(ch):04X}) is not part of the language",
                              position=i, token=ch)
        kind = m.lastgroup
        if kind == "comment":
            raise FilterError("comments are not part of the language", position=i, token=m.group())
        if kind == "num":
            tokens.append(_number(m.group(), i))
        elif kind == "name":
            word = m.group()
            upper = word.upper()
            if upper in SQL_WORDS:
                raise FilterError(f"{upper} is not part of the filter language (docs/filters.md "
                                  "lists what is)", position=i, token=word)
            tokens.append(Token("KW", upper, i) if upper in KEYWORDS else Token("NAME", word, i))
        elif kind == "str":
            tok, end = _string(text, i)
            tokens.append(tok)
            i = end
            continue
        elif kind == "op":
            tokens.append(Token("OP", m.group(), i))
        i = m.end()
    tokens.append(Token("END", "", n))
    return tokens


_COMPARE = {"=", "!=", "<>", "<", "<=", ">", ">="}


class _Parser:
    def __init__(self, text: str):
        self.tokens = tokenize(text)
        self.i = 0
        self.depth = 0

    # -- helpers -----------------------------------------------------------------------------
    @property
    def tok(self) -> Token:
        return self.tokens[self.i]

    def advance(self) -> Token:
        tok = self.tokens[self.i]
        self.i += 1
        return tok

    def is_kw(self, word: str) -> bool:
        return self.tok.kind == "KW" and self.tok.text == word

    def is_op(self, op: str) -> bool:
        return self.tok.kind == "OP" and self.tok.text == op

    def error(self, message: str, tok: Token | None = None) -> FilterError:
        tok = tok or self.tok
        return FilterError(message, position=tok.pos, token=tok.text)

    def expect_op(self, op: str, context: str) -> Token:
        if not self.is_op(op):
            raise self.error(f"expected '{op}' {context}, found {_describe(self.tok)}")
        return self.advance()

    def enter(self, tok: Token) -> None:
        self.depth += 1
        if self.depth > MAX_NESTING:
            raise self.error(f"nesting deeper than {MAX_NESTING} levels", tok)

    # -- grammar -----------------------------------------------------------------------------
    def parse(self) -> Node:
        node = self.or_expr()
        if self.tok.kind != "END":
            if self.tok.text in _COMPARE or self.tok.text in ("IN", "BETWEEN", "IS"):
                raise self.error(f"comparisons do not chain: {self.tok.text!r} cannot follow a "
                                 "comparison (join two comparisons with AND)")
            if self.is_op(")"):
                raise self.error("unbalanced ')'")
            raise self.error(f"unexpected {_describe(self.tok)}: expected AND, OR or the end")
        return node

    def or_expr(self) -> Node:
        first = self.and_expr()
        ops = [first]
        while self.is_kw("OR"):
            self.advance()
            ops.append(self.and_expr())
        return _chain("OR", ops)

    def and_expr(self) -> Node:
        first = self.not_expr()
        ops = [first]
        while self.is_kw("AND"):
            self.advance()
            ops.append(self.not_expr())
        return _chain("AND", ops)

    def not_expr(self) -> Node:
        if self.is_kw("NOT"):
            tok = self.advance()
            self.enter(tok)
            node = Not(self.not_expr(), tok.pos)
            self.depth -= 1
            return node
        return self.predicate()

    def predicate(self) -> Node:
        left = self.sum()
        tok = self.tok
        if tok.kind == "OP" and tok.text in _COMPARE:
            self.advance()
            op = "!=" if tok.text == "<>" else tok.text
            return Compare(op, left, self.sum(), tok.pos)
        if tok.kind != "KW":
            return left
        negated = False
        if tok.text == "NOT":
            nxt = self.tokens[self.i + 1]
            if not (nxt.kind == "KW" and nxt.text in ("IN", "BETWEEN")):
                raise self.error("NOT here must be followed by IN or BETWEEN "
                                 f"(found {_describe(nxt)})")
            self.advance()
            negated = True
        if self.is_kw("IN"):
            self.advance()
            open_tok = self.expect_op("(", "after IN")
            self.enter(open_tok)
            items = [self.or_expr()]
            while self.is_op(","):
                self.advance()
                items.append(self.or_expr())
            self.expect_op(")", "to close the IN list")
            self.depth -= 1
            return InList(left, tuple(items), negated, tok.pos)
        if self.is_kw("BETWEEN"):
            self.advance()
            low = self.sum()
            if not self.is_kw("AND"):
                raise self.error(f"expected AND in BETWEEN, found {_describe(self.tok)}")
            self.advance()
            return Between(left, low, self.sum(), negated, tok.pos)
        if tok.text == "IS":
            self.advance()
            negated = self.is_kw("NOT")
            if negated:
                self.advance()
            if not self.is_kw("NULL"):
                raise self.error(f"expected NULL after IS{' NOT' if negated else ''}, "
                                 f"found {_describe(self.tok)}")
            self.advance()
            return IsNull(left, negated, tok.pos)
        return left

    def sum(self) -> Node:
        return self._arith(self.product, "+-")

    def product(self) -> Node:
        return self._arith(self.unary, "*/")

    def _arith(self, operand, ops: str) -> Node:
        first = operand()
        rest = []
        while self.tok.kind == "OP" and self.tok.text in ops:
            op = self.advance().text
            rest.append((op, operand()))
        if not rest:
            return first
        if isinstance(first, Arith) and first.rest[0][0] in ops:  # (a + b) + c reads as a + b + c
            return Arith(first.first, first.rest + tuple(rest), first.pos)
        return Arith(first, tuple(rest), first.pos)

    def unary(self) -> Node:
        if self.is_op("-"):
            tok = self.advance()
            self.enter(tok)
            operand = self.unary()
            self.depth -= 1
            if isinstance(operand, Literal) and operand.kind in ("int", "float"):
                value = -operand.value
                kind = "int" if isinstance(value, int) else "float"
                return Literal(value, kind, tok.pos)
            return Neg(operand, tok.pos)
        if self.is_op("+"):
            raise self.error("unary plus is not part of the language")
        return self.primary()

    def primary(self) -> Node:
        tok = self.tok
        if tok.kind == "NUM":
            self.advance()
            return Literal(tok.value, "int" if isinstance(tok.value, int) else "float", tok.pos)
        if tok.kind == "STR":
            self.advance()
            return Literal(tok.value, "str", tok.pos)
        if tok.kind == "KW" and tok.text in ("TRUE", "FALSE", "NULL"):
            self.advance()
            if tok.text == "NULL":
                return Literal(None, "null", tok.pos)
            return Literal(tok.text == "TRUE", "bool", tok.pos)
        if tok.kind == "NAME":
            self.advance()
            if self.is_op("("):
                open_tok = self.advance()
                self.enter(open_tok)
                args = []
                if not self.is_op(")"):
                    args.append(self.or_expr())
                    while self.is_op(","):
                        self.advance()
                        args.append(self.or_expr())
                self.expect_op(")", f"to close the arguments of {tok.text}()")
                self.depth -= 1
                return Call(tok.text.lower(), tuple(args), tok.pos)
            return Field(tok.text, tok.pos)
        if self.is_op("("):
            self.advance()
            self.enter(tok)
            node = self.or_expr()
            self.expect_op(")", "to close '('")
            self.depth -= 1
            return node
        if tok.kind == "END":
            raise self.error("the expression ends where a value is expected")
        raise self.error(f"unexpected {_describe(tok)} where a value is expected")


def _chain(op: str, operands: list[Node]) -> Node:
    if len(operands) == 1:
        return operands[0]
    flat: list[Node] = []
    for x in operands:  # (a OR b) OR c reads as a OR b OR c (associative in three-valued logic)
        flat.extend(x.operands if isinstance(x, BoolOp) and x.op == op else (x,))
    return BoolOp(op, tuple(flat), operands[0].pos)


def _describe(tok: Token) -> str:
    if tok.kind == "END":
        return "the end of the expression"
    if tok.kind == "KW":
        return f"keyword {tok.text}"
    return repr(tok.text if len(tok.text) <= 40 else tok.text[:37] + "...")


def parse_filter(text: str) -> FilterAst:
    """Parse a filter into its syntax tree (no type checking: :func:`compile_filter` does that).

    Parameters
    ----------
    text : str
        The filter, at most :data:`MAX_CHARS` characters.

    Returns
    -------
    FilterAst

    Raises
    ------
    FilterError
        Naming the offending token and its 0-based character position.
    """
    if not isinstance(text, str):
        raise FilterError(f"a filter is text, not {type(text).__name__}", position=0, token="")
    if len(text) > MAX_CHARS:
        raise FilterError(f"the expression is {len(text):,} characters long; the limit is "
                          f"{MAX_CHARS:,}", position=MAX_CHARS, token=text[MAX_CHARS:MAX_CHARS + 20])
    if not text.strip(" \t\r\n"):
        raise FilterError("the expression is empty", position=0, token="")
    return FilterAst(_Parser(text).parse(), text)

"""Grammar fuzzing: any text is refused or evaluated, quickly, and never raises anything else.

Three generators: arbitrary unicode text; "token soup" — random sequences of the language's own
words, operators, fields and literals, which reach deep into the parser and the type checker;
and the same soups checked against an independent statement of the grammar (interfaces.md §4)
written for lark: the hand-written parser must accept exactly the soups lark's LALR parser
accepts.
"""

from __future__ import annotations

import random
import time

import hypothesis.strategies as st
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from lark import Lark
from lark.exceptions import LarkError

from alertprod.errors import FilterError
from alertprod.filtering import AlertBatch, compile_filter, parse_filter

pytestmark = pytest.mark.unit

GRAMMAR = r"""
?start: or_expr
?or_expr: and_expr (_OR and_expr)*
?and_expr: not_expr (_AND not_expr)*
?not_expr: _NOT not_expr | predicate
?predicate: sum
          | sum COMP sum
          | sum _NOT? _IN "(" or_expr ("," or_expr)* ")"
          | sum _NOT? _BETWEEN sum _AND sum
          | sum _IS _NOT? _NULL
?sum: product ((PLUS | MINUS) product)*
?product: unary ((STAR | SLASH) unary)*
?unary: MINUS unary | primary
?primary: NUMBER | STRING | _TRUE | _FALSE | _NULL
        | NAME "(" [or_expr ("," or_expr)*] ")"
        | NAME
        | "(" or_expr ")"
_OR: "OR"i
_AND: "AND"i
_NOT: "NOT"i
_IN: "IN"i
_BETWEEN: "BETWEEN"i
_IS: "IS"i
_NULL: "NULL"i
_TRUE: "TRUE"i
_FALSE: "FALSE"i
COMP: "<>" | "!=" | "<=" | ">=" | "=" | "<" | ">"
PLUS: "+"
MINUS: "-"
STAR: "*"
SLASH: "/"
NUMBER: /([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][+-]?[0-9]+)?/
STRING: /'([^']|'')*'/
NAME: /(?!(?i:and|or|not|in|between|is|null|true|false)(?![A-Za-z0-9_.]))[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*/
%ignore /[ \t\r\n]+/
"""

LARK = Lark(GRAMMAR, parser="lalr", lexer="contextual")

VOCAB = ["diaSource.snr", "diaSource.band", "diaObject.r_psfFluxMean", "diaSource.isDipole",
         "diaSourceId", "ssSource.designation", "unknown.field", "AND", "or", "Not", "IN", "NOT IN",
         "BETWEEN", "IS", "IS NOT", "NULL", "TRUE", "false", "=", "!=", "<>", "<", "<=", ">", ">=",
         "+", "-", "*", "/", "(", ")", "(", ")", ",", "1", "2.5", "1e-3", "0", "'r'", "'it''s'",
         "abs", "sqrt", "log10", "cone", "COne", "days_since_first_detection", "in_watchlist"]


@pytest.fixture(scope="module")
def batch(filter_alerts):
    return AlertBatch.from_records(filter_alerts[:60])


def _refused_or_evaluated(text: str, batch: AlertBatch) -> bool:
    t0 = time.perf_counter()
    try:
        compiled = compile_filter(text)
    except FilterError as exc:
        assert 0 <= exc.position <= len(text)
        accepted = False
    else:
        out = compiled.evaluate(batch)
        assert out.dtype == bool and out.shape == (len(batch),)
        accepted = True
    assert time.perf_counter() - t0 < 2.0
    return accepted


_SETTINGS = settings(deadline=None, database=None,
                     suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


@_SETTINGS
@given(text=st.text(max_size=200))
def test_any_text_is_refused_or_evaluated(text, batch):
    _refused_or_evaluated(text, batch)


@_SETTINGS
@given(text=st.text(alphabet=st.sampled_from("()'=<>!-+*/., abcdeNOTIRSLU0123456789\"\n;"), max_size=300))
def test_any_text_of_the_languages_characters_is_refused_or_evaluated(text, batch):
    _refused_or_evaluated(text, batch)


@settings(max_examples=400, deadline=None, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(words=st.lists(st.sampled_from(VOCAB), min_size=1, max_size=25))
def test_token_soup_is_refused_or_evaluated_and_the_parser_agrees_with_the_lark_grammar(words, batch):
    text = " ".join(words)
    _refused_or_evaluated(text, batch)
    try:
        parse_filter(text)
        ours = True
    except FilterError:
        ours = False
    try:
        LARK.parse(text)
        theirs = True
    except LarkError:
        theirs = False
    assert ours == theirs, f"{text!r}: hand-written parser {'accepts' if ours else 'refuses'}, lark does not"


def test_the_lark_grammar_and_the_parser_agree_on_the_contract_examples():
    for text in ["NOT diaSource.snr > 5", "diaSource.snr BETWEEN 1 AND 2 AND diaSource.snr IN (1, 2)",
                 "a.b IS NOT NULL OR -x.y * 2 <> 3", "cone(1, 2, 3)", "f()"]:
        parse_filter(text)
        LARK.parse(text)
    for text in ["0 < x < 10", "x = = 1", "NOT", "x IN ()"]:
        with pytest.raises(FilterError):
            parse_filter(text)
        with pytest.raises(LarkError):
            LARK.parse(text)


def test_evaluation_is_bounded_on_the_largest_filters(batch):
    wide = " OR ".join(f"diaSource.snr > {k}" for k in range(400))
    many = "diaSource.visit IN (" + ", ".join(str(k) for k in range(1500)) + ")"
    for text in (wide, many):
        assert len(text) <= 10_000
        t0 = time.perf_counter()
        assert compile_filter(text).evaluate(batch).dtype == np.bool_
        assert time.perf_counter() - t0 < 1.0


def test_five_thousand_random_soups_parse_alike_in_both_parsers():
    rnd = random.Random(20261205)
    accepted = 0
    for _ in range(5000):
        text = " ".join(rnd.choice(VOCAB) for _ in range(rnd.randint(1, 9)))
        try:
            parse_filter(text)
            ours = True
        except FilterError:
            ours = False
        try:
            LARK.parse(text)
            theirs = True
        except LarkError:
            theirs = False
        assert ours == theirs, text
        accepted += ours
    assert accepted > 200  # the soups reach valid filters, not only refusals

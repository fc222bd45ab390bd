"""Three evaluators agree on hundreds of generated filters over real alert records.

Hypothesis builds a random, well-typed expression as a plain tuple tree (this file's own
representation). From the tree the test renders:

(a) filter text — with minimal parentheses by the contract's precedence, or fully
    parenthesised, keywords in random case — compiled and run by ``alertprod.filtering``;
(b) nothing: a per-alert reference evaluator below walks the tree itself in plain Python
    (``None`` as NULL, SQL's truth tables), sharing no code with the engine — not even its parser;
(c) SQL, run by SQLite (stdlib ``sqlite3``) over a table of the same alert columns: the approach
    of Lasair's filters.

All three must select the same alerts. Nulls are everywhere in the data (about one nullable
value in five, no diaObject on solar-system alerts).
"""

from __future__ import annotations

import math
import random
import sqlite3

import hypothesis.strategies as st
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings

from alertprod.filtering import AlertBatch, compile_filter

pytestmark = pytest.mark.unit

NUM_FIELDS = ("diaSource.snr", "diaSource.psfFlux", "diaSource.reliability", "diaSource.apFlux",
              "diaSource.scienceFlux", "diaSource.extendedness", "diaSource.ra", "diaSource.dec",
              "diaSource.midpointMjdTai", "diaSource.visit", "diaSource.detector",
              "diaSource.psfNdata", "diaObject.r_psfFluxMean", "diaObject.g_psfFluxMean",
              "diaObject.nDiaSources", "diaObject.firstDiaSourceMjdTai", "ssSource.phaseAngle",
              "ssSource.diaDistanceRank")
STR_FIELDS = ("diaSource.band", "diaSource.reliabilityVersion", "ssSource.designation",
              "observation_reason", "target_name")
BOOL_FIELDS = ("diaSource.isDipole", "diaSource.pixelFlags_cr", "diaSource.centroid_flag",
               "diaSource.psfFlux_flag")
STR_VALUES = ("u", "g", "r", "i", "z", "y", "v1", "v2", "it's", "", "O'Brien", "wfd", "field 7")
NUM_VALUES = (0, 1, 2, 3, 5, 10, -3.5, 0.5, 1000, 500, -500, 2.5e-3, 1e300, 60810, 5.0)


# -- generation: ("kind", ...) tuples -----------------------------------------------------------
def num_literal():
    return st.one_of(st.sampled_from(NUM_VALUES),
                     st.integers(-50, 50),
                     st.floats(-1e4, 1e4, allow_nan=False).map(lambda x: round(x, 3))).map(lambda v: ("lit", v))


def num_expr(depth: int):
    fields = st.sampled_from(NUM_FIELDS).map(lambda f: ("field", f))
    leaves = st.one_of(fields, fields, fields, num_literal(), num_literal(),
                       st.sampled_from([("lit", None), ("days",)]))
    if depth <= 0:
        return leaves
    sub = num_expr(depth - 1)
    return st.one_of(
        leaves, leaves,
        st.tuples(st.just("arith"), st.sampled_from("+-*/"), sub, sub),
        st.tuples(st.just("neg"), sub),
        st.tuples(st.just("fn"), st.sampled_from(["abs", "sqrt", "log10"]), sub),
    )


def str_expr():
    fields = st.sampled_from(STR_FIELDS).map(lambda f: ("field", f))
    return st.one_of(fields, fields, st.sampled_from(STR_VALUES).map(lambda v: ("lit", v)),
                     st.sampled_from(STR_VALUES + (None,)).map(lambda v: ("lit", v)))


def bool_value():
    return st.one_of(st.sampled_from(BOOL_FIELDS).map(lambda f: ("field", f)),
                     st.sampled_from([True, False]).map(lambda v: ("lit", v)))


CMP = ["=", "!=", "<>", "<", "<=", ">", ">="]


def condition(depth: int):
    n = num_expr(min(depth, 2))
    s = str_expr()
    leaves = st.one_of(
        st.tuples(st.just("cmp"), st.sampled_from(CMP), n, n),
        st.tuples(st.just("cmp"), st.sampled_from(CMP), s, s),
        st.tuples(st.just("cmp"), st.sampled_from(["=", "!=", "<>"]), bool_value(), bool_value()),
        st.tuples(st.just("in"), st.booleans(), n, st.lists(n, min_size=1, max_size=4)),
        st.tuples(st.just("in"), st.booleans(), s, st.lists(s, min_size=1, max_size=4)),
        st.tuples(st.just("in"), st.booleans(), n,   # constant lists (the engine's fast path)
                  st.lists(st.one_of(num_literal(), st.just(("lit", None))), min_size=1, max_size=5)),
        st.tuples(st.just("in"), st.booleans(), s,
                  st.lists(st.sampled_from(STR_VALUES + (None,)).map(lambda v: ("lit", v)), min_size=1, max_size=5)),
        st.tuples(st.just("between"), st.booleans(), n, n, n),
        st.tuples(st.just("isnull"), st.booleans(), st.one_of(n, s, bool_value())),
        st.tuples(st.just("cone"), st.floats(-10, 370), st.floats(-95, 95),
                  st.sampled_from([0.5, 30.0, 3600.0, 36000.0, 1e6, -1.0]), st.booleans()),
        st.sampled_from([True, False, None]).map(lambda v: ("lit", v)),
    )
    if depth <= 0:
        return leaves
    sub = condition(depth - 1)
    return st.one_of(
        leaves,
        st.tuples(st.just("not"), sub),
        st.tuples(st.just("bool"), st.sampled_from(["AND", "OR"]), st.lists(sub, min_size=2, max_size=4)),
        st.tuples(st.just("bool"), st.sampled_from(["AND", "OR"]), st.lists(sub, min_size=2, max_size=3)),
        st.tuples(st.just("cmp"), st.sampled_from(["=", "!="]), sub, bool_value()),
    )


# -- (a) filter text ---------------------------------------------------------------------------
PREC = {"or": 1, "and": 2, "not": 3, "pred": 4, "sum": 5, "prod": 6, "neg": 7, "atom": 8}


def _kw(word: str, rnd: random.Random) -> str:
    return "".join(c.upper() if rnd.random() < 0.5 else c.lower() for c in word)


def _lit_text(v) -> str:
    if v is None:
        return "NULL"
    if v is True or v is False:
        return "TRUE" if v else "FALSE"
    if isinstance(v, str):
        return "'" + v.replace("'", "''") + "'"
    return repr(v)


def to_filter(e, rnd: random.Random, full: bool) -> tuple[str, int]:
    """(text, precedence level of the text)."""
    k = e[0]

    def sub(x, need):
        text, lvl = to_filter(x, rnd, full)
        return f"({text})" if full and lvl < PREC["atom"] or lvl < need else text

    if k == "lit":
        lvl = PREC["neg"] if isinstance(e[1], (int, float)) and not isinstance(e[1], bool) and e[1] < 0 else PREC["atom"]
        return (_kw(_lit_text(e[1]), rnd) if e[1] is None or isinstance(e[1], bool) else _lit_text(e[1])), lvl
    if k == "field":
        return e[1], PREC["atom"]
    if k == "days":
        return _kw("days_since_first_detection", rnd) + "()", PREC["atom"]
    if k == "arith":
        lvl = PREC["sum"] if e[1] in "+-" else PREC["prod"]
        return f"{sub(e[2], lvl)} {e[1]} {sub(e[3], lvl + 1)}", lvl
    if k == "neg":
        inner = sub(e[1], PREC["neg"])
        return "-" + (f"({inner})" if inner.startswith("-") else inner), PREC["neg"]
    if k == "fn":
        return f"{_kw(e[1], rnd)}({to_filter(e[2], rnd, full)[0]})", PREC["atom"]
    if k == "cmp":
        return f"{sub(e[2], PREC['sum'])} {e[1]} {sub(e[3], PREC['sum'])}", PREC["pred"]
    if k == "in":
        items = ", ".join(to_filter(x, rnd, full)[0] for x in e[3])
        return f"{sub(e[2], PREC['sum'])} {_kw('NOT IN' if e[1] else 'IN', rnd)} ({items})", PREC["pred"]
    if k == "between":
        kw = _kw("NOT BETWEEN" if e[1] else "BETWEEN", rnd)
        return (f"{sub(e[2], PREC['sum'])} {kw} {sub(e[3], PREC['sum'])} {_kw('AND', rnd)} "
                f"{sub(e[4], PREC['sum'])}"), PREC["pred"]
    if k == "isnull":
        return f"{sub(e[2], PREC['sum'])} {_kw('IS NOT NULL' if e[1] else 'IS NULL', rnd)}", PREC["pred"]
    if k == "cone":
        text = f"{_kw('cone', rnd)}({e[1]!r}, {e[2]!r}, {e[3]!r})"
        return (f"{_kw('NOT', rnd)} {text}", PREC["not"]) if e[4] else (text, PREC["atom"])
    if k == "not":
        return f"{_kw('NOT', rnd)} {sub(e[1], PREC['not'])}", PREC["not"]
    if k == "bool":
        lvl = PREC["or"] if e[1] == "OR" else PREC["and"]
        return f" {_kw(e[1], rnd)} ".join(sub(x, lvl + 1) for x in e[2]), lvl
    raise AssertionError(k)


# -- (b) the per-alert reference ---------------------------------------------------------------
def _get(record, path):
    if "." in path:
        rec, name = path.split(".")
        value = (record.get(rec) or {}).get(name)
    else:
        value = record.get(path)
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _fin(x):
    return x if x is not None and math.isfinite(x) else None


def ref(e, r):
    k = e[0]
    if k == "lit":
        return e[1]
    if k == "field":
        return _get(r, e[1])
    if k == "days":
        a, b = _get(r, "diaSource.midpointMjdTai"), _get(r, "diaObject.firstDiaSourceMjdTai")
        return None if a is None or b is None else _fin(float(a) - float(b))
    if k == "arith":
        a, b = ref(e[2], r), ref(e[3], r)
        if a is None or b is None:
            return None
        a, b = float(a), float(b)
        if e[1] == "/":
            return None if b == 0 else _fin(a / b)
        return _fin({"+": a + b, "-": a - b, "*": a * b}[e[1]])
    if k == "neg":
        a = ref(e[1], r)
        return None if a is None else -float(a)
    if k == "fn":
        a = ref(e[2], r)
        if a is None:
            return None
        if e[1] == "abs":
            return abs(float(a))
        if e[1] == "sqrt":
            return None if a < 0 else math.sqrt(a)
        return None if a <= 0 else math.log10(a)
    if k == "cmp":
        a, b = ref(e[2], r), ref(e[3], r)
        if a is None or b is None:
            return None
        return {"=": a == b, "!=": a != b, "<>": a != b, "<": a < b, "<=": a <= b, ">": a > b,
                ">=": a >= b}[e[1]]
    if k == "in":
        x = ref(e[2], r)
        vals = [ref(i, r) for i in e[3]]
        if x is None:
            out = None
        elif any(v is not None and v == x for v in vals):
            out = True
        else:
            out = None if any(v is None for v in vals) else False
        return (None if out is None else not out) if e[1] else out
    if k == "between":
        x, lo, hi = ref(e[2], r), ref(e[3], r), ref(e[4], r)
        out = _and([None if x is None or lo is None else x >= lo, None if x is None or hi is None else x <= hi])
        return (None if out is None else not out) if e[1] else out
    if k == "isnull":
        return (ref(e[2], r) is not None) if e[1] else (ref(e[2], r) is None)
    if k == "cone":
        ra, dec = _get(r, "diaSource.ra"), _get(r, "diaSource.dec")
        d1, d2 = math.radians(dec), math.radians(e[2])
        h = (math.sin((d2 - d1) / 2) ** 2
             + math.cos(d1) * math.cos(d2) * math.sin(math.radians(e[1] - ra) / 2) ** 2)
        out = 2 * math.asin(math.sqrt(min(1.0, h))) <= math.radians(e[3] / 3600)
        return not out if e[4] else out
    if k == "not":
        a = ref(e[1], r)
        return None if a is None else not a
    if k == "bool":
        vals = [ref(x, r) for x in e[2]]
        return _and(vals) if e[1] == "AND" else _or(vals)
    raise AssertionError(k)


def _and(vals):
    if any(v is False for v in vals):
        return False
    return None if any(v is None for v in vals) else True


def _or(vals):
    if any(v is True for v in vals):
        return True
    return None if any(v is None for v in vals) else False


# -- (c) SQL -----------------------------------------------------------------------------------
def _col(path):
    return '"' + path + '"'


def to_sql(e) -> str:
    k = e[0]
    if k == "lit":
        return _lit_text(e[1]) if not isinstance(e[1], float) else repr(e[1])
    if k == "field":
        return _col(e[1])
    if k == "days":
        return _finite_sql(f"{_col('diaSource.midpointMjdTai')} - {_col('diaObject.firstDiaSourceMjdTai')}")
    if k == "arith":
        return _finite_sql(f"CAST({to_sql(e[2])} AS REAL) {e[1]} CAST({to_sql(e[3])} AS REAL)")
    if k == "neg":
        return f"(-CAST({to_sql(e[1])} AS REAL))"
    if k == "fn":
        return f"{e[1]}(CAST({to_sql(e[2])} AS REAL))"
    if k == "cmp":
        return f"(({to_sql(e[2])}) {e[1]} ({to_sql(e[3])}))"
    if k == "in":
        return f"(({to_sql(e[2])}) {'NOT IN' if e[1] else 'IN'} ({', '.join(to_sql(x) for x in e[3])}))"
    if k == "between":
        return (f"(({to_sql(e[2])}) {'NOT BETWEEN' if e[1] else 'BETWEEN'} ({to_sql(e[3])}) "
                f"AND ({to_sql(e[4])}))")
    if k == "isnull":
        return f"(({to_sql(e[2])}) {'IS NOT NULL' if e[1] else 'IS NULL'})"
    if k == "cone":
        ra, dec = _col("diaSource.ra"), _col("diaSource.dec")
        h = (f"(sin((radians({e[2]!r}) - radians({dec})) / 2) * sin((radians({e[2]!r}) - radians({dec})) / 2)"
             f" + cos(radians({dec})) * cos(radians({e[2]!r})) * sin(radians({e[1]!r} - {ra}) / 2)"
             f" * sin(radians({e[1]!r} - {ra}) / 2))")
        test = f"(2 * asin(sqrt(min(1.0, {h}))) <= radians({e[3]!r} / 3600.0))"
        return f"(NOT {test})" if e[4] else test
    if k == "not":
        return f"(NOT {to_sql(e[1])})"
    if k == "bool":
        return "(" + f" {e[1]} ".join(to_sql(x) for x in e[2]) + ")"
    raise AssertionError(k)


def _finite_sql(expr: str) -> str:
    # non-finite -> NULL without repeating expr (a correlated scalar subquery)
    return f"(SELECT CASE WHEN abs(v) <= 1.7976931348623157e308 THEN v END FROM (SELECT ({expr}) AS v))"


@pytest.fixture(scope="module")
def database(filter_alerts):
    db = sqlite3.connect(":memory:")
    fields = NUM_FIELDS + STR_FIELDS + BOOL_FIELDS
    db.execute(f"CREATE TABLE alerts (i INTEGER PRIMARY KEY, {', '.join(_col(f) for f in fields)})")
    rows = [(i, *[_get(r, f) for f in fields]) for i, r in enumerate(filter_alerts)]
    db.executemany(f"INSERT INTO alerts VALUES ({', '.join('?' * (len(fields) + 1))})", rows)
    return db


@pytest.fixture(scope="module")
def batch(filter_alerts):
    return AlertBatch.from_records(filter_alerts)


@settings(max_examples=300, deadline=None, database=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                  HealthCheck.too_slow])
@given(expr=condition(3), seed=st.integers(0, 2**32), full=st.booleans())
def test_engine_reference_and_sqlite_select_the_same_alerts(expr, seed, full, filter_alerts, batch, database):
    text, _ = to_filter(expr, random.Random(seed), full)
    compiled = compile_filter(text)
    engine = set(np.flatnonzero(compiled.evaluate(batch)).tolist())
    reference = {i for i, r in enumerate(filter_alerts) if ref(expr, r) is True}
    sql = to_sql(expr)
    sqlite = {i for (i,) in database.execute(f"SELECT i FROM alerts WHERE {sql}")}
    assert engine == reference, f"engine vs reference on {text!r}"
    assert engine == sqlite, f"engine vs SQLite on {text!r} / {sql}"
    # the normalised text is a fixed point and selects the same alerts
    again = compile_filter(compiled.normalized)
    assert again.normalized == compiled.normalized
    assert np.array_equal(again.evaluate(batch), compiled.evaluate(batch))

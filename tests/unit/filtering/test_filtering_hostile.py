"""Hostile filters: every one is refused with a FilterError naming the token, none runs, none hangs.

The cases are what a user (or an attacker) pastes into a filter box: Python attribute walks and
imports, SQL injection shapes, comments, look-alike characters, literals and expressions over
the limits, unknown names, type confusions. Each must be refused before anything is evaluated,
within a fraction of a second, with ``.token`` being the offending text at ``.position``.
"""

from __future__ import annotations

import ast
import time
from pathlib import Path

import pytest

import alertprod.filtering
from alertprod.errors import AlertprodError, FilterError
from alertprod.filtering import MAX_CHARS, MAX_NESTING, compile_filter, parse_filter

pytestmark = pytest.mark.unit

# (filter, the token the error must name)
HOSTILE = [
    # attribute walks and Python
    ("diaSource.__class__ = 1", "diaSource.__class__"),
    ("diaSource.snr.__class__.__mro__ > 1", "diaSource.snr.__class__.__mro__"),
    ("__import__('os').system('touch pwned') = 0", "."),
    ("__import__('os') = 0", "__import__"),
    ("eval('1') = 1", "eval"),
    ("exec('import os') IS NULL", "exec"),
    ("getattr(diaSource, 'snr') > 1", "getattr"),
    ("().__class__.__bases__[0] = 1", "."),
    ("diaSource.snr > 5 AND (1).real = 1", "."),
    ("diaSource['snr'] > 5", "["),
    ("lambda: 1", ":"),
    ("import os", "os"),
    ("diaSource.snr > 5; import os", ";"),
    ("__builtins__ = 1", "__builtins__"),
    ("diaSource.snr > 5 and os.system('ls') = 0", "os.system"),
    ("diaSource.snr if 1 else 2", "else"),
    ("diaSource.snr > 5 if 1", "if"),
    ("[x for x in diaSource] = 1", "["),
    ("f'{diaSource}' = 1", "'{diaSource}'"),
    ("diaSource.snr ** 2 > 1", "*"),
    # SQL injection shapes
    ("diaSource.band = 'r'; DROP TABLE alerts", ";"),
    ("diaSource.band = 'r' OR '1'='1", "'1"),
    ("'; DROP TABLE alerts; --", "'; DROP TABLE alerts; --"),
    ("diaSource.band = 'r' UNION SELECT * FROM users", "UNION"),
    ("diaSource.snr > 5) OR (1 = 1", ")"),
    ("diaSource.band = \"r\"", '"'),
    ("diaSource.band LIKE 'r%'", "LIKE"),
    ("diaSource.snr > (SELECT max(snr) FROM alerts)", "SELECT"),
    ("diaSource.snr > 5 AND EXISTS (1)", "EXISTS"),
    # comments
    ("diaSource.snr > 5 -- and more", "--"),
    ("diaSource.snr > 5 /* comment */", "/*"),
    ("diaSource.snr > 5 # comment", "#"),
    ("diaSource.snr >--5", "--"),
    # characters outside the language, unicode look-alikes
    ("diaSource.snr ＞ 5", "＞"),
    ("diаSource.snr > 5", "а"),           # Cyrillic a
    ("diaSource.snr >\u00a05", "\u00a0"),    # no-break space
    ("diaSource.snr > ５", "５"),          # full-width digit
    ("diaSource.snr\u200b > 5", "\u200b"),  # zero-width space
    ("diaSource.snr > 5 ∧ diaSource.snr < 9", "∧"),
    ("diaSource.band = ‘r’", "‘"),
    ("diaSource.snr > 5\x00", "\x00"),
    # literals and sizes over the limits
    ("diaSource.snr > 1e400", "1e400"),
    ("diaSource.snr > " + "9" * 400, "9" * 400),
    ("diaSource.snr > -1e309", "1e309"),
    ("diaSource.snr > " + "0" * 5000 + "1e400", "0" * 5000 + "1e400"),
    ("(" * (MAX_NESTING + 1) + "diaSource.snr > 5" + ")" * (MAX_NESTING + 1), "("),
    ("NOT " * (MAX_NESTING + 1) + "diaSource.snr > 5", "NOT"),
    ("diaSource.snr > " + "-" * 2 + "5", "--"),
    ("diaSource.snr > " + "- " * (MAX_NESTING + 1) + "5", "-"),
    ("abs(" * (MAX_NESTING + 1) + "1" + ")" * (MAX_NESTING + 1) + " > 0", "("),
    # unknown fields and functions, non-scalar fields
    ("diaSource.SNR > 5", "diaSource.SNR"),
    ("snr > 5", "snr"),
    ("diaSource > 5", "diaSource"),
    ("prvDiaSources.snr > 5", "prvDiaSources.snr"),
    ("cutoutDifference IS NULL", "cutoutDifference"),
    ("mpc_orbits.a > 1", "mpc_orbits.a"),
    ("ln(diaSource.snr) > 1", "ln"),
    ("sleep(100) IS NULL", "sleep"),
    ("in_watchlist('nope')", "'nope'"),
    ("in_watchlist(diaSource.band)", "diaSource.band"),
    ("cone(1, 2) ", "cone"),
    # type mismatches and non-conditions
    ("diaSource.band > 5", "5"),
    ("diaSource.snr = 'r'", "'r'"),
    ("diaSource.snr", "diaSource.snr"),
    ("diaSource.isDipole", "diaSource.isDipole"),
    ("5", "5"),
    ("'text'", "'text'"),
    ("diaSource.snr + 1", "diaSource.snr"),
    ("NOT diaSource.snr", "diaSource.snr"),
    ("diaSource.snr > 5 AND diaSource.band", "diaSource.band"),
    ("diaSource.band + 1 > 0", "diaSource.band"),
    ("diaSource.isDipole > FALSE", ">"),
    ("sqrt('4') > 1", "'4'"),
    ("cone('a', 2, 3)", "'a'"),
    ("diaSource.snr IN (1, 'r')", "'r'"),
    ("diaSource.snr BETWEEN 'a' AND 'b'", "'a'"),
    # grammar
    ("0 < diaSource.snr < 10", "<"),
    ("diaSource.snr > 5 = TRUE", "="),
    ("diaSource.snr IS NULL IS NULL", "IS"),
    ("diaSource.snr == 5", "="),
    ("diaSource.snr > ", ""),
    ("", ""),
    ("   ", ""),
    ("diaSource.snr IN ()", ")"),
    ("diaSource.band = 'unterminated", "'unterminated"),
    ("diaSource.snr > +5", "+"),
    ("diaSource.snr BETWEEN 1 OR 2", "OR"),
    ("diaSource.snr IS 5", "5"),
    ("diaSource.snr NOT 5", "NOT"),
    ("(diaSource.snr > 5", ""),
    ("diaSource.snr > 5)", ")"),
    ("diaSource..snr > 5", "."),
    ("diaSource.snr > 5 AND", ""),
]


def _assert_refused(text: str, token: str) -> FilterError:
    t0 = time.perf_counter()
    with pytest.raises(FilterError) as info:
        compile_filter(text)
    assert time.perf_counter() - t0 < 1.0, "refusal took too long"
    exc = info.value
    assert exc.token == token, (exc.token, str(exc))
    assert text[exc.position:exc.position + len(token)] == token or (token == "" and exc.position >= len(text.rstrip()))
    assert f"position {exc.position}" in str(exc)
    assert isinstance(exc, AlertprodError)
    return exc


@pytest.mark.parametrize(("text", "token"), HOSTILE, ids=[repr(t[:40]) for t, _ in HOSTILE])
def test_hostile_filter_is_refused_naming_its_token(text, token):
    _assert_refused(text, token)


def test_an_import_in_a_filter_runs_nothing(tmp_path):
    marker = tmp_path / "pwned"
    for text in (f"__import__('os').system('touch {marker}') = 0",
                 f"diaSource.snr > 5 OR open('{marker}', 'w') IS NULL"):
        with pytest.raises(FilterError):
            compile_filter(text)
    assert not marker.exists()


def test_a_tautology_shaped_like_an_injection_is_just_a_filter_over_the_users_own_alerts(filter_alerts):
    """Filters are never spliced into SQL: ``OR '1'='1'`` is a comparison of two strings."""
    from alertprod.filtering import AlertBatch

    compiled = compile_filter("diaSource.band = 'r' OR '1'='1'")
    assert compiled.normalized == "diaSource.band = 'r' OR '1' = '1'"
    assert compiled.evaluate(AlertBatch.from_records(filter_alerts)).all()


def test_expression_of_exactly_the_limit_is_accepted_and_one_more_character_refused():
    base = "diaSource.snr > 5"
    ok = base + " " * (MAX_CHARS - len(base))
    assert len(ok) == MAX_CHARS
    assert compile_filter(ok).normalized == base
    exc = _assert_refused(ok + " ", " ")
    assert exc.position == MAX_CHARS
    assert "10,000" in exc.message


def test_nesting_of_exactly_the_limit_is_accepted():
    deep = "(" * MAX_NESTING + "diaSource.snr > 5" + ")" * MAX_NESTING
    assert compile_filter(deep).normalized == "diaSource.snr > 5"
    nots = "NOT " * MAX_NESTING + "diaSource.snr > 5"
    assert compile_filter(nots).normalized.count("NOT") == MAX_NESTING
    exc = _assert_refused("(" * (MAX_NESTING + 1) + "diaSource.snr > 5" + ")" * (MAX_NESTING + 1), "(")
    assert exc.position == MAX_NESTING


def test_ten_thousand_characters_of_nesting_is_refused_quickly():
    text = ("(" * 5000 + ")" * 5000)[:MAX_CHARS]
    _assert_refused(text, "(")
    _assert_refused("NOT " * 2500, "NOT")
    _assert_refused("-" + " -" * 4999, "-")


def test_long_flat_chains_are_one_nesting_level():
    ors = " OR ".join(f"diaSource.visit = {k}" for k in range(400))
    adds = " + ".join(["diaSource.snr"] * 500) + " > 0"
    assert compile_filter(ors).cost > 0
    assert len(compile_filter(adds, max_cost=None).fields) == 1


def test_unknown_field_suggests_the_schema_spelling():
    exc = _assert_refused("diaobject.R_PSFFLUXMEAN > 5", "diaobject.R_PSFFLUXMEAN")
    assert "diaObject.r_psfFluxMean" in exc.message


def test_every_refusal_is_a_filter_error_never_another_exception():
    for text in [t for t, _ in HOSTILE] + [None, 5, b"diaSource.snr > 5"]:
        with pytest.raises(FilterError):
            parse_filter(text) if not isinstance(text, str) else compile_filter(text)


def test_the_engine_never_calls_eval_exec_getattr_or_import_on_user_text():
    """A static guard: none of the filtering modules calls a code-executing builtin."""
    forbidden = {"eval", "exec", "compile", "getattr", "setattr", "__import__", "globals", "locals",
                 "vars", "open"}
    package = Path(alertprod.filtering.__file__).parent
    for path in package.glob("*.py"):
        tree = ast.parse(path.read_text())
        calls = {node.func.id for node in ast.walk(tree)
                 if isinstance(node, ast.Call) and isinstance(node.func, ast.Name)}
        assert not calls & forbidden, f"{path.name} calls {calls & forbidden}"


def test_the_deepest_accepted_filters_run_with_stack_to_spare():
    """Nesting at the limit needs about 500 Python frames to parse, run and explain: half the
    interpreter's limit, so a filter compiled 300 frames deep (a web framework) still works."""
    from alertprod.filtering import AlertBatch

    half = MAX_NESTING // 2
    deepest = ["(" * MAX_NESTING + "diaSource.snr > 5" + ")" * MAX_NESTING,
               "abs(" * (MAX_NESTING - 1) + "diaSource.snr" + ")" * (MAX_NESTING - 1) + " > 0",
               "NOT (" * half + "diaSource.snr > 5" + ")" * half]
    record = {"diaSourceId": 1, "diaSource": {"snr": 3.0}}
    batch = AlertBatch.from_records([record])

    def at_depth(n: int, text: str):
        if n:
            return at_depth(n - 1, text)
        compiled = compile_filter(text)
        return compiled.evaluate(batch), str(compiled.explain(record))

    for text in deepest:
        at_depth(300, text)


def test_filter_errors_survive_pickling_with_their_position_and_token():
    import pickle

    with pytest.raises(FilterError) as info:
        compile_filter("diaSource.snr > 5 -- x")
    again = pickle.loads(pickle.dumps(info.value))
    assert (again.position, again.token, str(again)) == (18, "--", str(info.value))

"""The filter language as interfaces.md §4 states it: precedence, literals, nulls, functions, types."""

from __future__ import annotations

import math

import numpy as np
import pytest
from astropy.coordinates import SkyCoord

from alertprod.alerts.schema import record_spec
from alertprod.errors import FilterError
from alertprod.filtering import (
    ENGINE_VERSION,
    AlertBatch,
    compile_filter,
    filter_fields,
    parse_filter,
)

pytestmark = pytest.mark.unit


def _alerts(**columns):
    """A batch from columns; None is NULL. All columns have the same length."""
    n = len(next(iter(columns.values())))
    arrays = {}
    for path, values in columns.items():
        mask = [v is None for v in values]
        fill = next((v for v in values if v is not None), 0)
        arrays[path] = np.ma.array([fill if v is None else v for v in values], mask=mask)
    return AlertBatch.from_columns(arrays, n)


def _match(text, batch):
    return compile_filter(text).evaluate(batch).tolist()


def _truth(text, batch):
    t, f = compile_filter(text).truth(batch)
    return ["TRUE" if a else "FALSE" if b else "UNKNOWN" for a, b in zip(t, f, strict=True)]


# -- precedence and grammar --------------------------------------------------------------------
@pytest.mark.parametrize(("text", "normalized"), [
    ("NOT diaSource.snr > 5", "NOT diaSource.snr > 5"),
    ("not (diaSource.snr > 5)", "NOT diaSource.snr > 5"),
    ("diaSource.snr > 1 or diaSource.snr < 0 and diaSource.band = 'r'",
     "diaSource.snr > 1 OR diaSource.snr < 0 AND diaSource.band = 'r'"),
    ("(diaSource.snr > 1 OR diaSource.snr < 0) AND diaSource.band = 'r'",
     "(diaSource.snr > 1 OR diaSource.snr < 0) AND diaSource.band = 'r'"),
    ("-diaSource.snr*2+1>0", "-diaSource.snr * 2 + 1 > 0"),
    ("diaSource.snr - (1 - 2) > 0", "diaSource.snr - (1 - 2) > 0"),
    ("(diaSource.snr - 1) - 2 > 0", "diaSource.snr - 1 - 2 > 0"),
    ("diaSource.snr <> 5", "diaSource.snr != 5"),
    ("diaSource.snr NOT IN (1,2)", "diaSource.snr NOT IN (1, 2)"),
    ("target_name = 'it''s'", "target_name = 'it''s'"),
    ("diaSource.snr > 1e-3", "diaSource.snr > 0.001"),
    ("diaSource.snr > .5 AND diaSource.snr < 5.", "diaSource.snr > 0.5 AND diaSource.snr < 5.0"),
    ("CONE(1, 2, 3) And Abs(diaSource.snr) Is Not Null", "cone(1, 2, 3) AND abs(diaSource.snr) IS NOT NULL"),
    ("diaSource.snr > - -5", "diaSource.snr > 5"),
    ("diaSource.snr > -(-diaSource.psfFlux)", "diaSource.snr > -(-diaSource.psfFlux)"),
    ("(diaSource.snr > 5) = TRUE", "(diaSource.snr > 5) = TRUE"),
])
def test_normalized_text_follows_the_contract_precedence(text, normalized):
    compiled = compile_filter(text)
    assert compiled.normalized == normalized
    assert compile_filter(normalized).normalized == normalized


def test_arithmetic_is_left_associative_with_real_division():
    b = _alerts(**{"diaSource.snr": [1.0]})
    assert _match("10 - 3 - 2 = 5 AND 8 / 2 / 2 = 2 AND 2 * 3 + 4 = 10 AND 7 / 2 = 3.5", b) == [True]
    assert _match("-2 * 3 = -6 AND 2 - -3 = 5 AND 1 + 2 * 3 = 7", b) == [True]


def test_keywords_and_functions_are_case_insensitive_fields_are_not():
    b = _alerts(**{"diaSource.snr": [10.0]})
    assert _match("diaSource.snr BeTwEeN 5 aNd 20 AnD sQrT(diaSource.snr) IS not NULL", b) == [True]
    with pytest.raises(FilterError) as info:
        compile_filter("DIASOURCE.snr > 5")
    assert info.value.token == "DIASOURCE.snr"


def test_between_is_inclusive_and_in_is_a_chain_of_equalities():
    b = _alerts(**{"diaSource.snr": [5.0, 10.0, 7.0, 11.0, None]})
    assert _match("diaSource.snr BETWEEN 5 AND 10", b) == [True, True, True, False, False]
    assert _match("diaSource.snr IN (5, 11)", b) == _match("diaSource.snr = 5 OR diaSource.snr = 11", b)
    assert _match("diaSource.snr NOT BETWEEN 5 AND 10", b) == [False, False, False, True, False]


# -- three-valued logic ------------------------------------------------------------------------
T_F_U = {"diaSource.snr": [10.0, 10.0, 10.0, 0.0, 0.0, 0.0, None, None, None],
         "diaSource.psfFlux": [10.0, 0.0, None, 10.0, 0.0, None, 10.0, 0.0, None]}


def test_and_or_not_follow_sql_truth_tables():
    b = _alerts(**T_F_U)
    a, c = "diaSource.snr > 5", "diaSource.psfFlux > 5"
    T, F, U = "TRUE", "FALSE", "UNKNOWN"
    assert _truth(f"{a} AND {c}", b) == [T, F, U, F, F, F, U, F, U]
    assert _truth(f"{a} OR {c}", b) == [T, T, T, T, F, U, T, U, U]
    assert _truth(f"NOT {a}", b) == [F, F, F, T, T, T, U, U, U]
    assert _match(f"{a} AND {c}", b) == [True] + [False] * 8


def test_comparison_with_null_is_unknown_and_in_with_null_is_never_false():
    b = _alerts(**{"diaSource.snr": [1.0, 2.0, None]})
    assert _truth("diaSource.snr = NULL", b) == ["UNKNOWN"] * 3
    assert _truth("diaSource.snr IN (1, NULL)", b) == ["TRUE", "UNKNOWN", "UNKNOWN"]
    assert _truth("diaSource.snr NOT IN (1, NULL)", b) == ["FALSE", "UNKNOWN", "UNKNOWN"]
    assert _truth("diaSource.snr IS NULL", b) == ["FALSE", "FALSE", "TRUE"]
    assert _truth("NULL", b) == ["UNKNOWN"] * 3


def test_division_by_zero_negative_sqrt_and_log_of_nonpositive_are_null():
    b = _alerts(**{"diaSource.snr": [0.0, -4.0, 4.0, 1e30]})
    assert _match("1 / diaSource.snr IS NULL", b) == [True, False, False, False]
    assert _match("sqrt(diaSource.snr) IS NULL", b) == [False, True, False, False]
    assert _match("log10(diaSource.snr) IS NULL", b) == [True, True, False, False]
    assert _match("diaSource.snr * 1e300 IS NULL", b) == [False, False, False, True]  # overflow
    assert _match("sqrt(diaSource.snr) = 2 AND log10(100) = 2 AND abs(-3) = 3", b) == [False, False, True, False]


def test_missing_record_fields_and_nan_are_null():
    records = [{"diaSourceId": 1, "diaSource": {"snr": float("nan")}, "diaObject": None},
               {"diaSourceId": 2, "diaSource": {"snr": 3.0}, "diaObject": {"nDiaSources": 4}}]
    b = AlertBatch.from_records(records)
    assert _match("diaSource.snr IS NULL", b) == [True, False]
    assert _match("diaObject.nDiaSources IS NULL", b) == [True, False]
    assert _match("ssSource.ssObjectId IS NULL AND target_name IS NULL", b) == [True, True]


def test_integers_compare_exactly_beyond_float_precision():
    big = 2**62 + 1
    b = AlertBatch.from_records([{"diaSourceId": big}, {"diaSourceId": big - 1}])
    assert _match(f"diaSourceId = {big}", b) == [True, False]
    assert _match(f"diaSourceId IN ({big - 1})", b) == [False, True]


def test_strings_compare_by_code_point_with_doubled_quotes():
    b = _alerts(observation_reason=["it's", "wfd", None, "Wfd"])
    assert _match("observation_reason = 'it''s'", b) == [True, False, False, False]
    assert _match("observation_reason < 'w'", b) == [True, False, False, True]


# -- functions ---------------------------------------------------------------------------------
def test_cone_is_a_great_circle_test_across_ra_wraparound_and_at_the_pole():
    ra = [359.9999, 0.0001, 180.0, 10.0, 0.0]
    dec = [0.0, 0.0, 89.9999, 89.9999, -30.0]
    b = _alerts(**{"diaSource.ra": ra, "diaSource.dec": dec})
    assert _match("cone(0, 0, 1)", b) == [True, True, False, False, False]
    assert _match("cone(0, 89.9999, 1)", b) == [False, False, True, True, False]
    assert _match("cone(0, 90, 0.37)", b) == [False, False, True, True, False]
    assert _match("cone(0, -30, -1)", b) == [False] * 5
    assert _match("cone(0, 0, 700000)", b) == [True] * 5  # more than 180 deg


def test_cone_radius_agrees_with_astropy_separation():
    rng = np.random.default_rng(3)
    ra, dec = rng.uniform(0, 360, 2000), rng.uniform(-90, 90, 2000)
    b = _alerts(**{"diaSource.ra": list(ra), "diaSource.dec": list(dec)})
    centre = SkyCoord(123.4, -45.6, unit="deg")
    sep = centre.separation(SkyCoord(ra, dec, unit="deg")).deg
    radius_deg = float(np.sort(sep)[100]) + 1e-9
    got = np.array(_match(f"cone(123.4, -45.6, {radius_deg * 3600!r})", b))
    assert np.array_equal(got, sep <= radius_deg)
    assert got.sum() == 101


def test_days_since_first_detection_reads_object_and_source_times():
    records = [{"diaSource": {"midpointMjdTai": 60010.5}, "diaObject": {"firstDiaSourceMjdTai": 60000.5}},
               {"diaSource": {"midpointMjdTai": 60010.5}, "diaObject": None}]
    b = AlertBatch.from_records(records)
    assert _match("days_since_first_detection() = 10", b) == [True, False]
    assert _match("days_since_first_detection() IS NULL", b) == [False, True]


# -- types and fields --------------------------------------------------------------------------
def test_fields_are_every_scalar_of_the_schema_records_and_top_level():
    fields = filter_fields()
    scalar = {"int", "long", "float", "double", "boolean", "string"}
    expected = {s.name for s in record_spec("alert") if s.kind in scalar}
    for record in ("diaSource", "diaObject", "ssSource"):
        expected |= {f"{record}.{s.name}" for s in record_spec(record) if s.kind in scalar}
    assert set(fields) == expected
    assert fields["diaObject.r_psfFluxMean"].type == "float"
    assert fields["diaSource.band"].type == "str"
    assert fields["diaSource.isDipole"].type == "bool"
    assert fields["ssSource.ssObjectId"].type == "int"
    assert "diaSourceId" in fields and "prvDiaSources" not in fields


def test_boolean_fields_compare_with_booleans_only():
    b = _alerts(**{"diaSource.isDipole": [True, False, None]})
    assert _match("diaSource.isDipole = TRUE", b) == [True, False, False]
    assert _match("diaSource.isDipole IN (FALSE)", b) == [False, True, False]
    with pytest.raises(FilterError):
        compile_filter("diaSource.isDipole = 1")


# -- compiled filter ---------------------------------------------------------------------------
def test_version_hash_depends_on_the_normalized_text_only():
    a = compile_filter("diaSource.snr>5 and diaSource.band='r'")
    b = compile_filter("(diaSource.snr > 5)   AND   (diaSource.band = 'r')")
    c = compile_filter("diaSource.snr > 6 AND diaSource.band = 'r'")
    assert a.version_hash == b.version_hash != c.version_hash
    assert len(a.version_hash) == 64 and ENGINE_VERSION


def test_fields_list_what_the_filter_reads():
    compiled = compile_filter("cone(1, 2, 3) AND diaObject.r_psfFluxMean > diaObject.g_psfFluxMean")
    assert compiled.fields == ("diaObject.g_psfFluxMean", "diaObject.r_psfFluxMean", "diaSource.dec", "diaSource.ra")


def test_cost_grows_with_the_filter_and_a_bound_refuses_the_expensive():
    cheap = compile_filter("diaSource.snr > 5")
    dear = compile_filter(" OR ".join(f"cone({k}, 0, 2)" for k in range(50)))
    assert 0 < cheap.cost < dear.cost
    with pytest.raises(FilterError, match="too expensive"):
        compile_filter(dear.text, max_cost=cheap.cost * 2)


def test_parse_filter_gives_the_tree_without_type_checking():
    ast = parse_filter("unknown.field > 'x'")
    assert ast.normalized == "unknown.field > 'x'"
    assert ast.root.op == ">"


def test_from_columns_and_from_records_agree(filter_alerts):
    text = ("diaSource.snr > 5 AND diaObject.r_psfFluxMean IS NOT NULL OR diaSource.band IN ('g', 'r') "
            "AND NOT diaSource.isDipole = TRUE")
    compiled = compile_filter(text)
    from_records = AlertBatch.from_records(filter_alerts)
    columns = {}
    for path in compiled.fields:
        col = from_records.column(path)
        columns[path] = np.ma.array(col.values, mask=col.null)
    assert np.array_equal(compiled.evaluate(from_records),
                          compiled.evaluate(AlertBatch.from_columns(columns)))
    assert 0 < compiled.evaluate(from_records).sum() < len(filter_alerts)


def test_explain_shows_every_value_and_what_decided(filter_alerts):
    compiled = compile_filter("diaSource.snr > 5 AND diaObject.r_psfFluxMean > 100")
    solar = next(r for r in filter_alerts if r["diaObject"] is None and (r["diaSource"]["snr"] or 0) > 5)
    trace = compiled.explain(solar)
    assert not trace.matched and trace.value == "UNKNOWN"
    text = str(trace)
    assert text.splitlines()[0] == (f"not matched: the filter is UNKNOWN for alert {solar['diaSourceId']} "
                                    "(only TRUE matches)")
    assert "diaObject.r_psfFluxMean  →  NULL" in text
    assert "diaObject.r_psfFluxMean > 100  →  UNKNOWN  ◀ decides" in text
    assert math.isclose(trace.root.children[0].children[0].value, solar["diaSource"]["snr"])
    matched = [r for r, m in zip(filter_alerts, compiled.evaluate(AlertBatch.from_records(filter_alerts)), strict=True) if m]
    assert matched and all(compiled.explain(r).matched for r in matched)


def test_records_before_serialisation_select_what_decoded_packets_select():
    from alertprod.alerts import alert_container_bytes, read_alert_container
    from alertprod.alerts.examples import example_alert

    built = [example_alert(k, n_prv_sources=0, n_prv_forced=0, cutout_size_pix=5, snr=5 + k / 7)
             for k in range(40)]
    for a in built:  # float64 values the 32-bit Avro float will round
        a["diaSource"]["snr"] += 1e-9
    decoded = list(read_alert_container(alert_container_bytes(built)))
    before, after = AlertBatch.from_records(built), AlertBatch.from_records(decoded)
    for path in ("diaSource.snr", "diaSource.psfFlux", "diaObject.r_psfFluxMean", "diaSource.band"):
        assert np.array_equal(before.column(path).values, after.column(path).values)
    text = "diaSource.snr > 5.5 AND diaSource.snr <= 8"
    assert np.array_equal(compile_filter(text).evaluate(before), compile_filter(text).evaluate(after))


def test_an_empty_batch_gives_an_empty_result():
    compiled = compile_filter("cone(1, 2, 3) OR diaSource.band = 'r' OR TRUE")
    assert compiled.evaluate(AlertBatch.from_records([])).shape == (0,)


def test_cone_takes_expressions_per_alert(filter_alerts):
    """cone(diaObject.ra + 0.01, diaObject.dec, r): a per-alert centre, NULL without a diaObject."""
    compiled = compile_filter("cone(diaObject.ra + 0.01, diaObject.dec, 20 + diaSource.psfNdata)")
    t, f = compiled.truth(AlertBatch.from_records(filter_alerts))
    for alert, is_true, is_false in zip(filter_alerts, t, f, strict=True):
        obj, src = alert["diaObject"], alert["diaSource"]
        if obj is None or src["psfNdata"] is None:
            assert not is_true and not is_false
            continue
        sep = SkyCoord(obj["ra"] + 0.01, obj["dec"], unit="deg").separation(
            SkyCoord(src["ra"], src["dec"], unit="deg")).arcsec
        assert is_true == (sep <= 20 + src["psfNdata"]) and is_false == (not is_true)

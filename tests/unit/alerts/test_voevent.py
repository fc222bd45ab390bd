"""VOEvent 2.0 documents of alerts: valid against the IVOA schema, the contract's fields, stable ivorns."""

from __future__ import annotations

import math
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest
import xmlschema
from astropy.time import Time
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from alertprod.alerts import build_alert
from alertprod.alerts.examples import example_alert, example_row
from alertprod.alerts.voevent import (
    COORD_SYSTEM,
    VOEVENT_NAMESPACE,
    VOEventConfig,
    alert_voevent,
    mjd_tai_to_isot_utc,
    voevent_bytes,
    voevent_ivorn,
)
from alertprod.errors import AlertSchemaError

pytestmark = pytest.mark.unit

XSD = Path(__file__).resolve().parents[2] / "data" / "voevent" / "VOEvent-v2.0.xsd"


@pytest.fixture(scope="module")
def schema():
    return xmlschema.XMLSchema(XSD)


def _small(seed, **kw):
    return example_alert(seed, n_prv_sources=1, n_prv_forced=1, cutout_size_pix=8, **kw)


def _solar_system_alert(seed=7):
    rng = np.random.default_rng(seed)
    source = example_row("diaSource", rng, diaSourceId=900 + seed, diaObjectId=None,
                         ssObjectId=123456789, parentDiaSourceId=None, timeWithdrawnMjdTai=None,
                         midpointMjdTai=60900.25, timeProcessedMjdTai=60900.26, ra=12.5,
                         dec=-3.25, snr=12.0, psfFlux=3000.0, psfFluxErr=250.0, band="g")
    ss = example_row("ssSource", rng, designation="2014 QX17")
    return build_alert(source, dia_object=None, prv_dia_sources=None, prv_dia_forced_sources=None,
                       ss_source=ss, cutout_difference=None, cutout_template=None)


def _params(doc: bytes) -> dict[str, ET.Element]:
    root = ET.fromstring(doc)
    return {p.get("name"): p for p in root.find("What").findall("Param")}


def test_every_document_of_a_simulated_set_validates_against_the_voevent_xsd(schema):
    alerts = [_small(s, band=b, snr=snr) for s, (b, snr) in
              enumerate([("u", 5.1), ("g", 25.0), ("r", 1e4), ("i", 7.5), ("z", 50.0), ("y", 6.0)])]
    alerts.append(_solar_system_alert())
    nulls = _small(99)
    for k in ("psfFlux", "psfFluxErr", "snr", "reliability", "raErr", "decErr", "scienceFlux"):
        nulls["diaSource"][k] = None
    nulls["diaSource"]["band"] = None
    alerts.append(nulls)
    nans = _small(98)
    nans["diaSource"]["psfFlux"] = float("nan")
    alerts.append(nans)
    for config in (VOEventConfig(), VOEventConfig(authority="alerts.example.org", role="test",
                                                  contact_email="a@example.org",
                                                  alert_url_template="https://x.example.org/"
                                                  "{visit:08d}/{detector:03d}/{diaSourceId}.avro")):
        for alert in alerts:
            schema.validate(voevent_bytes(alert, config=config).decode())


def test_root_carries_version_role_ivorn_in_the_voevent_namespace():
    alert = _small(1)
    root = ET.fromstring(voevent_bytes(alert, config=VOEventConfig(authority="alerts.example.org")))
    assert root.tag == f"{{{VOEVENT_NAMESPACE}}}VOEvent"
    assert root.get("version") == "2.0" and root.get("role") == "observation"
    assert root.get("ivorn") == f"ivo://alerts.example.org/alertprod#{alert['diaSourceId']}"


def test_what_carries_the_contract_params_with_units_ucds_and_types():
    alert = _small(2, band="i", snr=42.5)
    src = alert["diaSource"]
    params = _params(voevent_bytes(alert))
    expect = {  # name: (dataType, unit, ucd, value)
        "diaSourceId": ("int", None, "meta.id;meta.main", str(alert["diaSourceId"])),
        "diaObjectId": ("int", None, "meta.id;src", str(src["diaObjectId"])),
        "band": ("string", None, "instr.bandpass", "i"),
        "psfFlux": ("float", "nJy", "phot.flux.density", None),
        "psfFluxErr": ("float", "nJy", "stat.error;phot.flux.density", None),
        "snr": ("float", None, "stat.snr", "42.5"),
    }
    for name, (data_type, unit, ucd, value) in expect.items():
        p = params[name]
        assert (p.get("dataType"), p.get("unit"), p.get("ucd")) == (data_type, unit, ucd), name
        if value is not None:
            assert p.get("value") == value
    assert np.float32(params["psfFlux"].get("value")) == np.float32(src["psfFlux"])
    assert np.float32(params["psfFluxErr"].get("value")) == np.float32(src["psfFluxErr"])
    assert "ssObjectId" not in params
    assert {p.get("dataType") for p in ET.fromstring(voevent_bytes(alert)).iter("Param")} <= {
        "int", "float", "string"}


def test_asteroid_alert_names_its_ssobject_instead_of_a_diaobject():
    alert = _solar_system_alert()
    doc = voevent_bytes(alert)
    params = _params(doc)
    assert "diaObjectId" not in params
    assert params["ssObjectId"].get("value") == "123456789"
    root = ET.fromstring(doc)
    group = root.find("What/Group[@name='ssSource']")
    assert group.find("Param[@name='designation']").get("value") == "2014 QX17"
    assert root.findtext("Why/Inference/Concept") == "known solar-system object"
    assert root.findtext("Why/Inference/Name") == "2014 QX17"


def test_wherewhen_gives_icrs_degrees_and_the_utc_time_of_the_tai_midpoint():
    alert = _small(3)
    src = alert["diaSource"]
    root = ET.fromstring(voevent_bytes(alert))
    obs = root.find("WhereWhen/ObsDataLocation/ObservationLocation")
    assert obs.find("AstroCoordSystem").get("id") == COORD_SYSTEM == "UTC-ICRS-TOPO"
    coords = obs.find("AstroCoords")
    assert coords.get("coord_system_id") == COORD_SYSTEM
    pos = coords.find("Position2D")
    assert pos.get("unit") == "deg"
    assert float(pos.findtext("Value2/C1")) == src["ra"]   # exact: written with repr
    assert float(pos.findtext("Value2/C2")) == src["dec"]
    iso = coords.findtext("Time/TimeInstant/ISOTime")
    utc = Time(iso, format="isot", scale="utc")
    assert abs((utc.tai.mjd - src["midpointMjdTai"]) * 86400.0) < 0.001  # within the ms written
    # TAI runs 37 s ahead of UTC since 2017: the ISO time is UTC, not TAI
    tai_iso = Time(src["midpointMjdTai"], format="mjd", scale="tai").isot
    assert (Time(tai_iso, format="isot", scale="utc") - utc).sec == pytest.approx(37.0, abs=0.002)


def test_utc_conversion_applies_the_leap_second_of_2016():
    # 2017-01-01T00:00:00 UTC is MJD 57754 UTC = 57754 + 37 s in TAI; the day before had 36 s
    assert mjd_tai_to_isot_utc(57754.0 + 37.0 / 86400.0) == "2017-01-01T00:00:00.000"
    assert mjd_tai_to_isot_utc(57753.5 + 36.0 / 86400.0) == "2016-12-31T12:00:00.000"


def test_who_date_is_the_processing_time_so_documents_are_byte_stable():
    alert = _small(4)
    first = voevent_bytes(alert)
    assert voevent_bytes(dict(alert)) == first
    date = ET.fromstring(first).findtext("Who/Date")
    assert date == mjd_tai_to_isot_utc(alert["diaSource"]["timeProcessedMjdTai"])


def test_ivorn_is_stable_across_runs_and_unique_per_alert():
    alerts = [_small(s) for s in range(20)]
    ivorns = [ET.fromstring(voevent_bytes(a)).get("ivorn") for a in alerts]
    again = [ET.fromstring(voevent_bytes(_small(s))).get("ivorn") for s in range(20)]
    assert ivorns == again
    assert len(set(ivorns)) == len(ivorns)
    assert ivorns[0] == voevent_ivorn(alerts[0]["diaSourceId"]) == \
        f"ivo://alertprod.invalid/alertprod#{alerts[0]['diaSourceId']}"


def test_missing_values_leave_the_param_without_a_value(schema):
    alert = _small(5)
    alert["diaSource"]["psfFlux"] = float("nan")
    alert["diaSource"]["snr"] = None
    params = _params(voevent_bytes(alert))
    assert "value" not in params["psfFlux"].attrib and "value" not in params["snr"].attrib
    assert params["psfFlux"].get("unit") == "nJy"


def test_user_text_is_escaped_by_the_xml_writer(schema):
    alert = _solar_system_alert()
    alert["ssSource"]["designation"] = '<x a="1">&</x>'
    config = VOEventConfig(contact_name="O'Brien & <Sons>")
    doc = voevent_bytes(alert, config=config)
    schema.validate(doc.decode())
    root = ET.fromstring(doc)
    assert root.find("What/Group/Param[@name='designation']").get("value") == '<x a="1">&</x>'
    assert root.findtext("Who/Author/contactName") == "O'Brien & <Sons>"


def test_error_radius_is_the_larger_positional_error_or_zero_when_unknown():
    alert = _small(6)
    alert["diaSource"].update(raErr=1e-5, decErr=3e-5)
    pos = alert_voevent(alert).find("WhereWhen/ObsDataLocation/ObservationLocation/AstroCoords/"
                                    "Position2D")
    assert math.isclose(float(pos.findtext("Error2Radius")), 3e-5, rel_tol=1e-6)
    alert["diaSource"].update(raErr=None, decErr=float("nan"))
    pos = alert_voevent(alert).find("WhereWhen/ObsDataLocation/ObservationLocation/AstroCoords/"
                                    "Position2D")
    assert pos.findtext("Error2Radius") == "0"


def test_reliability_becomes_the_inference_probability():
    alert = _small(8)
    alert["diaSource"]["reliability"] = 0.875
    why = alert_voevent(alert).find("Why")
    assert why.get("importance") == "0.875" and why.find("Inference").get("probability") == "0.875"
    alert["diaSource"]["reliability"] = None
    why = alert_voevent(alert).find("Why")
    assert "importance" not in why.attrib and "probability" not in why.find("Inference").attrib


@pytest.mark.parametrize("kwargs, word", [
    ({"authority": "a b"}, "authority"), ({"authority": "ab"}, "authority"),
    ({"resource": "x#y"}, "resource"), ({"role": "alert"}, "role"),
    ({"alert_url_template": "https://x/{nope}"}, "alert_url_template"),
])
def test_bad_configuration_is_refused_naming_the_field(kwargs, word):
    with pytest.raises(AlertSchemaError, match=word):
        VOEventConfig(**kwargs)


def test_alert_without_position_or_time_is_refused():
    alert = _small(9)
    alert["diaSource"]["ra"] = float("nan")
    with pytest.raises(AlertSchemaError, match="ra"):
        voevent_bytes(alert)
    alert = _small(9)
    alert["diaSource"]["midpointMjdTai"] = None
    with pytest.raises(AlertSchemaError, match="midpointMjdTai"):
        voevent_bytes(alert)
    with pytest.raises(AlertSchemaError, match="diaSource"):
        voevent_bytes({"diaSourceId": 1})


def test_docs_table_lists_every_param_with_its_type_unit_and_ucd():
    from alertprod.alerts.voevent import PARAMS

    doc = (Path(__file__).resolve().parents[3] / "docs" / "voevent.md").read_text()
    for spec in PARAMS:
        row = f"| `{spec.name}` | {spec.data_type} | {spec.unit or ''} | `{spec.ucd}` |"
        assert row.replace("|  |", "| |") in doc, row


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(designation=st.text(max_size=40), contact=st.text(max_size=40),
       flux=st.one_of(st.none(), st.floats(width=32, allow_nan=True, allow_infinity=True)),
       ra=st.floats(0.0, 360.0, exclude_max=True), dec=st.floats(-90.0, 90.0),
       mjd=st.floats(50000.0, 70000.0))
def test_any_text_and_values_give_a_valid_document(schema, designation, contact, flux, ra, dec, mjd):
    alert = _solar_system_alert()
    alert["ssSource"]["designation"] = designation
    alert["diaSource"].update(psfFlux=flux, ra=ra, dec=dec, midpointMjdTai=mjd)
    doc = voevent_bytes(alert, config=VOEventConfig(contact_name=contact))
    schema.validate(doc.decode())
    root = ET.fromstring(doc)
    xml_chars = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
    got = root.find("What/Group/Param[@name='designation']").get("value")
    assert got == xml_chars.sub("\ufffd", designation)   # what XML can carry, exactly
    # in element text a parser reads a carriage return as a line feed (XML end-of-line rule)
    expected_contact = xml_chars.sub("\ufffd", contact).replace("\r\n", "\n").replace("\r", "\n")
    assert root.findtext("Who/Author/contactName", "") == expected_contact
    pos = root.find("WhereWhen/ObsDataLocation/ObservationLocation/AstroCoords/Position2D/Value2")
    assert (float(pos.findtext("C1")), float(pos.findtext("C2"))) == (ra, dec)

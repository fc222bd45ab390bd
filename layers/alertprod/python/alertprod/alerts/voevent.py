"""Alerts as VOEvent 2.0 documents, for public VOEvent brokers (seed step 11).

One alert record (as :func:`~alertprod.alerts.packet.build_alert` returns it, or as decoded from
a packet or an Avro container file) becomes one IVOA VOEvent 2.0 document:

- ``ivorn`` ``ivo://{authority}/{resource}#{diaSourceId}``: unique because ``diaSourceId`` is, and
  stable because it depends on nothing else (a rebuilt alert keeps its ivorn);
- ``role="observation"`` (configurable: ``test`` for rehearsals);
- ``Who``: the author's IVORN and name, ``Date`` = the alert's ``timeProcessedMjdTai`` in UTC
  (not the wall clock: the same alert always gives the same bytes);
- ``What``: the DiaSource's identifiers, band, fluxes (nJy) and S/N as ``Param``s with units and
  UCDs (:data:`PARAMS`), a ``diaObject`` or ``ssSource`` ``Group``;
- ``WhereWhen``: position (ICRS, deg, error radius) and exposure midpoint in UTC (ISO-8601,
  converted from ``midpointMjdTai`` with astropy), coordinate system ``UTC-ICRS-TOPO``;
- ``How`` (instrument and pipeline) and ``Why`` (what the detection is taken to be, with the
  DiaSource's ``reliability`` as the inference's probability).

Documents are built with :mod:`xml.etree.ElementTree`, so every value is escaped by the XML
writer. See docs/voevent.md for the mapping table and the ivorn scheme.
"""

from __future__ import annotations

import functools
import math
import re
import warnings
import xml.etree.ElementTree as ET
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np
from astropy.time import Time
from erfa import ErfaWarning

from alertprod import _astropy_config  # noqa: F401  (offline leap-second table)
from alertprod.alerts.schema import SCHEMA_VERSION, record_spec
from alertprod.errors import AlertSchemaError

__all__ = [
    "VOEVENT_NAMESPACE",
    "VOEVENT_SCHEMA_LOCATION",
    "COORD_SYSTEM",
    "VOEventConfig",
    "ParamSpec",
    "PARAMS",
    "voevent_ivorn",
    "mjd_tai_to_isot_utc",
    "alert_voevent",
    "voevent_bytes",
]

#: XML namespace of VOEvent 2.0.
VOEVENT_NAMESPACE = "http://www.ivoa.net/xml/VOEvent/v2.0"
#: ``xsi:schemaLocation`` written on every document (the schema's official address).
VOEVENT_SCHEMA_LOCATION = f"{VOEVENT_NAMESPACE} http://www.ivoa.net/xml/VOEvent/VOEvent-v2.0.xsd"
_XSI = "http://www.w3.org/2001/XMLSchema-instance"
#: Time scale, spatial frame and reference position of ``WhereWhen``.
COORD_SYSTEM = "UTC-ICRS-TOPO"

# IVOA Identifiers 2.0: authority = [A-Za-z0-9][A-Za-z0-9._~-]{2,}; resource key: path segments
_AUTHORITY = re.compile(r"[A-Za-z0-9][A-Za-z0-9._~\-]{2,}\Z")
_RESOURCE = re.compile(r"[A-Za-z0-9._~\-]+(/[A-Za-z0-9._~\-]+)*\Z")
_ROLES = ("observation", "prediction", "utility", "test")
# characters XML 1.0 cannot carry at all (the writer would emit them raw, and no parser reads them)
_NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


@dataclass(frozen=True)
class VOEventConfig:
    """Who publishes the VOEvents and how they are named.

    Attributes
    ----------
    authority : str
        IVOA naming authority of the ivorns (``ivo://{authority}/...``). The default is a
        reserved name (RFC 2606 ``.invalid``): a deployment sets its registered authority.
    resource : str
        Resource key after the authority (``ivo://{authority}/{resource}#{diaSourceId}``).
    role : str
        ``observation`` (the alert stream), or ``test`` / ``utility`` / ``prediction``.
    author_title, author_short_name, contact_name, contact_email : str
        ``Who/Author`` (empty strings are left out).
    observatory_id : str
        ``ObservatoryLocation/@id``: the site of the observations.
    instrument : str
        Named in ``How``.
    alert_url_template : str or None
        When given, ``What`` carries a ``Reference`` to the full Rubin-schema packet at
        ``alert_url_template.format(diaSourceId=..., visit=..., detector=...)``.
    """

    authority: str = "alertprod.invalid"
    resource: str = "alertprod"
    role: str = "observation"
    author_title: str = "alertprod alert production"
    author_short_name: str = "alertprod"
    contact_name: str = ""
    contact_email: str = ""
    observatory_id: str = "Rubin Observatory"
    instrument: str = "LSSTCam"
    alert_url_template: str | None = None

    def __post_init__(self) -> None:
        if not _AUTHORITY.match(self.authority):
            raise AlertSchemaError(f"authority={self.authority!r} is not an IVOA naming authority "
                                   "(letters, digits and ._~- , at least 3 characters)")
        if not _RESOURCE.match(self.resource):
            raise AlertSchemaError(f"resource={self.resource!r} is not an IVOA resource key "
                                   "(segments of letters, digits and ._~- separated by /)")
        if self.role not in _ROLES:
            raise AlertSchemaError(f"role={self.role!r} must be one of {', '.join(_ROLES)}")
        if self.alert_url_template is not None:
            try:
                self.alert_url_template.format(diaSourceId=1, visit=1, detector=1)
            except (KeyError, IndexError, ValueError) as exc:
                raise AlertSchemaError(f"alert_url_template={self.alert_url_template!r} takes "
                                       "only {diaSourceId}, {visit}, {detector}") from exc

    @property
    def author_ivorn(self) -> str:
        """``ivo://{authority}/{resource}``: the author of every document."""
        return f"ivo://{self.authority}/{self.resource}"


class ParamSpec(NamedTuple):
    """One ``Param`` of ``What``: where its value comes from and how it is described."""

    name: str
    record: str       # "diaSource", "diaObject" or "ssSource": the alert record it is read from
    data_type: str    # VOEvent dataType: "int", "float" or "string"
    unit: str | None
    ucd: str
    description: str


#: The DiaSource's ``Param``s, in document order (``diaObjectId`` or ``ssObjectId`` is chosen per
#: alert; see :func:`alert_voevent`). UCDs are IVOA UCD1+ words.
PARAMS: tuple[ParamSpec, ...] = (
    ParamSpec("diaSourceId", "diaSource", "int", None, "meta.id;meta.main",
              "Unique identifier of the DiaSource (the alert id)"),
    ParamSpec("diaObjectId", "diaSource", "int", None, "meta.id;src",
              "DiaObject the source is associated with"),
    ParamSpec("ssObjectId", "diaSource", "int", None, "meta.id;src",
              "Solar-system object the source is associated with"),
    ParamSpec("visit", "diaSource", "int", None, "meta.id;obs.image", "Visit of the exposure"),
    ParamSpec("detector", "diaSource", "int", None, "meta.id;instr.det", "Detector (CCD)"),
    ParamSpec("band", "diaSource", "string", None, "instr.bandpass", "Filter band (u g r i z y)"),
    ParamSpec("midpointMjdTai", "diaSource", "float", "d", "time.epoch;obs",
              "Exposure midpoint, MJD (TAI)"),
    ParamSpec("psfFlux", "diaSource", "float", "nJy", "phot.flux.density",
              "PSF flux on the difference image"),
    ParamSpec("psfFluxErr", "diaSource", "float", "nJy", "stat.error;phot.flux.density",
              "Uncertainty of psfFlux"),
    ParamSpec("snr", "diaSource", "float", None, "stat.snr",
              "Signal-to-noise ratio of the detection on the difference image"),
    ParamSpec("scienceFlux", "diaSource", "float", "nJy", "phot.flux.density",
              "PSF flux on the calibrated (science) image"),
    ParamSpec("scienceFluxErr", "diaSource", "float", "nJy", "stat.error;phot.flux.density",
              "Uncertainty of scienceFlux"),
    ParamSpec("reliability", "diaSource", "float", None, "stat.probability",
              "Probability that the source is astrophysical (real/bogus score)"),
    ParamSpec("raErr", "diaSource", "float", "deg", "stat.error;pos.eq.ra",
              "Uncertainty of ra (times cos dec)"),
    ParamSpec("decErr", "diaSource", "float", "deg", "stat.error;pos.eq.dec", "Uncertainty of dec"),
)
_OBJECT_PARAMS: tuple[ParamSpec, ...] = (
    ParamSpec("nDiaSources", "diaObject", "int", None, "meta.number",
              "Number of DiaSources of the object, this one included"),
    ParamSpec("firstDiaSourceMjdTai", "diaObject", "float", "d", "time.epoch",
              "Time of the object's first DiaSource, MJD (TAI)"),
    ParamSpec("ra", "diaObject", "float", "deg", "pos.eq.ra", "Mean position of the object"),
    ParamSpec("dec", "diaObject", "float", "deg", "pos.eq.dec", "Mean position of the object"),
)
_SS_PARAMS: tuple[ParamSpec, ...] = (
    ParamSpec("designation", "ssSource", "string", None, "meta.id",
              "Minor Planet Center designation"),
    ParamSpec("ephVmag", "ssSource", "float", "mag", "phot.mag;em.opt.V",
              "Predicted V magnitude"),
    ParamSpec("ephOffset", "ssSource", "float", "arcsec", "pos.angDistance",
              "Distance of the detection from the predicted position"),
    ParamSpec("topoRange", "ssSource", "float", "AU", "pos.distance",
              "Distance from the observatory"),
)


@functools.cache
def _float32_fields() -> frozenset[tuple[str, str]]:
    """(record, field) pairs stored as 32-bit floats: written with float32's shortest digits."""
    return frozenset((rec, s.name) for rec in ("diaSource", "diaObject", "ssSource")
                     for s in record_spec(rec) if s.kind == "float")


def voevent_ivorn(dia_source_id: int, *, config: VOEventConfig | None = None) -> str:
    """The ivorn of the alert of ``dia_source_id``: ``ivo://{authority}/{resource}#{diaSourceId}``."""
    config = config or VOEventConfig()
    if isinstance(dia_source_id, bool) or not isinstance(dia_source_id, (int, np.integer)):
        raise AlertSchemaError(f"dia_source_id must be an integer, got {dia_source_id!r}")
    return f"{config.author_ivorn}#{int(dia_source_id)}"


def mjd_tai_to_isot_utc(mjd_tai: float) -> str:
    """A TAI MJD as UTC ``YYYY-MM-DDThh:mm:ss.sss`` (millisecond precision, leap seconds applied)."""
    if mjd_tai is None or not math.isfinite(mjd_tai):
        raise AlertSchemaError(f"time must be a finite TAI MJD, got {mjd_tai!r}")
    with warnings.catch_warnings():
        # past the end of the leap-second table ERFA warns "dubious year" and keeps the last
        # offset (37 s): the best that is known until a new leap second is announced
        warnings.simplefilter("ignore", ErfaWarning)
        t = Time(float(mjd_tai), format="mjd", scale="tai").utc
        t.precision = 3
        return str(t.isot)


def _text(record: str, name: str, value: Any) -> str | None:
    """A value as VOEvent text; None for null, NaN or infinity (the Param then has no value)."""
    if value is None:
        return None
    if isinstance(value, (bool, np.bool_)):
        return "1" if value else "0"
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if isinstance(value, (float, np.floating)):
        if not math.isfinite(value):
            return None
        if (record, name) in _float32_fields():
            return str(np.float32(value))   # shortest digits that give back the float32
        return repr(float(value))
    return _NOT_XML.sub("\ufffd", str(value))


def _param(parent: ET.Element, spec: ParamSpec, value: Any) -> ET.Element:
    attrs = {"name": spec.name, "dataType": spec.data_type, "ucd": spec.ucd}
    if spec.unit:
        attrs["unit"] = spec.unit
    text = _text(spec.record, spec.name, value)
    if text is not None:
        attrs["value"] = text
    param = ET.SubElement(parent, "Param", attrs)
    ET.SubElement(param, "Description").text = spec.description
    return param


def _sub(parent: ET.Element, tag: str, text: str | None = None, **attrs: str) -> ET.Element:
    element = ET.SubElement(parent, tag, {k: _NOT_XML.sub("\ufffd", v) for k, v in attrs.items()})
    if text is not None:
        element.text = _NOT_XML.sub("\ufffd", text)
    return element


def _who(root: ET.Element, source: Mapping[str, Any], config: VOEventConfig) -> None:
    who = _sub(root, "Who")
    _sub(who, "AuthorIVORN", config.author_ivorn)
    produced = source.get("timeProcessedMjdTai")
    if produced is None or not math.isfinite(produced):
        produced = source["midpointMjdTai"]
    _sub(who, "Date", mjd_tai_to_isot_utc(produced))
    author = _sub(who, "Author")
    for tag, value in (("title", config.author_title), ("shortName", config.author_short_name),
                       ("contactName", config.contact_name),
                       ("contactEmail", config.contact_email)):
        if value:
            _sub(author, tag, value)
    if len(author) == 0:   # Author must hold at least one element
        who.remove(author)


def _what(root: ET.Element, alert: Mapping[str, Any], config: VOEventConfig) -> None:
    source = alert["diaSource"]
    ss_source = alert.get("ssSource")
    solar_system = ss_source is not None or source.get("ssObjectId") not in (None, 0)
    what = _sub(root, "What")
    for spec in PARAMS:
        if spec.name == ("diaObjectId" if solar_system else "ssObjectId"):
            continue
        value = source.get(spec.name)
        if spec.name == "ssObjectId" and value in (None, 0) and ss_source is not None:
            value = ss_source.get("ssObjectId")
        _param(what, spec, value)
    obj = alert.get("diaObject")
    if obj is not None:
        group = _sub(what, "Group", name="diaObject", type="DiaObject")
        for spec in _OBJECT_PARAMS:
            _param(group, spec, obj.get(spec.name))
    if ss_source is not None:
        group = _sub(what, "Group", name="ssSource", type="SSSource")
        for spec in _SS_PARAMS:
            _param(group, spec, ss_source.get(spec.name))
    if config.alert_url_template:
        uri = config.alert_url_template.format(diaSourceId=alert["diaSourceId"],
                                               visit=source.get("visit"),
                                               detector=source.get("detector"))
        _sub(what, "Reference", uri=uri, type="url", mimetype="avro/binary")


def _where_when(root: ET.Element, source: Mapping[str, Any], config: VOEventConfig) -> None:
    ra, dec = source.get("ra"), source.get("dec")
    if ra is None or dec is None or not (math.isfinite(ra) and math.isfinite(dec)):
        raise AlertSchemaError(f"diaSource.ra/dec must be finite, got ra={ra!r}, dec={dec!r}")
    errors = [source.get(k) for k in ("raErr", "decErr")]
    errors = [float(e) for e in errors if e is not None and math.isfinite(e) and e >= 0]
    where_when = _sub(root, "WhereWhen")
    location = _sub(where_when, "ObsDataLocation")
    _sub(location, "ObservatoryLocation", id=config.observatory_id)
    observation = _sub(location, "ObservationLocation")
    _sub(observation, "AstroCoordSystem", id=COORD_SYSTEM)
    coords = _sub(observation, "AstroCoords", coord_system_id=COORD_SYSTEM)
    time = _sub(coords, "Time", unit="s")
    _sub(_sub(time, "TimeInstant"), "ISOTime", mjd_tai_to_isot_utc(source["midpointMjdTai"]))
    position = _sub(coords, "Position2D", unit="deg")
    _sub(position, "Name1", "RA")
    _sub(position, "Name2", "Dec")
    value = _sub(position, "Value2")
    _sub(value, "C1", repr(float(ra)))
    _sub(value, "C2", repr(float(dec)))
    # 0 = unknown (the GCN convention); else the larger of the two 1-sigma errors, deg
    _sub(position, "Error2Radius", str(np.float32(max(errors))) if errors else "0")


def _how_why(root: ET.Element, alert: Mapping[str, Any], config: VOEventConfig) -> None:
    how = _sub(root, "How")
    _sub(how, "Description", f"{config.instrument} difference-image detection; alert production "
                             f"by {config.author_short_name or 'alertprod'} (Rubin alert schema "
                             f"lsst.v{SCHEMA_VERSION.replace('.', '_')})")
    _sub(how, "Reference", uri="https://github.com/lsst/alert_packet", type="url")
    source = alert["diaSource"]
    reliability = source.get("reliability")
    why = _sub(root, "Why")
    if reliability is not None and math.isfinite(reliability) and 0.0 <= reliability <= 1.0:
        why.set("importance", str(np.float32(reliability)))
    inference = _sub(why, "Inference")
    if "importance" in why.attrib:
        inference.set("probability", why.get("importance"))
    ss_source = alert.get("ssSource")
    if ss_source is not None or source.get("ssObjectId") not in (None, 0):
        _sub(inference, "Concept", "known solar-system object")
        designation = (ss_source or {}).get("designation")
        if designation:
            _sub(inference, "Name", str(designation))
    else:
        obj = alert.get("diaObject") or {}
        new = obj.get("diaObjectId") == alert["diaSourceId"] or obj.get("nDiaSources") == 1
        _sub(inference, "Concept", "new transient or variable source" if new
             else "transient or variable source")
    _sub(inference, "Description", "Difference-image detection; probability = reliability score")


def alert_voevent(alert: Mapping[str, Any], *, config: VOEventConfig | None = None) -> ET.Element:
    """The VOEvent 2.0 document of one alert, as an element tree.

    Parameters
    ----------
    alert : Mapping
        An alert record (Rubin alert schema): ``diaSourceId``, ``diaSource`` (with at least
        ``ra``, ``dec`` in deg and ``midpointMjdTai``), optionally ``diaObject``/``ssSource``.
    config : VOEventConfig, optional
        Authority, role and author (defaults: :class:`VOEventConfig`).

    Returns
    -------
    xml.etree.ElementTree.Element
        The ``voe:VOEvent`` root; :func:`voevent_bytes` serialises it.

    Raises
    ------
    AlertSchemaError
        The alert lacks ``diaSourceId``/``diaSource``, a finite position or a time.
    """
    config = config or VOEventConfig()
    if not isinstance(alert, Mapping) or not isinstance(alert.get("diaSource"), Mapping):
        raise AlertSchemaError("alert must be a mapping with a 'diaSource' record")
    source = alert["diaSource"]
    if "diaSourceId" not in alert:
        raise AlertSchemaError("alert has no 'diaSourceId'")
    if source.get("midpointMjdTai") is None:
        raise AlertSchemaError(f"alert {alert['diaSourceId']}: diaSource.midpointMjdTai is missing")
    # the prefix is spelled out instead of ET.register_namespace, which is process-global
    root = ET.Element("voe:VOEvent", {
        "xmlns:voe": VOEVENT_NAMESPACE,
        "xmlns:xsi": _XSI,
        "xsi:schemaLocation": VOEVENT_SCHEMA_LOCATION,
        "version": "2.0",
        "role": config.role,
        "ivorn": voevent_ivorn(alert["diaSourceId"], config=config),
    })
    _who(root, source, config)
    _what(root, alert, config)
    _where_when(root, source, config)
    _how_why(root, alert, config)
    band = source.get("band") or "?"
    snr = _text("diaSource", "snr", source.get("snr"))
    _sub(root, "Description", f"DiaSource {alert['diaSourceId']} in band {band}"
                              + (f", S/N {snr}" if snr else ""))
    return root


def voevent_bytes(alert: Mapping[str, Any], *, config: VOEventConfig | None = None,
                  indent: bool = True) -> bytes:
    """The VOEvent 2.0 document of one alert as UTF-8 XML bytes (see :func:`alert_voevent`).

    The same alert and configuration always give the same bytes.
    """
    root = alert_voevent(alert, config=config)
    if indent:
        ET.indent(root)
    return ET.tostring(root, encoding="UTF-8", xml_declaration=True) + b"\n"

"""Which public VOEvent brokers receive the alert stream, which alerts each gets, and the relay.

A deployment lists its brokers in one YAML document (docs/voevent.md, "Configuring brokers"):

.. code-block:: yaml

    voevent:                      # VOEventConfig: who we are
      authority: alerts.example.org
      contact_email: alerts@example.org
    vtp:                          # VtpConfig: timeouts and retries, for every broker
      response_timeout_s: 20
    brokers:
      - name: community
        address: broker.example.org:8098
        select: {min_snr: 10, bands: [g, r, i], solar_system: exclude}
      - name: rehearsal
        address: localhost:8098
        role: test

:func:`load_broker_config` reads it; :func:`relay_alerts` turns alerts into VOEvents and sends
each broker the ones its selection accepts, through :class:`~alertprod.delivery.vtp.VtpClient`.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import yaml

from alertprod.alerts.voevent import VOEventConfig, voevent_bytes
from alertprod.delivery.vtp import (
    DeliveryError,
    SendReport,
    VtpClient,
    VtpConfig,
    parse_broker_address,
)
from alertprod.errors import AlertprodError

__all__ = ["AlertSelection", "BrokerConfig", "DeliveryConfig", "load_broker_config",
           "relay_alerts"]

_SOLAR_SYSTEM = ("include", "exclude", "only")
_BANDS = ("u", "g", "r", "i", "z", "y")


@dataclass(frozen=True)
class AlertSelection:
    """The subset of the stream a broker receives: every condition given must hold.

    Attributes
    ----------
    min_snr : float, optional
        Lowest ``diaSource.snr`` sent.
    min_reliability : float, optional
        Lowest ``diaSource.reliability`` (0-1) sent; an alert without one is not sent.
    bands : tuple of str, optional
        Bands sent (``u g r i z y``); default all.
    solar_system : str
        ``include`` (default), ``exclude`` or ``only`` alerts of known solar-system objects.
    new_objects_only : bool
        Only alerts whose DiaSource created its DiaObject (first detections).
    filter_expression : str, optional
        An expression in the alert filter language (docs/filters.md), compiled by the
        ``compile_filter`` given to :func:`relay_alerts`.
    """

    min_snr: float | None = None
    min_reliability: float | None = None
    bands: tuple[str, ...] | None = None
    solar_system: str = "include"
    new_objects_only: bool = False
    filter_expression: str | None = None

    def __post_init__(self) -> None:
        if self.solar_system not in _SOLAR_SYSTEM:
            raise DeliveryError(f"solar_system={self.solar_system!r} must be one of "
                                f"{', '.join(_SOLAR_SYSTEM)}")
        if self.bands is not None:
            bad = [b for b in self.bands if b not in _BANDS]
            if bad:
                raise DeliveryError(f"bands: {bad} are not among {' '.join(_BANDS)}")

    def matches(self, alert: Mapping[str, Any]) -> bool:
        """True when ``alert`` passes every condition but ``filter_expression``."""
        source = alert["diaSource"]
        if self.min_snr is not None and not _at_least(source.get("snr"), self.min_snr):
            return False
        if self.min_reliability is not None and not _at_least(source.get("reliability"),
                                                              self.min_reliability):
            return False
        if self.bands is not None and source.get("band") not in self.bands:
            return False
        solar = alert.get("ssSource") is not None or source.get("ssObjectId") not in (None, 0)
        if (self.solar_system == "exclude" and solar) or (self.solar_system == "only" and not solar):
            return False
        if self.new_objects_only:
            obj = alert.get("diaObject")
            if obj is None or not (obj.get("diaObjectId") == alert["diaSourceId"]
                                   or obj.get("nDiaSources") == 1):
                return False
        return True


def _at_least(value: Any, limit: float) -> bool:
    return value is not None and math.isfinite(value) and value >= limit


@dataclass(frozen=True)
class BrokerConfig:
    """One broker: where it listens and what it receives.

    Attributes
    ----------
    name : str
        Short name, used in reports and logs.
    address : str
        ``host:port`` of the broker's VTP receiving port (comet's default port is 8098).
    selection : AlertSelection
        Which alerts it gets (default: all).
    role : str
        VOEvent role of the documents it gets: ``observation``, or ``test`` for rehearsals.
    """

    name: str
    address: str
    selection: AlertSelection = field(default_factory=AlertSelection)
    role: str = "observation"

    def __post_init__(self) -> None:
        if not self.name:
            raise DeliveryError("a broker needs a name")
        parse_broker_address(self.address)  # checked on entry

    @property
    def host_port(self) -> tuple[str, int]:
        """``(host, port)`` of :attr:`address`."""
        return parse_broker_address(self.address)


class DeliveryConfig(NamedTuple):
    """A whole delivery configuration: who we are, how we send, to whom."""

    voevent: VOEventConfig
    vtp: VtpConfig
    brokers: tuple[BrokerConfig, ...]


def _build(cls: type, values: Mapping[str, Any] | None, where: str) -> Any:
    values = dict(values or {})
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise DeliveryError(f"{where}: unknown keys {unknown} (known: {sorted(known)})")
    try:
        return cls(**values)
    except (TypeError, ValueError, AlertprodError) as exc:
        raise DeliveryError(f"{where}: {exc}") from exc


def load_broker_config(source: str | Mapping[str, Any]) -> DeliveryConfig:
    """Read a delivery configuration from YAML text (or an already parsed mapping).

    Raises
    ------
    DeliveryError
        Not YAML, an unknown key, a bad value; the message names the key.
    """
    if isinstance(source, str):
        try:
            source = yaml.safe_load(source) or {}
        except yaml.YAMLError as exc:
            raise DeliveryError(f"broker configuration is not YAML: {exc}") from exc
    if not isinstance(source, Mapping):
        raise DeliveryError("broker configuration must be a mapping with 'brokers'")
    unknown = sorted(set(source) - {"voevent", "vtp", "brokers"})
    if unknown:
        raise DeliveryError(f"broker configuration: unknown keys {unknown}")
    voevent = _build(VOEventConfig, source.get("voevent"), "voevent")
    vtp = _build(VtpConfig, {"local_ivorn": voevent.author_ivorn, **(source.get("vtp") or {})},
                 "vtp")
    brokers = []
    for k, entry in enumerate(source.get("brokers") or []):
        entry = dict(entry)
        select = entry.pop("select", None) or {}
        if "bands" in select:
            select = {**select, "bands": tuple(select["bands"])}
        if "filter" in select:  # the YAML's name for it
            select = {**{k: v for k, v in select.items() if k != "filter"}, "filter_expression": select["filter"]}
        selection = _build(AlertSelection, select, f"brokers[{k}].select")
        brokers.append(_build(BrokerConfig, {**entry, "selection": selection}, f"brokers[{k}]"))
    names = [b.name for b in brokers]
    if len(set(names)) != len(names):
        raise DeliveryError(f"broker names must be unique, got {names}")
    return DeliveryConfig(voevent, vtp, tuple(brokers))


def relay_alerts(alerts: Iterable[Mapping[str, Any]], brokers: Sequence[BrokerConfig], *,
                 voevent: VOEventConfig | None = None, vtp: VtpConfig | None = None,
                 compile_filter: Callable[[str], Callable[[Mapping[str, Any]], bool]] | None = None,
                 client_factory: Callable[..., VtpClient] = VtpClient) -> dict[str, SendReport]:
    """Send each broker the VOEvents of the alerts its selection accepts.

    Parameters
    ----------
    alerts : iterable of Mapping
        Alert records (Rubin alert schema).
    brokers : sequence of BrokerConfig
        Where to send.
    voevent : VOEventConfig, optional
        Authority and author of the documents (a broker's ``role`` overrides the role).
    vtp : VtpConfig, optional
        Timeouts and retries.
    compile_filter : callable, optional
        Turns a ``filter_expression`` into a predicate on an alert (the filtering service's
        compiler); required when a broker's selection has an expression.
    client_factory : callable, optional
        ``client_factory(host, port, config=...) -> VtpClient`` (tests inject here).

    Returns
    -------
    dict
        Broker name → :class:`~alertprod.delivery.vtp.SendReport` (brokers that were sent
        nothing have an empty report).
    """
    voevent = voevent or VOEventConfig()
    predicates: dict[str, Callable[[Mapping[str, Any]], bool]] = {}
    for broker in brokers:
        expression = broker.selection.filter_expression
        if expression:
            if compile_filter is None:
                raise DeliveryError(f"broker {broker.name!r} selects with a filter expression: "
                                    "relay_alerts needs compile_filter")
            predicates[broker.name] = compile_filter(expression)
    alerts = list(alerts)
    documents: dict[tuple[int, str], bytes] = {}   # (index, role) -> document, built once
    reports = {}
    for broker in brokers:
        config = dataclasses.replace(voevent, role=broker.role)
        chosen = [k for k, a in enumerate(alerts) if broker.selection.matches(a)
                  and (broker.name not in predicates or predicates[broker.name](a))]
        batch = []
        for k in chosen:
            if (k, broker.role) not in documents:
                documents[(k, broker.role)] = voevent_bytes(alerts[k], config=config)
            batch.append(documents[(k, broker.role)])
        if not batch:
            reports[broker.name] = SendReport()
            continue
        host, port = broker.host_port
        with client_factory(host, port, config=vtp or VtpConfig(local_ivorn=voevent.author_ivorn)) as client:
            reports[broker.name] = client.send(batch)
    return reports

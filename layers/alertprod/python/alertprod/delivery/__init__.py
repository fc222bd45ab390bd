"""Delivery of alerts to the outside world as VOEvents (seed step 12).

- :mod:`~alertprod.delivery.vtp`      the VOEvent Transport Protocol: an author's client with
  timeouts, retries and acks (:class:`VtpClient`), and the framing helpers
- :mod:`~alertprod.delivery.brokers`  which brokers receive the stream and which alerts each gets
  (:class:`BrokerConfig`), and :func:`relay_alerts`, the one entry point

See docs/voevent.md.
"""

from alertprod.delivery.brokers import (
    AlertSelection,
    BrokerConfig,
    DeliveryConfig,
    load_broker_config,
    relay_alerts,
)
from alertprod.delivery.vtp import (
    TRANSPORT_NAMESPACE,
    DeliveryError,
    SendReport,
    VtpClient,
    VtpConfig,
    VtpConnectionClosedError,
    VtpMessage,
    VtpProtocolError,
    encode_message,
    parse_broker_address,
    parse_message,
    read_message,
    transport_message,
)

__all__ = [
    "AlertSelection",
    "BrokerConfig",
    "DeliveryConfig",
    "DeliveryError",
    "SendReport",
    "TRANSPORT_NAMESPACE",
    "VtpClient",
    "VtpConfig",
    "VtpConnectionClosedError",
    "VtpMessage",
    "VtpProtocolError",
    "encode_message",
    "load_broker_config",
    "parse_broker_address",
    "parse_message",
    "read_message",
    "relay_alerts",
    "transport_message",
]

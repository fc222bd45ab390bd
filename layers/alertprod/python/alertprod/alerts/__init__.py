"""Alert packets (Rubin schema), serialisation, publishing with claim-check, and the consumer client.

- :mod:`~alertprod.alerts.schema`     the Rubin alert schema from ``lsst-alert-packet``, its version and id
- :mod:`~alertprod.alerts.packet`     Level 1 rows to alert records (:func:`build_alert`), validation
- :mod:`~alertprod.alerts.serialize`  Confluent-framed Avro packets and Avro container files
- :mod:`~alertprod.alerts.publish`    archive + SNS publishing with claim-check (:class:`AlertPublisher`)
- :mod:`~alertprod.alerts.client`     the consumer client (:class:`AlertConsumer`)
- :mod:`~alertprod.alerts.voevent`    one VOEvent 2.0 document per alert (:func:`voevent_bytes`)
- :mod:`~alertprod.alerts.examples`   realistic example rows, cutouts and alerts

See docs/alerts.md.
"""

from alertprod.alerts.client import AlertConsumer, ReceivedAlert, decode_message
from alertprod.alerts.packet import (
    AlertFieldError,
    build_alert,
    build_alerts,
    to_record,
    validate_alert,
)
from alertprod.alerts.publish import (
    AlertMarksLedger,
    AlertPublisher,
    MemoryPublishLedger,
    PreparedAlert,
    PublishLedger,
    PublishStats,
    alert_attributes,
    archive_key,
    prepare_alerts,
)
from alertprod.alerts.schema import SCHEMA_ID, SCHEMA_VERSION, parsed_schema
from alertprod.alerts.serialize import (
    alert_container_bytes,
    deserialize_alert,
    frame,
    read_alert_container,
    serialize_alert,
    unframe,
    write_alert_container,
)
from alertprod.alerts.voevent import VOEventConfig, alert_voevent, voevent_bytes, voevent_ivorn

__all__ = [
    "PreparedAlert",
    "prepare_alerts",
    "build_alerts",
    "SCHEMA_ID",
    "SCHEMA_VERSION",
    "AlertConsumer",
    "AlertFieldError",
    "AlertMarksLedger",
    "AlertPublisher",
    "MemoryPublishLedger",
    "PublishLedger",
    "PublishStats",
    "ReceivedAlert",
    "alert_attributes",
    "alert_container_bytes",
    "archive_key",
    "build_alert",
    "decode_message",
    "deserialize_alert",
    "frame",
    "parsed_schema",
    "read_alert_container",
    "serialize_alert",
    "to_record",
    "unframe",
    "validate_alert",
    "write_alert_container",
    "VOEventConfig",
    "alert_voevent",
    "voevent_bytes",
    "voevent_ivorn",
]

"""The ``[notifications]`` options (registered with the core's, see :mod:`stackcore.conf.opts`)."""

from __future__ import annotations

from oslo_config import cfg

GROUP = "notifications"

OPTS = [
    cfg.StrOpt(
        "driver",
        default="noop",
        choices=[
            ("noop", "send nothing (the embedded default: no payload is even built)"),
            ("log", "one JSON line per notification (oslo.messaging's message format) on the "
                    "logger 'oslo.messaging.notification.<event_type>'; no broker needed"),
            ("messaging", "oslo.messaging's messagingv2 driver: published on the topics "
                          "through transport_url (a broker such as RabbitMQ)"),
        ],
        help="Where resource lifecycle notifications and periodic stats samples go.",
    ),
    cfg.ListOpt(
        "topics",
        default=["notifications"],
        help="Topics (with the messaging driver: queue name prefixes, "
        "'<topic>.<priority>') the notifications are published on.",
    ),
    cfg.StrOpt(
        "publisher_id",
        default="stackcore",
        help="Prefix of every notification's publisher_id, which is "
        "'<prefix>-<service>:<host>' (e.g. stackcore-volume:node1@lvm).",
    ),
    cfg.StrOpt(
        "transport_url",
        secret=True,
        help="oslo.messaging URL of the broker notifications go to with the messaging "
        "driver. Unset: [DEFAULT] transport_url (the RPC broker).",
    ),
]

"""The core's own configuration options (``[DEFAULT]``, ``[database]``, ``[notifications]``).

Each family owns its options (``stackcore/<family>/opts.py``, named by its descriptor).
``list_opts`` is the ``oslo.config.opts`` entry point: ``tox -e genconfig`` and the docs'
configuration reference are generated from it, so an option documented anywhere else is a bug.
"""

from __future__ import annotations

import socket
from collections.abc import Sequence

from oslo_config import cfg

from stackcore.conf.optiontypes import DatabaseURL
from stackcore.notifications import opts as notification_opts

DEFAULT_OPTS = [
    cfg.StrOpt(
        "host",
        default=socket.gethostname(),
        sample_default="<hostname>",
        help="Name of this node; services started here register under it.",
    ),
    cfg.StrOpt(
        "state_path",
        help="Directory for the embedded database, image store and driver state. "
        "Unset: a private temporary directory removed when the Cloud closes.",
    ),
    cfg.StrOpt(
        "transport_url",
        default="inprocess://",
        secret=True,
        help="RPC transport: 'inprocess://' (the embedded default: direct dispatch through the "
        "wire serializer) or an oslo.messaging URL such as rabbit://user:pass@host:5672/.",
    ),
    cfg.IntOpt("report_interval", default=10, min=1, max=3600,
               help="Seconds between two heartbeats of a service (written by a thread of their "
               "own, never delayed by the service's work)."),
    cfg.IntOpt(
        "service_down_time",
        default=60,
        min=1,
        max=86400,
        help="Seconds without a heartbeat after which a service is considered down. Must be "
        "at least 3 x report_interval (checked at start-up): a live service that missed a "
        "heartbeat or two (a busy process, a slow database) is never declared down.",
    ),
    cfg.IntOpt("periodic_interval", default=10, min=1, max=86400,
               help="Seconds between two runs of a service's periodic tasks (e.g. the "
               "hypervisor and volume backend statistics)."),
    cfg.IntOpt("rpc_call_timeout", default=60, min=1, max=86400,
               help="Seconds to wait for an RPC reply."),
]

DATABASE_OPTS = [
    cfg.Opt(
        "connection",
        type=DatabaseURL(),
        secret=True,
        help="SQLAlchemy URL. Unset: SQLite in state_path. PostgreSQL for multi-process, e.g. "
        "postgresql+psycopg2://user:pass@host/db.",
    ),
    cfg.BoolOpt("auto_migrate", default=True, help="Run Alembic migrations to head on start."),
]

GROUPS: list[tuple[str, Sequence[cfg.Opt]]] = [
    ("DEFAULT", DEFAULT_OPTS),
    ("database", DATABASE_OPTS),
    (notification_opts.GROUP, notification_opts.OPTS),
]


def list_opts() -> list[tuple[str, Sequence[cfg.Opt]]]:
    """The ``oslo.config.opts`` hook: the core options, every family's, and those of the
    families' core plugins (the fakes)."""
    from stackcore import families

    found: list[tuple[str, Sequence[cfg.Opt]]] = list(GROUPS)
    for family in families.all_families():
        found += [(g, list(o)) for g, o in family.option_groups()]
        found += [(g, list(o)) for g, o in family.plugin_option_groups()]
    return found

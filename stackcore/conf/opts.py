"""Every core configuration option, grouped per family.

``list_opts`` is the ``oslo.config.opts`` entry point: ``tox -e genconfig`` and the docs'
configuration reference are generated from it, so an option documented anywhere else is a bug.
"""

from __future__ import annotations

import socket

from oslo_config import cfg

from stackcore.network.opts import GROUPS as NETWORK_GROUPS
from stackcore.scheduler.opts import OPTS as SCHEDULER_FILTER_OPTS
from stackcore.volume.opts import GROUPS as VOLUME_GROUPS

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
    cfg.IntOpt("report_interval", default=10, min=1, help="Seconds between service reports."),
    cfg.IntOpt(
        "service_down_time",
        default=60,
        min=1,
        help="Seconds without a report after which a service is considered down.",
    ),
    cfg.IntOpt("rpc_call_timeout", default=60, min=1, help="Seconds to wait for an RPC reply."),
]

DATABASE_OPTS = [
    cfg.StrOpt(
        "connection",
        secret=True,
        help="SQLAlchemy URL. Unset: SQLite in state_path. PostgreSQL for multi-process, e.g. "
        "postgresql+psycopg2://user:pass@host/db.",
    ),
    cfg.BoolOpt("auto_migrate", default=True, help="Run Alembic migrations to head on start."),
]

COMPUTE_OPTS = [
    cfg.StrOpt(
        "driver",
        default="fake",
        help="Hypervisor driver: an entry point name in stackcore.compute.drivers.",
    ),
    cfg.ListOpt(
        "hosts",
        default=["compute-1"],
        help="Compute hosts this process runs a compute service for (the embedded default "
        "runs them all in one process). Empty: no compute service here.",
    ),
    cfg.StrOpt(
        "availability_zone", default="nova", help="Availability zone of the compute hosts here."
    ),
    cfg.IntOpt(
        "build_timeout",
        default=600,
        min=1,
        help="Seconds Cloud.compute.create_server(wait=True) waits for ACTIVE or ERROR.",
    ),
    cfg.StrOpt(
        "my_ip",
        default="",
        help="Address of the compute hosts here, given to volume backends in the host "
        "connector. Empty: resolved from the host name (127.0.0.1 if it does not resolve).",
    ),
    cfg.StrOpt(
        "iscsi_initiator_name",
        default="",
        help="iSCSI initiator name given to volume backends in the host connector. Empty: "
        "/etc/iscsi/initiatorname.iscsi, else iqn.2010-10.dev.stackcore:<host>.",
    ),
]

SCHEDULER_OPTS = [
    cfg.FloatOpt("cpu_allocation_ratio", default=16.0, min=0.0, help="vCPU overcommit ratio."),
    cfg.FloatOpt("ram_allocation_ratio", default=1.5, min=0.0, help="RAM overcommit ratio."),
    cfg.FloatOpt("disk_allocation_ratio", default=1.0, min=0.0, help="Disk overcommit ratio."),
    cfg.IntOpt(
        "max_attempts",
        default=3,
        min=1,
        help="Hosts tried for one build before giving up (the first choice plus alternates).",
    ),
]

GROUPS: list[tuple[str, list[cfg.Opt]]] = [
    ("DEFAULT", DEFAULT_OPTS),
    ("database", DATABASE_OPTS),
    ("compute", COMPUTE_OPTS),
    ("scheduler", SCHEDULER_OPTS + SCHEDULER_FILTER_OPTS),
    *VOLUME_GROUPS,
    *NETWORK_GROUPS,
]


def list_opts() -> list[tuple[str, list[cfg.Opt]]]:
    """The ``oslo.config.opts`` hook: core options plus those of the core's own fake plugins."""
    from stackcore.compute import fake
    from stackcore.network.mech_fake import list_opts as network_fake_opts
    from stackcore.volume.opts import list_opts as volume_list_opts

    return [*GROUPS, *fake.list_opts(),
            *[(g, o) for g, o in volume_list_opts() if g != "volume"],
            *network_fake_opts()]

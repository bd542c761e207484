"""Options of the compute family (``[compute]``), and the list of every compute option group.

Compute placement's options live in the shared ``[scheduler]`` group
(:mod:`stackcore.compute.placement.opts`), the metadata service's in ``[metadata]``
(:mod:`stackcore.compute.metadata.opts`); a hypervisor driver adds its own groups through
``list_opts()``, registered when the driver loads.
"""

from __future__ import annotations

from typing import Any

from stackcore import lazy
from stackcore.compute.metadata import opts as metadata_opts
from stackcore.compute.placement import opts as placement_opts
from stackcore.conf.optiontypes import NAME, UniqueList

GROUP = "compute"

OPTS = lazy.options(lambda cfg: [
    cfg.StrOpt(
        "driver",
        default="fake",
        help="Hypervisor driver: an entry point name in stackcore.compute.drivers.",
    ),
    cfg.Opt(
        "hosts",
        type=UniqueList(NAME),
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
    cfg.BoolOpt(
        "allow_resize_to_same_host",
        default=False,
        help="Whether a resize may pick the server's own host (Nova's option of the same "
        "name; a cold migration never does). Off by default, as in Nova: a resize on the "
        "same host holds both flavors' claims there until confirm or revert.",
    ),
])


def list_opts() -> list[tuple[str, Any]]:
    """Every option group the compute family registers on a Cloud."""
    return [(GROUP, OPTS), (placement_opts.GROUP, placement_opts.OPTS),
            (metadata_opts.GROUP, metadata_opts.OPTS)]


def plugin_opts() -> list[tuple[str, Any]]:
    """Options of the family's core plugins (the fake hypervisor), for the sample config."""
    from stackcore.compute import fake

    return list(fake.list_opts())

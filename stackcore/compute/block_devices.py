"""Volumes of servers, compute side: device names, the host connector, the BDM rows.

The volume family exports a volume to a *host* described by an os-brick style connector and
answers with a Cinder-style ``connection_info``; the compute manager hands that to its
hypervisor driver. This module holds the small pieces the manager and the API share.
"""

from __future__ import annotations

import itertools
import os
import platform
import socket
import string
import sys
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

import sqlalchemy as sa

from stackcore import exception, validate
from stackcore.compute.models import BdmStatus, BlockDeviceMapping

#: Device names handed out when the caller names none: ``/dev/vdb``, ``/dev/vdc``... (Nova's
#: choice: the root disk's virtio bus; ``/dev/vda`` is the root disk itself).
DEFAULT_PREFIX = "/dev/vd"
#: The root disk's device: a volume-backed server's root volume is mapped here (boot_index 0).
ROOT_DEVICE = "/dev/vda"
_INITIATOR_FILE = "/etc/iscsi/initiatorname.iscsi"


def _suffixes() -> Iterator[str]:
    letters = string.ascii_lowercase
    yield from letters
    for first, second in itertools.product(letters, letters):
        yield first + second


def next_device_name(used: Iterable[str], prefix: str = DEFAULT_PREFIX) -> str:
    """The first ``<prefix><letter(s)>`` after ``a`` that no device in ``used`` has."""
    taken = set(used)
    for suffix in _suffixes():
        name = prefix + suffix
        if suffix != "a" and name not in taken:
            return name
    raise exception.QuotaExceeded(f"no free device name left with prefix {prefix}")


def check_device_name(field: str, value: Any) -> str:
    """A device name such as ``/dev/vdb`` or ``/dev/sdc`` (never the root disk)."""
    name = validate.name(field, value)
    base = name.rsplit("/", 1)[-1]
    if not name.startswith("/dev/") or len(base) < 3 or base[:2] not in ("vd", "sd", "xv", "hd") \
            or not base[2:].isalpha() or base[2:] == "a":
        raise exception.Invalid(field, "must be a free disk device such as /dev/vdb or /dev/sdb "
                                "(not the root disk /dev/vda or /dev/sda)", value)
    return name


def host_connector(host: str, ip: str, initiator: str) -> dict[str, Any]:
    """The os-brick connector properties of this compute host (what
    ``os_brick.utils.get_connector_properties`` reports, minus what needs root helpers).

    ``initiator`` is the iSCSI initiator name: from ``[compute] iscsi_initiator_name``, else
    ``/etc/iscsi/initiatorname.iscsi``, else one derived from the host name. The libvirt driver
    lets QEMU's own initiator (libiscsi) log in, so no host iSCSI service is needed.
    """
    return {
        "host": host,
        "ip": ip or _guess_ip(host),
        "initiator": initiator or _initiator_from_file() or f"iqn.2010-10.dev.stackcore:{host}",
        "platform": platform.machine(),
        "os_type": sys.platform,
        "multipath": False,
        "do_local_attach": False,
    }


def _guess_ip(host: str) -> str:
    try:
        return socket.gethostbyname(host)
    except OSError:
        return "127.0.0.1"


def _initiator_from_file() -> str | None:
    if not os.path.exists(_INITIATOR_FILE):
        return None
    with open(_INITIATOR_FILE) as handle:
        for line in handle:
            key, _, value = line.strip().partition("=")
            if key == "InitiatorName" and value:
                return value
    return None


def rows(session: Any, instance_uuid: str) -> list[BlockDeviceMapping]:
    return list(session.execute(
        sa.select(BlockDeviceMapping).where(BlockDeviceMapping.instance_uuid == instance_uuid)
        .order_by(BlockDeviceMapping.id)).scalars())


def block_device_info(bdms: Iterable[BlockDeviceMapping],
                      infos: Mapping[str, Mapping[str, Any]] | None = None
                      ) -> list[dict[str, Any]]:
    """The ``block_device_info`` a driver gets: ``{mount_device, volume_id[, boot_index][,
    connection_info]}`` per volume (``boot_index`` 0: the root volume); ``connection_info``
    only where ``infos`` has it (it is never stored, so destroy and reconciliation pass the
    device names only)."""
    result = []
    for bdm in bdms:
        entry: dict[str, Any] = {"mount_device": bdm.device_name, "volume_id": bdm.volume_id}
        if bdm.boot_index is not None:
            entry["boot_index"] = bdm.boot_index
        if infos is not None and bdm.volume_id in infos:
            entry["connection_info"] = dict(infos[bdm.volume_id])
        result.append(entry)
    return result


#: Where a volume settles once made (what a boot from a new volume waits for).
_SETTLED = ("available", "error", "deleted")
#: Being made: a delete has to wait for the end of it (the volume API refuses it meanwhile).
_BEING_MADE = ("creating", "downloading")


def await_volume(volume_api: Any, volume_id: str, what: str) -> None:
    """Wait (the volume API's ``operation_timeout``) until the volume is made; InvalidState
    naming it and its status when it ended otherwise than ``available``."""
    volume = volume_api.wait(volume_id, _SETTLED)
    if volume.status != "available":
        fault = getattr(volume, "fault", None)
        raise exception.InvalidState(
            f"{what} {volume_id} is {volume.status}, not available"
            + (f": {fault.message}" if fault is not None else ""), state=volume.status)


def delete_volume(volume_api: Any, volume_id: str) -> None:
    """Delete a volume a server owned (``delete_on_termination``), its export already
    ended; one still being made is awaited first. Gone already is fine."""
    try:
        if volume_api.get(volume_id).status in _BEING_MADE:
            volume_api.wait(volume_id, _SETTLED)
        volume_api.delete(volume_id)
    except exception.NotFound:
        return


def refuse_root_detach(bdm: BlockDeviceMapping) -> None:
    """Invalid for a server's root volume: it is its root disk (Nova refuses it too)."""
    if bdm.boot_index == 0:
        raise exception.Invalid(
            "volume_id", f"volume {bdm.volume_id} is the root disk of server "
            f"{bdm.instance_uuid} (it boots from it): it is detached when the server is "
            "deleted", bdm.volume_id)


def root_volume(bdms: Iterable[BlockDeviceMapping]) -> BlockDeviceMapping | None:
    """The mapping of a volume-backed server's root volume, or None."""
    return next((b for b in bdms if b.boot_index == 0), None)


__all__ = ["ROOT_DEVICE", "BdmStatus", "BlockDeviceMapping", "await_volume",
           "block_device_info", "check_device_name", "delete_volume", "host_connector",
           "next_device_name", "refuse_root_detach", "root_volume", "rows"]

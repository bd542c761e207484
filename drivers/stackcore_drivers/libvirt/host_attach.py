"""Host-side volume attach with os-brick, for a hypervisor that needs a host device.

QEMU reaches iSCSI, NFS and RBD volumes by itself (network disks, see
:mod:`stackcore_drivers.libvirt.volume`); a hypervisor that cannot (or an operator who wants
the kernel's initiator and client: multipath, kernel NFS) needs the volume as a device or file
on the compute host first. That is Nova's way: os-brick connectors, chosen by the
``driver_volume_type`` of the ``connection_info``:

* ``iscsi`` - open-iscsi (``iscsiadm``: node record, CHAP, login), the disk found by its
  ``/dev/disk/by-path`` link;
* ``nfs`` - the kernel NFS client: the share mounted under ``mount_point_base`` (os-brick's
  RemoteFsClient, the path Nova uses), the volume a file in it.

The connector properties the volume service needs for ``initialize_connection`` (initiator IQN,
host, IP, multipath, ...) come from os-brick too (:meth:`HostAttach.connector_properties`).

Failure is designed: a connect that fails (wrong CHAP secret, a target that goes away before
its disk appears, an unreachable share) raises :class:`~stackcore.exception.DriverError`
naming the volume and the reason, after os-brick removed what it had made (node record,
session, mount); :meth:`HostAttach.disconnect` leaves no session, mount or device behind and
is idempotent. Secrets never appear in messages.

Runs as root (as the compute service with a hypervisor does): os-brick's privileged calls run
in this process (privsep client mode off) instead of through a privsep daemon.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Mapping
from typing import Any

from stackcore import exception

#: connection_info types attached on the host, and os-brick's protocol name for each.
PROTOCOLS = {"iscsi": "ISCSI", "nfs": "NFS"}

_SETUP_LOCK = threading.Lock()
_set_up = False


def _setup_os_brick(lock_path: str) -> None:
    """Once per process, before os-brick's first call: its privileged functions run in this
    process (we are root), not in a privsep daemon; its file locks (one iSCSI login per
    portal at a time, across processes) live in ``lock_path`` unless ``[oslo_concurrency]
    lock_path`` already says where (os-brick refuses to lock without one)."""
    global _set_up
    with _SETUP_LOCK:
        if _set_up:
            return
        import os_brick
        import os_brick.privileged
        from oslo_concurrency import lockutils
        from oslo_config import cfg

        os_brick.privileged.default.set_client_mode(False)
        if not cfg.CONF.oslo_concurrency.lock_path:
            os.makedirs(lock_path, mode=0o700, exist_ok=True)
            lockutils.set_defaults(lock_path)
        os_brick.setup(cfg.CONF)
        _set_up = True


class HostAttach:
    """Attach and detach volumes on this host with os-brick connectors."""

    def __init__(self, mount_point_base: str, lock_path: str, my_ip: str = "127.0.0.1",
                 host: str = "", device_scan_attempts: int = 3,
                 use_multipath: bool = False) -> None:
        self.mount_point_base = mount_point_base
        self.lock_path = lock_path
        self.my_ip = my_ip
        self.host = host
        self.device_scan_attempts = device_scan_attempts
        self.use_multipath = use_multipath

    def connector_properties(self) -> dict[str, Any]:
        """What ``initialize_connection`` needs to know about this host (os-brick's
        ``get_connector_properties``: ``initiator``, ``ip``, ``host``, ``multipath``, ...)."""
        _setup_os_brick(self.lock_path)
        from os_brick.initiator import connector

        props: dict[str, Any] = connector.get_connector_properties(
            None, self.my_ip, self.use_multipath, enforce_multipath=False, host=self.host or None)
        return props

    def _connector(self, kind: str) -> Any:
        protocol = PROTOCOLS.get(kind)
        if protocol is None:
            raise exception.Invalid("driver_volume_type",
                                    f"{kind!r} is not attached on the host (supported: "
                                    f"{', '.join(PROTOCOLS)})", kind)
        _setup_os_brick(self.lock_path)
        from os_brick.initiator import connector

        return connector.InitiatorConnector.factory(
            protocol, None, use_multipath=self.use_multipath,
            device_scan_attempts=self.device_scan_attempts,
            nfs_mount_point_base=self.mount_point_base)

    @staticmethod
    def _kind_and_data(connection_info: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
        if not isinstance(connection_info, Mapping) or not isinstance(
                connection_info.get("data"), Mapping):
            raise exception.Invalid("connection_info", "must be a mapping with a data mapping")
        return str(connection_info.get("driver_volume_type")), dict(connection_info["data"])

    def connect(self, connection_info: Mapping[str, Any]) -> dict[str, Any]:
        """Attach; returns os-brick's device info (``path``: the block device or file the
        hypervisor opens, ``type``: ``block`` or ``file``). DriverError if it cannot."""
        kind, data = self._kind_and_data(connection_info)
        brick = self._connector(kind)
        volume = data.get("volume_id") or data.get("name") or data.get("target_iqn") or "?"
        try:
            info: dict[str, Any] = brick.connect_volume(data)
        except Exception as err:  # noqa: BLE001 - os-brick raises many types; one error out
            # os-brick cleans up a failed iSCSI login (node record, session); be sure
            self._cleanup_after_failure(brick, kind, data)
            raise exception.DriverError(
                f"attaching {kind} volume {volume} on this host failed: "
                f"{type(err).__name__}: {_safe(err, data)}") from None
        if kind == "nfs":
            info.setdefault("type", "file")
        return info

    def _cleanup_after_failure(self, brick: Any, kind: str, data: dict[str, Any]) -> None:
        try:
            brick.disconnect_volume(data, None, force=True, ignore_errors=True)
        except Exception:  # noqa: BLE001,S110 - best effort after a failed connect
            pass

    def disconnect(self, connection_info: Mapping[str, Any],
                   device_info: Mapping[str, Any] | None = None, force: bool = False) -> None:
        """Detach: flush and remove the device, log out (iSCSI) or unmount (NFS, when no
        other volume of the share is attached). Idempotent."""
        kind, data = self._kind_and_data(connection_info)
        brick = self._connector(kind)
        try:
            brick.disconnect_volume(data, dict(device_info) if device_info else None,
                                    force=force, ignore_errors=force)
        except Exception as err:  # noqa: BLE001
            raise exception.DriverError(
                f"detaching {kind} volume on this host failed: {type(err).__name__}: "
                f"{_safe(err, data)}") from None
        if kind == "nfs":
            self._unmount_if_unused(brick, data)

    def _unmount_if_unused(self, brick: Any, data: dict[str, Any]) -> None:
        """os-brick's NFS connector leaves the share mounted (Nova unmounts it when the last
        volume on it goes): here every volume's detach unmounts its share if nothing on it is
        open any more (umount refuses then: busy)."""
        from stackcore_drivers.volume.processes import execute

        mount_point = brick._remotefsclient.get_mount_point(data["export"])  # noqa: SLF001
        with open("/proc/mounts", encoding="utf-8") as handle:
            mounts = handle.read().split("\n")
        if any(line.split(" ")[1:2] == [mount_point] for line in mounts):
            execute("umount", mount_point, check_exit_code=[0, 32])


def _safe(err: BaseException, data: Mapping[str, Any]) -> str:
    """The error text with any secret of the connection replaced."""
    text = str(err)
    for key in ("auth_password", "discovery_auth_password"):
        secret = data.get(key)
        if isinstance(secret, str) and secret:
            text = text.replace(secret, "***")
    return text[:600]

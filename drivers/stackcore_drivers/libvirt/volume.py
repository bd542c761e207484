"""Cinder-style ``connection_info`` -> a libvirt ``<disk>`` element (and the secret it needs).

Supported ``driver_volume_type`` values and the ``data`` keys read:

``iscsi``
    ``target_portal`` (``host:port``), ``target_iqn``, ``target_lun`` (default 0); CHAP when
    ``auth_method`` is ``CHAP``: ``auth_username``, ``auth_password``. Becomes a network disk
    ``protocol='iscsi'`` named ``IQN/LUN`` - QEMU's own initiator (libiscsi), no host login.
``nfs``
    ``export`` (``host:/path``) and ``name`` (the file in the export), optional ``format``
    (``raw``/``qcow2``). Becomes a network disk ``protocol='nfs'`` (QEMU's libnfs client,
    NFSv3). When ``device_path`` is given instead (a file on a share the host has mounted), a
    plain file disk.
``rbd``
    ``name`` (``pool/image``), ``hosts`` + ``ports`` (monitors); when ``auth_enabled``:
    ``auth_username`` and either ``secret_uuid`` (a libvirt secret that already exists on the
    host, as Nova expects) or ``auth_key`` (the cephx key; the driver keeps it in a libvirt
    secret it owns). Becomes a network disk ``protocol='rbd'``.

A boot volume (the root disk of a volume-backed instance: :func:`parse_root`) is always ``vda``
on virtio; data volumes never are. Every problem raises :class:`~stackcore.exception.Invalid`
naming the field, before anything is made. Secret values never appear in reprs, messages or logs.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import ipaddress
import posixpath
import re
import uuid as uuid_lib
import xml.etree.ElementTree as ET
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from stackcore import exception
from stackcore_drivers.libvirt.domain_xml import sub

SUPPORTED_TYPES = ("iscsi", "nfs", "rbd")
#: where a boot volume (the root disk) sits: the domain's first virtio disk
ROOT_MOUNTPOINT = "/dev/vda"
_FORMATS = ("raw", "qcow2")
_TARGET_DEV = re.compile(r"^(vd|sd)[a-z]{1,2}$")
_SERIAL = re.compile(r"^[A-Za-z0-9_.+-]{1,36}$")
_IQN = re.compile(r"^(iqn\.|eui\.|naa\.)\S+$")

#: Usage ids of secrets the driver owns: ``stackcore/<instance uuid>/<target dev>``.
SECRET_USAGE_PREFIX = "stackcore/"  # noqa: S105 - a name prefix, not a password


def secret_usage_id(instance_uuid: str, target_dev: str) -> str:
    return f"{SECRET_USAGE_PREFIX}{instance_uuid}/{target_dev}"


def secret_usage_prefix(instance_uuid: str) -> str:
    return f"{SECRET_USAGE_PREFIX}{instance_uuid}/"


@dataclasses.dataclass(frozen=True)
class SecretSpec:
    """A libvirt secret the driver defines for one attachment (CHAP password, cephx key)."""

    usage_type: str  # iscsi | ceph
    usage_id: str
    value: bytes = dataclasses.field(repr=False)

    def element(self) -> ET.Element:
        secret = ET.Element("secret", ephemeral="no", private="yes")
        sub(secret, "description", f"stackcore {self.usage_type} credential {self.usage_id}")
        usage = sub(secret, "usage", type=self.usage_type)
        sub(usage, "target" if self.usage_type == "iscsi" else "name", self.usage_id)
        return secret


@dataclasses.dataclass(frozen=True)
class VolumeDisk:
    """One parsed attachment, ready to become a ``<disk>``."""

    kind: str
    target_dev: str
    bus: str
    disk_format: str = "raw"
    protocol: str | None = None  # network disks
    source_name: str | None = None  # network disks
    hosts: tuple[tuple[str, str | None], ...] = ()
    path: str | None = None  # file disks
    serial: str | None = None
    auth_username: str | None = None
    secret_usage_type: str | None = None
    existing_secret_uuid: str | None = None
    secret: SecretSpec | None = None
    #: a multiattach volume: ``<shareable/>`` (QEMU then takes no exclusive lock on it and
    #: libvirt lets several domains have it, as Nova does for multiattach volumes)
    shareable: bool = False

    def element(self, secret_uuid: str | None = None) -> ET.Element:
        """The ``<disk>``; ``secret_uuid`` is the uuid of :attr:`secret` once defined."""
        if self.path is not None:
            disk = ET.Element("disk", type="file", device="disk")
            sub(disk, "driver", name="qemu", type=self.disk_format, cache="none")
            sub(disk, "source", file=self.path)
        else:
            disk = ET.Element("disk", type="network", device="disk")
            sub(disk, "driver", name="qemu", type=self.disk_format, cache="none")
            source = sub(disk, "source", protocol=self.protocol or "", name=self.source_name or "")
            for host, port in self.hosts:
                if port:
                    sub(source, "host", name=host, port=port)
                else:
                    sub(source, "host", name=host)
            uuid = secret_uuid or self.existing_secret_uuid
            if self.auth_username is not None and uuid is not None:
                auth = sub(source, "auth", username=self.auth_username)
                sub(auth, "secret", type=self.secret_usage_type or "", uuid=uuid)
        sub(disk, "target", dev=self.target_dev, bus=self.bus)
        if self.serial:
            sub(disk, "serial", self.serial)
        if self.shareable:
            sub(disk, "shareable")
        return disk


def target_from_mountpoint(mountpoint: str) -> tuple[str, str]:
    """``/dev/vdb`` -> (``vdb``, ``virtio``); ``/dev/sdc`` -> (``sdc``, ``scsi``)."""
    dev = posixpath.basename(str(mountpoint))
    if not _TARGET_DEV.match(dev) or dev in ("vda", "sda"):
        raise exception.Invalid(
            "mountpoint",
            f"{mountpoint!r} is not a free disk name like /dev/vdb (virtio) or /dev/sdb (scsi)",
            mountpoint,
        )
    return dev, ("virtio" if dev.startswith("vd") else "scsi")


def _field(data: Mapping[str, Any], key: str, kind: str) -> str:
    value = data.get(key)
    if not isinstance(value, str) or not value.strip():
        raise exception.Invalid(
            f"connection_info.data.{key}", f"a non-empty string is required for {kind} volumes"
        )
    return value.strip()


def _host_port(portal: str, field: str) -> tuple[str, str | None]:
    """``host:port`` / ``[v6]:port`` / ``host`` -> (host, port)."""
    host, port = portal, None
    if portal.startswith("["):
        host, _, rest = portal[1:].partition("]")
        port = rest[1:] if rest.startswith(":") else None
    elif portal.count(":") == 1:
        host, port = portal.split(":")
    if port is not None and (not port.isdigit() or not 0 < int(port) < 65536):
        raise exception.Invalid(field, f"bad port in {portal!r}", portal)
    if not host or any(c.isspace() or c in "/@" for c in host):
        raise exception.Invalid(field, f"bad host in {portal!r}", portal)
    if ":" in host:
        ipaddress.IPv6Address(host)  # a bare IPv6 address must at least parse
    return host, port


def _serial(data: Mapping[str, Any]) -> str | None:
    value = data.get("volume_id") or data.get("serial")
    return value if isinstance(value, str) and _SERIAL.match(value) else None


def _format(data: Mapping[str, Any]) -> str:
    value = data.get("format") or "raw"
    if value not in _FORMATS:
        raise exception.Invalid("connection_info.data.format",
                                f"must be one of {', '.join(_FORMATS)}", value)
    return str(value)


def parse(
    connection_info: Mapping[str, Any], instance_uuid: str, mountpoint: str
) -> VolumeDisk:
    """Validate ``connection_info`` for ``mountpoint``; raise Invalid naming the culprit."""
    return _parse(connection_info, instance_uuid, mountpoint, target_from_mountpoint)


def parse_root(connection_info: Mapping[str, Any], instance_uuid: str,
               mountpoint: str = ROOT_MOUNTPOINT) -> VolumeDisk:
    """Validate the ``connection_info`` of a boot volume: the instance's root disk, always
    ``vda`` on virtio (the disk the domain boots from). ``mountpoint`` is where the block
    device mapping puts it; anything but :data:`ROOT_MOUNTPOINT` raises Invalid naming
    ``block_device_info.mount_device``."""
    _root_target(mountpoint)  # the place first: it is what makes this the root disk
    return _parse(connection_info, instance_uuid, mountpoint, _root_target)


def _root_target(mountpoint: str) -> tuple[str, str]:
    if mountpoint != ROOT_MOUNTPOINT:
        raise exception.Invalid(
            "block_device_info.mount_device",
            f"the boot volume (boot_index 0) is the root disk and must be at "
            f"{ROOT_MOUNTPOINT}, not {mountpoint!r}", mountpoint)
    return "vda", "virtio"


def _parse(connection_info: Mapping[str, Any], instance_uuid: str, mountpoint: str,
           target: Callable[[str], tuple[str, str]]) -> VolumeDisk:
    if not isinstance(connection_info, Mapping):
        raise exception.Invalid("connection_info", "must be a mapping")
    kind = connection_info.get("driver_volume_type")
    if kind not in SUPPORTED_TYPES:
        raise exception.Invalid(
            "driver_volume_type",
            f"unsupported volume type {kind!r} (the libvirt driver attaches "
            f"{', '.join(SUPPORTED_TYPES)})",
            kind,
        )
    data = connection_info.get("data")
    if not isinstance(data, Mapping):
        raise exception.Invalid("connection_info.data", "must be a mapping")
    target_dev, bus = target(mountpoint)
    multiattach = connection_info.get("multiattach", False)
    if not isinstance(multiattach, bool):
        raise exception.Invalid("connection_info.multiattach", "must be true or false",
                                multiattach)
    common: dict[str, Any] = {"kind": kind, "target_dev": target_dev, "bus": bus,
                              "serial": _serial(data), "shareable": multiattach}
    if kind == "iscsi":
        return _parse_iscsi(data, instance_uuid, common)
    if kind == "nfs":
        return _parse_nfs(data, common)
    return _parse_rbd(data, instance_uuid, common)


def _parse_iscsi(data: Mapping[str, Any], instance_uuid: str, common: dict[str, Any]) -> VolumeDisk:
    portal = _field(data, "target_portal", "iscsi")
    iqn = _field(data, "target_iqn", "iscsi")
    if not _IQN.match(iqn) or "/" in iqn:
        raise exception.Invalid("connection_info.data.target_iqn",
                                "must be an iSCSI name (iqn./eui./naa.)", iqn)
    lun = data.get("target_lun", 0)
    if isinstance(lun, bool) or not isinstance(lun, int | str) or not str(lun).isdigit():
        raise exception.Invalid("connection_info.data.target_lun",
                                "must be a non-negative integer", lun)
    host = _host_port(portal, "connection_info.data.target_portal")
    method = data.get("auth_method")
    secret = None
    username = None
    if method:
        if str(method).upper() != "CHAP":
            raise exception.Invalid("connection_info.data.auth_method",
                                    "only CHAP is supported", method)
        username = _field(data, "auth_username", "iscsi CHAP")
        password = _field(data, "auth_password", "iscsi CHAP")
        secret = SecretSpec("iscsi", secret_usage_id(instance_uuid, common["target_dev"]),
                            password.encode())
    return VolumeDisk(**common, protocol="iscsi", source_name=f"{iqn}/{int(lun)}",
                      hosts=(host,), auth_username=username,
                      secret_usage_type="iscsi" if secret else None, secret=secret)


def _parse_nfs(data: Mapping[str, Any], common: dict[str, Any]) -> VolumeDisk:
    disk_format = _format(data)
    local = data.get("device_path")
    if local is not None:
        if not isinstance(local, str) or not posixpath.isabs(local):
            raise exception.Invalid("connection_info.data.device_path",
                                    "must be an absolute path on a mounted share", local)
        return VolumeDisk(**common, disk_format=disk_format, path=posixpath.normpath(local))
    export = _field(data, "export", "nfs")
    name = _field(data, "name", "nfs")
    server, sep, path = export.rpartition(":")
    if not sep or not server or not posixpath.isabs(path):
        raise exception.Invalid("connection_info.data.export", "must be host:/absolute/path",
                                export)
    if "/" in name or name in (".", ".."):
        raise exception.Invalid("connection_info.data.name", "must be a file name in the export",
                                name)
    host, port = _host_port(server.strip("[]") if server.startswith("[") else server,
                            "connection_info.data.export")
    return VolumeDisk(**common, disk_format=disk_format, protocol="nfs",
                      source_name=posixpath.join(posixpath.normpath(path), name),
                      hosts=((host, port),))


def _cephx_key(data: Mapping[str, Any]) -> bytes:
    """The cephx key as libvirt stores it: the raw bytes behind Ceph's base64 text."""
    try:
        return base64.b64decode(_field(data, "auth_key", "rbd"), validate=True)
    except binascii.Error:
        raise exception.Invalid("connection_info.data.auth_key",
                                "must be a base64 cephx key") from None


def _parse_rbd(data: Mapping[str, Any], instance_uuid: str, common: dict[str, Any]) -> VolumeDisk:
    name = _field(data, "name", "rbd")
    pool, sep, image = name.partition("/")
    if not sep or not pool or not image or any(c.isspace() for c in name):
        raise exception.Invalid("connection_info.data.name", "must be pool/image", name)
    hosts_value = data.get("hosts") or []
    ports_value = data.get("ports") or []
    if not isinstance(hosts_value, Sequence) or isinstance(hosts_value, str) or not hosts_value:
        raise exception.Invalid("connection_info.data.hosts",
                                "a non-empty list of monitor hosts is required", hosts_value)
    if ports_value and len(ports_value) != len(hosts_value):
        raise exception.Invalid("connection_info.data.ports",
                                "must list one port per monitor host", ports_value)
    hosts = []
    for index, host in enumerate(hosts_value):
        port = str(ports_value[index]) if ports_value else None
        spec = f"[{host}]:{port}" if port and ":" in str(host) else (
            f"{host}:{port}" if port else str(host))
        hosts.append(_host_port(spec, "connection_info.data.hosts"))
    username = None
    secret = None
    existing = None
    if data.get("auth_enabled"):
        username = _field(data, "auth_username", "rbd with auth_enabled")
        if data.get("auth_key"):
            secret = SecretSpec("ceph", secret_usage_id(instance_uuid, common["target_dev"]),
                                _cephx_key(data))
        elif data.get("secret_uuid"):
            existing = _field(data, "secret_uuid", "rbd")
            try:
                uuid_lib.UUID(existing)
            except ValueError:
                raise exception.Invalid("connection_info.data.secret_uuid", "must be a uuid",
                                        existing) from None
        else:
            raise exception.Invalid("connection_info.data.auth_key",
                                    "rbd with auth_enabled needs auth_key or secret_uuid")
    return VolumeDisk(**common, protocol="rbd", source_name=name, hosts=tuple(hosts),
                      auth_username=username, secret_usage_type="ceph" if username else None,
                      existing_secret_uuid=existing, secret=secret)

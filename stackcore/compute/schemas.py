"""Argument schemas of ``cloud.compute`` (see :mod:`stackcore.schemas`), shared by its methods
and rendered in the API reference."""

from __future__ import annotations

from typing import Any

from stackcore import schemas as s
from stackcore.compute.states import VmState

DISK_FORMATS = ("raw", "qcow2", "vmdk", "vdi", "vhd", "iso")
ARCHITECTURES = ("x86_64", "i686", "aarch64", "armv7l", "ppc64le", "s390x", "riscv64")
VM_MODES = ("hvm", "xen", "uml", "exe")
#: hypervisor types a driver may report (Nova's ``HVType``); an image naming another is refused
HYPERVISOR_TYPES = ("baremetal", "bhyve", "docker", "fake", "hyperv", "ironic", "kvm", "lxc",
                    "lxd", "parallels", "phyp", "qemu", "tcg", "uml", "vbox", "vmware", "xen",
                    "zvm")
SERVER_STATUSES = tuple(v.value.upper() for v in VmState)

FLAVOR_NAME_OR_ID = s.string(255)
IMAGE_NAME_OR_ID = s.string(255)
AGGREGATE = s.one_of(s.string(255), s.integer(1, 2**31 - 1))

IMAGE_PROPERTIES: dict[str, Any] = {
    "type": "object",
    "maxProperties": 128,
    "propertyNames": s.string(255),
    "properties": {
        "architecture": s.enum(*ARCHITECTURES),
        "hw_architecture": s.enum(*ARCHITECTURES),
        "hypervisor_type": s.enum(*HYPERVISOR_TYPES),
        "img_hv_type": s.enum(*HYPERVISOR_TYPES),
        "vm_mode": s.enum(*VM_MODES),
        "hw_vm_mode": s.enum(*VM_MODES),
    },
    "additionalProperties": s.string(255, min_length=0),
}

FIXED_IP = s.obj({"subnet_id": s.UUID, "ip_address": s.IP_ADDRESS}, min_properties=1)
NETWORK_REQUEST = s.one_of(
    s.obj({"network_id": s.UUID, "fixed_ips": s.optional(s.array(FIXED_IP, 16))},
          required=["network_id"]),
    s.obj({"port_id": s.UUID}, required=["port_id"]),
)
VOLUME_REQUEST = s.one_of(
    s.UUID, s.obj({"volume_id": s.UUID, "mountpoint": s.optional(s.DEVICE_NAME)},
                  required=["volume_id"]))
#: ``create_server(boot_volume=...)``: an existing volume (its id, or with
#: ``delete_on_termination``), or - with ``image`` - how to make a new one from the image
BOOT_VOLUME = s.optional(s.one_of(
    s.UUID,
    s.obj({"volume_id": s.UUID, "delete_on_termination": s.BOOLEAN}, required=["volume_id"]),
    s.obj({"size_gb": s.integer(1, 16384), "volume_type": s.NAME,
           "delete_on_termination": s.BOOLEAN}),
))
NETWORKS = s.optional(s.array(NETWORK_REQUEST, 16))
VOLUMES = s.optional(s.array(VOLUME_REQUEST, 26))
#: names or ids of security groups (resolved by the network API)
SECURITY_GROUPS = s.optional(s.array(s.NAME, 16))

#: Nova's keypair names: letters, digits, spaces and ``_-.@``, 1-255 characters
KEYPAIR_NAME = s.string(255, "keypair-name")
#: one OpenSSH public key line (``ssh-ed25519 AAAA... comment``); an RSA-16384 key fits
PUBLIC_KEY = s.string(16384)
#: user data: base64 (MIME line breaks allowed), at most 65535 characters as in Nova
USER_DATA_MAX = 65535
USER_DATA = {"type": "string", "format": "base64", "minLength": 1, "maxLength": USER_DATA_MAX}
#: whose keypair (an admin names another user: rule ``compute:keypair:other_user``)
USER_ID = s.string(255)

SERVER_SORT_KEYS = ("created_at", "name", "id")
NAME_SORT_KEYS = ("name", "id")

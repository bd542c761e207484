"""Port dicts -> libvirt ``<interface>`` elements.

A port reaches the driver as ``{"id", "address" (MAC), "vif_type", "vif_details"}`` (Neutron's
port binding fields). Supported ``vif_type`` values:

``ovs``
    ``<interface type='bridge'>`` on ``vif_details.bridge_name`` (default ``br-int``) with an
    ``openvswitch`` virtualport whose ``interfaceid`` is the port id: libvirt creates the tap,
    adds it to the bridge and sets ``external_ids:iface-id`` so the OVS agent finds the port.
``bridge``
    ``<interface type='bridge'>`` on the Linux bridge ``vif_details.bridge_name``.
"""

from __future__ import annotations

import dataclasses
import re
import xml.etree.ElementTree as ET
from collections.abc import Mapping
from typing import Any

from stackcore import exception
from stackcore_drivers.libvirt.domain_xml import sub

SUPPORTED_TYPES = ("ovs", "bridge")
_MAC = re.compile(r"^([0-9a-f]{2}:){5}[0-9a-f]{2}$")
_BRIDGE = re.compile(r"^[A-Za-z0-9_.:-]{1,15}$")  # a Linux interface name
DEFAULT_OVS_BRIDGE = "br-int"


@dataclasses.dataclass(frozen=True)
class Vif:
    port_id: str
    mac: str
    vif_type: str
    bridge: str

    @property
    def tap_name(self) -> str:
        """``tap`` + the port id's first 11 characters: Nova's naming, within IFNAMSIZ."""
        return ("tap" + self.port_id)[:14]

    def element(self) -> ET.Element:
        interface = ET.Element("interface", type="bridge")
        sub(interface, "mac", address=self.mac)
        sub(interface, "source", bridge=self.bridge)
        if self.vif_type == "ovs":
            virtualport = sub(interface, "virtualport", type="openvswitch")
            sub(virtualport, "parameters", interfaceid=self.port_id)
        sub(interface, "target", dev=self.tap_name)
        sub(interface, "model", type="virtio")
        return interface


def parse(vif: Mapping[str, Any]) -> Vif:
    """Validate one port dict; raise Invalid naming the bad field."""
    if not isinstance(vif, Mapping):
        raise exception.Invalid("network_info", "each VIF must be a mapping")
    vif_type = vif.get("vif_type")
    if vif_type not in SUPPORTED_TYPES:
        raise exception.Invalid(
            "vif_type",
            f"unsupported VIF type {vif_type!r} (the libvirt driver plugs "
            f"{', '.join(SUPPORTED_TYPES)})",
            vif_type,
        )
    port_id = vif.get("id")
    if not isinstance(port_id, str) or not re.match(r"^[A-Za-z0-9-]{1,64}$", port_id):
        raise exception.Invalid("vif.id", "a port id (uuid) is required", port_id)
    mac = str(vif.get("address") or vif.get("mac_address") or "").lower()
    if not _MAC.match(mac):
        raise exception.Invalid("vif.address", "a MAC address like fa:16:3e:00:00:01 is required",
                                mac)
    details = vif.get("vif_details") or {}
    if not isinstance(details, Mapping):
        raise exception.Invalid("vif.vif_details", "must be a mapping")
    bridge = details.get("bridge_name") or (DEFAULT_OVS_BRIDGE if vif_type == "ovs" else None)
    if not isinstance(bridge, str) or not _BRIDGE.match(bridge):
        raise exception.Invalid("vif.vif_details.bridge_name",
                                "a bridge (interface) name is required", bridge)
    return Vif(port_id=port_id, mac=mac, vif_type=vif_type, bridge=bridge)

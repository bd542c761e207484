"""Argument schemas of ``cloud.network`` (see :mod:`stackcore.schemas`)."""

from __future__ import annotations

from stackcore import schemas as s

VNIC_TYPES = ("normal", "direct", "macvtap", "baremetal", "direct-physical",
              "virtio-forwarder", "smart-nic", "vdpa", "remote-managed")
#: names that may be empty ("" = none)
TEXT = s.string(255, min_length=0)
NETWORK_TYPE = s.string(64, "identifier")
PHYSNET = {"type": "string", "pattern": r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"}
SEGMENTATION_ID = s.integer(0, 16777215)
SEGMENT = s.obj({"network_type": NETWORK_TYPE, "physical_network": s.optional(PHYSNET),
                 "segmentation_id": s.optional(SEGMENTATION_ID)}, required=["network_type"])
FIXED_IP = s.obj({"subnet_id": s.UUID, "ip_address": s.IP_ADDRESS}, min_properties=1)
FIXED_IPS = s.array(FIXED_IP, 32)
POOL = s.obj({"start": s.IP_ADDRESS, "end": s.IP_ADDRESS}, required=["start", "end"])
#: generous structural caps; the configured [network] max_* limits are checked by the API
DNS_NAMESERVERS = s.array(s.IP_ADDRESS, 256)
HOST_ROUTES = s.array(s.obj({"destination": s.CIDR, "nexthop": s.IP_ADDRESS},
                            required=["destination", "nexthop"]), 1024)
GATEWAY = s.one_of({"const": "auto"}, {"type": "null"}, s.IP_ADDRESS)
PROFILE = s.json_document()
SECURITY_GROUPS = s.array(s.UUID, 16)
PORT_REQUEST = s.one_of(
    s.obj({"network_id": s.UUID, "fixed_ips": s.optional(FIXED_IPS),
           "security_groups": s.optional(SECURITY_GROUPS)}, required=["network_id"]),
    s.obj({"port_id": s.UUID}, required=["port_id"]))
SORT_KEYS = ("name", "id")
ADDRESS_PAIRS = s.array(s.obj({"ip_address": s.string(64), "mac_address": s.MAC},
                              required=["ip_address"]), 10)

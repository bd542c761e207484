"""Options of the Linux bridge agent (``[linux_bridge]``, ``[vxlan]``)."""

from __future__ import annotations

from stackcore import lazy

LINUX_BRIDGE_OPTS = lazy.options(lambda cfg: [
    cfg.DictOpt("physical_interface_mappings", default={},
                help="physnet:interface pairs: the NIC each physical network is reached "
                     "through. Flat networks enslave it to their bridge, VLAN networks a "
                     "<interface>.<vid> sub-interface of it."),
    cfg.DictOpt("bridge_mappings", default={},
                help="physnet:bridge pairs: an existing bridge used as the bridge of the flat "
                     "network on that physical network (instead of a brq bridge)."),
    cfg.StrOpt("namespace", default="",
               help="Network namespace the agent manages (empty: its own). For containers "
                    "and tests simulating several hosts on one machine."),
])

VXLAN_OPTS = lazy.options(lambda cfg: [
    cfg.BoolOpt("enable_vxlan", default=True,
                help="Handle VXLAN networks (needs local_ip)."),
    cfg.StrOpt("local_ip", default="",
               help="This host's VXLAN endpoint; the device holding it carries the "
                    "encapsulated traffic."),
    cfg.PortOpt("udp_dstport", default=4789,
                help="VXLAN UDP port (IANA 4789; the kernel's own default is 8472)."),
    cfg.IntOpt("ttl", default=0, min=0, max=255,
               help="TTL of encapsulated packets; 0 lets the kernel choose."),
])

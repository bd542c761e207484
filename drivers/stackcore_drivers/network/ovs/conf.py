"""Options of the OVS agent (``[ovs]``) and of the ``openvswitch`` mechanism driver
(``[ml2_ovs]``)."""

from __future__ import annotations

from stackcore import lazy

AGENT_OPTS = lazy.options(lambda cfg: [
    cfg.StrOpt("ovsdb_connection", default="unix:/run/openvswitch/db.sock",
               help="OVSDB server of this host: unix:PATH, tcp:IP:PORT or ssl:IP:PORT."),
    cfg.FloatOpt("ovsdb_timeout", default=10.0, min=0.1,
                 help="Seconds an OVSDB transaction may take, including ovs-vswitchd "
                      "applying it."),
    cfg.StrOpt("ovs_rundir", default="",
               help="Directory of ovs-vswitchd's OpenFlow management sockets "
                    "(<bridge>.mgmt), which the agent programs flows through with ovs-ofctl. "
                    "Empty: the directory of a unix: ovsdb_connection, else /run/openvswitch."),
    cfg.StrOpt("integration_bridge", default="br-int",
               help="Bridge the VM ports are plugged into (at most 15 characters)."),
    cfg.StrOpt("tunnel_bridge", default="br-tun",
               help="Bridge holding the tunnel ports (at most 15 characters)."),
    cfg.StrOpt("datapath_type", default="system", choices=["system", "netdev"],
               help="Datapath of the bridges: system (kernel module) or netdev (userspace)."),
    cfg.DictOpt("bridge_mappings", default={},
                help="physnet:bridge pairs: the provider bridge of each physical network "
                     "this host reaches (flat and VLAN networks)."),
    cfg.ListOpt("tunnel_types", default=[], item_type=cfg.types.String(choices=["vxlan"]),
                help="Overlay types this host handles (vxlan); needs local_ip."),
    cfg.StrOpt("local_ip", default="",
               help="This host's tunnel endpoint address (VXLAN)."),
])

MECH_OPTS = lazy.options(lambda cfg: [
    cfg.BoolOpt("port_filter", default=False,
                help="Report vif_details port_filter: the agent enforces security groups "
                     "(this agent does not, so the default is False)."),
])

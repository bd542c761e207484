"""Configuration options of the network (ML2) family.

Registered on every Cloud through the network family's descriptor (``list_opts`` here); the
core's ``list_opts`` publishes them to ``oslo-config-generator`` and the configuration
reference.
"""

from __future__ import annotations

from collections.abc import Sequence

from oslo_config import cfg, types

ML2_OPTS: list[cfg.Opt] = [
    cfg.ListOpt(
        "type_drivers",
        default=["flat", "vlan", "vxlan"],
        help="Network type drivers to load: entry point names in "
        "stackcore.network.type_drivers. Each registers the type its get_type() returns.",
    ),
    cfg.ListOpt(
        "project_network_types",
        default=["vxlan"],
        deprecated_name="tenant_network_types",
        help="Ordered network types tried for a project network (one created without provider "
        "attributes); the first type with a free ID wins. Each must be in type_drivers.",
    ),
    cfg.ListOpt(
        "mechanism_drivers",
        default=["fake"],
        help="Ordered mechanism drivers: entry point names in "
        "stackcore.network.mechanism_drivers. Hooks run, and binding is tried, in this order.",
    ),
    cfg.IntOpt(
        "path_mtu",
        default=0,
        min=0,
        help="MTU of the underlay path carrying overlay (VXLAN) traffic; 0 means "
        "global_physnet_mtu. The overlay MTU is this minus the encapsulation overhead.",
    ),
    cfg.DictOpt(
        "physical_network_mtus",
        default={},
        help="Per physical network MTU, as physnet:mtu pairs (e.g. data:9000). Flat and VLAN "
        "segments get min(global_physnet_mtu, this value).",
    ),
    cfg.IntOpt(
        "max_binding_levels",
        default=10,
        min=1,
        max=10,
        help="Depth limit of hierarchical port binding.",
    ),
    cfg.IntOpt(
        "max_bind_tries",
        default=10,
        min=1,
        help="Times a port binding is recomputed when the port changed concurrently.",
    ),
]

NETWORK_OPTS: list[cfg.Opt] = [
    cfg.IntOpt(
        "global_physnet_mtu",
        default=1500,
        min=68,
        help="MTU of the physical networks (the underlay); every segment MTU is capped by it.",
    ),
    cfg.StrOpt(
        "base_mac",
        default="fa:16:3e:00:00:00",
        regex=r"^([0-9a-fA-F]{2}:){5}[0-9a-fA-F]{2}$",
        help="MAC prefix of generated port MACs: the first three octets are kept, the others "
        "random (a non-zero fourth octet is kept too). Must be a unicast address.",
    ),
    cfg.ListOpt(
        "local_agents",
        default=[],
        help="L2 agents this process runs for its own [DEFAULT] host, by entry-point name in "
        "stackcore.network.agents (e.g. openvswitch). For the embedded default, where "
        "agents cannot run as separate processes over in-process RPC; split deployments run "
        "each host's agent console script instead.",
    ),
    cfg.IntOpt(
        "agent_down_time",
        default=75,
        min=1,
        help="Seconds after an L2 agent's last state report at which it is considered dead; "
        "mechanism drivers refuse to bind ports to dead agents. Keep it at least 3 x the "
        "agents' [agent] report_interval (checked at start-up for the local agents).",
    ),
    cfg.IntOpt(
        "max_dns_nameservers",
        default=5,
        min=0,
        help="Most DNS nameservers a subnet's dns_nameservers may list (Neutron's option).",
    ),
    cfg.IntOpt(
        "max_subnet_host_routes",
        default=20,
        min=0,
        help="Most routes a subnet's host_routes may list (Neutron's option).",
    ),
]

FLAT_OPTS: list[cfg.Opt] = [
    cfg.ListOpt(
        "flat_networks",
        default=["*"],
        item_type=types.String(regex=r"^(\*|[A-Za-z0-9][A-Za-z0-9_.-]{0,63})$",
                               type_name="physical network name or *"),
        help="Physical networks on which flat networks may be created; '*' allows any, an "
        "empty list disables flat networks.",
    ),
]

VLAN_OPTS: list[cfg.Opt] = [
    cfg.ListOpt(
        "network_vlan_ranges",
        default=[],
        item_type=types.String(regex=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}(:[0-9]{1,4}:[0-9]{1,4})?$",
                               type_name="physnet[:min:max]"),
        help="physnet:min:max ranges of VLAN IDs for project networks, or a bare physnet "
        "name allowing only provider networks on it. Ranges of one physnet may be repeated.",
    ),
]

VXLAN_OPTS: list[cfg.Opt] = [
    cfg.ListOpt(
        "vni_ranges",
        default=["1:1000"],
        item_type=types.String(regex=r"^[0-9]{1,8}:[0-9]{1,8}$", type_name="min:max"),
        help="min:max ranges of VXLAN VNIs for project networks (1 .. 16777215).",
    ),
]

GROUPS: list[tuple[str, Sequence[cfg.Opt]]] = [
    ("ml2", ML2_OPTS),
    ("network", NETWORK_OPTS),
    ("ml2_type_flat", FLAT_OPTS),
    ("ml2_type_vlan", VLAN_OPTS),
    ("ml2_type_vxlan", VXLAN_OPTS),
]


def list_opts() -> list[tuple[str, Sequence[cfg.Opt]]]:
    """Every option group the network family registers on a Cloud."""
    return list(GROUPS)


def plugin_opts() -> list[tuple[str, Sequence[cfg.Opt]]]:
    """Options of the family's core mechanism drivers (the fakes), for the sample config."""
    from stackcore.network.mechanisms.fake import list_opts as fake_opts

    return fake_opts()

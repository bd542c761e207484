"""The OpenFlow pipeline of the OVS agent (Neutron's, kept small), as pure functions from
the host's wanted state to the flows of each bridge (``ovs-ofctl`` syntax).

Every network with ports on this host gets a *local VLAN* (1..4094) on br-int; its VM ports
are access ports tagged with it, and br-int switches with ``NORMAL``. Where the traffic
leaves br-int, the local VLAN is translated to the network's real segment:

``br-int`` (table 0)
    ``priority=3``: from ``int-<br>`` (a provider bridge) with the network's provider VLAN
    (VLAN networks) or untagged (flat) -> ``mod_vlan_vid:<local vlan>,NORMAL``;
    ``priority=2``: anything else from ``int-<br>`` -> drop (another host's VLANs);
    ``priority=2``: from a VM port that must not pass traffic (dead tag 4095) -> drop;
    ``priority=0``: ``NORMAL`` (VM <-> VM on this host, and towards patch-tun / int-<br>,
    both trunks, which the other bridges filter by local VLAN).

``br-tun`` (VXLAN)
    table 0 - classify: from ``patch-int`` -> table 22; from a VXLAN port -> table 4; else drop.
    table 4 - tunnel to local VLAN: ``tun_id=<VNI>`` -> ``mod_vlan_vid:<local vlan>``, output
    to patch-int; unknown VNIs dropped.
    table 22 - flood to tunnels: ``dl_vlan=<local vlan>`` -> ``strip_vlan,set_tunnel:<VNI>``,
    output to the VXLAN port of every peer host of that network (hosts with ports on it);
    other VLANs (and networks without peers) dropped.
    There is no MAC learning table (Neutron's 10/20): unicast is flooded to the network's
    peers like broadcast - correct, and each peer's br-int delivers only to the right MAC.

``br-<physnet>`` (one per ``bridge_mappings`` entry)
    ``priority=4``: from ``phy-<br>`` with a local VLAN -> ``mod_vlan_vid:<provider VLAN>``
    (VLAN) or ``strip_vlan`` (flat), then ``NORMAL``; ``priority=2``: anything else from
    ``phy-<br>`` -> drop; ``priority=0``: ``NORMAL`` (from the physical side, towards br-int,
    which translates back).

Flows refer to ports by OpenFlow port number (read from OVSDB), so a port recreated with
another number changes the wanted flows, and the next pass fixes them.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping, Sequence

#: br-tun tables (Neutron's numbers).
TUN_CLASSIFY, VXLAN_TUN_TO_LV, FLOOD_TO_TUN = 0, 4, 22


@dataclasses.dataclass(frozen=True)
class LocalNetwork:
    """A network wired on this host: its local VLAN on br-int and its segment."""

    network_id: str
    local_vlan: int
    network_type: str
    physical_network: str | None
    segmentation_id: int | None


def integration_flows(networks: Iterable[LocalNetwork], int_ofports: Mapping[str, int],
                      dead_ofports: Iterable[int] = (),
                      trunk_table: int | None = None,
                      tunnel_ofport: int | None = None) -> list[str]:
    """br-int's flows. ``int_ofports``: physnet -> OpenFlow port of ``int-<br>`` on br-int;
    ``dead_ofports``: VM ports that must not pass traffic. With the firewall
    (:mod:`.firewall`), ``trunk_table`` is where traffic from the trunks (the provider patches
    after translation, ``tunnel_ofport`` = patch-tun) goes instead of ``NORMAL``."""
    flows = ["table=0,priority=0 actions=NORMAL"]
    after = "NORMAL" if trunk_table is None else f"resubmit(,{trunk_table})"
    if trunk_table is not None and tunnel_ofport is not None:
        flows.append(f"table=0,priority=1,in_port={tunnel_ofport} actions={after}")
    for ofport in sorted(set(int_ofports.values())):
        flows.append(f"table=0,priority=2,in_port={ofport} actions=drop")
    for ofport in sorted(set(dead_ofports)):
        flows.append(f"table=0,priority=2,in_port={ofport} actions=drop")
    for net in sorted(networks, key=lambda n: n.local_vlan):
        patch = int_ofports.get(net.physical_network or "")
        if patch is None or net.network_type not in ("flat", "vlan"):
            continue
        if net.network_type == "vlan":
            match = f"dl_vlan={net.segmentation_id}"
        else:
            match = "vlan_tci=0x0000/0x1fff"
        flows.append(f"table=0,priority=3,in_port={patch},{match} "
                     f"actions=mod_vlan_vid:{net.local_vlan},{after}")
    return flows


def tunnel_flows(networks: Iterable[LocalNetwork], patch_int_ofport: int,
                 tunnel_ofports: Iterable[int],
                 network_tunnels: Mapping[str, Sequence[int]]) -> list[str]:
    """br-tun's flows. ``tunnel_ofports``: every VXLAN port on br-tun; ``network_tunnels``:
    network id -> the VXLAN ports of that network's peers."""
    flows = [
        f"table={TUN_CLASSIFY},priority=1,in_port={patch_int_ofport} "
        f"actions=resubmit(,{FLOOD_TO_TUN})",
        f"table={TUN_CLASSIFY},priority=0 actions=drop",
        f"table={VXLAN_TUN_TO_LV},priority=0 actions=drop",
        f"table={FLOOD_TO_TUN},priority=0 actions=drop",
    ]
    for ofport in sorted(set(tunnel_ofports)):
        flows.append(f"table={TUN_CLASSIFY},priority=1,in_port={ofport} "
                     f"actions=resubmit(,{VXLAN_TUN_TO_LV})")
    for net in sorted(networks, key=lambda n: n.local_vlan):
        if net.network_type != "vxlan" or net.segmentation_id is None:
            continue
        flows.append(f"table={VXLAN_TUN_TO_LV},priority=1,tun_id={net.segmentation_id:#x} "
                     f"actions=mod_vlan_vid:{net.local_vlan},output:{patch_int_ofport}")
        outputs = sorted(set(network_tunnels.get(net.network_id, ())))
        if outputs:
            flows.append(
                f"table={FLOOD_TO_TUN},priority=1,dl_vlan={net.local_vlan} "
                f"actions=strip_vlan,set_tunnel:{net.segmentation_id:#x},"
                + ",".join(f"output:{o}" for o in outputs))
    return flows


def physical_flows(networks: Iterable[LocalNetwork], physical_network: str,
                   phy_ofport: int) -> list[str]:
    """The flows of the provider bridge of ``physical_network``; ``phy_ofport`` is its
    ``phy-<br>`` patch port."""
    flows = ["table=0,priority=0 actions=NORMAL",
             f"table=0,priority=2,in_port={phy_ofport} actions=drop"]
    for net in sorted(networks, key=lambda n: n.local_vlan):
        if net.physical_network != physical_network:
            continue
        if net.network_type == "vlan":
            action = f"mod_vlan_vid:{net.segmentation_id}"
        elif net.network_type == "flat":
            action = "strip_vlan"
        else:
            continue
        flows.append(f"table=0,priority=4,in_port={phy_ofport},dl_vlan={net.local_vlan} "
                     f"actions={action},NORMAL")
    return flows

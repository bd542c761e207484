"""The two security group firewalls as pure functions: OVS conntrack flows and the nftables
ruleset (the same rules carry real traffic in tests/functional/network_agents/
test_*_security_groups.py)."""

from __future__ import annotations

import pytest
from stackcore_drivers.network.host_state import PortSecurity, SecurityRule
from stackcore_drivers.network.linuxbridge import firewall as nft
from stackcore_drivers.network.ovs import firewall as ovs

from stackcore import exception

MAC = "fa:16:3e:00:00:0a"
SECURITY = PortSecurity(True, (("10.0.0.10", MAC), ("10.0.0.128/25", "fa:16:3e:00:00:99")), (
    SecurityRule("egress", "IPv4", None, None, None, None),
    SecurityRule("ingress", "IPv4", 6, 1000, 1999, "192.0.2.0/24"),
    SecurityRule("ingress", "IPv4", 1, 8, None, None),
    SecurityRule("ingress", "IPv4", 33, 5, 6, None),   # DCCP ports: OVS cannot match them
))


@pytest.mark.parametrize(("low", "high", "masks"), [
    (22, 22, ["22"]),
    (1000, 1999, None),   # checked by coverage only
    (0, 65535, ["0x0000/0x0000"]),
    (8, 15, ["0x0008/0xfff8"]),
])
def test_port_masks_cover_exactly_the_range(low: int, high: int, masks: list[str] | None
                                            ) -> None:
    found = ovs.port_masks(low, high)
    if masks is not None:
        assert found == masks
    covered = set()
    for item in found:
        value, _, mask = item.partition("/")
        v, m = int(value, 0), int(mask, 0) if mask else 0xFFFF
        covered |= {p for p in range(65536) if p & m == v & m}
    assert covered == set(range(low, high + 1))


def test_ovs_flows_filter_a_port_and_leave_an_unfiltered_one_alone() -> None:
    flows = ovs.firewall_flows([ovs.FirewallPort(5, MAC, 3, SECURITY),
                                ovs.FirewallPort(6, "fa:16:3e:00:00:0b", 3,
                                                 PortSecurity(False))])
    assert "table=0,priority=10,in_port=6 actions=load:3->NXM_NX_REG6[],resubmit(,73)" in flows
    assert ("table=0,priority=10,in_port=5 actions=load:5->NXM_NX_REG5[],"
            "load:3->NXM_NX_REG6[],resubmit(,71)") in flows
    # anti-spoofing: the fixed IP with the port's MAC, the pair with its own MAC
    assert (f"table=71,priority=65,reg5=5,ip,dl_src={MAC},nw_src=10.0.0.10/32 "
            "actions=ct(table=72,zone=5)") in flows
    assert ("table=71,priority=95,reg5=5,arp,dl_src=fa:16:3e:00:00:99,arp_spa=10.0.0.128/25 "
            "actions=resubmit(,73)") in flows
    assert "table=71,priority=10,reg5=5 actions=drop" in flows
    rules = [f for f in flows if "priority=70" in f]
    assert "table=72,priority=70,reg5=5,ct_state=+new-est+trk,ip " \
           "actions=ct(commit,zone=5),resubmit(,73)" in rules
    assert "table=82,priority=70,reg5=5,ct_state=+new-est+trk,icmp,icmp_type=8 " \
           "actions=ct(commit,zone=5),output:5" in rules
    tcp = [f for f in rules if ",tcp," in f]
    assert tcp and all("nw_src=192.0.2.0/24" in f for f in tcp)
    assert not any("nw_proto=33" in f for f in rules)   # allows nothing rather than too much
    assert not any("reg5=6" in f for f in flows)


def test_nft_ruleset_marks_filters_and_replaces_atomically() -> None:
    text = nft.ruleset([nft.FilteredTap("tapaaaa", "brqnet1", MAC, SECURITY),
                        nft.FilteredTap("tapbbbb", "brqnet1", "fa:16:3e:00:00:0b",
                                        PortSecurity(False))])
    lines = [line.strip() for line in text.splitlines()]
    assert lines[:4] == ["table bridge stackcore_sg {}", "delete table bridge stackcore_sg",
                         "table inet stackcore_sg {}", "delete table inet stackcore_sg"]
    assert 'iifname vmap { "tapaaaa" : jump spoof_1 }' in lines
    assert 'oifname "tapaaaa" meta mark set meta mark or 0x10000' in lines
    assert f"ether saddr {MAC} ip saddr 10.0.0.10/32 meta mark set meta mark or 0x1 accept" \
        in lines
    assert "ct state established,related accept" in lines
    assert "meta nfproto ipv4 ip saddr 192.0.2.0/24 meta l4proto 6 th dport 1000-1999 accept" \
        in lines
    assert "meta nfproto ipv4 meta l4proto 1 icmp type 8 accept" in lines
    assert 'ct zone set iifname map { "brqnet1" : 1 }' in lines
    assert "tapbbbb" not in text   # port security off: not filtered


@pytest.mark.parametrize("tap", ['tap"; flush ruleset', "tap with space", "x" * 16])
def test_nft_ruleset_refuses_names_that_are_not_device_names(tap: str) -> None:
    with pytest.raises(exception.Invalid, match="device"):
        nft.ruleset([nft.FilteredTap(tap, "brq1", MAC, SECURITY)])


def test_nft_rule_change_rewrites_only_the_chains_of_the_ports_it_concerns() -> None:
    other = PortSecurity(True, (("10.0.0.11", "fa:16:3e:00:00:0b"),), SECURITY.rules[:1])
    taps = [nft.FilteredTap("tapaaaa", "brq1", MAC, SECURITY),
            nft.FilteredTap("tapbbbb", "brq1", "fa:16:3e:00:00:0b", other)]
    old = nft.build(taps)
    assert nft.build(taps).changes_from(old) == ""
    opened = PortSecurity(True, other.addresses, (*other.rules, SecurityRule(
        "ingress", "IPv4", 1, None, None, None)))
    changed = nft.build([taps[0], nft.FilteredTap("tapbbbb", "brq1", "fa:16:3e:00:00:0b",
                                                  opened)])
    assert changed.changes_from(old) == (
        "flush chain inet stackcore_sg ingress_2\n"
        "add rule inet stackcore_sg ingress_2 udp sport 67 udp dport 68 accept\n"
        "add rule inet stackcore_sg ingress_2 udp sport 547 udp dport 546 accept\n"
        "add rule inet stackcore_sg ingress_2 icmpv6 type { nd-router-advert, "
        "nd-neighbor-solicit, nd-neighbor-advert } accept\n"
        "add rule inet stackcore_sg ingress_2 meta nfproto ipv4 meta l4proto 1 accept\n"
        "add rule inet stackcore_sg ingress_2 drop\n")
    # a port more (or less): the hooked chains change, the whole ruleset is written
    more = nft.build([*taps, nft.FilteredTap("tapcccc", "brq1", "fa:16:3e:00:00:0c", other)])
    assert more.changes_from(old) is None

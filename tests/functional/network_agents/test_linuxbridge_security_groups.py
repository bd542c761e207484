"""Security groups on the Linux bridge agent (``[securitygroup] firewall_driver = nftables``):
nftables with conntrack through bridge-netfilter in two simulated hosts' namespaces, VMs as
namespaces (the lab of test_linuxbridge_agent.py). The scenario: sg_scenario.py. Also the
probe of this kernel's netfilter pieces the docs record."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from stackcore_drivers.network.conf import load_agent_conf
from stackcore_drivers.network.linuxbridge import conf as lb_conf
from stackcore_drivers.network.linuxbridge import firewall
from stackcore_drivers.network.linuxbridge.agent import LinuxBridgeAgent

import stackcore
from stackcore import exception
from tests.functional.network_agents import sg_scenario
from tests.functional.network_agents.test_linuxbridge_agent import (  # noqa: F401 - fixtures
    UNDERLAY,
    Lab,
    lab,
    server,
)

pytestmark = pytest.mark.real


@pytest.fixture
def firewall_agent(server: stackcore.Cloud, lab: Lab,  # noqa: F811
                   ) -> Iterator[Callable[[str], LinuxBridgeAgent]]:
    agents: list[LinuxBridgeAgent] = []

    def make(host: str, driver: str = "nftables") -> LinuxBridgeAgent:
        conf = load_agent_conf(
            [("linux_bridge", lb_conf.LINUX_BRIDGE_OPTS), ("vxlan", lb_conf.VXLAN_OPTS)],
            overrides={"DEFAULT": {"host": host}, "agent": {"report_interval": 1},
                       "securitygroup": {"firewall_driver": driver},
                       "linux_bridge": {"namespace": lab.ns[host],
                                        "physical_interface_mappings": {"physnet1": "ph0"}},
                       "vxlan": {"local_ip": UNDERLAY[host]}})
        agent = LinuxBridgeAgent(conf, server.transport)
        agents.append(agent)
        return agent

    yield make
    for agent in agents:
        agent.stop()


class _Vms:
    def __init__(self, lab: Lab) -> None:  # noqa: F811 - the fixture's name
        self.lab = lab

    def vm(self, host: str, port: Any) -> str:
        self.lab.plug_vm(host, port, f"{port.fixed_ips[0].ip_address}/24")
        return self.lab.vms[port.id]


def test_kernel_netfilter_pieces_are_those_the_docs_record(lab: Lab) -> None:  # noqa: F811
    """doc/source/security_groups.rst: nf_tables, conntrack, NAT and bridge-netfilter are
    here; conntrack in the bridge family (nf_conntrack_bridge) is not - hence the design."""
    found = firewall.probe(lab.ns["host-a"])
    assert found == {"nf_tables": True, "conntrack": True, "nat": True,
                     "bridge_conntrack": False, "bridge_netfilter": True}, found


def _running(firewall_agent: Callable[[str], LinuxBridgeAgent]
             ) -> tuple[list[LinuxBridgeAgent], Callable[[], None]]:
    """Both hosts' agents started, and the scenario's ``settled()``."""
    agents = [firewall_agent("host-a"), firewall_agent("host-b")]
    for agent in agents:
        agent.start()

    def settled() -> None:
        for agent in agents:
            agent.sync_once()

    return agents, settled


def test_security_groups_filter_real_traffic_with_nftables(
    server: stackcore.Cloud,  # noqa: F811
    firewall_agent: Callable[[str], LinuxBridgeAgent],
    lab: Lab,  # noqa: F811
) -> None:
    agents, settled = _running(firewall_agent)
    sg_scenario.run(server, _Vms(lab), ("host-a", "host-b"), settled)
    assert agents[0].firewall is not None
    assert "ct state established,related accept" in agents[0].firewall.list_ruleset()

    # the same host restarted with firewall_driver = noop: nothing filtered, tables gone
    agents[0].stop()
    noop = firewall_agent("host-a", "noop")
    noop.sync_once()
    with pytest.raises(exception.DriverError, match="stackcore_sg"):
        firewall.NftFirewall(lab.ns["host-a"]).list_ruleset()


def test_a_deleted_rule_ends_the_connections_it_accepted(
    server: stackcore.Cloud,  # noqa: F811
    firewall_agent: Callable[[str], LinuxBridgeAgent],
    lab: Lab,  # noqa: F811
) -> None:
    _, settled = _running(firewall_agent)
    sg_scenario.revoked_rule_ends_established_flows(server, _Vms(lab), ("host-a", "host-b"),
                                                    settled)


def test_every_kind_of_rule_is_accepted_by_the_kernel(lab: Lab) -> None:  # noqa: F811
    """IPv4 and IPv6, every protocol form (any, ports, ICMP type/code, a bare number), CIDR
    pairs with their own MACs: the ruleset the agent builds loads (checked by the kernel,
    ``nft -c``, in a host namespace of the lab)."""
    from stackcore_drivers.network.host_state import PortSecurity, SecurityRule
    rules = (
        SecurityRule("egress", "IPv4", None, None, None, None),
        SecurityRule("egress", "IPv6", None, None, None, "::/0"),
        SecurityRule("ingress", "IPv4", 6, 22, 22, "192.0.2.0/24"),
        SecurityRule("ingress", "IPv4", 17, 1000, 2000, None),
        SecurityRule("ingress", "IPv4", 1, 8, 0, None),
        SecurityRule("ingress", "IPv6", 58, 128, None, "fd00::/64"),
        SecurityRule("ingress", "IPv6", 132, 5000, 5001, None),
        SecurityRule("ingress", "IPv4", 112, None, None, "10.0.0.0/8"),
        SecurityRule("ingress", "IPv4", 33, 5, 6, None),
    )
    security = PortSecurity(True, (("10.0.0.5", "fa:16:3e:00:00:05"),
                                   ("10.0.1.0/24", "fa:16:3e:00:00:99"),
                                   ("fd00::5", "fa:16:3e:00:00:05")), rules)
    text = firewall.ruleset([
        firewall.FilteredTap("tapaaaaaaaaaaa", "brqaaaaaaaaaaa", "fa:16:3e:00:00:05",
                             security),
        firewall.FilteredTap("tapbbbbbbbbbbb", "brqaaaaaaaaaaa", "fa:16:3e:00:00:06",
                             PortSecurity(True))])
    nft = firewall.NftFirewall(lab.ns["host-a"])
    nft.run(["-c", "-f", "-"], stdin=text)

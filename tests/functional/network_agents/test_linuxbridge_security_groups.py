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


def test_security_groups_filter_real_traffic_with_nftables(
    server: stackcore.Cloud,  # noqa: F811
    firewall_agent: Callable[[str], LinuxBridgeAgent],
    lab: Lab,  # noqa: F811
) -> None:
    agents = [firewall_agent("host-a"), firewall_agent("host-b")]
    for agent in agents:
        agent.start()

    def settled() -> None:
        for agent in agents:
            agent.sync_once()

    sg_scenario.run(server, _Vms(lab), ("host-a", "host-b"), settled)
    assert agents[0].firewall is not None
    assert "ct state established,related accept" in agents[0].firewall.list_ruleset()

    # the same host restarted with firewall_driver = noop: nothing filtered, tables gone
    agents[0].stop()
    noop = firewall_agent("host-a", "noop")
    noop.sync_once()
    with pytest.raises(exception.DriverError, match="stackcore_sg"):
        firewall.NftFirewall(lab.ns["host-a"]).list_ruleset()

"""Security groups on the OVS agent (``[securitygroup] firewall_driver = openvswitch``):
conntrack flows on br-int of two simulated hosts on the userspace (``netdev``) datapath,
VMs as namespaces (the lab of test_ovs_agent.py). The scenario: sg_scenario.py."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from stackcore_drivers.network.conf import load_agent_conf
from stackcore_drivers.network.ovs import conf as ovs_conf
from stackcore_drivers.network.ovs.agent import OvsAgent
from stackcore_drivers.network.ovs.ovsdb import Ovsdb

import stackcore
from tests.functional.network_agents import sg_scenario
from tests.functional.network_agents.test_ovs_agent import (  # noqa: F401 - fixtures
    HOSTS,
    OvsLab,
    datapath,
    lab,
    ovsdbs,
    server,
)

pytestmark = pytest.mark.real


@pytest.fixture
def firewall_agent(server: stackcore.Cloud, ovsdbs: dict[str, Ovsdb]  # noqa: F811
                   ) -> Iterator[Callable[[str], OvsAgent]]:
    agents: list[OvsAgent] = []

    def make(host: str) -> OvsAgent:
        conf = load_agent_conf([("ovs", ovs_conf.AGENT_OPTS)], overrides={
            "DEFAULT": {"host": host}, "agent": {"report_interval": 1},
            "securitygroup": {"firewall_driver": "openvswitch"},
            "ovs": {"ovsdb_connection": ovsdbs[host].target, "datapath_type": "netdev",
                    "bridge_mappings": {"physnet1": "br-phys"}, "tunnel_types": ["vxlan"],
                    "local_ip": HOSTS[host][1], "ovsdb_timeout": 10.0}})
        agent = OvsAgent(conf, server.transport)
        agents.append(agent)
        return agent

    yield make
    for agent in agents:
        agent.stop()


class _Vms:
    def __init__(self, lab: OvsLab) -> None:  # noqa: F811 - the fixture's name
        self.lab = lab

    def vm(self, host: str, port: Any) -> str:
        self.lab.plug_vm(host, port)
        return self.lab.vms[port.id]


def _running(firewall_agent: Callable[[str], OvsAgent]
             ) -> tuple[list[OvsAgent], Callable[[], None]]:
    """Both hosts' agents started, and the scenario's ``settled()``."""
    agents = [firewall_agent("host-a"), firewall_agent("host-b")]
    for agent in agents:
        agent.start()

    def settled() -> None:
        for agent in agents:
            agent.sync_once()
        agents[0].sync_once()  # host-a learns host-b's tunnel endpoint

    return agents, settled


def test_security_groups_filter_real_traffic_with_conntrack_flows(
    server: stackcore.Cloud, firewall_agent: Callable[[str], OvsAgent],  # noqa: F811
    lab: OvsLab,  # noqa: F811
) -> None:
    agents, settled = _running(firewall_agent)
    sg_scenario.run(server, _Vms(lab), ("host-a", "host-b"), settled)
    flows = agents[0].openflow["br-int"].dump_flows()
    assert any("ct(commit,zone=" in f for f in flows), flows


def test_a_deleted_rule_ends_the_connections_it_accepted(
    server: stackcore.Cloud, firewall_agent: Callable[[str], OvsAgent],  # noqa: F811
    lab: OvsLab,  # noqa: F811
) -> None:
    _, settled = _running(firewall_agent)
    sg_scenario.revoked_rule_ends_established_flows(server, _Vms(lab), ("host-a", "host-b"),
                                                    settled)


def test_every_kind_of_rule_loads_into_a_bridge(ovsdbs: dict[str, Ovsdb]) -> None:  # noqa: F811
    """IPv4 and IPv6, every protocol form (any, port ranges as masks, ICMP type/code, a bare
    number), CIDR pairs with their own MACs: ovs-vswitchd takes every flow the firewall
    builds (then the bridge holds exactly them)."""
    from stackcore_drivers.network.host_state import PortSecurity, SecurityRule
    from stackcore_drivers.network.ovs import firewall
    from stackcore_drivers.network.ovs.openflow import OfctlBridge, rundir_for
    rules = (
        SecurityRule("egress", "IPv4", None, None, None, None),
        SecurityRule("egress", "IPv6", None, None, None, "::/0"),
        SecurityRule("ingress", "IPv4", 6, 22, 22, "192.0.2.0/24"),
        SecurityRule("ingress", "IPv4", 17, 1000, 2000, None),
        SecurityRule("ingress", "IPv4", 1, 8, 0, None),
        SecurityRule("ingress", "IPv6", 58, 128, None, "fd00::/64"),
        SecurityRule("ingress", "IPv6", 132, 5000, 5001, None),
        SecurityRule("ingress", "IPv4", 112, None, None, "10.0.0.0/8"),
    )
    security = PortSecurity(True, (("10.0.0.5", "fa:16:3e:00:00:05"),
                                   ("10.0.1.0/24", "fa:16:3e:00:00:99"),
                                   ("fd00::5", "fa:16:3e:00:00:05")), rules)
    flows = firewall.firewall_flows([
        firewall.FirewallPort(7, "fa:16:3e:00:00:05", 3, security),
        firewall.FirewallPort(8, "fa:16:3e:00:00:06", 3, PortSecurity(False))])
    db = ovsdbs["host-a"]
    db.execute(db.api.add_br("br-int", datapath_type="netdev"))
    bridge = OfctlBridge("br-int", rundir_for(db.target))
    bridge.replace_flows(flows)
    assert len(bridge.dump_flows()) == len(flows), (len(bridge.dump_flows()), len(flows))

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


def test_security_groups_filter_real_traffic_with_conntrack_flows(
    server: stackcore.Cloud, firewall_agent: Callable[[str], OvsAgent],  # noqa: F811
    lab: OvsLab,  # noqa: F811
) -> None:
    agents = [firewall_agent("host-a"), firewall_agent("host-b")]
    for agent in agents:
        agent.start()

    def settled() -> None:
        for agent in agents:
            agent.sync_once()
        agents[0].sync_once()  # host-a learns host-b's tunnel endpoint

    sg_scenario.run(server, _Vms(lab), ("host-a", "host-b"), settled)
    flows = agents[0].openflow["br-int"].dump_flows()
    assert any("ct(commit,zone=" in f for f in flows), flows

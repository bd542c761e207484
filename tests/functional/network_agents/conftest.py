"""Fixtures of the L2 agent tests: an ML2 server (an embedded Cloud running the ``network``
service) whose agents run in this process over the in-process RPC transport."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any

import pytest
from stackcore_drivers.network.conf import load_agent_conf
from stackcore_drivers.network.linuxbridge import conf as lb_conf
from stackcore_drivers.network.linuxbridge.agent import LinuxBridgeAgent

import stackcore


@pytest.fixture
def make_server() -> Iterator[Callable[..., stackcore.Cloud]]:
    """``make_server(mechanism_driver, **group_overrides)``: a Cloud with only the network
    service, VLAN ranges on physnet1, VNIs 1000-1999 and a 15-second agent_down_time: agents
    report every second (the tests' make_agent), so a stopped agent is declared dead within
    seconds while a running one stays alive through a heartbeat late by up to 14 s - as in the
    full-kernel guest under TCG on a busy host, where a 3-second window let a live agent be
    declared dead and its ports stay unbound."""
    clouds: list[stackcore.Cloud] = []

    def make(mechanism_driver: str, **groups: dict[str, Any]) -> stackcore.Cloud:
        overrides: dict[str, dict[str, Any]] = {
            "DEFAULT": {"periodic_interval": 3600},
            "ml2": {"mechanism_drivers": [mechanism_driver],
                    "project_network_types": ["vxlan"]},
            "ml2_type_vlan": {"network_vlan_ranges": ["physnet1:100:199"]},
            "ml2_type_vxlan": {"vni_ranges": ["1000:1999"]},
            "network": {"agent_down_time": 15},
        }
        for group, values in groups.items():
            overrides.setdefault(group, {}).update(values)
        cloud = stackcore.Cloud(overrides=overrides, services=["network"])
        clouds.append(cloud)
        return cloud

    yield make
    for cloud in clouds:
        cloud.close()


def start_linux_bridge_agent(server: stackcore.Cloud, host: str, namespace: str,
                             mappings: Mapping[str, str]) -> LinuxBridgeAgent:
    """A started Linux bridge agent for ``host`` whose bridges live in network namespace
    ``namespace`` (a simulated host), each physical network of ``mappings`` on its NIC."""
    agent = LinuxBridgeAgent(load_agent_conf(
        [("linux_bridge", lb_conf.LINUX_BRIDGE_OPTS), ("vxlan", lb_conf.VXLAN_OPTS)],
        overrides={"DEFAULT": {"host": host},
                   "agent": {"report_interval": 1, "polling_interval": 0.2},
                   "linux_bridge": {"namespace": namespace,
                                    "physical_interface_mappings": dict(mappings)}}),
        server.transport)
    agent.start()
    return agent

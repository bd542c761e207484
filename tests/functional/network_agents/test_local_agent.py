"""``[network] local_agents``: the Cloud runs an L2 agent found by entry point in its own
process (the embedded default), on a real OVSDB of its own (a separate ovs-vswitchd instance)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.conftest import wait_until

pytestmark = pytest.mark.real

REPO = Path(__file__).resolve().parents[3]
HOST = "local-agent-host"


@pytest.fixture(scope="module")
def ovsdb() -> str:
    result = subprocess.run(
        ["bash", str(REPO / "tools/backends/ovs-instance.sh"), "sc-local"],
        capture_output=True, text=True, timeout=120, check=False)
    if result.returncode != 0:
        pytest.fail(f"tools/backends/ovs-instance.sh sc-local failed: {result.stderr[-2000:]}")
    return "unix:" + result.stdout.strip().splitlines()[-1]


def test_cloud_runs_its_local_ovs_agent(make_cloud, ovsdb) -> None:
    rundir = ovsdb[len("unix:"):].rsplit("/", 1)[0]
    cloud = make_cloud(overrides={
        "DEFAULT": {"host": HOST},
        "compute": {"hosts": [HOST]},
        "ml2": {"type_drivers": ["vxlan"], "mechanism_drivers": ["openvswitch"],
                "project_network_types": ["vxlan"]},
        "network": {"local_agents": ["openvswitch"]},
        "agent": {"polling_interval": 0.2, "report_interval": 1},
        "ovs": {"ovsdb_connection": ovsdb, "ovs_rundir": rundir, "datapath_type": "netdev",
                "tunnel_types": ["vxlan"], "local_ip": "127.0.0.1"},
    })
    agents = wait_until(lambda: cloud.network.list_agents(host=HOST), 60, "the agent's report")
    assert [a.agent_type for a in agents] == ["Open vSwitch agent"] and agents[0].alive
    network = cloud.network.create_network("local")
    port = cloud.network.create_port(network.id, host=HOST)
    assert port.vif_type == "ovs", port
    assert port.vif_details["bridge_name"] == "br-int"
    cloud.close()  # stops the agent thread with the services

"""ovsdb-server and ovs-vswitchd crash (both SIGKILLed) while the OVS agent wires ports that the
network service creates and deletes.

A PRIVATE Open vSwitch (tools/backends/ovs-instance.sh: its own database file, run directory
and network namespace; ``--kill`` kills both daemons, the database file stays) serves one
simulated host; the ML2 server (network service) and the host's OVS agent run in this process.
The test plays the hypervisor: it plugs each port it created into br-int (an internal port
with ``external_ids:iface-id``, as libvirt/os-vif do) and unplugs it before deleting it.

OVS is killed twice while the workload runs and started again; a restarted vswitchd has lost
every OpenFlow table (they live in its memory). Nothing of stackcore is restarted: the agent
reconnects to OVSDB by itself and its next passes put back what is missing. Then every API
call completed or failed with a stackcore error, every plugged port of a live network is
ACTIVE with its network's local VLAN, every VM port on br-int belongs to a live port and
every live plugged port is on br-int, the flow tables are what they were before the crashes,
no IP, MAC or segment is doubled. The recovery time (restart to a newly plugged port ACTIVE)
is printed.
"""

from __future__ import annotations

import itertools
import re
import shutil
import subprocess
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from stackcore_drivers.network.conf import load_agent_conf
from stackcore_drivers.network.ovs import conf as ovs_conf
from stackcore_drivers.network.ovs.agent import OvsAgent
from stackcore_drivers.network.ovs.ovsdb import Ovsdb

import stackcore
from tests.conftest import backend_env

from .conftest import OVS_INSTANCE, OVS_STATE, Recovery, poll, unique_name
from .invariants import duplicate_problems
from .workload import Workload

pytestmark = pytest.mark.real

HOST = "rel-ovs"
CRASHES = 2
BRIDGES = ("br-int", "br-tun", "br-phys")
STEADY_NETWORKS = 3  # with two plugged ports each, present through the crashes


def _ovs(*args: str) -> str:
    result = subprocess.run(["bash", str(OVS_INSTANCE), *args], capture_output=True,
                            text=True, timeout=120, check=False)
    if result.returncode != 0:
        pytest.fail(f"ovs-instance.sh {' '.join(args)} failed: {result.stderr[-2000:]}",
                    pytrace=False)
    return result.stdout


class PrivateOvs:
    """One private ovsdb-server + ovs-vswitchd pair."""

    def __init__(self) -> None:
        self.name = unique_name("screl")
        self.target = ""

    def start(self) -> str:
        self.target = "unix:" + _ovs(self.name).strip().splitlines()[-1]
        return self.target

    def kill(self) -> None:
        _ovs("--kill", self.name)

    def stop(self) -> None:
        _ovs("--stop", self.name)
        shutil.rmtree(OVS_STATE / f"ovs-{self.name}", ignore_errors=True)


class Hypervisor:
    """What libvirt does with a VM's port on br-int, on a connection of its own. A plug or
    unplug that OVSDB refuses (down) is remembered and done again by :meth:`catch_up`."""

    def __init__(self, target: str) -> None:
        self.db = Ovsdb(target, 5.0)
        self.plugged: set[str] = set()  # port ids plugged (or to be)
        self.behind: dict[str, Any] = {}  # port id -> port (None: to unplug)
        self._lock = threading.Lock()

    @staticmethod
    def tap(port_id: str) -> str:
        return ("tap" + port_id)[:14]

    def plug(self, port: Any) -> None:
        with self._lock:
            self.plugged.add(port.id)
        try:
            self.db.execute(self.db.api.add_port("br-int", self.tap(port.id), may_exist=True,
                                                 type="internal", external_ids={
                "iface-id": port.id, "attached-mac": port.mac_address,
                "iface-status": "active"}))
        except Exception:  # OVSDB down: plugged again once it is back
            with self._lock:
                self.behind[port.id] = port

    def unplug(self, port_id: str) -> None:
        with self._lock:
            self.plugged.discard(port_id)
        try:
            self.db.execute(self.db.api.del_port(self.tap(port_id), if_exists=True))
        except Exception:  # OVSDB down: unplugged once it is back
            with self._lock:
                self.behind[port_id] = None

    def catch_up(self) -> bool:
        with self._lock:
            behind, self.behind = self.behind, {}
        for port_id, port in behind.items():
            if port is None:
                self.unplug(port_id)
            elif port_id in self.plugged:
                self.plug(port)
        return not self.behind

    def vif_ids(self) -> set[str]:
        """``iface-id`` of every VM port on br-int."""
        api = self.db.api
        names = set(self.db.execute(api.list_ports("br-int")) or [])
        return {i["external_ids"]["iface-id"] for i in self.db.execute(
            api.db_list("Interface", columns=["name", "external_ids"]))
            if i["name"] in names and "iface-id" in i["external_ids"]}


@pytest.fixture
def ovs() -> Iterator[PrivateOvs]:
    backend_env("STACKCORE_TEST_OVSDB", "ovs")  # the ovs packages come with that service
    instance = PrivateOvs()
    instance.start()
    try:
        yield instance
    finally:
        instance.stop()


def _agent(server: stackcore.Cloud, target: str) -> OvsAgent:
    conf = load_agent_conf([("ovs", ovs_conf.AGENT_OPTS)], overrides={
        "DEFAULT": {"host": HOST},
        "agent": {"polling_interval": 0.5, "report_interval": 1},
        "ovs": {"ovsdb_connection": target, "datapath_type": "netdev",
                "bridge_mappings": {"physnet1": "br-phys"}, "tunnel_types": ["vxlan"],
                "local_ip": "10.59.0.1", "ovsdb_timeout": 5.0}})
    return OvsAgent(conf, server.transport)


def _flows(agent: OvsAgent, db: Ovsdb) -> dict[str, set[str]]:
    """The flow tables, OpenFlow port numbers written as port names: a restarted vswitchd
    may number the ports differently (the agent's flows follow the new numbers)."""
    numbers = agent.bridges.ofports()
    flows = {}
    for bridge in BRIDGES:
        names = {str(numbers[name]): name
                 for name in db.execute(db.api.list_ifaces(bridge)) or [] if name in numbers}

        def named(flow: str, names: dict[str, str] = names) -> str:
            return re.sub(r"(in_port=|output:)(\d+)",
                          lambda m: m.group(1) + names.get(m.group(2), m.group(2)), flow)

        flows[bridge] = {named(f) for f in agent.openflow[bridge].dump_flows()}
    return flows


def test_agent_survives_an_ovs_crash_mid_operation(
    ovs: PrivateOvs, recovery: Callable[[str], Recovery], tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    server = stackcore.Cloud(services=("network",), overrides={
        "DEFAULT": {"state_path": str(tmp_path / "state"), "periodic_interval": 3600},
        "ml2": {"mechanism_drivers": ["openvswitch"], "project_network_types": ["vxlan"]},
        "ml2_type_vlan": {"network_vlan_ranges": ["physnet1:100:199"]},
        "ml2_type_vxlan": {"vni_ranges": ["1000:1999"]},
        "network": {"agent_down_time": 30},
    })
    hv = Hypervisor(ovs.target)
    agent = _agent(server, ovs.target)
    net = server.network
    try:
        agent.start()
        steady: list[Any] = []
        for i in range(STEADY_NETWORKS):
            network = net.create_network(f"steady-{i}")
            subnet = net.create_subnet(network.id, f"10.60.{i}.0/24")
            for _ in range(2):
                port = net.create_port(network.id, host=HOST,
                                       fixed_ips=[{"subnet_id": subnet.id}])
                hv.plug(port)
                steady.append(port)

        def all_active(ports: list[Any]) -> bool:
            return all(net.get_port(p.id).status == "ACTIVE" for p in ports)

        poll(lambda: all_active(steady), 60, "the steady ports ACTIVE")
        agent.sync_once()
        before = _flows(agent, hv.db)
        names = itertools.count()

        def step(thread: int, iteration: int, record: Callable[..., Any]) -> None:
            n = next(names)
            network = record("create_network", net.create_network, f"churn-{n}")
            if network is None:
                return
            subnet = record("create_subnet", net.create_subnet, network.id,
                            f"10.61.{n % 250}.0/24")
            port = None
            if subnet is not None:
                port = record("create_port", net.create_port, network.id, host=HOST,
                              fixed_ips=[{"subnet_id": subnet.id}])
            if port is not None:
                hv.plug(port)
                record("get_port", net.get_port, port.id)
                hv.unplug(port.id)
                record("delete_port", net.delete_port, port.id)
            record("delete_network", net.delete_network, network.id)

        workload = Workload(2, step).start()
        in_flight = []
        for crash in range(CRASHES):
            workload.wait_for(20 * (crash + 1), 120)
            in_flight.append(workload.in_flight)
            clock = recovery("ovs")
            ovs.kill()
            ovs.start()
            clock.backend_back()
            poll(hv.catch_up, 60, "the hypervisor's plugs done again")

        probe_net = net.create_network("probe")
        probe_subnet = net.create_subnet(probe_net.id, "10.62.0.0/24")
        probe = net.create_port(probe_net.id, host=HOST,
                                fixed_ips=[{"subnet_id": probe_subnet.id}])
        hv.plug(probe)
        poll(lambda: hv.catch_up() and net.get_port(probe.id).status == "ACTIVE", 60,
             "a port plugged after the restart ACTIVE")
        seconds = clock.service_back("a newly plugged port was ACTIVE")
        workload.stop(120)
        assert sum(in_flight) > 0, "no call was in flight at any crash"
        assert not workload.foreign_errors(), workload.foreign_errors()
        poll(hv.catch_up, 60, "the hypervisor's unplugs done again")

        # The networks and ports are exactly what the calls left; the wiring matches them.
        live_ports = {p.id: p for p in net.list_ports()}
        churn_left = [n for n in net.list_networks() if n.name.startswith("churn-")]
        expected_vifs = {pid for pid in hv.plugged if pid in live_ports}
        poll(lambda: hv.vif_ids() == expected_vifs or None, 60,
             "VM ports on br-int exactly the live plugged ports (stale ones removed)")
        poll(lambda: all_active([live_ports[p] for p in expected_vifs]), 60,
             "every plugged port ACTIVE")
        assert duplicate_problems(server.db.engine) == []

        # Once the probe and what the churn left are gone, the flow tables are the ones
        # the agent had before the crashes (a restarted vswitchd had none).
        for port_id in list(live_ports):
            if port_id not in {p.id for p in steady}:
                hv.unplug(port_id)
                net.delete_port(port_id)
        for network in net.list_networks():
            if not network.name.startswith("steady-"):
                net.delete_network(network.id)
        agent.sync_once()
        diff: dict[str, list[str]] = {}

        def flows_back() -> bool:
            now = _flows(agent, hv.db)
            diff.clear()
            diff.update({f"{bridge} {sign}": sorted(flows)
                         for bridge in BRIDGES
                         for sign, flows in (("lost", before[bridge] - now[bridge]),
                                             ("extra", now[bridge] - before[bridge]))
                         if flows})
            return not diff

        try:
            poll(flows_back, 60, "the flow tables as before the crashes")
        except pytest.fail.Exception:
            pytest.fail(f"the flow tables are not as before the crashes: {diff}",
                        pytrace=False)
        poll(lambda: all_active(steady), 60, "the steady ports ACTIVE")
        with capsys.disabled():  # the figures show in CI's output
            print(f"\novs: {CRASHES} crashes with {in_flight} calls in flight; workload "
                  f"{workload.summary()}; {len(churn_left)} churn network(s) left by failed "
                  "calls")
        assert seconds < 60, f"a port was wired only {seconds:.1f} s after the restart"
    finally:
        agent.stop()
        hv.db.close()
        server.close()

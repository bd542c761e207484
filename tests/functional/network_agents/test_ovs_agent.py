"""The openvswitch mechanism driver and OVS agents on real ovsdb-server/ovs-vswitchd.

Two simulated hosts, each with its own OVSDB + ovs-vswitchd (userspace ``netdev`` datapath)
started by ``tools/backends/ovs-instance.sh`` in its own network namespace; the ML2 server is
an embedded Cloud and the agents talk to it (state reports, agent RPC) over the in-process
transport. The hypervisor's part (plugging a VM port into br-int with
``external_ids:iface-id``) is done by the test, as libvirt would.

The data-plane tests cable the two host namespaces with veth pairs: an underlay (``ul0`` on a
test-owned bridge ``br-ul`` holding the tunnel endpoint address, which is how the userspace
datapath routes VXLAN) and a provider cable (``ph0`` in each host's ``br-phys``). Each VM is a
namespace whose ``eth0`` is a veth pair with its ``tap<port id>`` end on br-int. Pings are
bounded in count and time, and every address lives only inside these namespaces.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from stackcore_drivers.network.conf import load_agent_conf
from stackcore_drivers.network.ovs import conf as ovs_conf
from stackcore_drivers.network.ovs.agent import OvsAgent
from stackcore_drivers.network.ovs.openflow import OfctlBridge
from stackcore_drivers.network.ovs.ovsdb import Ovsdb

import stackcore
from stackcore import exception
from stackcore.network import exceptions as net_exc
from tests.conftest import backend_env, wait_until
from tests.functional.processes import terminate

pytestmark = pytest.mark.real

REPO = Path(__file__).resolve().parents[3]
HOSTS = {"host-a": ("sc-l2-a", "10.50.0.1"), "host-b": ("sc-l2-b", "10.50.0.2")}
OWNED_BRIDGES = ("br-int", "br-tun", "br-phys")
LAB_BRIDGES = ("br-ul",)  # made by the data-plane tests, not by the agent
PING = Path(__file__).with_name("icmp_ping.py")
#: The data-plane tests run on both datapaths: userspace (netdev) here, and the kernel's
#: (system: the openvswitch module) inside the full-kernel guest, which this kernel lacks.
DATAPATHS = [pytest.param("netdev", id="netdev"),
             pytest.param("system", id="system",
                          marks=pytest.mark.guest("openvswitch kernel datapath"))]


def _start_instance(name: str) -> str:
    result = subprocess.run(
        ["bash", str(REPO / "tools/backends/ovs-instance.sh"), name],
        capture_output=True, text=True, timeout=120, check=False)
    if result.returncode != 0:
        pytest.fail(f"tools/backends/ovs-instance.sh {name} failed: {result.stderr[-2000:]}")
    return "unix:" + result.stdout.strip().splitlines()[-1]


def _wipe(db: Ovsdb) -> None:
    with db.transaction() as txn:
        for bridge in OWNED_BRIDGES + LAB_BRIDGES:
            txn.add(db.api.del_br(bridge, if_exists=True))


@pytest.fixture
def ovsdbs() -> Iterator[dict[str, Ovsdb]]:
    """One OVSDB per simulated host, empty of the agent's bridges before and after."""
    backend_env("STACKCORE_TEST_OVSDB", "ovs")  # the ovs service must be up (fails if not)
    dbs = {host: Ovsdb(_start_instance(instance)) for host, (instance, _) in HOSTS.items()}
    for db in dbs.values():
        _wipe(db)
    yield dbs
    for db in dbs.values():
        _wipe(db)
        db.close()


@pytest.fixture
def server(make_server: Callable[..., stackcore.Cloud]) -> stackcore.Cloud:
    return make_server("openvswitch", ml2_type_flat={"flat_networks": ["*"]})


@pytest.fixture
def datapath(request: pytest.FixtureRequest) -> str:
    """The bridges' datapath: ``netdev`` unless the test is parametrized with DATAPATHS."""
    return str(getattr(request, "param", "netdev"))


@pytest.fixture
def make_agent(server: stackcore.Cloud, ovsdbs: dict[str, Ovsdb], datapath: str
               ) -> Iterator[Callable[..., OvsAgent]]:
    agents: list[OvsAgent] = []
    if datapath == "system":
        dp = subprocess.run(["ovs-dpctl", "show"], capture_output=True, text=True, check=False)
        assert "openvswitch" in Path("/proc/modules").read_text(), \
            f"the openvswitch kernel module is not loaded here: {dp.stderr}"

    def make(host: str, **ovs: Any) -> OvsAgent:
        settings: dict[str, Any] = {
            "ovsdb_connection": ovsdbs[host].target, "datapath_type": datapath,
            "bridge_mappings": {"physnet1": "br-phys"}, "tunnel_types": ["vxlan"],
            "local_ip": HOSTS[host][1], "ovsdb_timeout": 10.0}
        settings.update(ovs)
        # reports every second: the server's 15-second agent_down_time is well over 3 x the interval
        # (the documented rule; with the default 30 s an agent was alive only for 3 s after
        # its first report, and a slow run - the guest under TCG - bound to a "dead" agent)
        conf = load_agent_conf([("ovs", ovs_conf.AGENT_OPTS)], overrides={
            "DEFAULT": {"host": host}, "agent": {"report_interval": 1}, "ovs": settings})
        agent = OvsAgent(conf, server.transport)
        agents.append(agent)
        return agent

    yield make
    for agent in agents:
        agent.stop()


def plug_vif(db: Ovsdb, port: Any) -> str:
    """What libvirt/os-vif does: a port on br-int named after the port, with iface-id."""
    name = ("tap" + port.id)[:14]
    db.execute(db.api.add_port("br-int", name, type="internal", external_ids={
        "iface-id": port.id, "attached-mac": port.mac_address, "iface-status": "active"}))
    return name


def port_row(db: Ovsdb, name: str) -> dict[str, Any]:
    """The Port row as the OVSDB server has it now. Read with ovs-vsctl, not through ``db``:
    ``db`` is the test's own IDL replica, which learns of the agent's committed writes
    asynchronously - read right after ``sync_once()`` it could still show the previous tag
    (seen under load: 'tag == 4095' read the old local VLAN)."""
    out = subprocess.run(
        ["ovs-vsctl", f"--db={db.target}", "--format=json", "--columns=_uuid,tag,other_config",
         "find", "Port", f"name={name}"], capture_output=True, text=True, check=True).stdout
    rows = json.loads(out)["data"]
    assert rows, f"port {name} not in OVSDB"
    (_kind, port_uuid), tag, (_map, pairs) = rows[0]
    return {"_uuid": port_uuid,
            "tag": tag if isinstance(tag, int) else (tag[1][0] if tag[1] else []),
            "other_config": dict(pairs)}


def interfaces(db: Ovsdb) -> dict[str, dict[str, Any]]:
    return {i["name"]: i for i in db.execute(db.api.db_list(
        "Interface", columns=["name", "type", "options", "ofport", "error"]))}


def bridge_ports(db: Ovsdb, bridge: str) -> set[str]:
    return set(db.execute(db.api.list_ports(bridge)))


def snapshot(db: Ovsdb) -> tuple[list[str], dict[str, Any]]:
    return sorted(db.execute(db.api.list_br())), {
        n: (i["type"], i["options"]) for n, i in interfaces(db).items()}


def test_vlan_and_vxlan_ports_on_two_hosts(
    server: stackcore.Cloud, make_agent: Callable[..., OvsAgent], ovsdbs: dict[str, Ovsdb]
) -> None:
    net = server.network
    agent_a, agent_b = make_agent("host-a"), make_agent("host-b")
    agent_a.start()
    agent_b.start()
    db_a, db_b = ovsdbs["host-a"], ovsdbs["host-b"]

    # the fixed infrastructure: bridges (netdev, secure) and patch ports
    for db in (db_a, db_b):
        assert set(OWNED_BRIDGES) <= set(db.execute(db.api.list_br()))
        for bridge in OWNED_BRIDGES:
            assert db.execute(db.api.db_get("Bridge", bridge, "datapath_type")) == "netdev"
            assert db.execute(db.api.db_get("Bridge", bridge, "fail_mode")) in ("secure", ["secure"])
        ifaces = interfaces(db)
        for name, peer in (("patch-tun", "patch-int"), ("patch-int", "patch-tun"),
                           ("int-br-phys", "phy-br-phys"), ("phy-br-phys", "int-br-phys")):
            assert ifaces[name]["type"] == "patch"
            assert ifaces[name]["options"] == {"peer": peer}
            assert ifaces[name]["ofport"] > 0
        assert {"patch-tun", "int-br-phys"} <= bridge_ports(db, "br-int")
        assert bridge_ports(db, "br-tun") == {"patch-int"}
        assert bridge_ports(db, "br-phys") == {"phy-br-phys"}

    vlan_net = net.create_network("v", network_type="vlan", physical_network="physnet1",
                                  segmentation_id=120)
    vx_net = net.create_network("x")
    vx_vni = vx_net.segments[0].segmentation_id
    a_vlan = net.create_port(vlan_net.id, host="host-a")
    a_vx = net.create_port(vx_net.id, host="host-a")
    b_vx = net.create_port(vx_net.id, host="host-b")
    for port in (a_vlan, a_vx, b_vx):
        assert port.vif_type == "ovs", port.binding_failures
        assert port.vif_details["bridge_name"] == "br-int"
        assert port.vif_details["datapath_type"] == "netdev"
        assert port.vif_details["port_filter"] is False
    tap_a_vlan, tap_a_vx = plug_vif(db_a, a_vlan), plug_vif(db_a, a_vx)
    tap_b_vx = plug_vif(db_b, b_vx)
    passes_until([agent_a, agent_b], lambda: all(
        1 <= (port_row(db, tap)["tag"] or 0) <= 4094
        for db, tap in ((db_a, tap_a_vlan), (db_a, tap_a_vx), (db_b, tap_b_vx))),
        "the three VIFs tagged with a local VLAN")

    # local VLAN tags: one per network, recorded with the segment in other_config
    row_vlan, row_vx = port_row(db_a, tap_a_vlan), port_row(db_a, tap_a_vx)
    assert row_vlan["tag"] != row_vx["tag"]
    assert 1 <= row_vlan["tag"] <= 4094 and 1 <= row_vx["tag"] <= 4094
    assert row_vlan["other_config"] == {
        "net_uuid": vlan_net.id, "network_type": "vlan", "physical_network": "physnet1",
        "segmentation_id": "120", "tag": str(row_vlan["tag"])}
    assert row_vx["other_config"]["segmentation_id"] == str(vx_vni)
    assert port_row(db_b, tap_b_vx)["other_config"]["net_uuid"] == vx_net.id

    # one VXLAN port each way, keyed by flow, between the two tunnel endpoints
    tun_a = interfaces(db_a)["vxlan-0a320002"]
    assert tun_a["type"] == "vxlan" and tun_a["ofport"] > 0 and not tun_a["error"]
    assert tun_a["options"] == {"remote_ip": "10.50.0.2", "local_ip": "10.50.0.1",
                                "in_key": "flow", "out_key": "flow", "df_default": "true"}
    assert interfaces(db_b)["vxlan-0a320001"]["options"]["remote_ip"] == "10.50.0.1"
    assert bridge_ports(db_a, "br-tun") == {"patch-int", "vxlan-0a320002"}

    # the agents' reports are what the server sees
    reported = {a.host: a for a in net.list_agents(agent_type="Open vSwitch agent")}
    assert reported["host-a"].alive
    assert reported["host-a"].configurations["tunneling_ip"] == "10.50.0.1"
    assert reported["host-a"].configurations["bridge_mappings"] == {"physnet1": "br-phys"}

    # deleting host-b's port: its VIF is stale there, and neither host needs the tunnel
    net.delete_port(b_vx.id)
    agent_b.sync_once()
    agent_a.sync_once()
    assert tap_b_vx not in bridge_ports(db_b, "br-int")
    assert bridge_ports(db_a, "br-tun") == {"patch-int"}
    assert bridge_ports(db_b, "br-tun") == {"patch-int"}
    # deleting host-a's ports removes their (unplugged-by-nobody) VIFs too
    net.delete_port(a_vlan.id)
    net.delete_port(a_vx.id)
    agent_a.sync_once()
    assert bridge_ports(db_a, "br-int") == {"patch-tun", "int-br-phys"}


def test_restart_resyncs_without_disturbing_ports_that_are_right(
    server: stackcore.Cloud, make_agent: Callable[..., OvsAgent], ovsdbs: dict[str, Ovsdb]
) -> None:
    net = server.network
    agent_a, agent_b = make_agent("host-a"), make_agent("host-b")
    agent_a.start()
    agent_b.start()
    db_a = ovsdbs["host-a"]
    vx_net = net.create_network("x")
    vlan_net = net.create_network("v", network_type="vlan", physical_network="physnet1",
                                  segmentation_id=130)
    a_vx = net.create_port(vx_net.id, host="host-a")
    a_vlan = net.create_port(vlan_net.id, host="host-a")
    net.create_port(vx_net.id, host="host-b")
    tap_vx, tap_vlan = plug_vif(db_a, a_vx), plug_vif(db_a, a_vlan)
    passes_until([agent_a], lambda: all(1 <= (port_row(db_a, tap)["tag"] or 0) <= 4094
                                        for tap in (tap_vx, tap_vlan)),
                 "both VIFs tagged with a local VLAN")
    before_vx, before_vlan = port_row(db_a, tap_vx), port_row(db_a, tap_vlan)
    tunnel_uuid = db_a.execute(db_a.api.db_find("Port", ("name", "=", "vxlan-0a320002"),
                                                columns=["_uuid"]))[0]["_uuid"]

    agent_a.stop()  # the agent dies; meanwhile the host drifts
    with db_a.transaction() as txn:
        txn.add(db_a.api.del_port("int-br-phys", if_exists=True))        # missing patch port
        txn.add(db_a.api.db_set("Port", tap_vlan, ("tag", 999)))        # wrong tag
        txn.add(db_a.api.add_port("br-tun", "vxlan-0a636363", type="vxlan",  # stale tunnel
                                  options={"remote_ip": "10.99.99.99", "local_ip": "10.50.0.1",
                                           "in_key": "flow", "out_key": "flow"}))
    stale_vif = db_a.execute(db_a.api.add_port(
        "br-int", "tapdeadbeef-00", type="internal", external_ids={
            "iface-id": "3a6b2cf3-5f2f-4c52-9d27-1c2a0f0b0e11",  # no such port
            "attached-mac": "fa:16:3e:00:00:99"}))
    assert stale_vif

    restarted = make_agent("host-a")
    restarted.start()
    ifaces = interfaces(db_a)
    assert ifaces["int-br-phys"]["options"] == {"peer": "phy-br-phys"}   # restored
    assert "vxlan-0a636363" not in ifaces                                # stale tunnel gone
    assert "tapdeadbeef-00" not in ifaces                                # stale VIF gone
    after_vx, after_vlan = port_row(db_a, tap_vx), port_row(db_a, tap_vlan)
    assert after_vx == before_vx          # untouched: same row, same tag (read back)
    assert after_vlan["_uuid"] == before_vlan["_uuid"]
    assert after_vlan["tag"] == before_vlan["tag"] != 999
    assert db_a.execute(db_a.api.db_find("Port", ("name", "=", "vxlan-0a320002"),
                                         columns=["_uuid"]))[0]["_uuid"] == tunnel_uuid
    assert restarted.local_vlans == {vx_net.id: before_vx["tag"],
                                     vlan_net.id: before_vlan["tag"]}


def test_dead_agent_refuses_binding_and_revival_binds(
    server: stackcore.Cloud, make_agent: Callable[..., OvsAgent]
) -> None:
    net = server.network
    agent = make_agent("host-a")
    agent.start()
    vx_net = net.create_network("x")
    agent.stop()
    wait_until(lambda: not any(a.alive for a in net.list_agents(host="host-a")),
               server.conf.network.agent_down_time + 30, "the stopped agent declared dead")
    port = net.create_port(vx_net.id, host="host-a")
    assert port.vif_type == "binding_failed"
    reasons = [str(f) for f in port.binding_failures]
    assert len(reasons) == 1
    assert reasons[0].startswith(
        "openvswitch: the Open vSwitch agent on host 'host-a' is not alive (last report ")
    never = net.create_port(vx_net.id, host="host-z")
    assert [str(f) for f in never.binding_failures] == [
        "openvswitch: no Open vSwitch agent has reported from host 'host-z'"]

    make_agent("host-a").start()   # first report carries start_flag: failed ports rebind
    port = net.get_port(port.id)
    assert port.vif_type == "ovs" and port.binding_failures == ()


def test_unknown_physnet_is_refused_and_nothing_is_created(
    server: stackcore.Cloud, make_agent: Callable[..., OvsAgent], ovsdbs: dict[str, Ovsdb]
) -> None:
    net = server.network
    agent = make_agent("host-a", tunnel_types=[], local_ip="")
    agent.start()
    db = ovsdbs["host-a"]
    before = snapshot(db)
    flat = net.create_network("f", network_type="flat", physical_network="physnet9")
    vx = net.create_network("x")
    for network, reason in (
        (flat, "openvswitch: segment flat/physnet9: physical network 'physnet9' is not in the "
               "bridge_mappings of the Open vSwitch agent on host 'host-a' (known: physnet1)"),
        (vx, f"openvswitch: segment vxlan/{vx.segments[0].segmentation_id}: network type "
             "'vxlan' is not handled by the Open vSwitch agent on host 'host-a' (handles: "
             "flat, vlan)"),
    ):
        port = net.create_port(network.id, host="host-a")
        assert port.vif_type == "binding_failed"
        assert [str(f) for f in port.binding_failures] == [reason]
    agent.sync_once()
    assert snapshot(db) == before


@pytest.mark.parametrize("option,value,culprit", [
    ("integration_bridge", "br-integration-x", "[ovs] integration_bridge"),
    ("bridge_mappings", {"physnet1": "br-provider-physnet1"}, "[ovs] bridge_mappings"),
    ("tunnel_bridge", "br tun", "[ovs] tunnel_bridge"),
], ids=["long-integration-bridge", "long-provider-bridge", "bad-characters"])
def test_bad_bridge_names_fail_before_touching_ovsdb(
    make_agent: Callable[..., OvsAgent], ovsdbs: dict[str, Ovsdb], option: str, value: Any,
    culprit: str,
) -> None:
    db = ovsdbs["host-a"]
    before = snapshot(db)
    with pytest.raises(exception.ConfigError) as err:
        make_agent("host-a", **{option: value})
    assert culprit in str(err.value)
    if option != "tunnel_bridge":
        assert "the kernel's limit for a device name is 15" in str(err.value)
    assert snapshot(db) == before


def test_duplicate_vni_is_refused_and_nothing_is_created(
    server: stackcore.Cloud, make_agent: Callable[..., OvsAgent], ovsdbs: dict[str, Ovsdb]
) -> None:
    net = server.network
    agent = make_agent("host-a")
    agent.start()
    db = ovsdbs["host-a"]
    first = net.create_network("one", network_type="vxlan", segmentation_id=5000)
    net.create_port(first.id, host="host-a")
    agent.sync_once()
    before = snapshot(db)
    with pytest.raises(net_exc.SegmentIdInUse) as err:
        net.create_network("two", network_type="vxlan", segmentation_id=5000)
    assert "5000" in str(err.value)
    assert [n.name for n in net.list_networks()] == ["one"]
    agent.sync_once()
    assert snapshot(db) == before


# --- data plane ---------------------------------------------------------------------------


def ip(*args: str, check: bool = True) -> str:
    result = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=30,
                            check=False)
    if check and result.returncode != 0:
        raise AssertionError(f"ip {' '.join(args)}: {result.stderr.strip()}")
    return result.stdout


def host_netns(host: str) -> str:
    """The namespace tools/backends/ovs-instance.sh runs the host's ovs-vswitchd in."""
    return f"stackcore-ovs-{HOSTS[host][0]}"


class OvsLab:
    """The cables between the two OVS hosts and the VM namespaces; :meth:`destroy` removes
    them all (the OVSDB side is wiped by the ``ovsdbs`` fixture)."""

    def __init__(self, ovsdbs: dict[str, Ovsdb], datapath: str = "netdev") -> None:
        self.ovsdbs = ovsdbs
        self.tag = uuid.uuid4().hex[:6]
        self.vms: dict[str, str] = {}
        a, b = host_netns("host-a"), host_netns("host-b")
        for ns in (a, b):
            for cable in ("ul0", "ph0"):   # leftovers of an interrupted run
                ip("-n", ns, "link", "del", cable, check=False)
        ip("link", "add", "ul0", "netns", a, "type", "veth", "peer", "name", "ul0", "netns", b)
        ip("link", "add", "ph0", "netns", a, "type", "veth", "peer", "name", "ph0", "netns", b)
        for host, db in ovsdbs.items():
            ns = host_netns(host)
            ip("-n", ns, "link", "set", "ul0", "up")
            ip("-n", ns, "link", "set", "ph0", "up")
            with db.transaction() as txn:
                txn.add(db.api.add_br("br-ul", datapath_type=datapath))
                txn.add(db.api.add_port("br-ul", "ul0"))
            ip("-n", ns, "addr", "add", f"{HOSTS[host][1]}/24", "dev", "br-ul")
            ip("-n", ns, "link", "set", "br-ul", "up")

    def cable_provider(self, host: str) -> None:
        """The provider NIC into the agent's br-phys, as an operator would add it."""
        db = self.ovsdbs[host]
        db.execute(db.api.add_port("br-phys", "ph0", may_exist=True))

    def plug_vm(self, host: str, port: Any) -> str:
        """A VM namespace whose eth0 (the port's MAC and first fixed IP) is cabled to
        ``tap<port id>`` on br-int, plugged as libvirt/os-vif would."""
        vm = f"sc-ovs-{self.tag}-vm{len(self.vms)}"
        ip("netns", "add", vm)
        self.vms[port.id] = vm
        tap = ("tap" + port.id)[:14]
        ip("link", "add", tap, "netns", host_netns(host), "type", "veth", "peer", "name",
           "eth0", "netns", vm, "address", port.mac_address)
        ip("-n", vm, "addr", "add", f"{port.fixed_ips[0].ip_address}/24", "dev", "eth0")
        ip("-n", vm, "link", "set", "eth0", "up")
        ip("-n", vm, "link", "set", "lo", "up")
        ip("-n", host_netns(host), "link", "set", tap, "up")
        db = self.ovsdbs[host]
        db.execute(db.api.add_port("br-int", tap, external_ids={
            "iface-id": port.id, "attached-mac": port.mac_address, "iface-status": "active"}))
        return tap

    def ping(self, port: Any, address: str, count: int = 3, timeout: float = 2.0
             ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["ip", "netns", "exec", self.vms[port.id], sys.executable, str(PING), address,
             str(count), str(timeout)],
            capture_output=True, text=True, timeout=30, check=False)

    def destroy(self) -> None:
        for vm in self.vms.values():
            ip("netns", "delete", vm, check=False)
        for host in HOSTS:
            for cable in ("ul0", "ph0"):
                ip("-n", host_netns(host), "link", "del", cable, check=False)


@pytest.fixture
def lab(ovsdbs: dict[str, Ovsdb], datapath: str) -> Iterator[OvsLab]:
    lab = OvsLab(ovsdbs, datapath)
    yield lab
    lab.destroy()


def flows(agent: OvsAgent, bridge: str) -> set[str]:
    return set(agent.openflow[bridge].dump_flows())


def packets(agent: OvsAgent, bridge: str, pattern: str) -> int:
    """Packets that hit the flows of ``bridge`` whose text contains ``pattern``."""
    total, seen = 0, False
    for line in agent.openflow[bridge].dump_flows_with_stats():
        if pattern in line:
            seen = True
            match = re.search(r"n_packets=(\d+)", line)
            total += int(match.group(1)) if match else 0
    assert seen, f"no flow with {pattern!r} on {bridge}"
    return total


def passes_until(agents: Sequence[OvsAgent], check: Callable[[], bool], what: str) -> None:
    """Passes of ``agents`` (in this order) until ``check()`` holds, within 30 s. What a test
    plugs or unplugs through its own OVSDB connection reaches an agent's replica - and a new
    port gets its OpenFlow number from ovs-vswitchd - a moment after the test's transaction
    (``ovs-vsctl``, as libvirt uses it, would have waited for vswitchd): one pass right after
    a plug may still find the port without an ofport, seen under load. The agent is right to
    leave such a port alone; the test awaits its next passes instead of assuming one."""
    def attempt() -> bool:
        for agent in agents:
            agent.sync_once()
        return check()
    wait_until(attempt, 30, what)


def ofport(db: Ovsdb, name: str) -> int:
    value = interfaces(db)[name]["ofport"]
    return int(value[0] if isinstance(value, list) else value)


@pytest.mark.parametrize("datapath", DATAPATHS, indirect=True)
def test_ping_across_vxlan_between_vms_on_two_hosts(
    server: stackcore.Cloud, make_agent: Callable[..., OvsAgent], ovsdbs: dict[str, Ovsdb],
    lab: OvsLab,
) -> None:
    net = server.network
    agent_a, agent_b = make_agent("host-a"), make_agent("host-b")
    agent_a.start()
    agent_b.start()
    x = net.create_network("x")
    vni = x.segments[0].segmentation_id
    x_sub = net.create_subnet(x.id, "192.168.150.0/24")
    vm_a = net.create_port(x.id, host="host-a", fixed_ips=[
        {"subnet_id": x_sub.id, "ip_address": "192.168.150.10"}])
    vm_b = net.create_port(x.id, host="host-b", fixed_ips=[
        {"subnet_id": x_sub.id, "ip_address": "192.168.150.11"}])
    assert (vm_a.status, vm_b.status) == ("DOWN", "DOWN")   # bound, but nothing wired yet
    lab.plug_vm("host-a", vm_a)
    tap_b = lab.plug_vm("host-b", vm_b)
    # the agents wired the ports and said so: the server shows them ACTIVE (a's pass after
    # b's: a's first pass ran before b's port was bound, the peer is learnt then)
    passes_until([agent_a, agent_b, agent_a],
                 lambda: {net.get_port(p.id).status for p in (vm_a, vm_b)} == {"ACTIVE"},
                 "vm_a and vm_b ACTIVE")

    # br-tun on host-a: VNI <-> local VLAN, flooding to host-b's VXLAN port only
    lvid = port_row(ovsdbs["host-a"], ("tap" + vm_a.id)[:14])["tag"]
    tunnel = ofport(ovsdbs["host-a"], "vxlan-0a320002")
    patch_int = ofport(ovsdbs["host-a"], "patch-int")
    tun = flows(agent_a, "br-tun")
    assert f"table=4, priority=1,tun_id={vni:#x} actions=mod_vlan_vid:{lvid},output:{patch_int}" \
        in tun
    assert (f"table=22, priority=1,dl_vlan={lvid} actions=strip_vlan,"
            f"load:{vni:#x}->NXM_NX_TUN_ID[],output:{tunnel}") in tun
    assert f"priority=1,in_port={tunnel} actions=resubmit(,4)" in tun

    result = lab.ping(vm_a, "192.168.150.11")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "3 sent, 3 received" in result.stdout
    assert packets(agent_a, "br-tun", f"load:{vni:#x}->NXM_NX_TUN_ID[]") >= 3   # it went by VXLAN
    assert packets(agent_b, "br-tun", f"tun_id={vni:#x}") >= 3

    # another VXLAN network is isolated, even with addresses of the same range
    y = net.create_network("y")
    y_sub = net.create_subnet(y.id, "192.168.150.0/24")
    vm_y = net.create_port(y.id, host="host-b", fixed_ips=[
        {"subnet_id": y_sub.id, "ip_address": "192.168.150.12"}])
    lab.plug_vm("host-b", vm_y)
    passes_until([agent_b], lambda: net.get_port(vm_y.id).status == "ACTIVE", "vm_y ACTIVE")
    assert lab.ping(vm_a, "192.168.150.12", count=2, timeout=1).returncode == 1

    # a pass that has nothing to change changes nothing: same flows, counters kept
    before = {bridge: flows(agent_a, bridge) for bridge in OWNED_BRIDGES}
    sent = packets(agent_a, "br-tun", f"load:{vni:#x}->NXM_NX_TUN_ID[]")
    agent_a.sync_once()
    assert {bridge: flows(agent_a, bridge) for bridge in OWNED_BRIDGES} == before
    assert packets(agent_a, "br-tun", f"load:{vni:#x}->NXM_NX_TUN_ID[]") >= sent

    # administratively down: dead tag and a drop flow, DOWN; up again: traffic again
    db_a, tap_a = ovsdbs["host-a"], ("tap" + vm_a.id)[:14]
    net.update_port(vm_a.id, admin_state_up=False)
    agent_a.sync_once()
    assert port_row(db_a, tap_a)["tag"] == 4095
    assert f"priority=2,in_port={ofport(db_a, tap_a)} actions=drop" in flows(agent_a, "br-int")
    assert net.get_port(vm_a.id).status == "DOWN"
    assert lab.ping(vm_a, "192.168.150.11", count=1, timeout=1).returncode == 1
    net.update_port(vm_a.id, admin_state_up=True)
    agent_a.sync_once()
    assert port_row(db_a, tap_a)["tag"] == lvid
    assert net.get_port(vm_a.id).status == "ACTIVE"
    result = lab.ping(vm_a, "192.168.150.11")
    assert result.returncode == 0, result.stdout + result.stderr

    # the VM goes away on host-b (its tap is unplugged): the port is DOWN again
    db_b = ovsdbs["host-b"]
    db_b.execute(db_b.api.del_port(tap_b, if_exists=True))
    passes_until([agent_b], lambda: net.get_port(vm_b.id).status == "DOWN",
                 "vm_b DOWN once its tap is gone")
    assert net.get_port(vm_a.id).status == "ACTIVE"


@pytest.mark.parametrize("datapath", DATAPATHS, indirect=True)
def test_ping_across_vlan_and_flat_provider_networks_through_the_physnet_bridges(
    server: stackcore.Cloud, make_agent: Callable[..., OvsAgent], ovsdbs: dict[str, Ovsdb],
    lab: OvsLab,
) -> None:
    net = server.network
    agents = {host: make_agent(host) for host in HOSTS}
    for host, agent in agents.items():
        agent.start()
        lab.cable_provider(host)
    vlan = net.create_network("v", network_type="vlan", physical_network="physnet1",
                              segmentation_id=120)
    flat = net.create_network("f", network_type="flat", physical_network="physnet1")
    vms: dict[tuple[str, str], Any] = {}
    for network, cidr in ((vlan, "192.168.151.0/24"), (flat, "192.168.152.0/24")):
        subnet = net.create_subnet(network.id, cidr)
        for index, host in enumerate(HOSTS):
            address = cidr.replace(".0/24", f".{10 + index}")
            port = net.create_port(network.id, host=host, fixed_ips=[
                {"subnet_id": subnet.id, "ip_address": address}])
            lab.plug_vm(host, port)
            vms[(network.name, host)] = port
    passes_until(list(agents.values()),
                 lambda: {net.get_port(p.id).status for p in vms.values()} == {"ACTIVE"},
                 "every VM port ACTIVE")

    result = lab.ping(vms[("v", "host-a")], "192.168.151.11")
    assert result.returncode == 0, result.stdout + result.stderr
    result = lab.ping(vms[("f", "host-a")], "192.168.152.11")
    assert result.returncode == 0, result.stdout + result.stderr

    # the frames crossed the cable with the provider VLAN (local VLAN -> 120 on host-a's
    # br-phys, 120 -> local VLAN on host-b's br-int), and untagged for the flat network
    assert packets(agents["host-a"], "br-phys", "actions=mod_vlan_vid:120,NORMAL") >= 3
    assert packets(agents["host-b"], "br-int", "dl_vlan=120 actions=mod_vlan_vid:") >= 3
    assert packets(agents["host-a"], "br-phys", "actions=strip_vlan,NORMAL") >= 3
    assert packets(agents["host-b"], "br-int", "vlan_tci=0x0000/0x1fff") >= 3
    # and the two provider networks do not leak into each other
    assert lab.ping(vms[("v", "host-a")], "192.168.152.11", count=2,
                    timeout=1).returncode == 1


@pytest.mark.parametrize("datapath", DATAPATHS, indirect=True)
def test_restart_restores_flows_and_removes_stale_ones(
    server: stackcore.Cloud, make_agent: Callable[..., OvsAgent], ovsdbs: dict[str, Ovsdb],
    lab: OvsLab,
) -> None:
    net = server.network
    agent_a, agent_b = make_agent("host-a"), make_agent("host-b")
    agent_a.start()
    agent_b.start()
    x = net.create_network("x")
    subnet = net.create_subnet(x.id, "192.168.153.0/24")
    vm_a = net.create_port(x.id, host="host-a", fixed_ips=[
        {"subnet_id": subnet.id, "ip_address": "192.168.153.10"}])
    vm_b = net.create_port(x.id, host="host-b", fixed_ips=[
        {"subnet_id": subnet.id, "ip_address": "192.168.153.11"}])
    lab.plug_vm("host-a", vm_a)
    lab.plug_vm("host-b", vm_b)
    passes_until([agent_a, agent_b, agent_a],
                 lambda: {net.get_port(p.id).status for p in (vm_a, vm_b)} == {"ACTIVE"},
                 "vm_a and vm_b ACTIVE")
    assert lab.ping(vm_a, "192.168.153.11").returncode == 0
    before = {bridge: flows(agent_a, bridge) for bridge in OWNED_BRIDGES}

    agent_a.stop()   # the agent dies; meanwhile its flows drift
    ofctl = OfctlBridge("br-tun", agent_a.openflow["br-tun"].target[len("unix:"):]
                        .rsplit("/", 1)[0])
    subprocess.run(["ovs-ofctl", "-O", "OpenFlow14", "del-flows", ofctl.target, "table=4"],
                   check=True, capture_output=True, timeout=30)
    subprocess.run(["ovs-ofctl", "-O", "OpenFlow14", "add-flow", ofctl.target,
                    "table=0,priority=50,udp,tp_dst=53 actions=drop"],
                   check=True, capture_output=True, timeout=30)
    assert lab.ping(vm_a, "192.168.153.11", count=1, timeout=1).returncode == 1  # broken

    restarted = make_agent("host-a")
    restarted.start()
    assert {bridge: flows(restarted, bridge) for bridge in OWNED_BRIDGES} == before
    result = lab.ping(vm_a, "192.168.153.11")
    assert result.returncode == 0, result.stdout + result.stderr
    assert net.get_port(vm_a.id).status == "ACTIVE"


@pytest.mark.rabbit
def test_agent_process_over_rabbitmq_uses_only_rpc(
    make_server: Callable[..., stackcore.Cloud], ovsdbs: dict[str, Ovsdb], tmp_path: Path
) -> None:
    """The console-script agent in its own process, with no database configured at all,
    learns its ports over RabbitMQ and reports them ACTIVE."""
    rabbit = backend_env("STACKCORE_TEST_RABBIT_URL", "rabbitmq")
    server = make_server("openvswitch", DEFAULT={"transport_url": rabbit,
                                                 "rpc_call_timeout": 20})
    config = tmp_path / "agent.conf"
    config.write_text(
        "[DEFAULT]\nhost = host-a\n"
        f"transport_url = {rabbit}\n"
        "[agent]\npolling_interval = 0.3\nreport_interval = 1\n"
        f"[ovs]\novsdb_connection = {ovsdbs['host-a'].target}\ndatapath_type = netdev\n"
        "tunnel_types = vxlan\nlocal_ip = 10.50.0.1\nbridge_mappings = physnet1:br-phys\n")
    log = tmp_path / "agent.log"
    with open(log, "w") as errors:
        agent = subprocess.Popen(
            [str(Path(sys.executable).with_name("stackcore-ovs-agent")), "--config-file",
             str(config)], stdout=errors, stderr=subprocess.STDOUT, text=True)

    def wait_for(what: str, check: Callable[[], bool], seconds: float = 30) -> None:
        deadline = time.monotonic() + seconds
        while not check():
            if agent.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"{what}: agent exit {agent.poll()}\n{log.read_text()[-3000:]}")
            time.sleep(0.2)

    try:
        net = server.network
        wait_for("agent reported", lambda: any(
            a.alive for a in net.list_agents(host="host-a", agent_type="Open vSwitch agent")))
        x = net.create_network("x")
        port = net.create_port(x.id, host="host-a")
        assert port.vif_type == "ovs", port.binding_failures
        db = ovsdbs["host-a"]
        tap = plug_vif(db, port)
        wait_for("port ACTIVE", lambda: net.get_port(port.id).status == "ACTIVE")
        assert port_row(db, tap)["other_config"]["net_uuid"] == x.id
        net.delete_port(port.id)
        wait_for("stale VIF removed", lambda: tap not in bridge_ports(db, "br-int"))
        # one SIGTERM while the agent runs its loops: gone within the lifecycle deadline
        took = terminate(agent, "stackcore-ovs-agent", log)
        print(f"\nSIGTERM -> exit, stackcore-ovs-agent: {took:.2f} s")
    finally:
        if agent.poll() is None:
            agent.kill()
            agent.wait()

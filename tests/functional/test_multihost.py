"""Two compute hosts as network namespaces, services split across processes over RabbitMQ and
PostgreSQL.

The lab: ``tools/backends/up.sh`` gives PostgreSQL and RabbitMQ a second listening address,
``STACKCORE_TEST_LAB_ADDR`` on the bridge ``STACKCORE_TEST_LAB_BRIDGE`` (subnet
``STACKCORE_TEST_LAB_CIDR``, which exists only on that bridge). Each test host is a network
namespace cabled to that bridge by a veth pair, its end holding one address of the subnet (no
default route: the namespaces reach the lab address and each other, nothing else). Inside each
host namespace run that host's compute service (fake hypervisor, ``[DEFAULT] host`` = the
namespace name) and its Linux bridge agent (``[vxlan] local_ip`` = the namespace's address);
the scheduler, the network and volume services and the API client run in the root namespace.

Every process, namespace and veth is removed by the fixtures, also when a test fails; every wait
is bounded.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import select
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import pytest
import sqlalchemy as sa

import stackcore
from stackcore.compute import models
from tests.conftest import backend_env, rabbit_vhost_url

pytestmark = [pytest.mark.real, pytest.mark.postgres, pytest.mark.rabbit]

T = TypeVar("T")
AGENT = str(Path(sys.executable).with_name("stackcore-linuxbridge-agent"))


def wait_until(check: Callable[[], T], timeout: float, what: str) -> T:
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout} s waiting for {what} (last: {result!r})")
        time.sleep(0.25)


def ip(*args: str, check: bool = True) -> str:
    result = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=30,
                            check=False)
    if check and result.returncode != 0:
        raise AssertionError(f"ip {' '.join(args)}: {result.stderr.strip()}")
    return result.stdout


def links(netns: str | None) -> dict[str, dict[str, Any]]:
    """``ip -d link`` of a namespace (None: the root one), by interface name."""
    where = ["-n", netns] if netns else []
    return {link["ifname"]: link for link in json.loads(ip(*where, "-j", "-d", "link", "show"))}


def flood_peers(netns: str, device: str) -> set[str]:
    out = subprocess.run(["bridge", "-n", netns, "-j", "fdb", "show", "dev", device],
                         capture_output=True, text=True, timeout=30, check=True).stdout
    return {e["dst"] for e in json.loads(out or "[]")
            if e.get("mac") == "00:00:00:00:00:00" and "dst" in e}


@dataclass
class Host:
    name: str          # the namespace, and the host's [DEFAULT] host
    address: str       # on lab0 inside the namespace: VXLAN local_ip, my_ip
    veth: str          # the root-namespace end, a port of the lab bridge
    zone: str


@dataclass
class Lab:
    bridge: str
    prefix: int
    hosts: dict[str, Host] = field(default_factory=dict)
    procs: dict[str, subprocess.Popen[str]] = field(default_factory=dict)

    def add_host(self, key: str, name: str, address: str) -> Host:
        host = Host(name, address, f"{name[:12]}{key}"[-15:], f"az-{key}")
        self.hosts[key] = host
        ip("netns", "add", name)
        ip("-n", name, "link", "set", "lo", "up")
        ip("link", "add", host.veth, "type", "veth", "peer", "name", "lab0", "netns", name)
        ip("link", "set", host.veth, "master", self.bridge, "up")
        ip("-n", name, "addr", "add", f"{address}/{self.prefix}", "dev", "lab0")
        ip("-n", name, "link", "set", "lab0", "up")
        return host

    def destroy(self) -> None:
        for proc in self.procs.values():   # all at once: each may take seconds to shut down
            if proc.poll() is None:
                proc.terminate()
        for proc in self.procs.values():
            stop(proc)
        for host in self.hosts.values():
            ip("netns", "delete", host.name, check=False)
            ip("link", "delete", host.veth, check=False)  # gone with its peer, normally


def start(cmd: list[str], log: Path, ready: Callable[[str], bool] | None,
          timeout: float = 30) -> subprocess.Popen[str]:
    """Start CMD (stderr to LOG); with READY, wait (bounded) for a stdout line it accepts."""
    with open(log, "a") as errors:
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=errors, text=True,
                                stdin=subprocess.DEVNULL)
    if ready is None:
        return proc
    assert proc.stdout is not None
    deadline = time.monotonic() + timeout
    line = ""
    while time.monotonic() < deadline and proc.poll() is None:
        readable, _, _ = select.select([proc.stdout], [], [], 0.5)
        if readable:
            line = proc.stdout.readline()
            if ready(line):
                return proc
    stop(proc)
    pytest.fail(f"{' '.join(cmd)} did not start: {line!r}\n{log.read_text()[-3000:]}")


def stop(proc: subprocess.Popen[str], sig: int = signal.SIGTERM) -> None:
    if proc.poll() is None:
        proc.send_signal(sig)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
    if proc.stdout is not None:
        proc.stdout.close()


def service_cmd(name: str, config: Path, netns: str | None = None) -> list[str]:
    cmd = [sys.executable, "-m", "stackcore.cli.main", "service", name, "--config-file",
           str(config)]
    return ["ip", "netns", "exec", netns, *cmd] if netns else cmd


def write_config(path: Path, **groups: dict[str, Any]) -> Path:
    lines: list[str] = []
    for group, values in groups.items():
        lines.append(f"[{group}]")
        lines += [f"{k} = {v}" for k, v in values.items()]
    path.write_text("\n".join(lines) + "\n")
    return path


@dataclass
class MultiHost:
    api: stackcore.Cloud
    lab: Lab
    configs: dict[str, Path]
    log: Path

    def start_compute(self, key: str) -> None:
        host = self.lab.hosts[key]
        self.lab.procs[f"compute-{key}"] = start(
            service_cmd("compute", self.configs[f"compute-{key}"], host.name), self.log,
            lambda line: "running" in line)


@pytest.fixture
def multihost(tmp_path: Path, pg_url: str, rabbit_vhost: str) -> Iterator[MultiHost]:
    lab_addr = backend_env("STACKCORE_TEST_LAB_ADDR", "postgres")
    bridge = backend_env("STACKCORE_TEST_LAB_BRIDGE", "postgres")
    subnet = ipaddress.ip_network(backend_env("STACKCORE_TEST_LAB_CIDR", "postgres"))
    pg_lab = sa.make_url(backend_env("STACKCORE_TEST_PG_LAB_URL", "postgres")).set(
        database=sa.make_url(pg_url).database).render_as_string(hide_password=False)
    rabbit = rabbit_vhost_url(backend_env("STACKCORE_TEST_RABBIT_URL", "rabbitmq"), rabbit_vhost)
    rabbit_lab = rabbit_vhost_url(backend_env("STACKCORE_TEST_RABBIT_LAB_URL", "rabbitmq"),
                                  rabbit_vhost)
    assert ip("-4", "-o", "addr", "show", "dev", bridge).count(f" {lab_addr}/") == 1, \
        f"{bridge} does not hold {lab_addr}: run tools/backends/up.sh postgres rabbitmq"

    common = {
        "ml2": {"mechanism_drivers": "linuxbridge", "project_network_types": "vxlan"},
        "ml2_type_vxlan": {"vni_ranges": "1000:1999"},
        "network": {"agent_down_time": 10},
    }

    def config(name: str, host: str, db: str, bus: str, compute_hosts: str = "",
               **extra: dict[str, Any]) -> Path:
        return write_config(
            tmp_path / f"{name}.conf",
            DEFAULT={"host": host, "transport_url": bus, "report_interval": 1,
                     "service_down_time": 5, "state_path": tmp_path / f"state-{name}"},
            database={"connection": db},
            compute={"hosts": compute_hosts, **extra.pop("compute", {})},
            **common, **extra)

    tag = uuid.uuid4().hex[:6]
    lab = Lab(bridge, subnet.prefixlen)
    log = tmp_path / "services.log"
    configs: dict[str, Path] = {}
    api: stackcore.Cloud | None = None
    try:
        for index, key in enumerate(("a", "b")):
            address = str(subnet.network_address + 101 + index)
            assert address != lab_addr
            host = lab.add_host(key, f"sc-mh-{tag}-{key}", address)
            configs[f"compute-{key}"] = config(
                f"compute-{key}", host.name, pg_lab, rabbit_lab, host.name,
                compute={"my_ip": address, "availability_zone": host.zone})
            configs[f"agent-{key}"] = write_config(
                tmp_path / f"agent-{key}.conf",
                DEFAULT={"host": host.name, "transport_url": rabbit_lab},
                agent={"report_interval": 1, "polling_interval": 0.5},
                vxlan={"local_ip": address})
        for name in ("scheduler", "network", "volume"):
            configs[name] = config(name, f"sc-mh-{tag}-root", pg_url, rabbit)
            lab.procs[name] = start(service_cmd(name, configs[name]), log,
                                    lambda line: "running" in line)
        configs["api"] = config("api", f"sc-mh-{tag}-api", pg_url, rabbit)
        api = stackcore.Cloud(str(configs["api"]), services=())
        multihost = MultiHost(api, lab, configs, log)
        for key, host in lab.hosts.items():
            lab.procs[f"agent-{key}"] = start(
                ["ip", "netns", "exec", host.name, AGENT, "--config-file",
                 str(configs[f"agent-{key}"])], log, None)
            multihost.start_compute(key)
        for host in lab.hosts.values():
            wait_until(lambda h=host: [a for a in api.network.list_agents(host=h.name)
                                       if a.alive], 30, f"the agent of {host.name} to report")
        yield multihost
    finally:
        lab.destroy()
        if api is not None:
            api.close()
        assert not [h.name for h in lab.hosts.values()
                    if h.name in ip("netns", "list")], "namespaces left behind"


def _devices(host: Host, bridge: str, vni: int) -> bool:
    found = links(host.name)
    vx = found.get(f"vxlan-{vni}")
    return (bridge in found and vx is not None and vx.get("master") == bridge
            and vx["linkinfo"]["info_data"].get("local") == host.address)


def test_servers_on_two_namespace_hosts_and_a_killed_compute_reconciled(
    multihost: MultiHost, image_file: str
) -> None:
    api, lab = multihost.api, multihost.lab
    a, b = lab.hosts["a"], lab.hosts["b"]
    api.compute.create_flavor("small", 1, 256, 1)
    api.compute.register_image("img", image_file)
    net = api.network.create_network("mh")
    api.network.create_subnet(net.id, "192.168.90.0/24")
    vni = net.segments[0].segmentation_id
    assert net.segments[0].network_type == "vxlan" and vni is not None
    brq = "brq" + net.id[:11]

    servers = {key: api.compute.create_server(f"mh-{key}", "small", "img",
                                              availability_zone=host.zone,
                                              networks=[{"network_id": net.id}])
               for key, host in lab.hosts.items()}
    for key, server in servers.items():
        assert server.status == "ACTIVE", server.fault
        assert server.host == lab.hosts[key].name
        ports = api.network.list_ports(device_id=server.id)
        assert len(ports) == 1
        port = ports[0]
        assert port.host == server.host
        assert port.vif_type == "bridge", port.binding_failures
        assert port.vif_details["bridge_name"] == brq

    # Each agent wired the network inside its own namespace: the bridge, the VXLAN device on
    # the namespace's address, flooding to the other host; none of it in the root namespace.
    for host, peer in ((a, b), (b, a)):
        wait_until(lambda h=host: _devices(h, brq, vni), 30, f"{brq}/vxlan-{vni} in {host.name}")
        wait_until(lambda h=host, p=peer: flood_peers(h.name, f"vxlan-{vni}") == {p.address},
                   30, f"{host.name} to flood vxlan-{vni} to {peer.address}")
    root = links(None)
    assert brq not in root and f"vxlan-{vni}" not in root

    # Kill -9 host a's compute service in the middle of a build: the row is BUILDING on a
    # when the service dies (no chance to clean up).
    victim = servers["a"]
    with api.db.transaction() as session:
        session.execute(sa.update(models.Instance).where(models.Instance.uuid == victim.id)
                        .values(vm_state="building", task_state="spawning"))
    proc = lab.procs["compute-a"]
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)

    def host_states() -> dict[str, bool]:
        return {h.host: h.up for h in api.compute.list_hosts()}

    wait_until(lambda: host_states() == {a.name: False, b.name: True}, 20,
               "host a reported down, host b up")
    multihost.start_compute("a")   # init_host reconciles before the service says running

    after = api.compute.get_server(victim.id)
    assert after.status == "ERROR" and after.task_state is None
    assert after.fault is not None and "interrupted by a restart" in after.fault.message
    assert api.network.list_ports(device_id=victim.id) == []     # its port released
    hosts = {h.host: h for h in api.compute.list_hosts()}
    assert hosts[a.name].allocated["instances"] == 0              # its claim released
    assert hosts[b.name].allocated["instances"] == 1
    assert hosts[a.name].up and hosts[b.name].up
    stuck = [(s.name, s.status, s.task_state) for s in api.compute.list_servers()
             if s.task_state is not None or s.status not in ("ACTIVE", "ERROR")]
    assert stuck == []

    # a's agent removes the network's devices (no port left there); b keeps its server, its
    # bound port and its wiring, and stops flooding to a.
    wait_until(lambda: brq not in links(a.name) and f"vxlan-{vni}" not in links(a.name), 30,
               f"{a.name}'s agent to remove {brq}")
    other = api.compute.get_server(servers["b"].id)
    assert (other.status, other.host, other.task_state) == ("ACTIVE", b.name, None)
    (port_b,) = api.network.list_ports(device_id=other.id)
    assert port_b.vif_type == "bridge" and port_b.host == b.name
    assert _devices(b, brq, vni)
    wait_until(lambda: flood_peers(b.name, f"vxlan-{vni}") == set(), 30,
               f"{b.name} to stop flooding to {a.address}")

    # the build is retried on the restarted host like on any other
    again = api.compute.create_server("mh-a2", "small", "img", availability_zone=a.zone,
                                      networks=[{"network_id": net.id}])
    assert (again.status, again.host) == ("ACTIVE", a.name), again.fault
    wait_until(lambda: _devices(a, brq, vni), 30, f"{brq} back in {a.name}")
    for server in (after, other, again):
        api.compute.delete_server(server.id)
    assert api.compute.list_servers() == []
    with contextlib.suppress(Exception):
        api.network.delete_network(net.id)

"""``stackcore demo``: the main job, on the embedded default (one process, SQLite, in-process RPC).

It builds a small cloud with the real backends this machine has and the fakes where one is
missing - and says which, and why - then creates a network, a volume, boots two servers,
attaches the volume, prints host, backend and network stats and the support matrix, and tears
everything down. Each step prints as it runs.

Which backends are real is decided by probing, never by importing a driver (the core reaches
drivers only through entry points): a driver is used when its entry point loads and verifies
and its backend answers where ``tools/backends/up.sh`` puts it (the ``STACKCORE_TEST_*``
variables of ``/var/lib/stackcore-backends/env.sh``, read automatically when present). If the
cloud cannot start on the real backends after all, the demo says why and falls back to the
fakes, so the command always shows the architecture working.
"""

from __future__ import annotations

import dataclasses
import functools
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from stackcore import exception

T = TypeVar("T")
BACKENDS_ENV = "/var/lib/stackcore-backends/env.sh"
HOST = "demo-host"


@dataclasses.dataclass
class Choice:
    """What one family will use in the demo, and why."""

    family: str
    backend: str
    real: bool
    reason: str
    overrides: dict[str, dict[str, Any]] = dataclasses.field(default_factory=dict)
    #: a backend found but not used (its driver is unavailable or broken): shown, not built
    unused: bool = False


def backend_env(path: str = BACKENDS_ENV) -> dict[str, str]:
    """``STACKCORE_TEST_*`` settings: the process environment over the backends' env file."""
    found: dict[str, str] = {}
    if os.path.isfile(path):
        with open(path, encoding="utf-8") as handle:
            for line in handle:
                key, sep, value = line.strip().removeprefix("export ").partition("=")
                if sep and key.startswith("STACKCORE_TEST_"):
                    found[key] = value.strip("'\"")
    found.update({k: v for k, v in os.environ.items() if k.startswith("STACKCORE_TEST_")})
    return found


def _plugin_problem(family_name: str, name: str) -> str | None:
    """None if the plugin loads and meets its contract, else why not (one line, complete):
    *unavailable* (a backend library is missing: which one and how to install it) is told
    apart from a *broken* plugin (its first contract problem, or its import error)."""
    from stackcore import families
    from stackcore.plugins import loader

    family = families.get(family_name)
    try:
        loader.load_one(family.namespace, name, family.contract())
    except exception.PluginUnavailable as err:
        needs = "; ".join(f"{module} ({hint})" for module, hint in err.missing.items())
        return f"unavailable: needs {needs}"
    except exception.DriverContractError as err:
        more = len(err.problems) - 1
        return (f"broken: does not meet the {family_name} contract: {err.problems[0]}"
                + (f" (and {more} more problem(s): stackcore drivers lists them)" if more
                   else ""))
    except exception.StackcoreError as err:
        return f"broken: {' '.join(str(err).split())}"
    return None


def _unix_socket_answers(path: str) -> bool:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(2)
        try:
            sock.connect(path)
        except OSError:
            return False
    return True


def choose_hypervisor(env: Mapping[str, str]) -> Choice:
    problem = _plugin_problem("compute", "libvirt")
    if problem:
        return Choice("compute", "fake", False, f"libvirt driver {problem}")
    uri = env.get("STACKCORE_TEST_LIBVIRT_URI", "qemu:///system")
    if uri == "qemu:///system" and _unix_socket_answers("/var/run/libvirt/libvirt-sock"):
        virt_type = env.get("STACKCORE_TEST_VIRT_TYPE") or (
            "kvm" if os.access("/dev/kvm", os.R_OK | os.W_OK) else "qemu")
        return Choice("compute", f"libvirt ({uri}, {virt_type})", True, "libvirtd answers",
                      {"compute": {"driver": "libvirt"},
                       "libvirt": {"connection_uri": uri, "virt_type": virt_type}})
    return Choice("compute", "libvirt (test:///default)", True,
                  "no libvirtd running: libvirt's built-in test hypervisor",
                  {"compute": {"driver": "libvirt"},
                   "libvirt": {"connection_uri": "test:///default"}})


def choose_network(env: Mapping[str, str], hypervisor: Choice) -> Choice:
    fake = {"ml2": {"mechanism_drivers": ["fake"]}}
    if "qemu:///system" not in hypervisor.backend:
        return Choice("network", "fake mechanism driver", False,
                      "Open vSwitch needs a real libvirtd to plug VM ports", fake)
    problem = _plugin_problem("network.mechanism", "openvswitch") or _plugin_problem(
        "network.agent", "openvswitch")
    if problem:
        return Choice("network", "fake mechanism driver", False,
                      f"openvswitch {problem}", fake)
    # libvirt plugs VM ports through ovs-vsctl's default socket, so the agent must use it too.
    ovsdb = "/var/run/openvswitch/db.sock"
    if not _unix_socket_answers(ovsdb):
        return Choice("network", "fake mechanism driver", False,
                      f"no ovsdb-server answers on {ovsdb}", fake)
    rundir = env.get("STACKCORE_TEST_OVS_RUNDIR", os.path.dirname(os.path.realpath(ovsdb)))
    return Choice("network", "openvswitch (+ local OVS agent)", True, "ovsdb-server answers", {
        "ml2": {"mechanism_drivers": ["openvswitch"], "type_drivers": ["vxlan"],
                "project_network_types": ["vxlan"]},
        "network": {"local_agents": ["openvswitch"]},
        "agent": {"polling_interval": 0.5, "report_interval": 5},
        "ovs": {"ovsdb_connection": f"unix:{ovsdb}", "ovs_rundir": rundir,
                "datapath_type": "netdev", "tunnel_types": ["vxlan"],
                "local_ip": "127.0.0.1"},
    })


def choose_volumes(env: Mapping[str, str]) -> list[Choice]:
    chosen = []
    not_used = []  # configured backends whose driver cannot be used, with why
    if env.get("STACKCORE_TEST_NFS_EXPORT"):
        problem = _plugin_problem("volume", "nfs")
        if problem is not None:
            not_used.append(Choice("volume", "nfs", False, f"nfs driver {problem}",
                                   unused=True))
        else:
            share = f"{env.get('STACKCORE_TEST_NFS_SERVER', '127.0.0.1')}:" \
                    f"{env['STACKCORE_TEST_NFS_EXPORT']}"
            chosen.append(Choice("volume", f"nfs ({share})", True, "nfs-ganesha export", {
                "nfs": {"volume_driver": "nfs", "volume_backend_name": "nfs",
                        "nfs_shares": [share], "nfs_access": "qemu"}}))
    if env.get("STACKCORE_TEST_CEPH_CONF"):
        problem = _plugin_problem("volume", "rbd")
        if problem is not None:
            not_used.append(Choice("volume", "rbd", False, f"rbd driver {problem}",
                                   unused=True))
        else:
            chosen.append(Choice("volume", "rbd (Ceph)", True, "Ceph cluster configured", {
                "ceph": {"volume_driver": "rbd", "volume_backend_name": "ceph",
                         "rbd_ceph_conf": env["STACKCORE_TEST_CEPH_CONF"],
                         "rbd_pool": env.get("STACKCORE_TEST_CEPH_POOL", "stackcore"),
                         "rados_connect_timeout": 10}}))
    if not chosen:
        why = ("no usable NFS export or Ceph cluster" if not_used else
               "no NFS export or Ceph cluster found (tools/backends/up.sh)")
        chosen.append(Choice("volume", "fake", False, why, {}))
    return [*not_used, *chosen]


def _step(title: str, action: Callable[[], T]) -> T:
    print(f"  - {title} ...", end="", flush=True)
    started = time.monotonic()
    result = action()
    print(f" done ({(time.monotonic() - started) * 1000:.0f} ms)", flush=True)
    return result


def _overrides(state: str, hypervisor: Choice, network: Choice,
               volumes: list[Choice]) -> dict[str, dict[str, Any]]:
    merged: dict[str, dict[str, Any]] = {
        "DEFAULT": {"state_path": state, "host": HOST},
        "compute": {"hosts": [HOST]},
    }
    for choice in (hypervisor, network, *volumes):
        for group, values in choice.overrides.items():
            merged.setdefault(group, {}).update(values)
    if hypervisor.real:
        merged["libvirt"]["instances_path"] = os.path.join(state, "instances")
    real_backends = [g for c in volumes if c.real for g in c.overrides]
    if real_backends:
        merged["volume"] = {"enabled_backends": real_backends}
    return merged


def _image(state: str) -> tuple[str, str]:
    qemu_img = shutil.which("qemu-img")
    if qemu_img:
        path = os.path.join(state, "demo.qcow2")
        subprocess.run([qemu_img, "create", "-q", "-f", "qcow2", path, "64M"], check=True)
        return path, "qcow2"
    path = os.path.join(state, "demo.raw")
    with open(path, "wb") as handle:
        handle.truncate(1024 * 1024)
    return path, "raw"


def run(hosts: int = 2, real: bool = True) -> int:
    """Run the demo; ``real=False`` uses the fakes only (``hosts`` fake compute hosts)."""
    import logging
    import tempfile

    from stackcore.cloud import Cloud

    # Warnings (e.g. reconciliation reports) on their own lines, not inside a progress line.
    logging.basicConfig(level=logging.WARNING, format="\n    ! %(name)s: %(message)s")

    state = tempfile.mkdtemp(prefix="stackcore-demo-")
    try:
        cloud = None
        if real:
            env = backend_env()
            hypervisor = choose_hypervisor(env)
            network = choose_network(env, hypervisor)
            volumes = choose_volumes(env)
            print("stackcore demo: embedded cloud (SQLite, in-process RPC) on this machine:")
            for choice in (hypervisor, network, *volumes):
                kind = "real" if choice.real else ("-" if choice.unused else "FAKE")
                print(f"    {choice.family:<8} {kind:<5} {choice.backend} - {choice.reason}")
            try:
                cloud = _step("starting cloud", functools.partial(
                    Cloud, overrides=_overrides(state, hypervisor, network, volumes)))
            except exception.StackcoreError as err:
                print(f"\n  ! the real backends did not start ({type(err).__name__}: "
                      f"{str(err).splitlines()[0]}); falling back to the fakes")
        if cloud is None:
            print(f"stackcore demo: embedded cloud with {hosts} fake compute host(s), fake "
                  "network and volume drivers")
            cloud = _step("starting cloud", functools.partial(
                Cloud, fake_hosts=hosts, overrides={"DEFAULT": {"state_path": state}}))
        with cloud:
            _exercise(cloud, state)
    finally:
        shutil.rmtree(state, ignore_errors=True)
    print("stackcore demo: done")
    return 0


def _exercise(cloud: Any, state: str) -> None:
    compute, network, volume = cloud.compute, cloud.network, cloud.volume
    _step("creating flavor m1.tiny", lambda: compute.create_flavor("m1.tiny", 1, 128, 1))
    image_path, disk_format = _image(state)
    _step(f"registering a {disk_format} image", lambda: compute.register_image(
        "demo-image", image_path, disk_format, {"architecture": "x86_64", "vm_mode": "hvm"}))
    net = _step("creating network demo-net", lambda: network.create_network("demo-net"))
    _step("creating subnet 10.20.0.0/24", lambda: network.create_subnet(
        net.id, "10.20.0.0/24", name="demo-subnet"))
    vol = _step("creating a 1 GiB volume", lambda: volume.create(1, name="demo-volume"))
    print(f"    volume {vol.id[:8]}: {vol.status} on {vol.host}")
    servers: list[Any] = []
    try:
        for name in ("demo-1", "demo-2"):
            servers.append(_step(f"booting server {name}", functools.partial(
                compute.create_server, name, "m1.tiny", "demo-image",
                networks=[{"network_id": net.id}])))
        _report(cloud, servers, vol)
    finally:
        # Torn down whatever happened above: nothing the demo made outlives it.
        print("  tearing down")
        for server in servers:
            _step(f"deleting {server.name}", functools.partial(compute.delete_server, server.id))
        _step("deleting the volume", lambda: volume.delete(vol.id))
        _step("deleting the network", lambda: network.delete_network(net.id))


def _report(cloud: Any, servers: list[Any], vol: Any) -> None:
    from stackcore import matrix

    compute, network, volume = cloud.compute, cloud.network, cloud.volume
    for server in servers:
        ports = network.list_ports(device_id=server.id)
        wiring = ", ".join(f"{p.vif_type} {p.fixed_ips[0].ip_address}" for p in ports) or "-"
        fault = f" ({server.fault.message})" if server.fault else ""
        print(f"    {server.name}: {server.status} on {server.host} [{wiring}]{fault}")
    active = [s for s in servers if s.status == "ACTIVE"]
    if active and vol.status == "available":
        _step(f"attaching the volume to {active[0].name}", lambda: compute.attach_volume(
            active[0].id, vol.id, "/dev/sdb"))
        devices = ", ".join(f"{v.device} ({v.status})"
                            for v in compute.list_server_volumes(active[0].id))
        print(f"    {active[0].name} volumes: {devices}")
    cloud.tick()
    print("  host stats:")
    for host in compute.list_hosts():
        s = host.stats
        print(f"    {host.host}: up={host.up} reporting={host.reporting} "
              f"{s.get('hypervisor_type')} vcpus {host.allocated['vcpus']}/{s.get('vcpus')} "
              f"ram {host.allocated['memory_mb']}/{s.get('memory_mb')} MB "
              f"instances {host.allocated['instances']}")
    print("  volume backends:")
    for pool in volume.list_pools():
        st = pool.stats
        print(f"    {pool.name}: up={pool.up} reporting={pool.reporting} total "
              f"{st.get('total_capacity_gb')} GiB free {st.get('free_capacity_gb')} GiB "
              f"provisioned {st.get('provisioned_capacity_gb')} GiB allocated "
              f"{pool.allocated_capacity_gb} GiB")
    print("  network segment usage:")
    for usage in network.type_usage():
        for r in usage["ranges"]:
            where = f" on {r['physical_network']}" if r["physical_network"] else ""
            print(f"    {usage['network_type']}{where} {r['first']}-{r['last']}: "
                  f"{r['allocated']} allocated, {r['free']} free")
    print("  support matrix (declared capabilities + conformance results where run):")
    for line in matrix.render_text(matrix.build()).splitlines():
        print(f"    {line}")

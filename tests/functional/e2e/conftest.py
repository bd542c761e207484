"""The whole cloud through the core API on real backends: one ``stackcore.Cloud`` running the
libvirt driver (KVM, ``qemu:///system``), ML2 with the openvswitch mechanism driver (vxlan and
vlan), an OVS agent for the compute host on the default OVSDB (the one libvirt's ovs-vsctl
reaches through /var/run/openvswitch/db.sock), and the nfs (nfs-ganesha), rbd (Ceph) and lvm
(tgtd) volume backends.

Every backend comes from ``tools/backends/up.sh`` through ``STACKCORE_TEST_*`` variables; a
missing one fails the test naming the service to start. The checks read the backends
themselves (libvirt, QEMU's QMP, OVSDB, rbd, the NFS export directory, tgtadm), not only the
database.
"""

from __future__ import annotations

import json
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import stackcore
from stackcore.compute.manager import BINARY as COMPUTE_BINARY
from stackcore.volume.manager import BINARY as VOLUME_BINARY
from tests.conftest import backend_env
from tests.functional.compute.conftest import libvirt, qemu_protocol_nodes

try:
    from stackcore_drivers.libvirt import domain_xml
    from stackcore_drivers.network.conf import load_agent_conf
    from stackcore_drivers.network.ovs import conf as ovs_conf
    from stackcore_drivers.network.ovs.agent import OvsAgent
except ImportError as err:  # a broken environment, not a skip
    raise ImportError(f"{err}: install the drivers: pip install -e 'drivers[libvirt,ovs]'") \
        from err

HOST = "e2e-compute"
PHYSNET = "physnet1"
PROVIDER_BRIDGE = "br-e2e-phys"
AGENT_BRIDGES = ("br-int", "br-tun", PROVIDER_BRIDGE)
BACKENDS = ("nfs", "ceph", "lvm")


def run(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(args), check=check, capture_output=True, text=True, timeout=60)


def wait_until(condition: Callable[[], Any], timeout: float = 30.0, what: str = "") -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what or condition}")
        time.sleep(0.2)


class Backends:
    """Read-only views of the real backends, for the assertions."""

    def __init__(self) -> None:
        self.libvirt_uri = backend_env("STACKCORE_TEST_LIBVIRT_URI", "libvirt")
        self.ovsdb = backend_env("STACKCORE_TEST_OVSDB", "ovs")
        self.ceph_conf = backend_env("STACKCORE_TEST_CEPH_CONF", "ceph")
        self.ceph_pool = backend_env("STACKCORE_TEST_CEPH_POOL", "ceph")
        self.nfs_dir = backend_env("STACKCORE_TEST_NFS_DIR", "nfs")
        self.conn = libvirt.open(self.libvirt_uri)

    # libvirt / QEMU
    def domain(self, server_id: str) -> Any | None:
        try:
            return self.conn.lookupByName(domain_xml.domain_name(server_id))
        except libvirt.libvirtError as err:
            if err.get_error_code() == libvirt.VIR_ERR_NO_DOMAIN:
                return None
            raise

    def interfaces(self, dom: Any) -> list[dict[str, str | None]]:
        doc = domain_xml.parse(dom.XMLDesc(0))
        found = []
        for iface in doc.findall("devices/interface"):
            params = iface.find("virtualport/parameters")
            found.append({
                "type": iface.get("type"),
                "bridge": (iface.find("source").get("bridge")  # type: ignore[union-attr]
                           if iface.find("source") is not None else None),
                "virtualport": (iface.find("virtualport").get("type")  # type: ignore[union-attr]
                                if iface.find("virtualport") is not None else None),
                "interfaceid": params.get("interfaceid") if params is not None else None,
                "mac": iface.find("mac").get("address"),  # type: ignore[union-attr]
                "tap": iface.find("target").get("dev")  # type: ignore[union-attr]
                if iface.find("target") is not None else None,
            })
        return found

    def qemu_opened(self, dom: Any, kind: str, volume_id: str) -> bool:
        """Whether QEMU itself (QMP query-block) has this volume open."""
        name = f"volume-{volume_id}"
        for node in qemu_protocol_nodes(dom):
            if kind == "rbd" and node.get("driver") == "rbd" \
                    and f"{node.get('pool')}/{node.get('image')}" == f"{self.ceph_pool}/{name}":
                return True
            if kind == "nfs" and node.get("driver") == "nfs" \
                    and str(node.get("path", "")).endswith("/" + name):
                return True
            if kind == "iscsi" and node.get("driver") == "iscsi" \
                    and volume_id in str(node.get("target", "")):
                return True
        return False

    # OVS
    def vsctl(self, *args: str) -> str:
        return run("ovs-vsctl", f"--db={self.ovsdb}", "--timeout=10", *args).stdout.strip()

    def ovs_ports(self, bridge: str = "br-int") -> set[str]:
        return set(self.vsctl("list-ports", bridge).split())

    def ovs_port(self, name: str) -> dict[str, Any] | None:
        out = self.vsctl("--format=json", "--columns=tag,other_config", "find", "Port",
                         f"name={name}")
        rows = json.loads(out)["data"]
        if not rows:
            return None
        tag, other = rows[0]
        external = json.loads(self.vsctl("--format=json", "--columns=external_ids", "find",
                                         "Interface", f"name={name}"))["data"]
        return {"tag": tag if isinstance(tag, int) else None,
                "other_config": dict(other[1]),
                "external_ids": dict(external[0][0][1]) if external else {}}

    # Ceph / NFS / tgt
    def rbd_watchers(self, volume_id: str) -> list[Any]:
        out = run("rbd", "-c", self.ceph_conf, "status", "--format", "json",
                  f"{self.ceph_pool}/volume-{volume_id}").stdout
        return list(json.loads(out).get("watchers", []))

    def rbd_exists(self, volume_id: str) -> bool:
        out = run("rbd", "-c", self.ceph_conf, "ls", "--format", "json", self.ceph_pool).stdout
        return f"volume-{volume_id}" in json.loads(out)

    def nfs_file(self, volume_id: str) -> Path:
        return Path(self.nfs_dir) / f"volume-{volume_id}"

    @staticmethod
    def tgt_targets() -> str:
        return run("tgtadm", "--lld", "iscsi", "--op", "show", "--mode", "target").stdout

    def close(self) -> None:
        self.conn.close()


@pytest.fixture(scope="module")
def backends() -> Iterator[Backends]:
    view = Backends()
    yield view
    view.close()


def _overrides(state: Path) -> dict[str, dict[str, Any]]:
    nfs_server = backend_env("STACKCORE_TEST_NFS_SERVER", "nfs")
    nfs_export = backend_env("STACKCORE_TEST_NFS_EXPORT", "nfs")
    return {
        "DEFAULT": {"state_path": str(state), "periodic_interval": 3600},
        "compute": {"driver": "libvirt", "hosts": [HOST]},
        "libvirt": {
            "connection_uri": backend_env("STACKCORE_TEST_LIBVIRT_URI", "libvirt"),
            "virt_type": backend_env("STACKCORE_TEST_VIRT_TYPE", "libvirt"),
            "instances_path": str(state / "instances"),
            "device_detach_timeout": 10,
        },
        "ml2": {"type_drivers": ["vlan", "vxlan"], "mechanism_drivers": ["openvswitch"],
                "project_network_types": ["vxlan"]},
        "ml2_type_vlan": {"network_vlan_ranges": [f"{PHYSNET}:100:199", "physnet-unmapped"]},
        "ml2_type_vxlan": {"vni_ranges": ["5000:5999"]},
        "volume": {"enabled_backends": list(BACKENDS)},
        "nfs": {"volume_driver": "nfs", "volume_backend_name": "nfs",
                "nfs_shares": [f"{nfs_server}:{nfs_export}"], "nfs_access": "qemu"},
        "ceph": {"volume_driver": "rbd", "volume_backend_name": "ceph",
                 "rbd_ceph_conf": backend_env("STACKCORE_TEST_CEPH_CONF", "ceph"),
                 "rbd_pool": backend_env("STACKCORE_TEST_CEPH_POOL", "ceph"),
                 "rados_connect_timeout": 10},
        "lvm": {"volume_driver": "lvm", "volume_backend_name": "lvm",
                "volume_group": backend_env("STACKCORE_TEST_LVM_VG", "lvm"),
                "target_ip_address": backend_env("STACKCORE_TEST_ISCSI_PORTAL", "tgt")
                .rsplit(":", 1)[0]},
    }


@pytest.fixture(scope="module")
def cloud(tmp_path_factory: pytest.TempPathFactory, backends: Backends
          ) -> Iterator[stackcore.Cloud]:
    """The cloud, with a flavor ``e2e``, a qcow2 image ``e2e`` and a volume type per
    backend (named like it)."""
    state = tmp_path_factory.mktemp("e2e")
    with stackcore.Cloud(overrides=_overrides(state)) as c:
        c.compute.create_flavor("e2e", 1, 128, 1)
        image = state / "base.qcow2"
        run("qemu-img", "create", "-q", "-f", "qcow2", str(image), "64M")
        c.compute.register_image("e2e", str(image), "qcow2", {"architecture": "x86_64"})
        for backend in BACKENDS:
            c.volume.create_type(backend, {"volume_backend_name": backend})
        yield c
        for server in c.compute.list_servers():
            c.compute.delete_server(server.id)


@pytest.fixture(scope="module")
def ovs_agent(cloud: stackcore.Cloud, backends: Backends) -> Iterator[OvsAgent]:
    """The OVS agent of the compute host, in a thread of this process, on the default OVSDB
    (the one libvirt plugs VM ports into). The bridges it made are removed afterwards unless
    they were there before."""
    before = set(backends.vsctl("list-br").split())
    settings: dict[str, Any] = {
        "ovsdb_connection": backends.ovsdb, "datapath_type": "netdev",
        "bridge_mappings": {PHYSNET: PROVIDER_BRIDGE}, "tunnel_types": ["vxlan"],
        "local_ip": "127.0.0.1", "ovsdb_timeout": 10.0}
    if any(opt.dest == "ovs_rundir" for opt in ovs_conf.AGENT_OPTS):
        settings["ovs_rundir"] = backend_env("STACKCORE_TEST_OVS_RUNDIR", "ovs")
    conf = load_agent_conf([("ovs", ovs_conf.AGENT_OPTS)], overrides={
        "DEFAULT": {"host": HOST},
        "agent": {"polling_interval": 0.5, "report_interval": 5},
        "ovs": settings,
    })
    agent = OvsAgent(conf, cloud.transport)
    agent.start()
    yield agent
    agent.stop()
    for bridge in AGENT_BRIDGES:
        if bridge not in before:
            backends.vsctl("--if-exists", "del-br", bridge)


def volume_manager(cloud: stackcore.Cloud, backend: str) -> Any:
    for service in cloud.services:
        if service.binary == VOLUME_BINARY and service.host.endswith("@" + backend):
            return service.manager
    raise LookupError(backend)


def compute_manager(cloud: stackcore.Cloud) -> Any:
    return next(s.manager for s in cloud.services if s.binary == COMPUTE_BINARY)


@pytest.fixture(scope="module")
def networks(cloud: stackcore.Cloud, ovs_agent: OvsAgent) -> dict[str, Any]:
    """A vxlan and a vlan network (on the mapped physical network), each with a subnet."""
    net = cloud.network
    vxlan = net.create_network("e2e-vxlan", network_type="vxlan")
    net.create_subnet(vxlan.id, "10.77.1.0/24")
    vlan = net.create_network("e2e-vlan", network_type="vlan", physical_network=PHYSNET)
    net.create_subnet(vlan.id, "10.77.2.0/24")
    return {"vxlan": vxlan, "vlan": vlan}


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


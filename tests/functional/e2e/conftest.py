"""The whole cloud through the core API on real backends: one ``stackcore.Cloud`` running the
libvirt driver (KVM, ``qemu:///system``), ML2 with the openvswitch mechanism driver (vxlan and
vlan), an OVS agent for the compute host on the default OVSDB (the one libvirt's ovs-vsctl
reaches through /var/run/openvswitch/db.sock), and the nfs (nfs-ganesha) and rbd (Ceph) volume
backends. The lvm backend needs device-mapper, which this kernel lacks: its case runs in the
guest tier, with the lvm volume service inside the full-kernel guest
(``test_server_wiring_guest.py``), and shares the flow of the checks here
(:func:`check_server_with_ports_and_volume`).

Every backend comes from ``tools/backends/up.sh`` through ``STACKCORE_TEST_*`` variables; a
missing one fails the test naming the service to start. The checks read the backends
themselves (libvirt, QEMU's QMP, OVSDB, rbd, the NFS export directory), not only the
database.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest

import stackcore
from stackcore import exception
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
#: The volume backends of the host's cloud (lvm: test_server_wiring_guest.py, in the guest).
BACKENDS = ("nfs", "ceph")


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

    # Ceph / NFS
    def rbd_watchers(self, volume_id: str) -> list[Any]:
        out = run("rbd", "-c", self.ceph_conf, "status", "--format", "json",
                  f"{self.ceph_pool}/volume-{volume_id}").stdout
        return list(json.loads(out).get("watchers", []))

    def rbd_exists(self, volume_id: str) -> bool:
        out = run("rbd", "-c", self.ceph_conf, "ls", "--format", "json", self.ceph_pool).stdout
        return f"volume-{volume_id}" in json.loads(out)

    def nfs_file(self, volume_id: str) -> Path:
        return Path(self.nfs_dir) / f"volume-{volume_id}"

    def close(self) -> None:
        self.conn.close()


@pytest.fixture(scope="module")
def backends() -> Iterator[Backends]:
    view = Backends()
    yield view
    view.close()


def overrides(state: Path) -> dict[str, dict[str, Any]]:
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
    }


@contextlib.contextmanager
def e2e_cloud(state: Path, settings: Mapping[str, Mapping[str, Any]],
              volume_types: Sequence[str], services: Sequence[str] | None = None
              ) -> Iterator[stackcore.Cloud]:
    """A cloud with ``settings`` (see :func:`overrides`), a flavor ``e2e``, a qcow2 image
    ``e2e`` and a volume type per name of ``volume_types`` (for the backend named like it);
    its servers are deleted afterwards."""
    extra = {} if services is None else {"services": services}
    with stackcore.Cloud(overrides=settings, **extra) as c:
        c.compute.create_flavor("e2e", 1, 128, 1)
        image = state / "base.qcow2"
        run("qemu-img", "create", "-q", "-f", "qcow2", str(image), "64M")
        c.compute.register_image("e2e", str(image), "qcow2", {"architecture": "x86_64"})
        for backend in volume_types:
            c.volume.create_type(backend, {"volume_backend_name": backend})
        yield c
        for server in c.compute.list_servers():
            c.compute.delete_server(server.id)


@pytest.fixture(scope="module")
def cloud(tmp_path_factory: pytest.TempPathFactory, backends: Backends
          ) -> Iterator[stackcore.Cloud]:
    """The cloud, with a flavor ``e2e``, a qcow2 image ``e2e`` and a volume type per
    backend (named like it)."""
    state = tmp_path_factory.mktemp("e2e")
    with e2e_cloud(state, overrides(state), BACKENDS) as c:
        yield c


@contextlib.contextmanager
def running_ovs_agent(cloud: stackcore.Cloud, backends: Backends) -> Iterator[OvsAgent]:
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
    try:
        yield agent
    finally:
        agent.stop()
        for bridge in AGENT_BRIDGES:
            if bridge not in before:
                backends.vsctl("--if-exists", "del-br", bridge)


@pytest.fixture(scope="module")
def ovs_agent(cloud: stackcore.Cloud, backends: Backends) -> Iterator[OvsAgent]:
    with running_ovs_agent(cloud, backends) as agent:
        yield agent


def make_networks(cloud: stackcore.Cloud) -> dict[str, Any]:
    """A vxlan and a vlan network (on the mapped physical network), each with a subnet."""
    net = cloud.network
    vxlan = net.create_network("e2e-vxlan", network_type="vxlan")
    net.create_subnet(vxlan.id, "10.77.1.0/24")
    vlan = net.create_network("e2e-vlan", network_type="vlan", physical_network=PHYSNET)
    net.create_subnet(vlan.id, "10.77.2.0/24")
    return {"vxlan": vxlan, "vlan": vlan}


@pytest.fixture(scope="module")
def networks(cloud: stackcore.Cloud, ovs_agent: OvsAgent) -> dict[str, Any]:
    """A vxlan and a vlan network (on the mapped physical network), each with a subnet."""
    return make_networks(cloud)


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"



# --- the server-with-a-volume flow, shared by the host's backends and the guest's lvm ---------


@dataclasses.dataclass(frozen=True)
class VolumeView:
    """How the checks see one volume backend directly (not through the database)."""

    #: the volume type (named like its backend)
    volume_type: str
    #: QEMU's protocol driver for such a volume (iscsi, nfs, rbd)
    kind: str
    #: whether the backend still holds the volume itself (its LV, image or file)
    exists: Callable[[str], bool]
    #: more checks while the server's QEMU has the volume open: (domain, volume id)
    check_attached: Callable[[Any, str], None] = lambda dom, volume_id: None
    #: more checks once the server is deleted (the export gone, the data kept): volume id
    check_detached: Callable[[str], None] = lambda volume_id: None


def assert_wired(cloud: stackcore.Cloud, backends: Backends, agent: Any, server_id: str,
                 ports: list[Any]) -> None:
    """The server's domain runs with each port an openvswitch interface on br-int, tagged by
    the agent with its network's local VLAN (one per network)."""
    dom = backends.domain(server_id)
    assert dom is not None and dom.isActive(), "no running domain for the server"
    assert dom.OSType() == "hvm"
    interfaces = {i["interfaceid"]: i for i in backends.interfaces(dom)}
    for port in ports:
        iface = interfaces.get(port.id)
        assert iface is not None, f"port {port.id} is not an interface of the domain"
        assert (iface["type"], iface["bridge"], iface["virtualport"]) == \
            ("bridge", "br-int", "openvswitch")
        assert iface["mac"] == port.mac_address
        tap = iface["tap"]
        assert tap in backends.ovs_ports("br-int")
        network = cloud.network.get_network(port.network_id)

        def tagged(tap: str = tap, network_id: str = port.network_id) -> Any:
            row = backends.ovs_port(tap)
            local = (agent.local_vlans or {}).get(network_id)
            return row if row and local and row["tag"] == local else None

        row = wait_until(tagged, 30, f"the agent to tag {tap}")
        assert row["external_ids"]["iface-id"] == port.id
        assert row["external_ids"]["attached-mac"] == port.mac_address
        assert row["other_config"]["net_uuid"] == network.id
        assert row["other_config"]["network_type"] == network.network_type
        assert row["other_config"]["segmentation_id"] == str(network.segmentation_id)
        assert 1 <= row["tag"] < 4095
    tags = [backends.ovs_port(interfaces[p.id]["tap"])["tag"] for p in ports]  # type: ignore[index]
    assert len(set(tags)) == len(ports), "two networks share a local VLAN"


def check_server_with_ports_and_volume(cloud: stackcore.Cloud, backends: Backends,
                                       agent: Any, networks: dict[str, Any],
                                       view: VolumeView) -> None:
    """A server with a port on the vxlan and on the vlan network and a new volume of
    ``view``'s type at boot: the domain runs, wired (:func:`assert_wired`), QEMU has the volume
    open, the volume is in-use with one attachment; deleting the server leaves no domain, no
    OVS port, the volume available and not exported (``view.check_detached``); deleting the
    volume removes it from the backend."""
    volume = cloud.volume.create(1, name=unique(view.volume_type), volume_type=view.volume_type)
    assert volume.status == "available", volume.fault
    try:
        server = cloud.compute.create_server(
            unique("e2e"), "e2e", "e2e",
            networks=[{"network_id": networks["vxlan"].id},
                      {"network_id": networks["vlan"].id}],
            volumes=[volume.id])
        assert server.status == "ACTIVE", server.fault
        assert server.host == HOST

        ports = cloud.network.list_ports(device_id=server.id)
        assert sorted(p.network_id for p in ports) == sorted(n.id for n in networks.values())
        for port in ports:
            assert (port.host, port.vif_type, port.vif_details["bridge_name"]) == \
                (HOST, "ovs", "br-int")
        assert_wired(cloud, backends, agent, server.id, ports)

        dom = backends.domain(server.id)
        assert backends.qemu_opened(dom, view.kind, volume.id), \
            f"QEMU has not opened the {view.volume_type} volume"
        attached = cloud.volume.get(volume.id)
        assert attached.status == "in-use"
        assert [(a.instance_uuid, a.mountpoint, a.host) for a in attached.attachments] == \
            [(server.id, "/dev/vdb", HOST)]
        [mapping] = cloud.compute.list_server_volumes(server.id)
        assert (mapping.device, mapping.status) == ("/dev/vdb", "attached")
        view.check_attached(dom, volume.id)
        taps = [i["tap"] for i in backends.interfaces(dom)]

        cloud.compute.delete_server(server.id)

        with pytest.raises(exception.NotFound):
            cloud.compute.get_server(server.id)
        assert backends.domain(server.id) is None
        assert not set(taps) & backends.ovs_ports("br-int"), "OVS ports left on br-int"
        for tap in taps:
            assert backends.ovs_port(tap) is None
        assert cloud.network.list_ports(device_id=server.id) == []
        detached = cloud.volume.get(volume.id)
        assert (detached.status, detached.attachments) == ("available", ())
        assert cloud.compute.list_servers() == []
        view.check_detached(volume.id)
    finally:
        cloud.volume.delete(volume.id)
    wait_until(lambda: cloud.volume.get(volume.id, include_deleted=True).status == "deleted",
               60, "the volume to be deleted")
    assert not view.exists(volume.id), f"the {view.volume_type} backend still holds the volume"

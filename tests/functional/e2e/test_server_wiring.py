"""``create_server(networks=..., volumes=...)`` end to end on real backends.

For each volume backend a server gets a port on a vxlan and on a vlan network plus a volume at
boot; then the backends are asked directly: a running KVM domain, each interface on br-int
with an openvswitch virtualport whose interfaceid is the port id, each OVS port tagged by the
agent with its network's local VLAN, the volume opened by QEMU. Deleting the server leaves no
domain, no OVS port, no export (no rbd watcher, tgt target gone, NFS file closed but kept);
deleting the volume removes it from the backend.
"""

from __future__ import annotations

from typing import Any

import pytest

import stackcore
from stackcore import exception

from .conftest import HOST, Backends, unique, volume_manager, wait_until

pytestmark = pytest.mark.real

KIND = {"nfs": "nfs", "ceph": "rbd", "lvm": "iscsi"}


def _skip_if_backend_cannot_attach(cloud: stackcore.Cloud, backend: str) -> None:
    reason = volume_manager(cloud, backend).driver.unavailable_features().get("attach")
    if reason:
        pytest.skip(f"{backend} volumes cannot be attached on this machine: {reason}")


def _volume_on_backend(backends: Backends, backend: str, volume_id: str) -> bool:
    if backend == "ceph":
        return backends.rbd_exists(volume_id)
    if backend == "nfs":
        return backends.nfs_file(volume_id).exists()
    return volume_id in backends.tgt_targets()  # lvm: only its export is visible here


def _assert_wired(cloud: stackcore.Cloud, backends: Backends, agent: Any, server_id: str,
                  ports: list[Any]) -> None:
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


@pytest.mark.parametrize("backend", ["nfs", "ceph", "lvm"])
def test_server_with_vxlan_and_vlan_ports_and_a_volume(
    cloud: stackcore.Cloud, backends: Backends, ovs_agent: Any, networks: dict[str, Any],
    backend: str,
) -> None:
    volume = cloud.volume.create(1, name=unique(backend), volume_type=backend)
    assert volume.status == "available", volume.fault
    try:
        _skip_if_backend_cannot_attach(cloud, backend)
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
        _assert_wired(cloud, backends, ovs_agent, server.id, ports)

        dom = backends.domain(server.id)
        assert backends.qemu_opened(dom, KIND[backend], volume.id), \
            f"QEMU has not opened the {backend} volume"
        attached = cloud.volume.get(volume.id)
        assert attached.status == "in-use"
        assert [(a.instance_uuid, a.mountpoint, a.host) for a in attached.attachments] == \
            [(server.id, "/dev/vdb", HOST)]
        [mapping] = cloud.compute.list_server_volumes(server.id)
        assert (mapping.device, mapping.status) == ("/dev/vdb", "attached")
        if backend == "ceph":
            assert backends.rbd_watchers(volume.id), "QEMU holds no watch on the rbd image"
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
        if backend == "ceph":
            assert backends.rbd_watchers(volume.id) == []
        if backend == "nfs":
            assert backends.nfs_file(volume.id).exists()  # detached, not deleted
        if backend == "lvm":
            assert volume.id not in backends.tgt_targets()
    finally:
        cloud.volume.delete(volume.id)
    wait_until(lambda: cloud.volume.get(volume.id, include_deleted=True).status == "deleted",
               60, "the volume to be deleted")
    assert not _volume_on_backend(backends, backend, volume.id)


def test_live_attach_and_detach_on_a_running_server(
    cloud: stackcore.Cloud, backends: Backends, ovs_agent: Any, networks: dict[str, Any],
) -> None:
    """Volumes attached to and detached from a running server through the API (SCSI bus: a
    guest-less domain cannot acknowledge a PCI unplug)."""
    nfs = cloud.volume.create(1, name=unique("nfs"), volume_type="nfs")
    rbd = cloud.volume.create(1, name=unique("rbd"), volume_type="ceph")
    server = cloud.compute.create_server(unique("live"), "e2e", "e2e",
                                         networks=[{"network_id": networks["vxlan"].id}])
    try:
        assert server.status == "ACTIVE", server.fault
        dom = backends.domain(server.id)
        for volume, device, kind in ((nfs, "/dev/sdb", "nfs"), (rbd, "/dev/sdc", "rbd")):
            mapping = cloud.compute.attach_volume(server.id, volume.id, device)
            assert (mapping.device, mapping.status) == (device, "attached")
            assert backends.qemu_opened(dom, kind, volume.id)
            assert cloud.volume.get(volume.id).status == "in-use"
        with pytest.raises(exception.Conflict):
            cloud.compute.attach_volume(server.id, nfs.id)  # already attached

        cloud.compute.detach_volume(server.id, nfs.id)
        assert not backends.qemu_opened(dom, "nfs", nfs.id)
        assert backends.qemu_opened(dom, "rbd", rbd.id)
        assert cloud.volume.get(nfs.id).status == "available"
        assert [m.volume_id for m in cloud.compute.list_server_volumes(server.id)] == [rbd.id]
        with pytest.raises(exception.NotFound):
            cloud.compute.detach_volume(server.id, nfs.id)
        assert cloud.compute.get_server(server.id).status == "ACTIVE"
    finally:
        cloud.compute.delete_server(server.id)
    assert backends.domain(server.id) is None
    assert backends.rbd_watchers(rbd.id) == []
    for volume in (nfs, rbd):
        assert cloud.volume.get(volume.id).status == "available"
        cloud.volume.delete(volume.id)


def test_port_that_cannot_bind_fails_the_build_and_leaves_nothing(
    cloud: stackcore.Cloud, backends: Backends, ovs_agent: Any, networks: dict[str, Any],
) -> None:
    """A vlan network on a physical network the agent does not map: the binding fails on the
    host, the build fails with the driver's reason, and nothing stays on any backend."""
    unmapped = cloud.network.create_network(unique("unmapped"), network_type="vlan",
                                            physical_network="physnet-unmapped",
                                            segmentation_id=42)
    cloud.network.create_subnet(unmapped.id, "10.77.9.0/24")
    given = cloud.network.create_port(networks["vxlan"].id)
    volume = cloud.volume.create(1, name=unique("rbd"), volume_type="ceph")
    ovs_before = backends.ovs_ports("br-int")
    try:
        server = cloud.compute.create_server(
            unique("unbindable"), "e2e", "e2e",
            networks=[{"port_id": given.id}, {"network_id": unmapped.id}],
            volumes=[volume.id])

        assert server.status == "ERROR"
        assert server.fault is not None
        assert (server.fault.exc_class, server.fault.step) == \
            ("PortBindingFailed", "allocate_network")
        # the openvswitch driver's reason: the agent of the host does not map that network
        assert "openvswitch" in server.fault.message, server.fault.message
        assert "physnet-unmapped" in server.fault.message, server.fault.message
        assert backends.domain(server.id) is None
        assert backends.ovs_ports("br-int") == ovs_before
        freed = cloud.network.get_port(given.id)  # the given port is free again, unbound
        assert (freed.device_id, freed.host, freed.vif_type) == ("", "", "unbound")
        assert cloud.network.list_ports(network_id=unmapped.id) == []
        assert cloud.volume.get(volume.id).status == "available"
        assert backends.rbd_watchers(volume.id) == []
        [mapping] = cloud.compute.list_server_volumes(server.id)
        assert mapping.status == "reserved"  # still the server's, until it is deleted

        cloud.compute.delete_server(server.id)
        assert cloud.compute.list_servers() == []
    finally:
        cloud.volume.delete(volume.id)
        cloud.network.delete_port(given.id)
        cloud.network.delete_network(unmapped.id)

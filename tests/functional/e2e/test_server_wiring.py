"""``create_server(networks=..., volumes=...)`` end to end on real backends.

For each volume backend a server gets a port on a vxlan and on a vlan network plus a volume at
boot; then the backends are asked directly: a running KVM domain, each interface on br-int
with an openvswitch virtualport whose interfaceid is the port id, each OVS port tagged by the
agent with its network's local VLAN, the volume opened by QEMU. Deleting the server leaves no
domain, no OVS port, no export (no rbd watcher, NFS file closed but kept); deleting the volume
removes it from the backend. The same for lvm (tgt target gone, LV removed) runs in the guest
tier: test_server_wiring_guest.py.
"""

from __future__ import annotations

from typing import Any

import pytest

import stackcore
from stackcore import exception

from .conftest import (
    Backends,
    VolumeView,
    check_server_with_ports_and_volume,
    unique,
)

pytestmark = pytest.mark.real


def _view(backends: Backends, backend: str) -> VolumeView:
    if backend == "ceph":
        def watched(dom: Any, volume_id: str) -> None:
            assert backends.rbd_watchers(volume_id), "QEMU holds no watch on the rbd image"

        def unwatched(volume_id: str) -> None:
            assert backends.rbd_watchers(volume_id) == []

        return VolumeView("ceph", "rbd", backends.rbd_exists, watched, unwatched)

    def kept(volume_id: str) -> None:
        assert backends.nfs_file(volume_id).exists()  # detached, not deleted

    return VolumeView("nfs", "nfs", lambda volume_id: backends.nfs_file(volume_id).exists(),
                      check_detached=kept)


# lvm: test_server_wiring_guest.py (its LVs need device-mapper: the lvm volume service runs in
# the full-kernel guest, in the guest tier)
@pytest.mark.parametrize("backend", ["nfs", "ceph"])
def test_server_with_vxlan_and_vlan_ports_and_a_volume(
    cloud: stackcore.Cloud, backends: Backends, ovs_agent: Any, networks: dict[str, Any],
    backend: str,
) -> None:
    check_server_with_ports_and_volume(cloud, backends, ovs_agent, networks,
                                       _view(backends, backend))


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

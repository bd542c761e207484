"""``create_server(networks=..., volumes=...)`` with an **lvm** volume, end to end: the guest
tier's case of test_server_wiring.py (same checks: :func:`check_server_with_ports_and_volume`).

LVM needs device-mapper for LV device nodes, which only the full-kernel guest has
(tests/guest/vm.py). So the deployment is split like a real one:

* on the **host**: the cloud API, scheduler, compute (libvirt, KVM) and network services in
  this process, the OVS agent on the host's OVS, over PostgreSQL and a RabbitMQ virtual host of
  this test's own;
* in the **guest**: the lvm volume service (``stackcore service volume``, a process started
  through the ``guest`` fixture) on the guest's volume group, exporting through the guest's
  tgtd, with the same database and broker, reached at ``10.0.2.2`` (the host's loopback as
  QEMU's user network shows it).

The host's QEMU opens the volume over iSCSI (its own initiator, libiscsi) at
``127.0.0.1:PORT``: a host forward of the guest's user network (:meth:`Guest.forward`) to
the guest's tgtd, which listens on the guest's address for the time of the test. So
``target_port`` of the lvm backend is that forwarded port: the portal the volume service
hands out is the one the host reaches.

Beyond the shared checks, the guest itself is asked: its tgtd has the volume's target with a
session from the host while the server runs and none after the server is deleted, and its
volume group holds the LV until the volume is deleted.
"""

from __future__ import annotations

import re
import urllib.parse
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from stackcore_drivers.libvirt import domain_xml

import stackcore
from stackcore.cloud import ALL_SERVICES
from tests.conftest import wait_until
from tests.functional.compute.conftest import qemu_protocol_nodes
from tests.guest.vm import GUEST_ADDR, HOST_FROM_GUEST, REPO, Guest, GuestProcess

from .conftest import (
    Backends,
    VolumeView,
    check_server_with_ports_and_volume,
    e2e_cloud,
    make_networks,
    overrides,
    running_ovs_agent,
)

pytestmark = [pytest.mark.real, pytest.mark.postgres, pytest.mark.rabbit, pytest.mark.guest]

#: ``[DEFAULT] host`` of the volume service in the guest (its backend: ``e2e-guest@lvm``)
GUEST_HOST = "e2e-guest"
#: The backend's own thin pool, removed afterwards: the guest's later tests (the lvm
#: conformance suite) find the volume group as set up.
THIN_POOL = "e2e-thin-pool"
ISCSI_PORT = 3260
#: The guest's tgtd listens on its loopback (tools/guest/setup.sh); the host forward delivers
#: connections to the guest's address, so the test adds (and removes) a portal there.
PORTAL = f"{GUEST_ADDR}:{ISCSI_PORT}"


def _guest_url(url: str) -> str:
    """``url`` (a database or broker URL of a server on the host's loopback) as the guest
    reaches it."""
    parts = urllib.parse.urlsplit(url)
    netloc = parts.netloc.rsplit("@", 1)
    host_port = netloc[-1].replace("127.0.0.1", HOST_FROM_GUEST, 1)
    assert host_port != netloc[-1], f"{parts.hostname!r} is not the host's loopback: {url}"
    return urllib.parse.urlunsplit(parts._replace(
        netloc="@".join([*netloc[:-1], host_port])))


class GuestLvm:
    """The lvm backend's side in the guest: its volume group and its tgtd."""

    def __init__(self, guest: Guest) -> None:
        self.guest = guest
        self.vg = guest.env["STACKCORE_TEST_LVM_VG"]
        #: the host's end of the forward to the guest's tgtd, and the volume service (both
        #: set by the lvm fixture)
        self.port = 0
        self.service: GuestProcess | None = None

    def run(self, *argv: str) -> str:
        return self.guest.run(list(argv), timeout=120).check().stdout

    def lvs(self) -> set[str]:
        return set(self.run("lvs", "--noheadings", "-o", "lv_name", self.vg).split())

    def targets(self) -> dict[str, str]:
        """The guest tgtd's targets: IQN -> its ``tgtadm --op show`` block."""
        out = self.run("tgtadm", "--lld", "iscsi", "--op", "show", "--mode", "target")
        blocks = re.split(r"^Target \d+: ", out, flags=re.M)[1:]
        return {block.split("\n", 1)[0].strip(): block for block in blocks}

    def target_of(self, volume_id: str) -> tuple[str, str] | None:
        found = [(iqn, block) for iqn, block in self.targets().items()
                 if iqn.endswith(f":volume-{volume_id}")]
        return found[0] if found else None

    def portals(self) -> set[str]:
        out = self.run("tgtadm", "--lld", "iscsi", "--op", "show", "--mode", "portal")
        return {line.split()[1].rsplit(",", 1)[0] for line in out.splitlines()
                if line.startswith("Portal:")}


@pytest.fixture
def lvm(guest: Guest, pg_url: str, rabbit_url: str) -> Iterator[GuestLvm]:
    """The lvm volume service in the guest, on the test's database and broker, its portal
    the host's end of a forward to the guest's tgtd. Started first and not waited for here:
    its start-up under TCG (a minute or more: Python imports) is most of this test's time, so
    the host's services are built meanwhile (:func:`cloud`; concurrent schema upgrades of the
    new database are serialised by stackcore) and :func:`lvm_ready` waits. Stopped afterwards
    (after the cloud: its servers are deleted while the service runs) with exit status 0; its
    thin pool and the tgtd portal it needed are removed."""
    lvm = GuestLvm(guest)
    if PORTAL not in lvm.portals():
        lvm.run("tgtadm", "--lld", "iscsi", "--op", "new", "--mode", "portal",
                "--param", f"portal={PORTAL}")
    lvm.port = guest.forward(ISCSI_PORT)
    config = guest.share / f"e2e-volume-{uuid.uuid4().hex[:8]}.conf"
    config.write_text("\n".join([
        "[DEFAULT]", f"host = {GUEST_HOST}", f"transport_url = {_guest_url(rabbit_url)}",
        f"state_path = /tmp/{config.stem}", "periodic_interval = 3600",
        "[database]", f"connection = {_guest_url(pg_url)}",
        "[volume]", "enabled_backends = lvm",
        "[lvm]", "volume_driver = lvm", "volume_backend_name = lvm",
        f"volume_group = {lvm.vg}", f"thin_pool = {THIN_POOL}", "thin_pool_size_percent = 5",
        # the portal the volume service hands out: the host's end of the forward
        "target_ip_address = 127.0.0.1", f"target_port = {lvm.port}", ""]))
    config.chmod(0o600)  # the broker's and the database's passwords
    lvm.service = guest.start([str(REPO / ".venv" / "bin" / "python"), "-m",
                               "stackcore.cli.main", "service", "volume", "--config-file",
                               str(config)], config.stem)
    try:
        yield lvm
    finally:
        ended = lvm.service.stop()
        assert ended.rc == 0, \
            f"the guest's volume service exited {ended.rc}:\n{lvm.service.output()[-3000:]}"
        if THIN_POOL in lvm.lvs():
            lvm.run("lvremove", "-y", f"{lvm.vg}/{THIN_POOL}")
        lvm.run("tgtadm", "--lld", "iscsi", "--op", "delete", "--mode", "portal",
                "--param", f"portal={PORTAL}")


@pytest.fixture
def cloud(tmp_path: Path, backends: Backends, lvm: GuestLvm, pg_url: str, rabbit_url: str
          ) -> Iterator[stackcore.Cloud]:
    """The host's services in this process (no volume service: :func:`lvm` is the guest's),
    over PostgreSQL and a RabbitMQ virtual host of this test's own."""
    settings = overrides(tmp_path)
    for group in ("nfs", "ceph"):
        del settings[group]
    settings["DEFAULT"]["transport_url"] = rabbit_url
    settings["database"] = {"connection": pg_url}
    settings["volume"] = {"enabled_backends": []}
    with e2e_cloud(tmp_path, settings, ["lvm"],
                   services=[s for s in ALL_SERVICES if s != "volume"]) as c:
        yield c


@pytest.fixture
def ovs_agent(cloud: stackcore.Cloud, backends: Backends) -> Iterator[Any]:
    with running_ovs_agent(cloud, backends) as agent:
        yield agent


@pytest.fixture
def networks(cloud: stackcore.Cloud, ovs_agent: Any) -> dict[str, Any]:
    return make_networks(cloud)


@pytest.fixture
def lvm_ready(cloud: stackcore.Cloud, lvm: GuestLvm, networks: dict[str, Any]) -> GuestLvm:
    """:func:`lvm` once its service runs and its pool is seen by the cloud."""
    assert lvm.service is not None
    lvm.service.wait_for_output("stackcore volume service running", 300)
    wait_until(lambda: [p for p in cloud.volume.list_pools()
                        if p.backend == f"{GUEST_HOST}@lvm" and p.up], 60,
               "the guest's lvm backend to report its pool")
    return lvm


@pytest.mark.parametrize("backend", ["lvm"])
def test_server_with_vxlan_and_vlan_ports_and_a_volume(
    cloud: stackcore.Cloud, backends: Backends, ovs_agent: Any, networks: dict[str, Any],
    lvm_ready: GuestLvm, backend: str,
) -> None:
    lvm = lvm_ready

    def exists(volume_id: str) -> bool:
        return f"volume-{volume_id}" in lvm.lvs()

    def attached(dom: Any, volume_id: str) -> None:
        assert exists(volume_id), f"no LV volume-{volume_id} in the guest's {lvm.vg}"
        [node] = [n for n in qemu_protocol_nodes(dom)
                  if n.get("driver") == "iscsi" and volume_id in str(n.get("target", ""))]
        assert node.get("portal") == f"127.0.0.1:{lvm.port}", node
        target = lvm.target_of(volume_id)
        assert target is not None, f"no target for volume-{volume_id} in the guest's tgtd"
        # the host's QEMU logged in: a session whose connection comes from the host (10.0.2.2
        # is where QEMU's user network delivers the forwarded connections from)
        assert re.search(r"I_T nexus: \d+", target[1]) and \
            f"IP Address: {HOST_FROM_GUEST}" in target[1], target[1]

    def detached(volume_id: str) -> None:
        assert lvm.target_of(volume_id) is None, \
            f"the guest's tgtd still exports volume-{volume_id}"
        assert exists(volume_id), "the LV went with the export"

    check_server_with_ports_and_volume(
        cloud, backends, ovs_agent, networks,
        VolumeView(backend, "iscsi", exists, attached, detached))



def test_a_server_boots_from_an_lvm_volume_over_iscsi(
    cloud: stackcore.Cloud, backends: Backends, lvm_ready: GuestLvm,
) -> None:
    """Boot from volume with the root on iSCSI through the cloud: an lvm volume of the guest's
    volume service is the server's ``vda``, opened by the host's QEMU over iSCSI (a session
    from the host in the guest's tgtd); deleting the server keeps the volume (it was given,
    not made: ``delete_on_termination`` False) and ends the export; deleting the volume
    removes its LV."""
    lvm = lvm_ready
    volume = cloud.volume.create(1, name="e2e-bfv-root")
    assert volume.status == "available", volume.fault
    server = cloud.compute.create_server("e2e-bfv <iscsi>", "e2e", boot_volume=volume.id)
    assert server.status == "ACTIVE", server.fault
    [root] = cloud.compute.list_server_volumes(server.id)
    assert (root.volume_id, root.device, root.root) == (volume.id, "/dev/vda", True), root
    dom = backends.domain(server.id)
    assert dom is not None
    [node] = [n for n in qemu_protocol_nodes(dom)
              if n.get("driver") == "iscsi" and volume.id in str(n.get("target", ""))]
    assert node.get("portal") == f"127.0.0.1:{lvm.port}", node
    doc = domain_xml.parse(dom.XMLDesc(0))
    vda = domain_xml.find_disk(doc, "vda")
    source = vda.find("source") if vda is not None else None
    assert source is not None and source.get("protocol") == "iscsi" \
        and volume.id in str(source.get("name")), domain_xml.to_string(doc)
    target = lvm.target_of(volume.id)
    assert target is not None and f"IP Address: {HOST_FROM_GUEST}" in target[1], target

    cloud.compute.delete_server(server.id)

    assert backends.domain(server.id) is None
    kept = cloud.volume.get(volume.id)
    assert (kept.status, kept.attachments) == ("available", ()), kept
    assert lvm.target_of(volume.id) is None, "the guest's tgtd still exports the root volume"
    cloud.volume.delete(volume.id)
    wait_until(lambda: f"volume-{volume.id}" not in lvm.lvs(), 120,
               f"LV volume-{volume.id} removed")

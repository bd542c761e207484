"""Live migration through the core API between two real libvirtd hosts (tests/functional/
compute/libvirt_pair.py: two daemons with their own host UUIDs, instance directories and
network namespaces on the lab bridge). A deployment as in production
(tests/functional/compute/pair_cloud.py): the API process and one compute process per host,
each its own ``stackcore.Cloud`` with its own ``[libvirt]`` settings, over RabbitMQ (a virtual
host of the test's own) and a PostgreSQL database of the test's own.

A running KVM guest with a local root disk moves with its disk copied (a block migration of
the qcow2 overlay; both hosts back it onto the same image file): what its overlay held on
the first host is read back by QEMU on the second; the source is left
with no domain and no instance directory, the claims follow the guest. An abort while the
move runs leaves the guest running where it was, with nothing on the destination."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from stackcore.compute import models
from tests.conftest import wait_until

from .conftest import backend_env, libvirt, run
from .libvirt_pair import LabLibvirtd
from .pair_cloud import HOSTS, PairDeployment

pytestmark = pytest.mark.real

#: a byte pattern written into the guest's disk through QEMU while it runs on the source
PATTERN = 0xAB


@pytest.fixture
def deployment(tmp_path: Path, libvirtd_pair: tuple[LabLibvirtd, LabLibvirtd],
               rabbit_url: str, pg_url: str) -> Iterator[PairDeployment]:
    found = PairDeployment(tmp_path, libvirtd_pair, rabbit_url, pg_url,
                           backend_env("STACKCORE_TEST_VIRT_TYPE", "libvirt"))
    try:
        image = tmp_path / "blank.qcow2"
        run("qemu-img", "create", "-q", "-f", "qcow2", str(image), "64M")
        found.api.compute.create_flavor("kvm.small", vcpus=1, ram_mb=256, disk_gb=1)
        found.api.compute.register_image("blank", str(image), disk_format="qcow2",
                                         properties={"architecture": "x86_64"},
                                         visibility="public")
        yield found
    finally:
        found.close()


def _allocations(deployment: PairDeployment) -> dict[str, str]:
    with deployment.api.db.read() as session:
        return {a.instance_uuid: a.host for a in session.execute(
            sa.select(models.Allocation)).scalars()}


def test_a_running_guest_moves_with_its_disk(deployment: PairDeployment) -> None:
    api = deployment.api.compute
    server = api.create_server("live <vm> & 'moved'", "kvm.small", "blank")
    assert server.status == "ACTIVE", server.fault
    source = server.host
    dest = next(h for h in HOSTS if h != source)
    # data of the guest's own in its overlay (written while it is off: QEMU does not share
    # a running disk's write permission), which the move must carry
    assert api.stop_server(server.id).status == "STOPPED"
    overlay = deployment.pair[source].instances_path / server.id / "disk"
    run("qemu-io", "-f", "qcow2", "-c", f"write -P {PATTERN:#x} 1M 1M", str(overlay))
    assert api.start_server(server.id).status == "ACTIVE"

    moved = api.live_migrate_server(server.id)

    assert (moved.status, moved.task_state, moved.host, moved.fault) == \
        ("ACTIVE", None, dest, None), moved
    on_dest = deployment.domains(dest)
    name = f"instance-{server.id}"
    state, persistent, disks, owner = on_dest[name]
    assert (state, persistent, owner) == (libvirt.VIR_DOMAIN_RUNNING, True, dest), on_dest
    dest_dir = str(deployment.pair[dest].instances_path / server.id)
    assert disks and all(d.startswith(dest_dir + "/") for d in disks), (disks, dest_dir)
    assert deployment.domains(source) == {}, deployment.domains(source)
    assert not (deployment.pair[source].instances_path / server.id).exists()
    # what the overlay held came along (read once the guest is off again, as it was written)
    assert api.stop_server(server.id).status == "STOPPED"
    dest_overlay = deployment.pair[dest].instances_path / server.id / "disk"
    read = run("qemu-io", "-r", "-f", "qcow2", "-c", f"read -P {PATTERN:#x} 1M 1M",
               str(dest_overlay))
    assert "read 1048576" in read and "Pattern verification failed" not in read, read
    assert api.start_server(server.id).status == "ACTIVE"
    assert _allocations(deployment) == {server.id: dest}
    [migration] = api.list_server_migrations(server.id)
    assert (migration.migration_type, migration.status) == ("live-migration", "completed")
    with deployment.api.db.read() as session:
        row = session.get(models.Migration, migration.id)
        figures = dict(row.disk_info["figures"])
    assert figures["total_ms"] > 0 and "downtime_ms" in figures, figures
    # back to the first host, then gone for good with the delete
    back = api.live_migrate_server(server.id, host=source)
    assert (back.status, back.host) == ("ACTIVE", source), back
    assert deployment.domains(dest) == {}, deployment.domains(dest)
    api.delete_server(server.id)
    assert deployment.domains(source) == {} and _allocations(deployment) == {}


def test_an_abort_leaves_the_guest_where_it_runs(deployment: PairDeployment) -> None:
    """The move is slowed to 1 MiB/s so that it is still copying when the abort arrives
    (the guest has 256 MiB of memory): aborted, it keeps running on its host."""
    api = deployment.api.compute
    for cloud in deployment.clouds[1:]:
        cloud.conf.set_override("live_migration_bandwidth", 1, "libvirt")
    server = api.create_server("abort-me", "kvm.small", "blank")
    assert server.status == "ACTIVE", server.fault
    source = server.host
    dest = next(h for h in HOSTS if h != source)
    moving = threading.Thread(target=api.live_migrate_server, args=(server.id,),
                              kwargs={"wait": False})
    moving.start()
    moving.join(60)

    def copying() -> bool:
        conn = libvirt.open(deployment.pair[source].uri)
        try:
            dom = conn.lookupByName(f"instance-{server.id}")
            return bool(dom.jobInfo()[0] != libvirt.VIR_DOMAIN_JOB_NONE)
        finally:
            conn.close()

    wait_until(copying, 60, "the migration job running on the source")
    api.abort_live_migration(server.id)

    after = api.wait_for_server(server.id, ("ACTIVE", "ERROR"), 120)
    assert (after.status, after.host) == ("ACTIVE", source), after
    assert "aborted" in after.fault.message, after.fault
    state = deployment.domains(source)[f"instance-{server.id}"][0]
    assert state == libvirt.VIR_DOMAIN_RUNNING, state
    assert deployment.domains(dest) == {}, deployment.domains(dest)
    assert not (deployment.pair[dest].instances_path / server.id).exists()
    assert _allocations(deployment) == {server.id: source}
    [migration] = api.list_server_migrations(server.id)
    assert migration.status == "error" and "aborted" in migration.error, migration
    api.delete_server(server.id)
    assert os.path.isdir(deployment.pair[source].instances_path)

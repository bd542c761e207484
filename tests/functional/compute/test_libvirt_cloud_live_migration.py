"""Live migration through the core API between two real libvirtd hosts (tests/functional/
compute/libvirt_pair.py: two daemons with their own host UUIDs, instance directories and
network namespaces on the lab bridge). A deployment as in production
(tests/functional/compute/pair_cloud.py): the API process and one compute process per host,
each its own ``stackcore.Cloud`` with its own ``[libvirt]`` settings, over RabbitMQ (a virtual
host of the test's own) and a PostgreSQL database of the test's own.

A running KVM guest with a local root disk moves with its disk copied (a block migration of
the qcow2 overlay; both hosts back it onto the same image file): what its overlay held on
the first host is read back by QEMU on the second; the source is left
with no domain and no instance directory, the claims follow the guest. A guest booted from a
volume on NFS (a private nfs-ganesha on the lab bridge, which QEMU in both hosts' namespaces
reaches) moves with no disk copied: the destination opens the same file. An abort while the
move runs leaves the guest running where it was, with nothing on the destination."""

from __future__ import annotations

import os
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from stackcore.compute import models
from tests.conftest import wait_until

from .conftest import backend_env, libvirt, run
from .libvirt_pair import LabLibvirtd
from .pair_cloud import HOSTS, PairDeployment
from .test_libvirt_actions import _boot_sector

pytestmark = pytest.mark.real

#: a byte pattern written into the guest's disk through QEMU while it runs on the source
PATTERN = 0xAB


@pytest.fixture
def deployment(tmp_path: Path, libvirtd_pair: tuple[LabLibvirtd, LabLibvirtd],
               rabbit_url: str, pg_url: str) -> Iterator[PairDeployment]:
    found = PairDeployment(tmp_path, libvirtd_pair, rabbit_url, pg_url,
                           backend_env("STACKCORE_TEST_VIRT_TYPE", "libvirt"))
    try:
        found.add_blank_image(tmp_path / "blank.qcow2", ram_mb=256)
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


@pytest.fixture
def lab_nfs() -> Iterator[dict[str, str]]:
    """A private nfs-ganesha on the lab bridge (tools/backends/private.sh nfs): the shared
    one listens on 127.0.0.1, which QEMU in a lab host's network namespace cannot reach.
    Its SERVER, EXPORT and DIR; stopped and deleted afterwards."""
    script = str(Path(__file__).resolve().parents[3] / "tools" / "backends" / "private.sh")
    name = f"lm{uuid.uuid4().hex[:6]}"
    out = run("bash", script, "nfs", "start", name)
    try:
        yield dict(line.split("=", 1) for line in out.splitlines() if "=" in line)
    finally:
        run("bash", script, "nfs", "stop", name)


def test_a_guest_booted_from_an_nfs_volume_moves_without_a_disk_copy(
        tmp_path: Path, libvirtd_pair: tuple[LabLibvirtd, LabLibvirtd], rabbit_url: str,
        pg_url: str, lab_nfs: dict[str, str]) -> None:
    deployment = PairDeployment(
        tmp_path, libvirtd_pair, rabbit_url, pg_url,
        backend_env("STACKCORE_TEST_VIRT_TYPE", "libvirt"), api_sections={
            "volume": {"enabled_backends": ["nfs"]},
            "nfs": {"volume_backend_name": "nfs", "volume_driver": "nfs",
                    "nfs_access": "qemu",
                    "nfs_shares": [f"{lab_nfs['SERVER']}:{lab_nfs['EXPORT']}"]}})
    try:
        api = deployment.api.compute
        lines = ["booted from an nfs volume, line 1", "booted from an nfs volume, line 2"]
        sector = _boot_sector(lines)
        image = tmp_path / "boot.raw"
        image.write_bytes(sector + bytes(1024 * 1024 - len(sector)))
        api.create_flavor("kvm.tiny", vcpus=1, ram_mb=64, disk_gb=1)
        api.register_image("boot", str(image), "raw", visibility="public")
        server = api.create_server("bfv <moved>", "kvm.tiny", "boot", boot_volume={})
        assert server.status == "ACTIVE", server.fault
        wait_until(lambda: lines[-1] in api.get_console_output(server.id), 60,
                   "the guest's last console line")
        [root] = api.list_server_volumes(server.id)
        source = server.host
        dest = next(h for h in HOSTS if h != source)

        moved = api.live_migrate_server(server.id)

        assert (moved.status, moved.host, moved.fault) == ("ACTIVE", dest, None), moved
        state, persistent, files, owner = deployment.domains(dest)[f"instance-{server.id}"]
        assert (state, persistent, owner) == (libvirt.VIR_DOMAIN_RUNNING, True, dest)
        assert files == [], f"a local disk on the destination: {files}"
        assert _vda_network_source(deployment.pair[dest].uri, server.id) == \
            ("nfs", f"{lab_nfs['EXPORT']}/volume-{root.volume_id}"), \
            "the destination opens the same file on the share"
        assert deployment.domains(source) == {}
        attachments = [(a.host, a.instance_uuid)
                       for a in deployment.api.volume.get(root.volume_id).attachments]
        assert attachments == [(dest, server.id)], attachments
        row = _migration_figures(deployment, server.id)
        assert row["migrate_data"]["block_migration"] is False, row
        assert "disk_bytes" not in row["figures"] or row["figures"]["disk_bytes"] == 0, row
        api.delete_server(server.id)
        wait_until(lambda: not [f for f in os.listdir(lab_nfs["DIR"]) if root.volume_id in f],
                   60, f"volume {root.volume_id} removed from the share")
    finally:
        deployment.close()


def _vda_network_source(uri: str, server_id: str) -> tuple[str | None, str | None]:
    from stackcore_drivers.libvirt import domain_xml

    conn = libvirt.open(uri)
    try:
        doc = domain_xml.parse(conn.lookupByName(f"instance-{server_id}").XMLDesc(0))
    finally:
        conn.close()
    disk = domain_xml.find_disk(doc, "vda")
    source = disk.find("source") if disk is not None else None
    assert source is not None, domain_xml.to_string(doc)
    return source.get("protocol"), source.get("name")


def _migration_figures(deployment: PairDeployment, server_id: str) -> dict[str, Any]:
    latest = deployment.api.compute.list_server_migrations(server_id)[-1]
    with deployment.api.db.read() as session:
        return dict(session.get(models.Migration, latest.id).disk_info)

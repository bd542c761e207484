"""Live migration of a running KVM/QEMU guest between the two libvirtds of ``libvirtd_pair``.

The proof that the lab (tests/functional/compute/libvirt_pair.py) is two hosts a guest can
move between with its local disk, without the framework: once with the libvirt API
(``virDomainMigrate3``, the call a driver makes) and once with ``virsh migrate`` (the raw
baseline of benchmarks/live_migration.py). Each test boots a 256 MiB, 1 vCPU guest on host a
from a qcow2 in a's instances directory carrying a known pattern, migrates it live with a copy
of the disk into a's counterpart file in b's instances directory, and checks where it runs,
that a has nothing left, and that the pattern arrived.
"""

from __future__ import annotations

import os
import subprocess
import uuid
from pathlib import Path

import libvirt
import pytest

from tests.conftest import backend_env

from . import libvirt_pair as lab

pytestmark = pytest.mark.real

PATTERN = "0xab"


def qemu_io(disk: Path, command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["qemu-io", "-f", "qcow2", "-c", command, str(disk)],
                          capture_output=True, text=True, check=False)


def boot_on(host: lab.LabLibvirtd, conn: libvirt.virConnect) -> tuple[libvirt.virDomain, Path]:
    """Define and start the test guest on ``host``, its disk patterned first."""
    name = f"lm-{uuid.uuid4().hex[:8]}"
    disk = host.instances_path / f"{name}.qcow2"
    lab.create_disk(disk, 64)
    written = qemu_io(disk, f"write -P {PATTERN} 0 1M")
    assert written.returncode == 0, written.stderr
    dom = conn.defineXML(lab.guest_xml(name, disk, backend_env("STACKCORE_TEST_VIRT_TYPE",
                                                                "libvirt")))
    try:
        dom.create()
    except libvirt.libvirtError as err:
        pytest.fail(f"{name} did not start on {host.name}: {err}\n"
                    f"{lab.qemu_log_tail(host, name)}\n{host.log_tail()}")
    assert dom.state()[0] == libvirt.VIR_DOMAIN_RUNNING, dom.state()
    return dom, disk


def netns_inode(pid: int) -> int:
    return os.stat(f"/proc/{pid}/ns/net").st_ino


def assert_moved(a: lab.LabLibvirtd, b: lab.LabLibvirtd, name: str, dest_disk: Path) -> None:
    """The guest runs on b from b's disk, in b's network namespace, and a has nothing left;
    once destroyed, b's disk holds the pattern written on a."""
    ca, cb = a.connect(), b.connect()
    try:
        dom = cb.lookupByName(name)
        state = dom.state()
        assert state[0] == libvirt.VIR_DOMAIN_RUNNING, \
            f"{name} on {b.name}: state {state}\n{lab.qemu_log_tail(b, name)}"
        assert dom.isPersistent(), f"{name} is transient on {b.name}"
        assert lab.disk_paths(dom.XMLDesc(0)) == {"vda": str(dest_disk)}
        left = [(d.name(), d.state()) for d in ca.listAllDomains(0)]
        assert left == [], f"domains left on {a.name}: {left}"
        assert a.qemu_pids() == [], f"QEMU still running for {a.name}: {a.qemu_pids()}"
        qemus = b.qemu_pids()
        assert len(qemus) == 1, f"QEMU processes of {b.name}: {qemus}"
        assert netns_inode(qemus[0]) == os.stat(f"/run/netns/{b.name}").st_ino, \
            f"QEMU {qemus[0]} does not run in {b.name}'s network namespace"
        dom.destroy()
    finally:
        ca.close()
        cb.close()
    read = qemu_io(dest_disk, f"read -P {PATTERN} 0 1M")
    assert read.returncode == 0 and "Pattern verification failed" not in read.stdout, \
        f"pattern {PATTERN} not on {dest_disk}: {read.stdout}{read.stderr}"


def test_two_hosts_differ(libvirtd_pair: tuple[lab.LabLibvirtd, lab.LabLibvirtd]) -> None:
    a, b = libvirtd_pair
    reported = []
    for host in (a, b):
        conn = host.connect()
        try:
            reported.append(lab.host_uuid_of(conn))
        finally:
            conn.close()
    assert reported == [a.host_uuid, b.host_uuid] and a.host_uuid != b.host_uuid, reported
    assert a.address != b.address and a.instances_path != b.instances_path


def test_live_block_migration_with_migrate3(
        libvirtd_pair: tuple[lab.LabLibvirtd, lab.LabLibvirtd]) -> None:
    a, b = libvirtd_pair
    ca, cb = a.connect(), b.connect()
    try:
        dom, disk = boot_on(a, ca)
        name = dom.name()
        source_xml = dom.XMLDesc(libvirt.VIR_DOMAIN_XML_MIGRATABLE)
        dest_disk = b.instances_path / disk.name
        lab.precreate_disks(source_xml, {"vda": str(dest_disk)})
        params = lab.migrate_params(b, lab.dest_xml(source_xml, {"vda": str(dest_disk)}))
        try:
            moved = dom.migrate3(cb, params, lab.MIGRATE_FLAGS)
        except libvirt.libvirtError as err:
            pytest.fail(f"migrate3 {a.name} -> {b.name}: {err}\n{lab.qemu_log_tail(a, name)}\n"
                        f"{lab.qemu_log_tail(b, name)}\n{a.log_tail()}\n{b.log_tail()}")
        stats = moved.jobStats(libvirt.VIR_DOMAIN_JOB_STATS_COMPLETED)
        assert stats.get("downtime", -1) >= 0 and stats.get("time_elapsed", 0) > 0, stats
    finally:
        ca.close()
        cb.close()
    assert_moved(a, b, name, dest_disk)


def test_live_block_migration_with_virsh(
        libvirtd_pair: tuple[lab.LabLibvirtd, lab.LabLibvirtd], tmp_path: Path) -> None:
    a, b = libvirtd_pair
    ca = a.connect()
    try:
        dom, disk = boot_on(a, ca)
        name = dom.name()
        source_xml = dom.XMLDesc(libvirt.VIR_DOMAIN_XML_MIGRATABLE)
    finally:
        ca.close()
    dest_disk = b.instances_path / disk.name
    lab.precreate_disks(source_xml, {"vda": str(dest_disk)})
    xml_file = tmp_path / "dest.xml"
    xml_file.write_text(lab.dest_xml(source_xml, {"vda": str(dest_disk)}))
    command = lab.virsh_migrate_command(a, b, name, xml_file)
    done = subprocess.run(command, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, (f"{command}: {done.returncode} {done.stderr}\n"
                                  f"{lab.qemu_log_tail(b, name)}\n{b.log_tail()}")
    job = lab.virsh_completed_job(b.uri, name)
    assert job.get("Operation") == "Incoming migration" and "Total downtime" in job, job
    assert_moved(a, b, name, dest_disk)

"""Server actions through ``cloud.compute`` on real KVM (libvirtd of tools/backends): pause and
suspend (managed save) as libvirt sees the domain, the console's last lines, a snapshot into
``cloud.image`` that ``qemu-img`` reads as the server's disk format, and a rebuild from another
image, and a rescue (booted from a rescue disk, its own disk kept) and unrescue.

The guest is a 512-byte boot sector that writes numbered lines to COM1 and halts: the console
log then has known content, with no OS image to fetch."""

from __future__ import annotations

import json
import os
import struct
from typing import Any

import pytest
from stackcore_drivers.libvirt import domain_xml

import stackcore
from tests.conftest import wait_until

from .conftest import libvirt, libvirt_cloud_overrides, run

pytestmark = pytest.mark.real

LINES = [f"stackcore console line {i}" for i in range(1, 6)]


def _boot_sector(lines: list[str] = LINES) -> bytes:
    """Real-mode x86: ds=0; si=message; dx=COM1; out each byte until NUL; hlt forever."""
    message = "".join(f"{line}\r\n" for line in lines).encode() + b"\0"
    start = 0x7C00 + 22  # the code below is 22 bytes
    code = (b"\xfa\x31\xc0\x8e\xd8"                   # cli; xor ax,ax; mov ds,ax
            + b"\xbe" + struct.pack("<H", start)      # mov si, message
            + b"\xba\xf8\x03"                         # mov dx, 0x3f8
            + b"\xac\x84\xc0\x74\x03\xee\xeb\xf8"     # lodsb; test al,al; jz +3; out dx,al; jmp
            + b"\xf4\xeb\xfd")                        # hlt; jmp hlt
    assert len(code) == 22
    sector = code + message
    # one Linux partition (LBA 1, 2047 sectors) in the MBR's table: an MBR without any
    # partition fails the image format's safety checks at registration
    partition = b"\x00" + b"\x00" * 3 + b"\x83" + b"\x00" * 3 + struct.pack("<II", 1, 2047)
    return sector + b"\0" * (446 - len(sector)) + partition + b"\0" * 48 + b"\x55\xaa"


@pytest.fixture
def cloud(tmp_path: Any) -> Any:
    with stackcore.Cloud(overrides=libvirt_cloud_overrides(tmp_path, {
        "soft_reboot_timeout": 2,
        # no hot-plug here; SeaBIOS probing 8 root ports adds ~5 s to the boot
        "pcie_root_ports": 0,
    })) as made:
        yield made


def _domain_state(server_id: str) -> tuple[int, bool]:
    """(libvirt state, has a managed-save image) of the server's domain."""
    conn = libvirt.open(os.environ["STACKCORE_TEST_LIBVIRT_URI"])
    try:
        dom = conn.lookupByName(f"instance-{server_id}")
        return int(dom.state()[0]), bool(dom.hasManagedSaveImage(0))
    finally:
        conn.close()


def _disks(server_id: str) -> dict[str, tuple[str | None, str | None]]:
    """target dev -> (source file, boot order) of the running domain's disks."""
    conn = libvirt.open(os.environ["STACKCORE_TEST_LIBVIRT_URI"])
    try:
        doc = domain_xml.parse(conn.lookupByName(f"instance-{server_id}").XMLDesc(0))
    finally:
        conn.close()
    found = {}
    for disk in doc.findall("devices/disk"):
        source, boot = disk.find("source"), disk.find("boot")
        found[disk.find("target").get("dev")] = (
            source.get("file") if source is not None else None,
            boot.get("order") if boot is not None else None)
    return found


def test_actions_on_kvm_pause_suspend_console_and_snapshot(cloud: Any, tmp_path: Any) -> None:
    """One guest for all (SeaBIOS under nested KVM takes ~10 s to boot it: CI time)."""
    raw = tmp_path / "console-guest.raw"
    raw.write_bytes(_boot_sector() + b"\0" * (1024 * 1024 - 512))
    base = tmp_path / "console-guest.qcow2"
    run("qemu-img", "convert", "-q", "-f", "raw", "-O", "qcow2", str(raw), str(base))
    cloud.compute.create_flavor("kvm.tiny", vcpus=1, ram_mb=64, disk_gb=1)
    cloud.compute.register_image("console-guest", str(base), disk_format="qcow2",
                                 properties={"architecture": "x86_64"})
    server = cloud.compute.create_server("actions", "kvm.tiny", "console-guest")
    assert server.status == "ACTIVE", server.fault

    # console: the guest's lines, the last N of them
    wait_until(lambda: LINES[-1] in cloud.compute.get_console_output(server.id), 90,
               "the guest's last line in its console log")
    full = cloud.compute.get_console_output(server.id)
    tail = cloud.compute.get_console_output(server.id, length=2)
    assert tail == f"{LINES[-2]}\r\n{LINES[-1]}\r\n", (tail, full)
    assert full.endswith(tail)

    # pause / unpause: libvirt's own state of the domain
    assert cloud.compute.pause_server(server.id).status == "PAUSED"
    assert _domain_state(server.id) == (libvirt.VIR_DOMAIN_PAUSED, False)
    assert cloud.compute.unpause_server(server.id).status == "ACTIVE"
    assert _domain_state(server.id) == (libvirt.VIR_DOMAIN_RUNNING, False)

    # suspend = managed save (shut off, state on disk) / resume
    suspended = cloud.compute.suspend_server(server.id)
    assert (suspended.status, suspended.task_state) == ("SUSPENDED", None)
    assert _domain_state(server.id) == (libvirt.VIR_DOMAIN_SHUTOFF, True)
    assert cloud.compute.resume_server(server.id).status == "ACTIVE"
    assert _domain_state(server.id) == (libvirt.VIR_DOMAIN_RUNNING, False)

    # snapshot of the running server (cold: suspended for the copy) into cloud.image
    queued = cloud.compute.create_image(server.id, "snap")

    def active() -> Any:
        image = cloud.image.get(queued.id)
        assert image.status in ("queued", "saving", "active"), image
        return image if image.status == "active" else None

    image = wait_until(active, 120, f"snapshot image {queued.id} active")
    after = wait_until(lambda: (s := cloud.compute.get_server(server.id)).task_state is None
                       and s, 60, "the server's snapshot task cleared")
    assert (after.status, after.fault) == ("ACTIVE", None)
    assert _domain_state(server.id) == (libvirt.VIR_DOMAIN_RUNNING, False)

    copy = tmp_path / "downloaded"
    with open(copy, "wb") as handle:
        for chunk in cloud.image.download(image.id):
            handle.write(chunk)
    info = json.loads(run("qemu-img", "info", "--output=json", str(copy)))
    assert info["format"] == "qcow2" == image.disk_format, info  # the server's disk format
    assert info["virtual-size"] == image.virtual_size == 1024 ** 3, info  # the flavor's disk
    assert "backing-filename" not in info, info  # flattened: stands on its own
    assert copy.stat().st_size == image.size_bytes
    # what the guest sees: the base's content, zeros beyond it
    run("qemu-img", "compare", "-f", "qcow2", "-F", "qcow2", str(base), str(copy))

    # rescue: booted (boot order 1) from a disk made of the rescue image, its own disk kept
    rescued = cloud.compute.rescue_server(server.id, "console-guest")
    assert (rescued.status, rescued.task_state, rescued.fault) == ("RESCUED", None, None)
    assert _domain_state(server.id) == (libvirt.VIR_DOMAIN_RUNNING, False)
    disks = _disks(server.id)
    instance_dir = tmp_path / "state" / "instances" / server.id
    assert disks["vda"] == (str(instance_dir / "disk"), None), disks
    assert disks["vdb"] == (str(instance_dir / "disk.rescue"), "1"), disks
    assert cloud.compute.unrescue_server(server.id).status == "ACTIVE"
    assert _disks(server.id) == {"vda": (str(instance_dir / "disk"), None)}
    assert not (instance_dir / "disk.rescue").exists()
    assert _domain_state(server.id) == (libvirt.VIR_DOMAIN_RUNNING, False)

    # rebuild from another image: a new root disk on it, the domain running again (its boot
    # is not awaited: a second SeaBIOS boot is CI time, and the disk says what it boots)
    other = tmp_path / "rebuilt-guest.raw"
    other.write_bytes(_boot_sector([f"rebuilt guest line {i}" for i in range(1, 4)])
                      + b"\0" * (1024 * 1024 - 512))
    cloud.compute.register_image("rebuilt-guest", str(other), disk_format="raw",
                                 properties={"architecture": "x86_64"})
    rebuilt = cloud.compute.rebuild_server(server.id, "rebuilt-guest")
    assert (rebuilt.status, rebuilt.task_state, rebuilt.fault) == ("ACTIVE", None, None)
    assert _domain_state(server.id) == (libvirt.VIR_DOMAIN_RUNNING, False)
    overlay = tmp_path / "state" / "instances" / server.id / "disk"
    disk = json.loads(run("qemu-img", "info", "-U", "--output=json", str(overlay)))
    assert disk["backing-filename"] == str(other), disk
    assert LINES[0] not in cloud.compute.get_console_output(server.id)  # the old log is gone

    # a snapshot whose upload is refused (image_size_total 0 MiB): the image is deleted, the
    # guest suspended for the copy is running again, the server ACTIVE with the fault
    cloud.project.set_quota("admin", "image_size_total", 0)
    refused = cloud.compute.create_image(server.id, "refused")
    failed = wait_until(lambda: (s := cloud.compute.get_server(server.id)).fault
                        and s.task_state is None and s, 60, "the refused snapshot's fault")
    assert (failed.status, failed.fault.step, failed.fault.exc_class) == \
        ("ACTIVE", "upload", "OverQuota"), failed.fault
    assert _domain_state(server.id) == (libvirt.VIR_DOMAIN_RUNNING, False)
    assert [i.id for i in cloud.image.list_images() if i.id == refused.id] == []
    cloud.compute.delete_server(server.id)

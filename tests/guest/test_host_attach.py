"""os-brick host-side attach (stackcore_drivers.libvirt.host_attach) against the host's real
tgtd and nfs-ganesha, with the kernel's iSCSI initiator and NFS client of the full-kernel
guest: the test runs on the host (it owns the targets and the export) and drives the guest
through the ``guest`` fixture (tests/guest/plugin.py). From inside, the host is 10.0.2.2.

Checked in the guest after every detach or failed attach: no iSCSI session, no node record,
no /dev/disk/by-path link, no NFS mount.
"""

from __future__ import annotations

import json
import subprocess
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from stackcore_drivers.volume.tgt import TgtTarget

from tests.conftest import backend_env
from tests.guest.vm import HOST_FROM_GUEST, Guest

pytestmark = pytest.mark.guest

HELPER = str(Path(__file__).with_name("attach_helper.py"))
MiB = 1024 * 1024
GUEST_PORTAL = f"{HOST_FROM_GUEST}:3260"
MOUNT_BASE = "/run/stackcore-test-mnt"


def helper(guest: Guest, *args: str, env: dict[str, str] | None = None,
           timeout: float = 300) -> tuple[int, dict[str, Any]]:
    result = guest.run([guest.env["PATH"].split(":")[0] + "/python", HELPER, *args, MOUNT_BASE]
                       if args[0] in ("connect", "disconnect", "properties")
                       else [guest.env["PATH"].split(":")[0] + "/python", HELPER, *args],
                       env=env, timeout=timeout)
    lines = [line for line in result.stdout.splitlines() if line.startswith("{")]
    assert lines, f"attach_helper {args[0]}: rc {result.rc}\n{result.stdout}\n{result.stderr}"
    return result.rc, json.loads(lines[-1])


def iscsi_state(guest: Guest, iqn: str) -> dict[str, Any]:
    sessions = guest.run(["iscsiadm", "-m", "session"])
    nodes = guest.run(["iscsiadm", "-m", "node"])
    links = guest.run(["bash", "-c", "ls /dev/disk/by-path/ 2>/dev/null || true"])
    return {"sessions": iqn in sessions.stdout, "nodes": iqn in nodes.stdout,
            "links": [x for x in links.stdout.split() if iqn in x]}


@pytest.fixture
def target(tmp_path: Path) -> Any:
    backend_env("STACKCORE_TEST_ISCSI_PORTAL", "tgt")
    tgt = TgtTarget(str(tmp_path / "volumes"), "iqn.2010-10.org.openstack:", GUEST_PORTAL)
    made: list[str] = []

    def make(size: int = 64 * MiB) -> tuple[str, str, dict[str, Any]]:
        name = f"volume-{uuid.uuid4()}"
        lun = tmp_path / f"{name}.img"
        with open(lun, "wb") as handle:
            handle.truncate(size)
        update = tgt.create(name, str(lun))
        made.append(name)
        info = {"driver_volume_type": "iscsi",
                "data": TgtTarget.properties(name[7:], update["provider_location"],
                                             update["provider_auth"])}
        return name, str(lun), info

    yield tgt, make
    for name in made:
        tgt.remove(name)


def test_connector_properties_come_from_os_brick(guest: Guest) -> None:
    rc, props = helper(guest, "properties")
    assert rc == 0, props
    initiator = Path("/etc/iscsi/initiatorname.iscsi").read_text().split("InitiatorName=")[-1]
    assert props["initiator"] == initiator.strip(), props
    assert props["host"] == "guest" and props["multipath"] is False, props
    assert props["platform"] == "x86_64" and props["os_type"] == "linux", props


def test_iscsi_attach_with_chap_writes_through_and_detach_leaves_nothing(
    guest: Guest, target: Any
) -> None:
    _tgt, make = target
    _name, lun, info = make()
    iqn = info["data"]["target_iqn"]
    rc, device = helper(guest, "connect", json.dumps(info))
    assert rc == 0, device
    assert device["type"] == "block" and device["path"].startswith("/dev/"), device
    assert iscsi_state(guest, iqn)["sessions"], "no iSCSI session after the attach"
    size = guest.run(["blockdev", "--getsize64", device["path"]]).check().stdout.strip()
    assert int(size) == 64 * MiB, size
    rc, _ = helper(guest, "write", device["path"], str(MiB), "0x5a")
    assert rc == 0
    with open(lun, "rb") as handle:  # the guest's write is in the host's LUN file
        handle.seek(MiB)
        assert handle.read(4096) == b"\x5a" * 4096
    rc, out = helper(guest, "disconnect", json.dumps(info), json.dumps(device))
    assert rc == 0, out
    assert iscsi_state(guest, iqn) == {"sessions": False, "nodes": False, "links": []}
    assert guest.run(["test", "-e", device["path"]]).rc != 0 or \
        iqn not in guest.run(["ls", "-l", "/dev/disk/by-path/"]).stdout


def test_iscsi_wrong_chap_secret_is_a_clear_error_and_nothing_half_attached(
    guest: Guest, target: Any
) -> None:
    _tgt, make = target
    name, _lun, info = make()
    iqn = info["data"]["target_iqn"]
    wrong = {**info, "data": {**info["data"], "auth_password": "Wr0ngSecret12345"}}
    rc, out = helper(guest, "connect", json.dumps(wrong))
    assert rc == 3 and out["error"] == "DriverError", out
    assert f"attaching iscsi volume {name[7:]}" in out["message"], out
    assert "Wr0ngSecret12345" not in out["message"]
    assert info["data"]["auth_password"] not in out["message"]
    assert iscsi_state(guest, iqn) == {"sessions": False, "nodes": False, "links": []}


def _tgtadm(*args: str) -> str:
    return subprocess.run(["tgtadm", "--lld", "iscsi", *args], capture_output=True, text=True,
                          timeout=30, check=True).stdout


def _logged_in(iqn: str) -> bool:
    """Whether an initiator has a session (an I_T nexus) on the target ``iqn``. (``tgtadm
    --op show --tid N`` prints the target's parameters, not its sessions: the list of all
    targets does.)"""
    shown = _tgtadm("--mode", "target", "--op", "show")
    block = shown.split(f": {iqn}\n", 1)[1].split("\nTarget ", 1)[0] if f": {iqn}\n" in shown \
        else ""
    return "I_T nexus:" in block


def test_target_that_disappears_mid_attach_fails_cleanly(guest: Guest) -> None:
    """A target whose disk never appears (no LUN yet) and which is deleted while the guest
    waits for it: the attach fails with a clear error and leaves no session or record."""
    iqn = f"iqn.2010-10.org.openstack:volume-{uuid.uuid4()}"
    shown = _tgtadm("--mode", "target", "--op", "show")
    tids = [int(line.split()[1].rstrip(":")) for line in shown.splitlines()
            if line.startswith("Target ")]
    tid = str(max(tids, default=0) + 100)
    _tgtadm("--mode", "target", "--op", "new", "--tid", tid, "-T", iqn)
    try:
        _tgtadm("--mode", "target", "--op", "bind", "--tid", tid, "-I", "ALL")
        info = {"driver_volume_type": "iscsi",
                "data": {"target_portal": GUEST_PORTAL, "target_iqn": iqn, "target_lun": 1,
                         "target_discovered": False, "volume_id": "vanishing"}}
        outcome: dict[str, Any] = {}
        # os-brick logs in, then rescans for LUN 1, which never comes (one scan attempt: 4 +
        # 9 s), and the target goes away in that window; os-brick then cleans up and tries
        # twice more (logins that fail: the target is gone; ~15 s each with the guest's
        # iscsid.conf) before it gives up - a few minutes in all under TCG
        attach = threading.Thread(
            target=lambda: outcome.update(zip(("rc", "out"), helper(
                guest, "connect", json.dumps(info), env={"SCAN_ATTEMPTS": "1"},
                timeout=900))))
        attach.start()
        deadline = time.monotonic() + 240
        while not _logged_in(iqn):
            assert attach.is_alive(), f"the attach ended before logging in: {outcome}"
            assert time.monotonic() < deadline, "the guest never logged in"
            time.sleep(0.2)
        _tgtadm("--mode", "target", "--op", "delete", "--force", "--tid", tid)
        attach.join(960)
        assert not attach.is_alive(), "the attach never returned"
    finally:
        subprocess.run(["tgtadm", "--lld", "iscsi", "--mode", "target", "--op", "delete",
                        "--force", "--tid", tid], capture_output=True, check=False)
    assert outcome["rc"] == 3 and outcome["out"]["error"] == "DriverError", outcome
    assert "attaching iscsi volume vanishing" in outcome["out"]["message"], outcome
    assert iscsi_state(guest, iqn) == {"sessions": False, "nodes": False, "links": []}


def test_nfs_attach_mounts_with_the_kernel_client_and_detach_unmounts(guest: Guest) -> None:
    export = backend_env("STACKCORE_TEST_NFS_EXPORT", "nfs")
    directory = Path(backend_env("STACKCORE_TEST_NFS_DIR", "nfs"))
    name = f"volume-{uuid.uuid4()}"
    path = directory / name
    with open(path, "wb") as handle:
        handle.truncate(16 * MiB)
    info = {"driver_volume_type": "nfs",
            "data": {"export": f"{HOST_FROM_GUEST}:{export}", "name": name, "format": "raw",
                     "options": "-o vers=4.1"}}
    try:
        rc, device = helper(guest, "connect", json.dumps(info))
        assert rc == 0, device
        assert device["path"].startswith(MOUNT_BASE) and device["path"].endswith(name), device
        mounts = guest.run(["cat", "/proc/mounts"]).stdout
        assert f"{HOST_FROM_GUEST}:{export}" in mounts and " nfs4 " in mounts, mounts
        rc, _ = helper(guest, "write", device["path"], str(MiB), "0x6b")
        assert rc == 0
        with open(path, "rb") as handle:
            handle.seek(MiB)
            assert handle.read(4096) == b"\x6b" * 4096
        rc, out = helper(guest, "disconnect", json.dumps(info), json.dumps(device))
        assert rc == 0, out
        mounts = guest.run(["cat", "/proc/mounts"]).stdout
        assert f"{HOST_FROM_GUEST}:{export}" not in mounts, mounts
    finally:
        path.unlink()

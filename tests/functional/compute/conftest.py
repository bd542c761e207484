"""Fixtures for the libvirt driver's functional tests against real backends.

Every backend comes from ``tools/backends/up.sh`` through the ``STACKCORE_TEST_*`` variables
(``. /var/lib/stackcore-backends/env.sh``). A missing variable is a failure naming the service to
start, never a skip. Whatever a test sets up on a backend (iSCSI target, NFS file, RBD image) it
removes again.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import signal
import subprocess
import time
import urllib.parse
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from stackcore import conf as sc_conf
from stackcore.compute.objects import Flavor, Image, Instance

try:
    import libvirt
    import libvirt_qemu
except ImportError as err:  # a missing extra is a broken test environment, not a skip
    raise ImportError(f"{err}: install the driver extra: pip install -e 'drivers[libvirt]'") from err

from stackcore_drivers.libvirt import domain_xml
from stackcore_drivers.libvirt.driver import LibvirtDriver

from tests.conftest import wait_until

HOST = "functional-host"


def backend_env(name: str, service: str) -> str:
    value = os.environ.get(name)
    if not value:
        pytest.fail(
            f"{name} is not set: run tools/backends/up.sh {service} and "
            f". /var/lib/stackcore-backends/env.sh",
            pytrace=False,
        )
    return value


def run(*args: str) -> str:
    return subprocess.run(list(args), check=True, capture_output=True, text=True).stdout


def libvirt_cloud_overrides(tmp_path: Any, libvirt: dict[str, Any] | None = None,
                            **sections: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The overrides of an embedded Cloud whose one compute host ``kvm-1`` runs the libvirt
    driver on the test libvirtd: ``libvirt`` adds [libvirt] options, ``sections`` others."""
    return {
        "DEFAULT": {"state_path": str(tmp_path / "state")},
        "compute": {"driver": "libvirt", "hosts": ["kvm-1"]},
        "libvirt": {
            "connection_uri": backend_env("STACKCORE_TEST_LIBVIRT_URI", "libvirt"),
            "virt_type": backend_env("STACKCORE_TEST_VIRT_TYPE", "libvirt"),
            **(libvirt or {}),
        },
        **sections,
    }


def make_driver(tmp_path: Any, uri: str | None = None, host: str = HOST,
                **options: Any) -> LibvirtDriver:
    settings = {
        "connection_uri": uri or backend_env("STACKCORE_TEST_LIBVIRT_URI", "libvirt"),
        "virt_type": backend_env("STACKCORE_TEST_VIRT_TYPE", "libvirt"),
        "instances_path": str(tmp_path / "instances"),
        "soft_reboot_timeout": 2,
        # the test guests have no OS to answer an ACPI shutdown: a resize powers off at once
        "shutdown_timeout": 0,
        "device_detach_timeout": 10,
        **options,
    }
    conf = sc_conf.load(overrides={"DEFAULT": {"state_path": str(tmp_path)}})
    sc_conf.register(conf, LibvirtDriver.list_opts())
    for key, value in settings.items():
        sc_conf.set_override(conf, "libvirt", key, value)
    driver = LibvirtDriver(conf, host)
    driver.init_host(host)
    return driver


@pytest.fixture
def kvm_driver(tmp_path: Any) -> Iterator[LibvirtDriver]:
    driver = make_driver(tmp_path)
    yield driver
    driver.connection.close()


@pytest.fixture
def base_image(tmp_path: Any) -> Image:
    path = tmp_path / "base.qcow2"
    run("qemu-img", "create", "-q", "-f", "qcow2", str(path), "64M")
    return Image(id=str(uuid.uuid4()), name="functional-base", path=str(path),
                 disk_format="qcow2", properties={"architecture": "x86_64"})


def qemu_block_devices(dom: Any) -> dict[str, dict[str, Any]]:
    """QEMU's own view (QMP query-block): device/qdev id -> its entry."""
    reply = json.loads(libvirt_qemu.qemuMonitorCommand(dom, json.dumps(
        {"execute": "query-block"}), 0))
    found = {}
    for entry in reply["return"]:
        found[entry.get("qdev") or entry.get("device")] = entry
    return found


def qemu_protocol_nodes(dom: Any) -> list[dict[str, Any]]:
    """The protocol layer (iscsi / nfs / rbd / file) of each block device QEMU has open, as
    QEMU itself reports it: ``{"qdev": ..., "driver": ..., <the protocol's options>}``.

    QEMU names a network disk ``json:{"driver": <format>, "file": {"driver": <protocol>,
    ...}}``; a local file by its path.
    """
    found = []
    for qdev, entry in qemu_block_devices(dom).items():
        filename = (entry.get("inserted") or {}).get("file", "")
        if filename.startswith("json:"):
            spec = json.loads(filename[len("json:"):])
            while isinstance(spec.get("file"), dict):
                spec = spec["file"]
            found.append({"qdev": qdev, **spec})
        elif "://" in filename:  # e.g. a qcow2 over nfs is reported as nfs://host/path
            url = urllib.parse.urlsplit(filename)
            found.append({"qdev": qdev, "driver": url.scheme, "server": url.hostname,
                          "path": url.path})
        elif filename:
            found.append({"qdev": qdev, "driver": "file", "filename": filename})
    return found


def hmp_info_block(dom: Any) -> str:
    return libvirt_qemu.qemuMonitorCommand(
        dom, "info block", libvirt_qemu.VIR_DOMAIN_QEMU_MONITOR_COMMAND_HMP)


@pytest.fixture
def booted(kvm_driver: LibvirtDriver, base_image: Image) -> Iterator[Callable[..., Instance]]:
    """Spawn KVM instances; at teardown each is destroyed and proven gone: no domain, no
    instance directory (overlay, console log), no libvirt secret."""
    made: list[Instance] = []

    def boot(name: str = "functional <vm> & 'quotes'", **metadata: str) -> Instance:
        instance = Instance(
            uuid=str(uuid.uuid4()), name=name, host=HOST,
            flavor=Flavor("functional", vcpus=1, ram_mb=128, disk_gb=1),
            image=base_image, metadata=metadata,
        )
        made.append(instance)
        kvm_driver.spawn(instance, base_image, [], [])
        return instance

    yield boot
    conn = kvm_driver.connection.get()
    for instance in made:
        kvm_driver.destroy(instance, [], [], True)
        with pytest.raises(libvirt.libvirtError):
            conn.lookupByName(domain_xml.domain_name(instance.uuid))
        assert not os.path.exists(os.path.join(kvm_driver.instances_path, instance.uuid))
        assert kvm_driver.secrets_of(instance) == []


def domain_of(driver: LibvirtDriver, instance: Instance) -> Any:
    return driver.connection.get().lookupByName(domain_xml.domain_name(instance.uuid))


# --- backends set up by the tests ----------------------------------------------------------


@pytest.fixture
def iscsi_lun(tmp_path: Any) -> Iterator[dict[str, Any]]:
    """A tgtd target with one 64 MiB LUN and a CHAP account; connection_info for it."""
    portal = backend_env("STACKCORE_TEST_ISCSI_PORTAL", "tgt")
    tid = str(random.randint(2000, 9000))
    iqn = f"iqn.2010-10.dev.stackcore:functional-{uuid.uuid4().hex[:12]}"
    user, password = f"u{uuid.uuid4().hex[:8]}", uuid.uuid4().hex
    backing = tmp_path / "lun.img"
    backing.write_bytes(b"")
    os.truncate(backing, 64 * 1024 * 1024)
    tgt = ("tgtadm", "--lld", "iscsi")
    run(*tgt, "--op", "new", "--mode", "target", "--tid", tid, "-T", iqn)
    try:
        run(*tgt, "--op", "new", "--mode", "logicalunit", "--tid", tid, "--lun", "1",
            "-b", str(backing))
        run(*tgt, "--op", "bind", "--mode", "target", "--tid", tid, "-I", "ALL")
        run(*tgt, "--op", "new", "--mode", "account", "--user", user, "--password", password)
        run(*tgt, "--op", "bind", "--mode", "account", "--tid", tid, "--user", user)
        yield {
            "driver_volume_type": "iscsi",
            "data": {
                "target_portal": portal, "target_iqn": iqn, "target_lun": 1,
                "auth_method": "CHAP", "auth_username": user, "auth_password": password,
                "volume_id": str(uuid.uuid4()),
            },
        }
    finally:
        subprocess.run([*tgt, "--op", "delete", "--mode", "target", "--tid", tid, "--force"],
                       check=False, capture_output=True)
        subprocess.run([*tgt, "--op", "delete", "--mode", "account", "--user", user],
                       check=False, capture_output=True)


@pytest.fixture
def nfs_file() -> Iterator[dict[str, Any]]:
    """A 64 MiB qcow2 file in the nfs-ganesha export; connection_info for it."""
    server = backend_env("STACKCORE_TEST_NFS_SERVER", "nfs")
    export = backend_env("STACKCORE_TEST_NFS_EXPORT", "nfs")
    local_dir = backend_env("STACKCORE_TEST_NFS_DIR", "nfs")
    name = f"volume-{uuid.uuid4()}"
    path = os.path.join(local_dir, name)
    run("qemu-img", "create", "-q", "-f", "qcow2", path, "64M")
    try:
        yield {
            "driver_volume_type": "nfs",
            "data": {"export": f"{server}:{export}", "name": name, "format": "qcow2",
                     "volume_id": name[len("volume-"):]},
        }
    finally:
        if os.path.exists(path):
            os.unlink(path)


@pytest.fixture
def rbd_image() -> Iterator[dict[str, Any]]:
    """A 64 MiB RBD image in the test pool; connection_info for it."""
    ceph_conf = backend_env("STACKCORE_TEST_CEPH_CONF", "ceph")
    pool = backend_env("STACKCORE_TEST_CEPH_POOL", "ceph")
    mon = backend_env("STACKCORE_TEST_CEPH_MON", "ceph")
    host, _, port = mon.rpartition(":")
    name = f"volume-{uuid.uuid4()}"
    run("rbd", "-c", ceph_conf, "create", f"{pool}/{name}", "--size", "64")
    try:
        yield {
            "driver_volume_type": "rbd",
            "data": {"name": f"{pool}/{name}", "hosts": [host], "ports": [port],
                     "auth_enabled": False, "volume_id": name[len("volume-"):]},
        }
    finally:
        # Removed for sure, or the test errors: ``rbd rm`` refuses an image a client still
        # has open (a QEMU not destroyed yet: tests ask for this fixture before ``booted``, so
        # their domains go first), and ignoring that left images behind in the shared pool.
        def watchers() -> list[Any]:
            status = subprocess.run(["rbd", "-c", ceph_conf, "status", "--format", "json",
                                     f"{pool}/{name}"], capture_output=True, text=True,
                                    check=True)
            return list(json.loads(status.stdout)["watchers"])

        # a client killed without closing keeps its watch until the OSD times it out (30 s)
        wait_until(lambda: not watchers(), 60, f"no client watching {pool}/{name}")
        run("rbd", "-c", ceph_conf, "rm", "--no-progress", f"{pool}/{name}")


# --- a libvirtd of the test's own ----------------------------------------------------------

# Runs in a private mount namespace so its sockets, state, secrets and config live under the
# test's directory and never touch the shared daemon (other tests keep using that one). The
# script is a constant; the directory is passed as an argument, never spliced into it.
_PRIVATE_LIBVIRTD = """
set -e
mount --bind "$1/run" /run/libvirt
mount --bind "$1/lib" /var/lib/libvirt
mount --bind "$1/cache" /var/cache/libvirt
mount --bind "$1/etc" /etc/libvirt
exec libvirtd --pid-file "$1/libvirtd.pid"
"""


class PrivateLibvirtd:
    """A libvirtd this test starts and stops (to prove the driver survives a daemon restart)."""

    def __init__(self, root: Any) -> None:
        self.root = root
        for sub in ("run", "lib", "cache", "etc", "etc/qemu"):
            (root / sub).mkdir(parents=True, exist_ok=True)
        qemu_conf = "/etc/libvirt/qemu.conf"
        settings = open(qemu_conf).read() if os.path.exists(qemu_conf) else ""
        # No virtlogd in this namespace: QEMU writes its own logs.
        (root / "etc" / "qemu.conf").write_text(settings + '\nstdio_handler = "file"\n')
        (root / "etc" / "libvirtd.conf").write_text("")
        self.uri = f"qemu+unix:///system?socket={root}/run/libvirt-sock"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        log = open(self.root / "libvirtd.log", "ab")
        self.process = subprocess.Popen(
            ["unshare", "--mount", "--propagation", "private", "sh", "-c", _PRIVATE_LIBVIRTD,
             "private-libvirtd", str(self.root)],
            stdout=log, stderr=log,
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                pytest.fail(f"private libvirtd exited: {(self.root / 'libvirtd.log').read_text()}")
            try:
                libvirt.open(self.uri).close()
                return
            except libvirt.libvirtError:
                time.sleep(0.2)
        pytest.fail("private libvirtd did not answer within 30 s")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=30)
        self.process = None

    def qemu_pids(self) -> list[int]:
        pids = []
        for pidfile in (self.root / "run" / "qemu").glob("*.pid"):
            with contextlib.suppress(ValueError, OSError):
                pids.append(int(pidfile.read_text().strip()))
        return pids


@pytest.fixture
def private_libvirtd(tmp_path: Any) -> Iterator[PrivateLibvirtd]:
    backend_env("STACKCORE_TEST_LIBVIRT_URI", "libvirt")  # the packages come with that service
    daemon = PrivateLibvirtd(tmp_path / "libvirtd")
    daemon.start()
    try:
        yield daemon
    finally:
        # Leave nothing running: domains of this daemon first, then the daemon itself.
        if daemon.process is None:
            daemon.start()
        conn = libvirt.open(daemon.uri)
        for dom in conn.listAllDomains(0):
            with contextlib.suppress(libvirt.libvirtError):
                dom.destroy()
            with contextlib.suppress(libvirt.libvirtError):
                dom.undefineFlags(libvirt.VIR_DOMAIN_UNDEFINE_MANAGED_SAVE)
        conn.close()
        leftover = daemon.qemu_pids()
        daemon.stop()
        for pid in leftover:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


# --- two libvirtds as two compute hosts, for live migration --------------------------------

from .libvirt_pair import LabError, LabLibvirtd, lab_pair  # noqa: E402


@pytest.fixture
def libvirtd_pair(tmp_path: Any) -> Iterator[tuple[LabLibvirtd, LabLibvirtd]]:
    """Hosts "a" and "b": two started libvirtds, each in its own mount and network namespace
    on the lab bridge with its own address and host UUID (tests/functional/compute/
    libvirt_pair.py). Everything - domains, QEMUs, daemons, namespaces, veths - is removed at
    teardown, also when the test failed; a set-up or teardown problem fails the test with
    the reason and the daemon's log."""
    backend_env("STACKCORE_TEST_LIBVIRT_URI", "libvirt")  # the packages come with that service
    bridge = backend_env("STACKCORE_TEST_LAB_BRIDGE", "postgres")
    cidr = backend_env("STACKCORE_TEST_LAB_CIDR", "postgres")
    try:
        with lab_pair(tmp_path / "pair", bridge, cidr) as pair:
            yield pair
    except LabError as err:
        pytest.fail(str(err), pytrace=False)

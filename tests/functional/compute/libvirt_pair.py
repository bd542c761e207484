"""Two libvirtd daemons on this machine that behave as two compute hosts, so that a running
KVM/QEMU guest can be live-migrated from one to the other.

Each :class:`LabLibvirtd` is a libvirtd in

* its own **mount namespace**: its run, state, cache, config and log directories are bind
  mounts of directories under its root, so it never sees the shared test libvirtd's sockets,
  domains or pid files (nor the other daemon's);
* its own **network namespace** (``ip netns``), cabled to the lab bridge (``sc-lab0``, see
  ``tools/backends/lib.sh``) by a veth pair and holding one lab address. The guests' QEMU
  processes inherit both namespaces, so the migration stream and the NBD disk copy go over
  TCP between the two lab addresses, as between two machines (and the daemons' migration
  ports cannot collide: each namespace has its own).

Its ``libvirtd.conf`` carries a ``host_uuid`` of its own: libvirt refuses to migrate a domain
to a host with the same UUID ("Attempt to migrate guest to the same host"). Clients - the test
process, ``virsh``, the framework's driver - stay in the root namespaces and reach each daemon
over its unix socket (:attr:`LabLibvirtd.uri`).

Migration between them is client-managed (no ``VIR_MIGRATE_PEER2PEER``: the daemons never
talk to each other, the client drives both), see :func:`migrate_params` and
:data:`MIGRATE_FLAGS`; the disks are local files in each host's own instances directory, so a
migration copies them (``VIR_MIGRATE_NON_SHARED_DISK``) into files that must exist on the
destination beforehand (:func:`precreate_disks`) under the destination's path, which the
destination XML carries (:func:`dest_xml`).

Nothing here depends on pytest: the benchmark ``benchmarks/live_migration.py`` uses it too. A
set-up failure raises :class:`LabError` with the reason and the daemon's log; the fixture
``libvirtd_pair`` (tests/functional/compute/conftest.py) turns it into a test failure.
"""

from __future__ import annotations

import contextlib
import fcntl
import ipaddress
import json
import os
import random
import shutil
import signal
import subprocess
import time
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import libvirt

T = TypeVar("T")

#: Where the lab's hosts take their addresses: offsets into the lab subnet that no other user
#: of the bridge takes (the lab address itself is .1, test_multihost.py's hosts .101-.102,
#: the private NFS server of tools/backends/private.sh .150-.199).
ADDRESS_OFFSETS = range(200, 250)

#: Held while a pair picks its addresses and puts them on its namespaces: two processes
#: setting up pairs at once cannot pick the same one.
ADDRESS_LOCK = Path("/run/lock/stackcore-lab-libvirtd.lock")

#: The shared test libvirtd's cache of QEMU capabilities (see LabLibvirtd.__init__).
SHARED_CAPS_CACHE = Path("/var/cache/libvirt/qemu/capabilities")

#: Client-managed live migration with a copy of the local disks (see :func:`migrate_params`).
#: The domain stays defined on the destination and is undefined from the source, as a
#: compute host's move of an instance needs.
MIGRATE_FLAGS = (libvirt.VIR_MIGRATE_LIVE | libvirt.VIR_MIGRATE_NON_SHARED_DISK
                 | libvirt.VIR_MIGRATE_PERSIST_DEST | libvirt.VIR_MIGRATE_UNDEFINE_SOURCE)

# The daemon's mount namespace: a constant script, the root directory is its argument "$1"
# (never spliced into the text). /var/log/libvirt too, or both daemons would write the QEMU
# log of a migrated domain (named after the domain) into one shared file.
_LIBVIRTD = """
set -e
mount --bind "$1/run" /run/libvirt
mount --bind "$1/lib" /var/lib/libvirt
mount --bind "$1/cache" /var/cache/libvirt
mount --bind "$1/etc" /etc/libvirt
mount --bind "$1/log" /var/log/libvirt
exec libvirtd --pid-file "$1/libvirtd.pid"
"""


class LabError(RuntimeError):
    """The lab could not be set up, or not torn down completely (the message says what)."""


def wait_for(check: Callable[[], T], timeout: float, what: str,
             log: Callable[[], str] | None = None) -> T:
    """Poll ``check`` until it returns something true (returned), at most ``timeout`` s.

    A bounded wait for a condition instead of a fixed sleep; on timeout a :class:`LabError`
    names ``what``, the last value and ``log()`` (the daemon's log tail, say)."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            tail = f"\n{log()}" if log else ""
            raise LabError(f"timed out after {timeout:g} s waiting for {what} "
                           f"(last: {result!r}){tail}")
        time.sleep(0.05)


def _ip(*args: str, check: bool = True) -> str:
    result = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=30,
                            check=False)
    if check and result.returncode != 0:
        raise LabError(f"ip {' '.join(args)}: {result.stderr.strip()}")
    return result.stdout


def _netns_names() -> list[str]:
    return [entry["name"] for entry in json.loads(_ip("-j", "netns", "list") or "[]")]


def _addresses_in_use() -> set[str]:
    """Every IPv4 address held in the root namespace or any named network namespace."""
    used: set[str] = set()
    for where in [[], *(["-n", name] for name in _netns_names())]:
        out = _ip(*where, "-4", "-j", "addr", "show", check=False)
        for link in json.loads(out or "[]"):
            used.update(info["local"] for info in link.get("addr_info", []))
    return used


def _pid_alive(pid: int) -> bool:
    """True while ``pid`` runs (a zombie counts as gone: it only waits for its parent)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False


class LabLibvirtd:
    """One "compute host": a libvirtd in its own mount and network namespaces.

    ``root`` holds its directories (``run``, ``lib``, ``cache``, ``etc``, ``log``), its own
    ``libvirtd.log`` (stdout and stderr of the daemon) and :attr:`instances_path`; ``name``
    is its network namespace (and the host's name); ``veth`` the root-namespace end of its
    cable to ``bridge``; ``address`` its lab address (``prefix``: the subnet's length).
    """

    def __init__(self, root: Path, name: str, address: str, prefix: int, bridge: str,
                 veth: str) -> None:
        self.root = root
        self.name = name
        self.address = address
        self.prefix = prefix
        self.bridge = bridge
        self.veth = veth
        self.host_uuid = str(uuid.uuid4())
        self.instances_path = root / "instances"
        self.log_path = root / "libvirtd.log"
        self.uri = f"qemu+unix:///system?socket={root}/run/libvirt-sock"
        self.process: subprocess.Popen[bytes] | None = None
        self.plugged = False
        for sub in ("run", "lib", "cache", "etc/qemu", "log/qemu", "instances"):
            (root / sub).mkdir(parents=True, exist_ok=True)
        qemu_conf = Path("/etc/libvirt/qemu.conf")
        settings = qemu_conf.read_text() if qemu_conf.exists() else ""
        # The shared daemon's settings (root QEMU, no cgroups: tools/backends/services/
        # libvirt.sh); no virtlogd in this namespace, so QEMU writes its own log.
        (root / "etc" / "qemu.conf").write_text(settings + '\nstdio_handler = "file"\n')
        (root / "etc" / "libvirtd.conf").write_text(f'host_uuid = "{self.host_uuid}"\n')
        # Probing the QEMU binaries (each started twice and asked over QMP) costs a fresh
        # daemon ~4 s per binary; the shared daemon's results for the same binaries on the
        # same kernel are valid here. libvirtd checks each cached file (binary and libvirtd
        # ctimes, kernel, microcode) and probes again when one is stale.
        if SHARED_CAPS_CACHE.is_dir():
            shutil.copytree(SHARED_CAPS_CACHE, root / "cache" / "qemu" / "capabilities",
                            dirs_exist_ok=True)

    def __repr__(self) -> str:
        return f"LabLibvirtd({self.name}, {self.address}, {self.uri})"

    # --- network ---------------------------------------------------------------------------

    def plug(self) -> None:
        """Create the network namespace (lo up) and cable it to the bridge with the address.

        The caller holds :data:`ADDRESS_LOCK` (see :func:`lab_pair`)."""
        _ip("netns", "add", self.name)
        self.plugged = True
        _ip("-n", self.name, "link", "set", "lo", "up")
        _ip("link", "add", self.veth, "type", "veth", "peer", "name", "lab0", "netns",
            self.name)
        _ip("link", "set", self.veth, "master", self.bridge, "up")
        _ip("-n", self.name, "addr", "add", f"{self.address}/{self.prefix}", "dev", "lab0")
        _ip("-n", self.name, "link", "set", "lab0", "up")

        def carrier() -> bool:
            inside = json.loads(_ip("-n", self.name, "-j", "link", "show", "lab0"))[0]
            return bool(inside.get("operstate") == "UP")

        wait_for(carrier, 10, f"lab0 of {self.name} up")

    def unplug(self) -> None:
        """Delete the veth pair and the namespace (harmless when already gone)."""
        if self.veth in {link["ifname"] for link in json.loads(_ip("-j", "link", "show"))}:
            _ip("link", "delete", self.veth)
        if self.name in _netns_names():
            _ip("netns", "delete", self.name)
        self.plugged = False

    def netns_pids(self) -> list[int]:
        """Every process in the host's network namespace (the daemon, its QEMUs)."""
        if self.name not in _netns_names():
            return []
        return [int(pid) for pid in _ip("netns", "pids", self.name).split()]

    # --- daemon ----------------------------------------------------------------------------

    def log_tail(self, lines: int = 40) -> str:
        """The end of the daemon's log, for failure messages."""
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        return f"--- last lines of {self.log_path} ---\n" + "\n".join(
            text.splitlines()[-lines:])

    def start(self, timeout: float = 30) -> None:
        """Start the daemon (plugging the namespace first if needed) and wait until it
        answers on its socket."""
        if not self.plugged:
            self.plug()
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                ["ip", "netns", "exec", self.name, "unshare", "--mount", "--propagation",
                 "private", "sh", "-c", _LIBVIRTD, "lab-libvirtd", str(self.root)],
                stdin=subprocess.DEVNULL, stdout=log, stderr=log,
            )
        process = self.process

        def answers() -> bool:
            if process.poll() is not None:
                raise LabError(f"libvirtd of {self.name} exited with {process.returncode}\n"
                               f"{self.log_tail()}")
            if not (self.root / "run" / "libvirt-sock").exists():
                return False  # not listening yet (and no libvirt error printed for it)
            try:
                libvirt.open(self.uri).close()
            except libvirt.libvirtError:
                return False
            return True

        wait_for(answers, timeout, f"libvirtd of {self.name} to answer on {self.uri}",
                 self.log_tail)
        # libvirtd probes QEMU's capabilities the first time something needs them - on a
        # destination, inside the first migration, which then takes seconds longer than the
        # next ones. Have it done now (cheap when the seeded cache is valid, see __init__).
        conn = self.connect()
        try:
            conn.getCapabilities()
        except libvirt.libvirtError as err:
            raise LabError(f"libvirtd of {self.name} cannot probe QEMU: {err}\n"
                           f"{self.log_tail()}") from err
        finally:
            conn.close()

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self, timeout: float = 30) -> None:
        """Stop the daemon (SIGTERM; SIGKILL if it does not exit in ``timeout`` s). Its
        guests keep running, as on a real host."""
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=timeout)
        self.process = None

    def connect(self) -> libvirt.virConnect:
        return libvirt.open(self.uri)

    def qemu_pids(self) -> list[int]:
        """The QEMU processes of this daemon's domains (from its pid files)."""
        pids = []
        for pidfile in (self.root / "run" / "qemu").glob("*.pid"):
            if pidfile.name == "driver.pid":  # the QEMU driver's lock: libvirtd's own pid
                continue
            with contextlib.suppress(ValueError, OSError):
                pid = int(pidfile.read_text().strip())
                if _pid_alive(pid):
                    pids.append(pid)
        return pids

    def destroy(self) -> list[str]:
        """Leave nothing of the host: its domains destroyed and undefined, QEMU processes
        killed, the daemon stopped, the namespace and veth deleted. Every step runs even if
        an earlier one failed; returns what went wrong."""
        problems: list[str] = []
        if self.running():
            try:
                conn = self.connect()
                try:
                    for dom in conn.listAllDomains(0):
                        with contextlib.suppress(libvirt.libvirtError):
                            if dom.isActive():
                                dom.destroy()
                        with contextlib.suppress(libvirt.libvirtError):
                            dom.undefineFlags(libvirt.VIR_DOMAIN_UNDEFINE_MANAGED_SAVE
                                              | libvirt.VIR_DOMAIN_UNDEFINE_NVRAM)
                finally:
                    conn.close()
            except libvirt.libvirtError as err:
                problems.append(f"{self.name}: cleaning the domains: {err}")
        leftover = set(self.qemu_pids())
        try:
            self.stop()
        except (OSError, subprocess.SubprocessError) as err:
            problems.append(f"{self.name}: stopping libvirtd: {err}")
        # whatever still runs in the namespace was started by this daemon (or is it)
        with contextlib.suppress(LabError):
            leftover.update(self.netns_pids())
        for pid in leftover:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        try:
            wait_for(lambda: not [p for p in leftover if _pid_alive(p)], 30,
                     f"the processes of {self.name} to exit")
        except LabError as err:
            problems.append(str(err))
        try:
            self.unplug()
        except LabError as err:
            problems.append(f"{self.name}: {err}")
        return problems


@contextlib.contextmanager
def _address_lock() -> Iterator[None]:
    ADDRESS_LOCK.parent.mkdir(parents=True, exist_ok=True)
    with open(ADDRESS_LOCK, "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


@contextlib.contextmanager
def lab_pair(root: Path, bridge: str, cidr: str) -> Iterator[tuple[LabLibvirtd, LabLibvirtd]]:
    """Two started :class:`LabLibvirtd` ("a" and "b") under ``root``, on ``bridge`` with two
    free addresses of ``cidr``; everything removed on exit, also after an exception.

    Names carry a random tag (two processes may run pairs at once): namespaces
    ``sc-lm-<tag>-a|b``, veths ``sclm<tag>a|b``. The addresses are picked among
    :data:`ADDRESS_OFFSETS` that no namespace holds, under :data:`ADDRESS_LOCK`.
    """
    subnet = ipaddress.ip_network(cidr)
    tag = uuid.uuid4().hex[:6]
    hosts: list[LabLibvirtd] = []
    try:
        with _address_lock():
            used = _addresses_in_use()
            free = [str(subnet.network_address + offset) for offset in ADDRESS_OFFSETS
                    if subnet.network_address + offset in subnet
                    and str(subnet.network_address + offset) not in used]
            if len(free) < 2:
                raise LabError(f"fewer than 2 free addresses in {cidr} at offsets "
                               f"{ADDRESS_OFFSETS}: in use {sorted(used)}")
            for key, address in zip("ab", random.sample(free, 2), strict=True):
                host = LabLibvirtd(root / key, f"sc-lm-{tag}-{key}", address,
                                   subnet.prefixlen, bridge, f"sclm{tag}{key}")
                hosts.append(host)
                host.plug()
        for host in hosts:
            host.start()
        yield hosts[0], hosts[1]
    finally:
        problems = [problem for host in hosts for problem in host.destroy()]
        if problems:
            raise LabError("tearing the libvirtd pair down: " + "; ".join(problems))


# --- guests and their migration ------------------------------------------------------------


def create_disk(path: Path, size_mib: int = 64) -> None:
    """A blank qcow2 of ``size_mib`` MiB (no OS needed: the guest idles in its firmware)."""
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(path), f"{size_mib}M"],
                   check=True, capture_output=True, text=True)


def guest_xml(name: str, disk: Path, virt_type: str, memory_mib: int = 256,
              vcpus: int = 1) -> str:
    """A minimal domain: one local qcow2 disk (virtio, ``vda``), no NIC, no graphics, no
    serial (a console log would be one more host-local path to rewrite on migration)."""
    domain = ET.Element("domain", type=virt_type)
    ET.SubElement(domain, "name").text = name
    ET.SubElement(domain, "uuid").text = str(uuid.uuid4())
    ET.SubElement(domain, "memory", unit="MiB").text = str(memory_mib)
    ET.SubElement(domain, "vcpu").text = str(vcpus)
    os_ = ET.SubElement(domain, "os")
    ET.SubElement(os_, "type", arch="x86_64").text = "hvm"
    ET.SubElement(os_, "boot", dev="hd")
    ET.SubElement(domain, "on_poweroff").text = "destroy"
    ET.SubElement(domain, "on_reboot").text = "restart"
    ET.SubElement(domain, "on_crash").text = "destroy"
    devices = ET.SubElement(domain, "devices")
    disk_el = ET.SubElement(devices, "disk", type="file", device="disk")
    ET.SubElement(disk_el, "driver", name="qemu", type="qcow2", cache="none")
    ET.SubElement(disk_el, "source", file=str(disk))
    ET.SubElement(disk_el, "target", dev="vda", bus="virtio")
    ET.SubElement(devices, "memballoon", model="none")
    return ET.tostring(domain, encoding="unicode")


def disk_paths(xml: str) -> dict[str, str]:
    """target dev -> source file of the domain's file disks."""
    found = {}
    for disk in ET.fromstring(xml).iterfind("./devices/disk[@type='file']"):
        source, target = disk.find("source"), disk.find("target")
        if source is not None and target is not None and source.get("file"):
            found[target.get("dev", "")] = source.get("file", "")
    return found


def dest_xml(source_xml: str, new_paths: dict[str, str]) -> str:
    """The domain XML for the destination: ``source_xml`` (the source's
    ``XMLDesc(VIR_DOMAIN_XML_MIGRATABLE)``) with each file disk's ``<source file=...>``
    replaced by ``new_paths[<its target dev>]`` - the instances directories differ between
    hosts. Every file disk must be named: one left pointing at the source's path would be
    opened there by the destination."""
    domain = ET.fromstring(source_xml)
    missing = []
    for disk in domain.iterfind("./devices/disk[@type='file']"):
        source, target = disk.find("source"), disk.find("target")
        if source is None or target is None or not source.get("file"):
            continue
        dev = target.get("dev", "")
        if dev not in new_paths:
            missing.append(dev)
            continue
        source.set("file", new_paths[dev])
    if missing:
        raise ValueError(f"no destination path for the disk(s) {missing}")
    return ET.tostring(domain, encoding="unicode")


def virtual_size(path: str) -> int:
    info = subprocess.run(["qemu-img", "info", "--output", "json", "-U", path], check=True,
                          capture_output=True, text=True).stdout
    return int(json.loads(info)["virtual-size"])


def precreate_disks(source_xml: str, new_paths: dict[str, str]) -> None:
    """Create each destination disk: an empty qcow2 of the source disk's virtual size.

    libvirt's NBD copy (``VIR_MIGRATE_NON_SHARED_DISK``) writes into an existing file; for a
    plain file outside any storage pool it does not create one (the migration fails with
    "unable to find storage pool")."""
    for dev, path in disk_paths(source_xml).items():
        subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", new_paths[dev],
                        str(virtual_size(path))], check=True, capture_output=True, text=True)


def migrate_params(dest: LabLibvirtd, destination_xml: str) -> dict[str, Any]:
    """The ``virDomainMigrate3`` parameters of a live block migration to ``dest``:

    * ``VIR_MIGRATE_PARAM_URI`` ``tcp://<dest address>``: where the source QEMU sends the
      memory (the destination daemon picks the port; no port in the URI);
    * ``VIR_MIGRATE_PARAM_LISTEN_ADDRESS`` the dest address: where the destination QEMU
      listens for it and for the NBD disk copy;
    * ``VIR_MIGRATE_PARAM_DEST_XML``: the domain with the destination's disk paths.
    """
    return {
        libvirt.VIR_MIGRATE_PARAM_URI: f"tcp://{dest.address}",
        libvirt.VIR_MIGRATE_PARAM_LISTEN_ADDRESS: dest.address,
        libvirt.VIR_MIGRATE_PARAM_DEST_XML: destination_xml,
    }


def virsh_migrate_command(source: LabLibvirtd, dest: LabLibvirtd, name: str,
                          destination_xml_file: Path) -> list[str]:
    """The same migration with the ``virsh`` CLI (the raw baseline): client-managed (no
    ``--p2p``), live, copying all disks, the destination XML from a file."""
    return ["virsh", "-q", "-c", source.uri, "migrate", "--live", "--copy-storage-all",
            "--persistent", "--undefinesource", "--xml", str(destination_xml_file),
            "--listen-address", dest.address, name, dest.uri, f"tcp://{dest.address}"]


def host_uuid_of(conn: libvirt.virConnect) -> str:
    """The host UUID a daemon reports in its capabilities (``<host><uuid>``)."""
    found = ET.fromstring(conn.getCapabilities()).findtext("./host/uuid")
    return found or ""


def qemu_log_tail(host: LabLibvirtd, name: str, lines: int = 20) -> str:
    """The end of a domain's QEMU log on ``host`` (stdio_handler = file)."""
    path = host.root / "log" / "qemu" / f"{name}.log"
    if not path.exists():
        return f"(no {path})"
    return f"--- last lines of {path} ---\n" + "\n".join(
        path.read_text(errors="replace").splitlines()[-lines:])


def virsh_completed_job(uri: str, name: str) -> dict[str, str]:
    """``virsh domjobinfo --completed`` of a domain, ``{"Total downtime": "48 ms", ...}``
    (on the destination after a migration: the source has no domain left)."""
    out = subprocess.run(["virsh", "-q", "-c", uri, "domjobinfo", "--completed", name],
                         check=True, capture_output=True, text=True).stdout
    found = {}
    for line in out.splitlines():
        key, sep, value = line.partition(":")
        if sep:
            found[key.strip()] = value.strip()
    return found

"""The NFS volume driver: volumes are raw or qcow2 files on NFS shares, made with qemu-img.

Shares come from config (``nfs_shares``, or a Cinder-style ``nfs_shares_config`` file of
``host:/export [options]`` lines); each share is a pool. Volume files are ``volume-<id>``;
snapshots are Cinder's qcow2 overlay chain with a ``volume-<id>.info`` JSON file
(``{"active": <file>, <snapshot-id>: <file>}``): taking a snapshot freezes the active file and
starts a new overlay ``volume-<id>.<snapshot-id>`` on top of it.

Two ways to reach a share (``nfs_access``):

* ``mount`` - production: os-brick's ``RemoteFsClient`` mounts the share under
  ``nfs_mount_point_base/<md5(share)>`` (the path Nova's libvirt driver uses too) and files are
  handled locally;
* ``qemu`` - hosts without a kernel NFS client (this project's CI): qemu-img reads and writes
  ``nfs://`` URLs, and file management (list, stat, unlink, the info file, capacity) goes
  through libnfs in userspace.
* ``auto`` (default) - ``mount`` if the kernel has an NFS client, else ``qemu``.

Safety (Cinder's CVE-2024-32498 lesson): before any file is used, ``qemu-img info`` must show
the expected format, a backing file only from this volume's own chain, and no external data
file.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import os
import re
import threading
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

from stackcore import exception, lazy
from stackcore.volume import (
    SOURCE_NAME,
    GiB,
    ImageFile,
    ModelUpdate,
    Snapshot,
    Volume,
    VolumeDriver,
    source_name,
)
from stackcore_drivers.volume.processes import execute

if TYPE_CHECKING:
    from oslo_config import cfg



MiB = 1 << 20
# The slowest copy that is still progressing: below it a data-copying qemu-img command is taken
# for one whose server stopped answering (a 1 TiB volume still gets 73 hours). Deliberately far
# under any real share's throughput; it only has to bound a hang, not to predict a copy.
_MIN_COPY_RATE = 4 * MiB

OPTS = lazy.options(lambda cfg: [
    cfg.ListOpt("nfs_shares", default=[],
                help="NFS shares as host:/export entries; each is a pool."),
    cfg.StrOpt("nfs_shares_config",
               help="File of 'host:/export [mount options]' lines (Cinder's format), read in "
               "addition to nfs_shares."),
    cfg.StrOpt("nfs_access", default="auto", choices=["auto", "mount", "qemu"],
               help="How shares are reached: 'mount' (kernel client via os-brick), 'qemu' "
               "(qemu nfs:// + userspace libnfs; no kernel client needed), 'auto'."),
    cfg.StrOpt("nfs_mount_point_base", default="$state_path/mnt",
               help="Where shares are mounted (mount access)."),
    cfg.StrOpt("nfs_mount_options", help="Mount options for every share (mount access)."),
    cfg.BoolOpt("nfs_qcow2_volumes", default=False,
                help="Create volumes as qcow2 files (else sparse raw files)."),
    cfg.IntOpt("nfs_operation_timeout", default=60, min=1,
               help="Seconds a call to the share may take before it fails (and the resource "
               "goes to ERROR with a fault) instead of waiting for a server that stopped "
               "answering: each userspace NFS call and each qemu-img command that copies no "
               "data. A command that copies data gets this plus 1 s per "
               f"{_MIN_COPY_RATE // MiB} MiB it copies."),
])

_SHARE = re.compile(r"^(?P<host>[^:\s]+):(?P<path>/\S*)$")
#: Names of files that may be managed: no path, no hidden file, nothing qemu's nfs:// URL
#: parsing or a reader would take for syntax (a file named otherwise is renamed on the share
#: by its owner first)
_MANAGEABLE_NAME = re.compile(r"[A-Za-z0-9_+-][A-Za-z0-9_.+-]{0,254}")
#: The driver's own files that are no volume: snapshot overlays, chain files, temporaries
_OWN_FILE = re.compile(r"volume-[0-9a-f-]{36}\..+|.*\.(info|tmp)|tmp-.*")


def _kernel_has_nfs() -> bool:
    try:
        with open("/proc/filesystems") as handle:
            return any(line.split()[-1] in ("nfs", "nfs4") for line in handle if line.strip())
    except OSError:
        return False


class ShareAccess(Protocol):
    """What the driver needs from a share, whichever way it is reached."""

    def url(self, name: str) -> str: ...
    def backing_ref(self, name: str) -> str: ...
    def listdir(self) -> list[str]: ...
    def exists(self, name: str) -> bool: ...
    def unlink(self, name: str) -> bool: ...
    def read_text(self, name: str) -> str: ...
    def write_text(self, name: str, text: str) -> None: ...
    def capacity(self) -> tuple[int, int]: ...
    def sizes(self, name: str) -> tuple[int, int]: ...
    def rename(self, old: str, new: str) -> None: ...


class QemuShare:
    """Userspace access: qemu's nfs:// URLs for data, libnfs for files and capacity."""

    def __init__(self, share: str, timeout: float) -> None:
        from stackcore_drivers.volume.libnfs import NfsShare

        match = _SHARE.match(share)
        assert match is not None
        self.host, self.path = match.group("host"), match.group("path").rstrip("/") or "/"
        self.client = NfsShare(self.host, self.path, timeout)
        self.client.connect()

    def url(self, name: str) -> str:
        return f"nfs://{self.host}{self.path.rstrip('/')}/{name}"

    def backing_ref(self, name: str) -> str:
        # qemu's nfs driver cannot resolve a relative backing name two levels down a chain
        # (it mounts the wrong path), so chains reached through qemu record full URLs; such
        # chains are only ever opened by qemu (libvirt's protocol='nfs' disks are qemu too).
        return self.url(name)

    def listdir(self) -> list[str]:
        return self.client.listdir()

    def exists(self, name: str) -> bool:
        return self.client.exists(name)

    def unlink(self, name: str) -> bool:
        return self.client.unlink(name)

    def read_text(self, name: str) -> str:
        return self.client.read_bytes(name).decode()

    def write_text(self, name: str, text: str) -> None:
        self.client.write_bytes(name, text.encode())

    def capacity(self) -> tuple[int, int]:
        return self.client.statvfs()

    def sizes(self, name: str) -> tuple[int, int]:
        return self.client.stat(name)

    def rename(self, old: str, new: str) -> None:
        self.client.rename(old, new)


class MountedShare:
    """Kernel access: the share mounted with os-brick's RemoteFsClient; local file calls."""

    def __init__(self, share: str, base: str, options: str | None) -> None:
        try:
            from os_brick.remotefs import remotefs
        except ImportError as err:
            raise exception.ConfigError("nfs_access = mount needs os-brick (pip install "
                                        "stackcore-drivers[nfs])") from err
        client = remotefs.RemoteFsClient("nfs", root_helper=None, execute=_brick_execute,
                                         nfs_mount_point_base=base,
                                         nfs_mount_options=options)
        client.mount(share)
        self.root = client.get_mount_point(share)

    def _p(self, name: str) -> str:
        return os.path.join(self.root, name)

    def url(self, name: str) -> str:
        return self._p(name)

    def backing_ref(self, name: str) -> str:
        return name  # relative: valid on every host whatever its mount point (Cinder's way)

    def listdir(self) -> list[str]:
        return sorted(os.listdir(self.root))

    def exists(self, name: str) -> bool:
        return os.path.exists(self._p(name))

    def unlink(self, name: str) -> bool:
        try:
            os.unlink(self._p(name))
        except FileNotFoundError:
            return False
        return True

    def read_text(self, name: str) -> str:
        with open(self._p(name)) as handle:
            return handle.read()

    def write_text(self, name: str, text: str) -> None:
        tmp = self._p(name + ".tmp")
        with open(tmp, "w") as handle:
            handle.write(text)
        os.replace(tmp, self._p(name))

    def capacity(self) -> tuple[int, int]:
        st = os.statvfs(self.root)
        return st.f_blocks * st.f_frsize, st.f_bavail * st.f_frsize

    def sizes(self, name: str) -> tuple[int, int]:
        st = os.stat(self._p(name))
        return st.st_size, st.st_blocks * 512

    def rename(self, old: str, new: str) -> None:
        os.rename(self._p(old), self._p(new))


def _brick_execute(*cmd: str, **kwargs: Any) -> tuple[str, str]:
    return execute(*cmd)


class NfsDriver(VolumeDriver):
    """Volumes as files on NFS shares (qemu-img), Cinder's snapshot chain and info file."""

    VERSION = "1.0.0"
    # Backend libraries, imported on first use; the loader checks they are installed.
    REQUIRES: ClassVar[Mapping[str, str]] = {
        "oslo_concurrency": "pip install 'stackcore-drivers[nfs]'",
    }
    VENDOR_NAME = "Open Source"
    STORAGE_PROTOCOL = "NFS"
    capabilities: ClassVar[Mapping[str, bool]] = {
        "thin_provisioning": True,
        "thick_provisioning": False,
        "multiattach": False,
        # Cinder refuses it (bug #1870367: Nova's qemu holds the file on a mount, locked); here
        # a hypervisor opens the file through QEMU's libnfs (connection_info export/name), which
        # holds no lock, so the file grows under a running guest - the conformance kit checks
        # exactly that, with a qemu process holding the volume open.
        "online_extend": True,
        "zero_on_delete": False,  # sparse files: a new file reads zeros, nothing to wipe
        # a raw or qcow2 file of the share without backing file, renamed volume-<id>
        "manage_existing": True,
    }
    FAULT_POINTS: ClassVar[Mapping[str, tuple[str, ...]]] = {
        "create_volume": ("create:after_file",),
        "create_cloned_volume": ("clone:after_create",),
        "create_volume_from_snapshot": ("from_snapshot:after_create",),
        "create_snapshot": ("snapshot:after_overlay",),
        "copy_image_to_volume": ("image_to_volume:before_convert",),
        "copy_volume_to_image": ("volume_to_image:after_convert",),
    }

    def __init__(self, conf: cfg.ConfigOpts, backend: str, host: str) -> None:
        super().__init__(conf, backend, host)
        self._shares: dict[str, ShareAccess] = {}
        self._options: dict[str, str | None] = {}
        self._lock = threading.Lock()

    @classmethod
    def get_driver_options(cls) -> list[cfg.Opt]:
        return list(OPTS)

    # --- shares --------------------------------------------------------------------------

    def _configured_shares(self) -> dict[str, str | None]:
        conf = self.configuration
        shares: dict[str, str | None] = {s: conf.nfs_mount_options for s in conf.nfs_shares}
        if conf.nfs_shares_config:
            try:
                with open(conf.nfs_shares_config) as handle:
                    lines = handle.read().splitlines()
            except OSError as err:
                raise exception.ConfigError(
                    f"[{self.backend}] nfs_shares_config {conf.nfs_shares_config!r}: {err}",
                    section=self.backend, option="nfs_shares_config") from err
            for line in lines:
                line = line.strip()
                if not line or line.startswith("#"):
                    continue
                share, _, options = line.replace("\\040", " ").partition(" ")
                shares[share] = options.strip() or conf.nfs_mount_options
        for share in shares:
            if not _SHARE.match(share):
                raise exception.ConfigError(
                    f"[{self.backend}] NFS share {share!r} is not host:/export",
                    section=self.backend, option="nfs_shares")
        if not shares:
            raise exception.ConfigError(f"[{self.backend}] no NFS share configured "
                                        "(nfs_shares or nfs_shares_config)",
                                        section=self.backend, option="nfs_shares")
        return shares

    def _access_mode(self) -> str:
        mode = str(self.configuration.nfs_access)
        if mode == "auto":
            return "mount" if _kernel_has_nfs() else "qemu"
        return mode

    def _share(self, share: str) -> ShareAccess:
        with self._lock:
            found = self._shares.get(share)
            if found is None:
                if share not in self._options:
                    raise exception.DriverError(f"share {share!r} is not configured for "
                                                f"backend {self.backend}")
                found = self._connect(share)
                self._shares[share] = found
            return found

    def _connect(self, share: str) -> ShareAccess:
        if self._access_mode() == "mount":
            base = os.path.join(self.configuration.nfs_mount_point_base)
            return MountedShare(share, base, self._options[share])
        return QemuShare(share, self.configuration.nfs_operation_timeout)

    def _share_of(self, volume: Volume) -> ShareAccess:
        share = volume.provider_location or volume.pool
        if share is None:
            share = sorted(self._options)[0]
        return self._share(share)

    # --- qemu-img ------------------------------------------------------------------------

    def _qemu_img(self, *args: str, copies: int = 0) -> str:
        """Run ``qemu-img args``, bounded (``nfs_operation_timeout``, plus time for the
        ``copies`` bytes a data copy moves) so a server that stops answering fails the call
        instead of holding it for ever."""
        timeout = self.configuration.nfs_operation_timeout + copies // _MIN_COPY_RATE
        out, _ = execute("qemu-img", *args, timeout=timeout)
        return out

    def _info(self, share: ShareAccess, name: str, volume: Volume) -> dict[str, Any]:
        """``qemu-img info`` of a file of ``volume``'s chain, refusing anything unsafe."""
        info: dict[str, Any] = json.loads(self._qemu_img(
            "info", "--output=json", "--force-share", share.url(name)))
        if info.get("format") not in ("raw", "qcow2"):
            raise exception.DriverError(f"{name} has unexpected format {info.get('format')!r}")
        specific = info.get("format-specific", {}).get("data", {})
        if specific.get("data-file"):
            raise exception.DriverError(f"{name} refers to an external data file; refused")
        backing = info.get("backing-filename")
        if backing is not None and not re.fullmatch(
            rf"{re.escape(volume.name)}(\.[0-9a-f-]{{36}})?", os.path.basename(backing)
        ):
            raise exception.DriverError(f"{name} has a foreign backing file; refused")
        return info

    # --- info file (snapshot chain) --------------------------------------------------------

    @staticmethod
    def _info_name(volume: Volume) -> str:
        return f"{volume.name}.info"

    def _chain(self, share: ShareAccess, volume: Volume) -> dict[str, str]:
        try:
            data: dict[str, str] = json.loads(share.read_text(self._info_name(volume)))
            return data
        except FileNotFoundError:
            return {"active": volume.name}

    def _save_chain(self, share: ShareAccess, volume: Volume, chain: dict[str, str]) -> None:
        if set(chain) == {"active"} and chain["active"] == volume.name:
            share.unlink(self._info_name(volume))
            return
        share.write_text(self._info_name(volume), json.dumps(chain, indent=1, sort_keys=True))

    def _active(self, share: ShareAccess, volume: Volume) -> str:
        return self._chain(share, volume)["active"]

    def _format(self, share: ShareAccess, volume: Volume, name: str) -> str:
        return str(self._info(share, name, volume)["format"])

    # --- set-up and stats ------------------------------------------------------------------

    def do_setup(self) -> None:
        self._options = self._configured_shares()

    def check_for_setup_error(self) -> None:
        for share in self._options:
            access = self._share(share)
            access.capacity()

    def get_volume_stats(self, refresh: bool = False) -> dict[str, Any]:
        conf = self.configuration
        mosr = conf.max_over_subscription_ratio or self.conf.volume.max_over_subscription_ratio
        common = {
            "reserved_percentage": conf.reserved_percentage,
            "thin_provisioning_support": True,
            "thick_provisioning_support": False,
            "max_over_subscription_ratio": mosr if mosr == "auto" else float(mosr),
            "multiattach": False,
            "online_extend_support": True,
            "QoS_support": False,
        }
        pools = []
        totals = [0.0, 0.0, 0.0]
        for share in sorted(self._options):
            access = self._share(share)
            total, free = access.capacity()
            provisioned = 0
            for name in access.listdir():
                if name.startswith("volume-") and not name.endswith((".info", ".tmp")):
                    provisioned += access.sizes(name)[0]
            figures = [round(total / GiB, 2), round(free / GiB, 2), round(provisioned / GiB, 2)]
            totals = [a + b for a, b in zip(totals, figures, strict=True)]
            pools.append({"pool_name": share, "total_capacity_gb": figures[0],
                          "free_capacity_gb": figures[1], "provisioned_capacity_gb": figures[2],
                          **common})
        return {
            "volume_backend_name": self.backend_name,
            "vendor_name": self.VENDOR_NAME,
            "driver_version": self.VERSION,
            "storage_protocol": self.STORAGE_PROTOCOL,
            "total_capacity_gb": round(totals[0], 2),
            "free_capacity_gb": round(totals[1], 2),
            "provisioned_capacity_gb": round(totals[2], 2),
            "backend_state": "up",
            "pools": pools,
            **common,
        }

    def list_backend_objects(self) -> list[str]:
        names: list[str] = []
        for share in sorted(self._options):
            names.extend(n for n in self._share(share).listdir()
                         if n.startswith(("volume-", "tmp-")))
        return sorted(names)

    # --- volumes ---------------------------------------------------------------------------

    def _new_file(self, share: ShareAccess, volume: Volume, size_gb: int) -> str:
        fmt = "qcow2" if self.configuration.nfs_qcow2_volumes else "raw"
        if share.exists(volume.name):
            raise exception.Conflict(f"{volume.name} already exists on the share")
        self._qemu_img("create", "-f", fmt, share.url(volume.name), f"{size_gb}G")
        return fmt

    def _share_name(self, volume: Volume) -> str:
        return volume.provider_location or volume.pool or sorted(self._options)[0]

    def create_volume(self, volume: Volume) -> ModelUpdate:
        share_name = self._share_name(volume)
        share = self._share(share_name)
        fmt = self._new_file(share, volume, volume.size)
        self.checkpoint("create:after_file")
        return {"provider_location": share_name, "driver_data": {"format": fmt}}

    def delete_volume(self, volume: Volume) -> None:
        share = self._share_of(volume)
        prefix = volume.name
        for name in share.listdir():
            if name == prefix or name.startswith(prefix + "."):
                share.unlink(name)

    def _copy_into_new(self, share: ShareAccess, volume: Volume, source: str,
                       source_fmt: str, size_gb: int, point: str) -> ModelUpdate:
        fmt = self._new_file(share, volume, size_gb)
        self.checkpoint(point)
        # -n: the target exists at the (possibly larger) size; qemu-img keeps it sparse.
        self._qemu_img("convert", "-n", "-f", source_fmt, "-O", fmt, source,
                       share.url(volume.name), copies=size_gb * GiB)
        return {"provider_location": self._share_name(volume), "driver_data": {"format": fmt}}

    def create_cloned_volume(self, volume: Volume, src_volume: Volume) -> ModelUpdate:
        share = self._share_of(src_volume)
        active = self._active(share, src_volume)
        fmt = self._format(share, src_volume, active)
        target = dataclasses.replace(volume, provider_location=self._share_name(src_volume))
        return self._copy_into_new(share, target, share.url(active), fmt,
                                   max(volume.size, src_volume.size), "clone:after_create")

    def create_volume_from_snapshot(self, volume: Volume, snapshot: Snapshot) -> ModelUpdate:
        share = self._share_of(snapshot.volume)
        chain = self._chain(share, snapshot.volume)
        overlay = chain.get(snapshot.id)
        if overlay is None:
            raise exception.NotFound("snapshot", snapshot.id,
                                     f"{snapshot.name} is not in the chain of "
                                     f"{snapshot.volume_name}")
        backing = self._info(share, overlay, snapshot.volume).get("backing-filename")
        if backing is None:
            raise exception.DriverError(f"{overlay} has no backing file")
        base = os.path.basename(backing)
        fmt = self._format(share, snapshot.volume, base)
        target = dataclasses.replace(volume,
                                     provider_location=self._share_name(snapshot.volume))
        return self._copy_into_new(share, target, share.url(base), fmt,
                                   max(volume.size, snapshot.volume_size),
                                   "from_snapshot:after_create")

    def extend_volume(self, volume: Volume, new_size: int) -> None:
        """``qemu-img resize`` of the volume's active file. Attached, only a raw one: growing
        a raw file under a running QEMU is safe (QEMU learns the size from the hypervisor's
        block resize), but a qcow2 image's header and L1 table are cached by the QEMU that
        has it open, and rewriting them behind it corrupts the image. So an attached volume
        whose active file is qcow2 (``nfs_qcow2_volumes``, or any volume with a snapshot)
        is refused before anything changes (Cinder's NFS driver refuses every attached
        extend, bug 1870367)."""
        share = self._share_of(volume)
        active = self._active(share, volume)
        fmt = self._format(share, volume, active)
        if volume.attached and fmt != "raw":
            raise exception.InvalidState(
                f"volume {volume.id} is attached and its active file {active} is {fmt}: "
                "growing it while a hypervisor has it open would corrupt it; detach it, "
                "extend it, attach it again", state="in-use")
        self._qemu_img("resize", "-f", fmt, share.url(active), f"{new_size}G")
        info = self._info(share, active, volume)
        if info["virtual-size"] != new_size * GiB:
            raise exception.DriverError(f"{active} is {info['virtual-size']} bytes after "
                                        f"resize, expected {new_size * GiB}")

    # --- manage / unmanage -----------------------------------------------------------------

    def _managed_name(self, existing_ref: Mapping[str, Any]) -> str:
        """The file ``existing_ref`` names, if it is a name this driver may adopt."""
        name = source_name(existing_ref)
        if not _MANAGEABLE_NAME.fullmatch(name) or _OWN_FILE.fullmatch(name):
            raise exception.Invalid(
                "existing_ref", f"{name!r} cannot be managed: a file directly on the share "
                "named with letters, digits and _.+- only (no '/', not starting with '.'), "
                "and none of this driver's snapshot overlays, .info or temporary files",
                existing_ref)
        return name

    def _foreign_info(self, share: ShareAccess, name: str) -> dict[str, Any]:
        """``qemu-img info`` of a file to adopt: raw or qcow2, standing alone (a backing file
        or an external data file would make the volume read other files: refused, the
        CVE-2024-32498 lesson); NotFound when the share has no such file."""
        if not share.exists(name):
            raise exception.NotFound("backend volume", name, f"the share has no file {name}")
        info: dict[str, Any] = json.loads(self._qemu_img(
            "info", "--output=json", "--force-share", share.url(name)))
        ref = {SOURCE_NAME: name}
        if info.get("format") not in ("raw", "qcow2"):
            raise exception.Invalid("existing_ref", f"{name} is {info.get('format')!r}, not "
                                    "raw or qcow2", ref)
        specific = info.get("format-specific", {}).get("data", {})
        if info.get("backing-filename") or specific.get("data-file"):
            raise exception.Invalid("existing_ref", f"{name} depends on another file (backing "
                                    "or data file); only a file standing alone is managed",
                                    ref)
        if share.exists(f"{name}.info"):
            raise exception.Invalid("existing_ref", f"{name} has snapshots ({name}.info)", ref)
        return info

    def manage_existing_get_size(self, volume: Volume, existing_ref: Mapping[str, Any]) -> int:
        name = self._managed_name(existing_ref)
        info = self._foreign_info(self._share(self._share_name(volume)), name)
        return math.ceil(int(info["virtual-size"]) / GiB)

    def manage_existing(self, volume: Volume, existing_ref: Mapping[str, Any]) -> ModelUpdate:
        """Rename the file to ``volume-<id>`` on the share of the volume's pool, then grow it
        to the volume's (rounded-up) size; a failed grow renames it back."""
        name = self._managed_name(existing_ref)
        share_name = self._share_name(volume)
        share = self._share(share_name)
        info = self._foreign_info(share, name)
        if share.exists(volume.name):
            raise exception.Conflict(f"{volume.name} already exists on {share_name}")
        share.rename(name, volume.name)
        try:
            if int(info["virtual-size"]) < volume.size_bytes:
                self._qemu_img("resize", "-f", info["format"], share.url(volume.name),
                               f"{volume.size}G")
        except BaseException:
            share.rename(volume.name, name)  # left as it was found
            raise
        return {"provider_location": share_name, "driver_data": {"format": info["format"]}}

    def unmanage(self, volume: Volume) -> None:
        """The volume's data stays in one file named ``volume-<id>``: a volume whose
        snapshots were deleted may still have its data in an overlay (``volume-<id>.<snapshot
        id>``, standing alone after the deletes' rebases), which is renamed back and the
        chain file removed, so that the file is manageable as it is."""
        share = self._share_of(volume)
        chain = self._chain(share, volume)
        if set(chain) != {"active"}:
            raise exception.InvalidState(f"volume {volume.id} has snapshots on the share")
        active = chain["active"]
        if active == volume.name:
            return
        if self._backing_of(share, volume, active) is not None:
            raise exception.DriverError(f"{active} still has a backing file; not unmanaged")
        share.rename(active, volume.name)
        share.unlink(self._info_name(volume))

    def list_manageable_volumes(self) -> list[dict[str, Any]]:
        found = []
        for share_name in sorted(self._options):
            share = self._share(share_name)
            for name in share.listdir():
                if name.startswith(".") or _OWN_FILE.fullmatch(name):
                    continue  # hidden, or the driver's own files of a volume
                found.append(self._manageable_entry(share, share_name, name))
        return sorted(found, key=lambda e: (e["reference"][SOURCE_NAME],
                                            e["extra_info"]["share"]))

    def _manageable_entry(self, share: ShareAccess, share_name: str,
                          name: str) -> dict[str, Any]:
        reason: str | None = None
        size = 0
        try:
            self._managed_name({SOURCE_NAME: name})
            info = self._foreign_info(share, name)
            size = math.ceil(int(info["virtual-size"]) / GiB)
        except (exception.Invalid, exception.DriverError) as err:
            reason = str(err)
        except exception.NotFound:
            reason = "gone while listed"
        return {"reference": {SOURCE_NAME: name}, "size": size,
                "safe_to_manage": reason is None, "reason_not_safe": reason,
                "extra_info": {"share": share_name}}

    # --- snapshots -------------------------------------------------------------------------

    def create_snapshot(self, snapshot: Snapshot) -> ModelUpdate:
        volume = snapshot.volume
        share = self._share_of(volume)
        chain = self._chain(share, volume)
        active = chain["active"]
        fmt = self._format(share, volume, active)
        overlay = f"{volume.name}.{snapshot.id}"
        self._qemu_img("create", "-f", "qcow2", "-b", share.backing_ref(active), "-F", fmt,
                       share.url(overlay))
        self.checkpoint("snapshot:after_overlay")
        chain[snapshot.id] = overlay
        chain["active"] = overlay
        self._save_chain(share, volume, chain)
        return {"provider_location": self._share_name(volume)}

    def delete_snapshot(self, snapshot: Snapshot) -> None:
        """Offline deletion: fold the snapshot's data out of the chain with safe
        ``qemu-img rebase`` (which only opens the file it rewrites read-write - qemu's nfs
        driver cannot reopen a backing file read-write, so ``qemu-img commit`` is out):

        * overlay O of the snapshot is the active file, on base B: rebase O onto B's own
          backing (B's data is copied into O), then B is removed and O stays active;
        * a newer overlay H sits on O: rebase H onto B (O's data is copied into H), then O
          is removed.
        """
        volume = snapshot.volume
        share = self._share_of(volume)
        chain = self._chain(share, volume)
        overlay = chain.get(snapshot.id)
        if overlay is None:
            # Never recorded (failed create): remove a stray overlay file if one was made.
            share.unlink(f"{volume.name}.{snapshot.id}")
            return
        if not share.exists(overlay):
            del chain[snapshot.id]
            self._save_chain(share, volume, chain)
            return
        base = self._backing_of(share, volume, overlay)
        if base is None:
            raise exception.DriverError(f"{overlay} has no backing file")
        higher = [n for n in set(chain.values()) if n != overlay
                  and self._backing_of(share, volume, n) == overlay]
        if chain["active"] == overlay or not higher:
            below = self._backing_of(share, volume, base)
            self._rebase(share, volume, overlay, below)
            for key, name in list(chain.items()):
                if name == base:
                    chain[key] = overlay
            del chain[snapshot.id]
            self._save_chain(share, volume, chain)  # the info file no longer needs the base
            share.unlink(base)
            return
        for name in higher:
            self._rebase(share, volume, name, base)
        del chain[snapshot.id]
        self._save_chain(share, volume, chain)
        share.unlink(overlay)

    def _rebase(self, share: ShareAccess, volume: Volume, name: str,
                new_backing: str | None) -> None:
        """Safe rebase of ``name`` onto ``new_backing`` (None: no backing, all data in)."""
        args = ["rebase", "-f", "qcow2"]
        if new_backing is None:
            args += ["-b", ""]
        else:
            args += ["-b", share.backing_ref(new_backing), "-F",
                     self._format(share, volume, new_backing)]
        self._qemu_img(*args, share.url(name), copies=volume.size * GiB)

    def _backing_of(self, share: ShareAccess, volume: Volume, name: str) -> str | None:
        if not share.exists(name):
            return None
        backing = self._info(share, name, volume).get("backing-filename")
        return os.path.basename(backing) if backing else None

    # --- attach / detach -------------------------------------------------------------------

    def create_export(self, volume: Volume, connector: Mapping[str, Any]) -> ModelUpdate:
        return None  # the share itself is the export

    def ensure_export(self, volume: Volume) -> ModelUpdate:
        self._share_of(volume).capacity()  # (re)connects / re-mounts the share
        return None

    def remove_export(self, volume: Volume) -> None:
        return None

    def initialize_connection(
        self, volume: Volume, connector: Mapping[str, Any]
    ) -> dict[str, Any]:
        share_name = self._share_name(volume)
        share = self._share(share_name)
        active = self._active(share, volume)
        info = self._info(share, active, volume)
        if info["virtual-size"] > volume.size * GiB:
            raise exception.DriverError(f"{active} is larger than its volume; refused")
        return {
            "driver_volume_type": "nfs",
            "data": {"export": share_name, "name": active,
                     "options": self._options.get(share_name), "format": info["format"]},
            "mount_point_base": str(self.configuration.nfs_mount_point_base),
        }

    def terminate_connection(
        self, volume: Volume, connector: Mapping[str, Any] | None
    ) -> None:
        return None  # no per-host access control on a share

    # --- images ----------------------------------------------------------------------------

    def copy_image_to_volume(self, volume: Volume, image: ImageFile) -> None:
        share = self._share_of(volume)
        active = self._active(share, volume)
        fmt = self._format(share, volume, active)
        self.checkpoint("image_to_volume:before_convert")
        self._qemu_img("convert", "-n", "-f", image.disk_format, "-O", fmt, image.path,
                       share.url(active), copies=volume.size * GiB)

    def copy_volume_to_image(self, volume: Volume, image: ImageFile) -> None:
        share = self._share_of(volume)
        active = self._active(share, volume)
        fmt = self._format(share, volume, active)
        try:
            self._qemu_img("convert", "-f", fmt, "-O", image.disk_format, share.url(active),
                           image.path, copies=volume.size * GiB)
            self.checkpoint("volume_to_image:after_convert")
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(image.path)
            raise


"""The fake volume driver: sparse files in the state directory, for unit tests and the embedded
default.

It is honest rather than hollow: a volume is a sparse file of ``size`` GiB under
``<state_path>/fake-volumes/<backend>/``, a snapshot is a sparse copy, a clone goes through a
temporary snapshot, and the connection_info is os-brick's ``local`` type pointing at the file -
so data written to a volume really is in its clones, and "no data leak" is really checked.
Capacity is what ``fake_total_capacity_gb`` says (``infinite``/``unknown`` allowed, to exercise
the scheduler's keyword rules) minus what the files take.

Failures can be injected with ``fake_fail_on`` (method names) and at the declared
``FAULT_POINTS`` (conformance kit); ``fake_hang_on`` makes a method stop half-way for good, so
that a test can kill the service in the middle of it (SIGKILL, as a crash).
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import shutil
import subprocess
import threading
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, ClassVar

from stackcore import exception, lazy
from stackcore.volume.driver import SOURCE_NAME, ModelUpdate, VolumeDriver, source_name
from stackcore.volume.objects import GiB, ImageFile, Snapshot, Volume

if TYPE_CHECKING:
    from oslo_config import cfg

LOG = logging.getLogger(__name__)

OPTS = lazy.options(lambda cfg: [
    cfg.StrOpt("fake_total_capacity_gb", default="1000",
               regex=r"^(infinite|unknown|[0-9]+(\.[0-9]+)?)$",
               help="Total capacity the fake backend reports: GiB, 'infinite' or 'unknown'."),
    cfg.ListOpt("fake_pools", default=[],
                help="Pool names the fake backend reports (capacity split evenly). Empty: one "
                "pool named after the backend."),
    cfg.ListOpt("fake_fail_on", default=[],
                help="Driver methods that raise DriverError (failure injection for tests)."),
    cfg.ListOpt("fake_hang_on", default=[],
                help="Driver methods that stop half-way and never return (for tests that kill "
                "the service in the middle of one): the method does part of its work, writes "
                "the file hung-<method> in the backend's directory, then waits for the end of "
                "the process."),
    cfg.BoolOpt("fake_online_extend", default=True,
                help="Whether the fake declares online extend in its stats."),
])

_QCOW2_MAGIC = b"QFI\xfb"
_CHUNK = 1024 * 1024


def sparse_copy(src: str, dst: str, length: int | None = None) -> None:
    """Copy the data extents of ``src`` into ``dst`` (which keeps its own size), skipping
    holes, so copying a mostly empty multi-GiB file costs what its data costs."""
    with open(src, "rb") as fin, open(dst, "r+b") as fout:
        end = os.fstat(fin.fileno()).st_size if length is None else length
        offset = 0
        while offset < end:
            try:
                offset = os.lseek(fin.fileno(), offset, os.SEEK_DATA)
            except OSError:
                break  # no more data
            if offset >= end:
                break
            hole = min(os.lseek(fin.fileno(), offset, os.SEEK_HOLE), end)
            fin.seek(offset)
            fout.seek(offset)
            remaining = hole - offset
            while remaining:
                chunk = fin.read(min(_CHUNK, remaining))
                if not chunk:
                    break
                fout.write(chunk)
                remaining -= len(chunk)
            offset = hole


def _qemu_img(args: list[str]) -> None:
    """qcow2 conversions need qemu-img (raw needs nothing): a clear error without it."""
    binary = shutil.which("qemu-img")
    if binary is None:
        raise exception.DriverError("qcow2 images need qemu-img (package qemu-utils)")
    result = subprocess.run([binary, *args], capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise exception.DriverError(f"qemu-img {args[0]} failed: {result.stderr.strip()}")


class FakeVolumeDriver(VolumeDriver):
    """Sparse files as volumes; every minimum feature and the optional capabilities it
    declares implemented (manage: a file of the backend's directory, renamed)."""

    VERSION = "1.0.0"
    VENDOR_NAME = "stackcore"
    STORAGE_PROTOCOL = "file"
    capabilities: ClassVar[Mapping[str, bool]] = {
        "thin_provisioning": True,
        "thick_provisioning": False,
        "multiattach": True,
        "online_extend": True,
        "zero_on_delete": False,
        "manage_existing": True,
    }
    #: prefixes of the driver's own objects that are not volumes (never adopted)
    _NOT_VOLUMES = ("snapshot-", "clone-snap-", "hung-", "exports.json")
    FAULT_POINTS: ClassVar[Mapping[str, tuple[str, ...]]] = {
        "create_cloned_volume": ("clone:after_temp_snapshot", "clone:after_copy"),
        "create_volume_from_snapshot": ("from_snapshot:after_create",),
        "copy_image_to_volume": ("image_to_volume:after_open",),
        "copy_volume_to_image": ("volume_to_image:after_create",),
    }

    def __init__(self, conf: cfg.ConfigOpts, backend: str, host: str) -> None:
        super().__init__(conf, backend, host)
        self.root = os.path.join(conf.state_path, "fake-volumes", backend)
        self._lock = threading.Lock()

    @classmethod
    def get_driver_options(cls) -> list[cfg.Opt]:
        return list(OPTS)

    # --- helpers -------------------------------------------------------------------------

    def _maybe_fail(self, method: str) -> None:
        if method in self.configuration.fake_fail_on:
            raise exception.DriverError(f"injected failure in fake {method} on {self.host}")

    def _maybe_hang(self, method: str) -> None:
        if method not in self.configuration.fake_hang_on:
            return
        os.makedirs(self.root, exist_ok=True)
        with open(self._path(f"hung-{method}"), "w", encoding="utf-8") as marker:
            marker.write(f"{os.getpid()}\n")  # the test waits for this, then kills
        LOG.warning("fake %s on %s hangs (fake_hang_on) until the process ends", method,
                    self.host)
        threading.Event().wait()

    def _path(self, name: str) -> str:
        return os.path.join(self.root, name)

    def _exports_path(self) -> str:
        return self._path("exports.json")

    def _exports(self) -> dict[str, list[Any]]:
        try:
            with open(self._exports_path()) as handle:
                data: dict[str, list[Any]] = json.load(handle)
                return data
        except FileNotFoundError:
            return {}

    def _save_exports(self, exports: dict[str, list[Any]]) -> None:
        tmp = self._exports_path() + ".tmp"
        with open(tmp, "w") as handle:
            json.dump(exports, handle, sort_keys=True)
        os.replace(tmp, self._exports_path())

    def _make_file(self, name: str, size_gb: int) -> str:
        path = self._path(name)
        with open(path, "xb") as handle:
            handle.truncate(size_gb * GiB)
        return path

    @staticmethod
    def _remove(path: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)

    def _require(self, name: str) -> str:
        path = self._path(name)
        if not os.path.exists(path):
            raise exception.NotFound("backend volume", name, f"fake backend has no {name}")
        return path

    # --- set-up and stats -----------------------------------------------------------------

    def do_setup(self) -> None:
        self._maybe_fail("do_setup")
        os.makedirs(self.root, exist_ok=True)

    def check_for_setup_error(self) -> None:
        if not os.access(self.root, os.W_OK):
            raise exception.ConfigError(f"fake volume directory {self.root} is not writable")

    def _used_gb(self) -> float:
        used = 0
        for entry in os.scandir(self.root):
            if entry.is_file():
                used += entry.stat().st_blocks * 512
        return round(used / GiB, 2)

    def _provisioned_gb(self) -> float:
        total = sum(
            entry.stat().st_size for entry in os.scandir(self.root)
            if entry.is_file() and entry.name.startswith("volume-")
        )
        return round(total / GiB, 2)

    def get_volume_stats(self, refresh: bool = False) -> dict[str, Any]:
        self._maybe_fail("get_volume_stats")
        conf = self.configuration
        raw_total = conf.fake_total_capacity_gb
        total: float | str
        free: float | str
        if raw_total in ("infinite", "unknown"):
            total, free = raw_total, raw_total
        else:
            total = float(raw_total)
            free = max(round(total - self._used_gb(), 2), 0.0)
        mosr = conf.max_over_subscription_ratio or self.conf.volume.max_over_subscription_ratio
        common = {
            "reserved_percentage": conf.reserved_percentage,
            "thin_provisioning_support": True,
            "thick_provisioning_support": False,
            "max_over_subscription_ratio": mosr if mosr == "auto" else float(mosr),
            "multiattach": True,
            "online_extend_support": bool(conf.fake_online_extend),
        }
        provisioned = self._provisioned_gb()
        names = list(conf.fake_pools) or [self.backend_name]
        share = len(names)
        pools = [
            {
                "pool_name": name,
                "total_capacity_gb": total if isinstance(total, str) else round(total / share, 2),
                "free_capacity_gb": free if isinstance(free, str) else round(free / share, 2),
                "provisioned_capacity_gb": round(provisioned / share, 2),
                **common,
            }
            for name in names
        ]
        return {
            "volume_backend_name": self.backend_name,
            "vendor_name": self.VENDOR_NAME,
            "driver_version": self.VERSION,
            "storage_protocol": self.STORAGE_PROTOCOL,
            "total_capacity_gb": total,
            "free_capacity_gb": free,
            "provisioned_capacity_gb": provisioned,
            "backend_state": "up",
            "pools": pools,
            **common,
        }

    def list_backend_objects(self) -> list[str]:
        names = [e.name for e in os.scandir(self.root) if e.name != "exports.json"]
        names.extend(f"export:{vid}" for vid in self._exports())
        return sorted(names)

    # --- volumes --------------------------------------------------------------------------

    def create_volume(self, volume: Volume) -> ModelUpdate:
        self._maybe_fail("create_volume")
        self._make_file(volume.name, volume.size)
        return {"provider_location": self._path(volume.name)}

    def delete_volume(self, volume: Volume) -> None:
        self._maybe_fail("delete_volume")
        self._remove(self._path(volume.name))

    def create_volume_from_snapshot(self, volume: Volume, snapshot: Snapshot) -> ModelUpdate:
        self._maybe_fail("create_volume_from_snapshot")
        src = self._require(snapshot.name)
        dst = self._make_file(volume.name, max(volume.size, snapshot.volume_size))
        self.checkpoint("from_snapshot:after_create")
        sparse_copy(src, dst)
        return {"provider_location": dst}

    def create_cloned_volume(self, volume: Volume, src_volume: Volume) -> ModelUpdate:
        self._maybe_fail("create_cloned_volume")
        src = self._require(src_volume.name)
        temp = self._make_file(f"clone-snap-{volume.id}", src_volume.size)
        try:
            sparse_copy(src, temp)
            self.checkpoint("clone:after_temp_snapshot")
            dst = self._make_file(volume.name, max(volume.size, src_volume.size))
            sparse_copy(temp, dst)
            self.checkpoint("clone:after_copy")
        finally:
            self._remove(temp)
        return {"provider_location": dst}

    def extend_volume(self, volume: Volume, new_size: int) -> None:
        self._maybe_fail("extend_volume")
        path = self._require(volume.name)
        if os.path.getsize(path) > new_size * GiB:
            raise exception.Invalid("new_size", "cannot shrink a volume", new_size)
        os.truncate(path, new_size * GiB)

    # --- manage / unmanage ----------------------------------------------------------------

    def _manageable(self, existing_ref: Mapping[str, Any]) -> str:
        """The file ``existing_ref`` names (a file of the backend's directory: no path, no
        hidden file, none of the driver's own snapshots or temporary files)."""
        name = source_name(existing_ref)
        if "/" in name or name.startswith(".") or name.startswith(self._NOT_VOLUMES):
            raise exception.Invalid("existing_ref", f"{name!r} is not a volume file of the "
                                    "fake backend (a path, a hidden file or one of its own "
                                    "snapshots or temporary files)", existing_ref)
        path = self._path(name)
        if not os.path.isfile(path) or os.path.islink(path):
            raise exception.NotFound("backend volume", name, f"fake backend has no {name}")
        return name

    def _in_use(self, name: str) -> str | None:
        """Why the file ``name`` is not free to adopt (exported), or None."""
        owner = name.removeprefix("volume-")
        if name.startswith("volume-") and owner in self._exports():
            return f"exported (volume {owner} is attached)"
        return None

    def manage_existing_get_size(self, volume: Volume, existing_ref: Mapping[str, Any]) -> int:
        self._maybe_fail("manage_existing_get_size")
        return math.ceil(os.path.getsize(self._path(self._manageable(existing_ref))) / GiB)

    def manage_existing(self, volume: Volume, existing_ref: Mapping[str, Any]) -> ModelUpdate:
        # checked before anything changes: a refusal or an injected failure leaves the file
        self._maybe_fail("manage_existing")
        name = self._manageable(existing_ref)
        busy = self._in_use(name)
        if busy is not None:
            raise exception.Invalid("existing_ref", f"{name} is {busy}", existing_ref)
        if name == volume.name:
            return {"provider_location": self._path(name)}
        if os.path.exists(self._path(volume.name)):
            raise exception.Conflict(f"{volume.name} already exists on the fake backend")
        os.rename(self._path(name), self._path(volume.name))
        try:
            if os.path.getsize(self._path(volume.name)) < volume.size * GiB:
                os.truncate(self._path(volume.name), volume.size * GiB)  # rounded up
        except BaseException:
            os.rename(self._path(volume.name), self._path(name))  # left as it was found
            raise
        return {"provider_location": self._path(volume.name)}

    def unmanage(self, volume: Volume) -> None:
        self._maybe_fail("unmanage")  # the file stays, under its name

    def list_manageable_volumes(self) -> list[dict[str, Any]]:
        found = []
        for entry in sorted(os.scandir(self.root), key=lambda e: e.name):
            if not entry.is_file(follow_symlinks=False) or entry.name.startswith(".") \
                    or entry.name.startswith("exports.json"):  # its own bookkeeping
                continue
            if entry.name.startswith(self._NOT_VOLUMES):
                reason: str | None = "one of the fake backend's own snapshots or files"
            else:
                reason = self._in_use(entry.name)
            found.append({"reference": {SOURCE_NAME: entry.name},
                          "size": math.ceil(entry.stat().st_size / GiB),
                          "safe_to_manage": reason is None, "reason_not_safe": reason})
        return found

    # --- snapshots ------------------------------------------------------------------------

    def create_snapshot(self, snapshot: Snapshot) -> ModelUpdate:
        self._maybe_fail("create_snapshot")
        src = self._require(snapshot.volume_name)
        dst = self._make_file(snapshot.name, snapshot.volume_size)
        sparse_copy(src, dst)
        return {"provider_location": dst}

    def delete_snapshot(self, snapshot: Snapshot) -> None:
        self._maybe_fail("delete_snapshot")
        self._remove(self._path(snapshot.name))

    # --- attach / detach ------------------------------------------------------------------

    def create_export(self, volume: Volume, connector: Mapping[str, Any]) -> ModelUpdate:
        self._maybe_fail("create_export")
        self._require(volume.name)
        with self._lock:
            exports = self._exports()
            exports.setdefault(volume.id, [])
            self._save_exports(exports)
        return None

    def ensure_export(self, volume: Volume) -> ModelUpdate:
        self._maybe_fail("ensure_export")
        with self._lock:
            exports = self._exports()
            exports.setdefault(volume.id, [])
            self._save_exports(exports)
        return None

    def remove_export(self, volume: Volume) -> None:
        self._maybe_fail("remove_export")
        with self._lock:
            exports = self._exports()
            if exports.pop(volume.id, None) is not None:
                self._save_exports(exports)

    def initialize_connection(
        self, volume: Volume, connector: Mapping[str, Any]
    ) -> dict[str, Any]:
        self._maybe_fail("initialize_connection")
        with self._lock:
            exports = self._exports()
            if volume.id not in exports:
                raise exception.DriverError(f"{volume.name} is not exported")
            host = str(connector.get("host", ""))
            if host not in exports[volume.id]:
                exports[volume.id].append(host)
                self._save_exports(exports)
        return {
            "driver_volume_type": "local",
            "data": {"device_path": self._path(volume.name), "volume_id": volume.id},
        }

    def terminate_connection(
        self, volume: Volume, connector: Mapping[str, Any] | None
    ) -> None:
        self._maybe_fail("terminate_connection")
        with self._lock:
            exports = self._exports()
            if volume.id not in exports:
                return
            if connector is None:
                exports[volume.id] = []
            else:
                host = str(connector.get("host", ""))
                exports[volume.id] = [h for h in exports[volume.id] if h != host]
            self._save_exports(exports)

    def connected_hosts(self, volume: Volume) -> list[str]:
        """Test helper (not in the contract): hosts holding a connection."""
        with self._lock:
            return list(self._exports().get(volume.id, []))

    # --- images ---------------------------------------------------------------------------

    def copy_image_to_volume(self, volume: Volume, image: ImageFile) -> None:
        self._maybe_fail("copy_image_to_volume")
        dst = self._require(volume.name)
        with open(image.path, "rb") as handle:
            is_qcow2 = handle.read(4) == _QCOW2_MAGIC
        if is_qcow2 != (image.disk_format == "qcow2"):
            raise exception.Invalid("image", f"image {image.id} is not {image.disk_format}")
        self.checkpoint("image_to_volume:after_open")
        self._maybe_hang("copy_image_to_volume")  # the volume made, its data not yet written
        if is_qcow2:
            # -n: write into the existing volume file (keeps its size), sparse by default.
            _qemu_img(["convert", "-n", "-f", "qcow2", "-O", "raw", image.path, dst])
            return
        if os.path.getsize(image.path) > os.path.getsize(dst):
            raise exception.Invalid("image", f"image {image.id} is larger than the volume")
        sparse_copy(image.path, dst)

    def copy_volume_to_image(self, volume: Volume, image: ImageFile) -> None:
        self._maybe_fail("copy_volume_to_image")
        src = self._require(volume.name)
        with open(image.path, "xb") as handle:
            handle.truncate(os.path.getsize(src))
        try:
            self.checkpoint("volume_to_image:after_create")
            self._maybe_hang("copy_volume_to_image")  # the image file half made
            if image.disk_format == "qcow2":
                os.unlink(image.path)
                _qemu_img(["convert", "-f", "raw", "-O", "qcow2", src, image.path])
            else:
                sparse_copy(src, image.path)
        except BaseException:
            self._remove(image.path)
            raise


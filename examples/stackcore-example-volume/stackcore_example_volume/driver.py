"""``dirfile``: volumes as sparse files in a directory, exported as local files.

What a third party writes: the contract's methods, honest declarations, checkpoints between
the steps of multi-step operations, and nothing that touches stackcore's database.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import threading
from collections.abc import Mapping
from typing import Any, ClassVar

from oslo_config import cfg

from stackcore import exception
from stackcore.volume import GiB, ImageFile, ModelUpdate, Snapshot, Volume, VolumeDriver

OPTS = [
    cfg.StrOpt("dirfile_directory", default="dirfile",
               help="Directory of the volume files; relative paths are under state_path."),
    cfg.IntOpt("dirfile_capacity_gb", default=100, min=1,
               help="Capacity the backend reports (GiB)."),
]


def _copy(src: str, dst: str) -> None:
    """Copy the data extents of ``src`` into ``dst`` (which keeps its own, possibly larger,
    size), skipping holes: a mostly empty volume copies in no time and stays sparse."""
    with open(src, "rb") as fin, open(dst, "r+b") as fout:
        end, offset = os.fstat(fin.fileno()).st_size, 0
        while offset < end:
            try:
                offset = os.lseek(fin.fileno(), offset, os.SEEK_DATA)
            except OSError:
                return  # only holes left
            stop = os.lseek(fin.fileno(), offset, os.SEEK_HOLE)
            fin.seek(offset)
            fout.seek(offset)
            while offset < stop:
                chunk = fin.read(min(4 * 1024 * 1024, stop - offset))
                fout.write(chunk)
                offset += len(chunk)


def _qemu_img(*args: str) -> None:
    done = subprocess.run(["qemu-img", *args], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise exception.DriverError(f"qemu-img {args[0]} failed: {done.stderr.strip()}")


class DirFileDriver(VolumeDriver):
    VERSION = "1.0.0"
    VENDOR_NAME = "Example"
    STORAGE_PROTOCOL = "file"
    capabilities: ClassVar[Mapping[str, bool]] = {
        "thin_provisioning": True,  # sparse files
        "thick_provisioning": False,
        "multiattach": True,  # a file can be opened by several hosts
        "online_extend": True,  # a raw file grows under its reader
        "zero_on_delete": False,  # deleted files are unlinked, nothing to overwrite
    }
    FAULT_POINTS: ClassVar[Mapping[str, tuple[str, ...]]] = {
        "create_cloned_volume": ("clone:after_create",),
        "create_volume_from_snapshot": ("from_snapshot:after_create",),
        "copy_volume_to_image": ("to_image:after_create",),
    }

    def __init__(self, conf: cfg.ConfigOpts, backend: str, host: str) -> None:
        super().__init__(conf, backend, host)
        directory = self.configuration.dirfile_directory
        self.root = directory if os.path.isabs(directory) else os.path.join(
            conf.state_path, directory, backend)
        self._lock = threading.Lock()

    @classmethod
    def get_driver_options(cls) -> list[cfg.Opt]:
        return list(OPTS)

    # --- files ------------------------------------------------------------------------------

    def _path(self, name: str) -> str:
        return os.path.join(self.root, name)

    def _existing(self, name: str) -> str:
        path = self._path(name)
        if not os.path.isfile(path):
            raise exception.NotFound("volume file", name)
        return path

    def _new(self, name: str, size_gb: int) -> str:
        path = self._path(name)
        with open(path, "xb") as handle:
            handle.truncate(size_gb * GiB)
        return path

    def _remove(self, name: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self._path(name))

    def _hosts(self) -> dict[str, list[str]]:
        try:
            with open(self._path(".connections.json")) as handle:
                hosts: dict[str, list[str]] = json.load(handle)
                return hosts
        except FileNotFoundError:
            return {}

    def _save_hosts(self, hosts: dict[str, list[str]]) -> None:
        with open(self._path(".connections.json.tmp"), "w") as handle:
            json.dump(hosts, handle)
        os.replace(self._path(".connections.json.tmp"), self._path(".connections.json"))

    # --- set-up and stats -----------------------------------------------------------------

    def do_setup(self) -> None:
        os.makedirs(self.root, exist_ok=True)

    def check_for_setup_error(self) -> None:
        if not os.access(self.root, os.W_OK):
            raise exception.ConfigError(f"{self.root} is not writable")

    def get_volume_stats(self, refresh: bool = False) -> dict[str, Any]:
        total = float(self.configuration.dirfile_capacity_gb)
        used = provisioned = 0
        for entry in os.scandir(self.root):
            if entry.is_file() and not entry.name.startswith("."):
                used += entry.stat().st_blocks * 512
                if entry.name.startswith("volume-"):
                    provisioned += entry.stat().st_size
        pool = {
            "pool_name": self.backend_name,
            "total_capacity_gb": total,
            "free_capacity_gb": max(round(total - used / GiB, 2), 0.0),
            "provisioned_capacity_gb": round(provisioned / GiB, 2),
            "reserved_percentage": self.configuration.reserved_percentage,
            "max_over_subscription_ratio": 20.0,
            "thin_provisioning_support": True,
            "thick_provisioning_support": False,
            "multiattach": True,
            "online_extend_support": True,
        }
        return {"volume_backend_name": self.backend_name, "vendor_name": self.VENDOR_NAME,
                "driver_version": self.VERSION, "storage_protocol": self.STORAGE_PROTOCOL,
                **{k: v for k, v in pool.items() if k != "pool_name"}, "pools": [pool]}

    def list_backend_objects(self) -> list[str]:
        names = [e.name for e in os.scandir(self.root) if not e.name.startswith(".")]
        names += [f"export:{vid}" for vid in self._hosts()]
        return sorted(names)

    # --- volumes and snapshots ------------------------------------------------------------

    def create_volume(self, volume: Volume) -> ModelUpdate:
        self._new(volume.name, volume.size)
        return None

    def delete_volume(self, volume: Volume) -> None:
        self._remove(volume.name)

    def create_volume_from_snapshot(self, volume: Volume, snapshot: Snapshot) -> ModelUpdate:
        source = self._existing(snapshot.name)
        target = self._new(volume.name, max(volume.size, snapshot.volume_size))
        self.checkpoint("from_snapshot:after_create")  # the manager deletes the volume
        _copy(source, target)
        return None

    def create_cloned_volume(self, volume: Volume, src_volume: Volume) -> ModelUpdate:
        source = self._existing(src_volume.name)
        target = self._new(volume.name, max(volume.size, src_volume.size))
        self.checkpoint("clone:after_create")
        _copy(source, target)
        return None

    def extend_volume(self, volume: Volume, new_size: int) -> None:
        os.truncate(self._existing(volume.name), new_size * GiB)

    def create_snapshot(self, snapshot: Snapshot) -> ModelUpdate:
        source = self._existing(snapshot.volume_name)
        _copy(source, self._new(snapshot.name, snapshot.volume_size))
        return None

    def delete_snapshot(self, snapshot: Snapshot) -> None:
        self._remove(snapshot.name)

    # --- attach / detach ------------------------------------------------------------------

    def create_export(self, volume: Volume, connector: Mapping[str, Any]) -> ModelUpdate:
        self._existing(volume.name)
        with self._lock:
            hosts = self._hosts()
            hosts.setdefault(volume.id, [])
            self._save_hosts(hosts)
        return None

    def ensure_export(self, volume: Volume) -> ModelUpdate:
        return self.create_export(volume, {})

    def remove_export(self, volume: Volume) -> None:
        with self._lock:
            hosts = self._hosts()
            if hosts.pop(volume.id, None) is not None:
                self._save_hosts(hosts)

    def initialize_connection(self, volume: Volume, connector: Mapping[str, Any]
                              ) -> dict[str, Any]:
        with self._lock:
            hosts = self._hosts()
            if volume.id not in hosts:
                raise exception.DriverError(f"{volume.name} is not exported")
            if connector.get("host") not in hosts[volume.id]:
                hosts[volume.id].append(str(connector.get("host")))
                self._save_hosts(hosts)
        return {"driver_volume_type": "local",
                "data": {"device_path": self._existing(volume.name), "volume_id": volume.id}}

    def terminate_connection(self, volume: Volume, connector: Mapping[str, Any] | None
                             ) -> None:
        with self._lock:
            hosts = self._hosts()
            if volume.id in hosts:
                hosts[volume.id] = [] if connector is None else [
                    h for h in hosts[volume.id] if h != connector.get("host")]
                self._save_hosts(hosts)

    # --- images ---------------------------------------------------------------------------

    def copy_image_to_volume(self, volume: Volume, image: ImageFile) -> None:
        target = self._existing(volume.name)
        _qemu_img("convert", "-n", "-f", image.disk_format, "-O", "raw", image.path, target)

    def copy_volume_to_image(self, volume: Volume, image: ImageFile) -> None:
        source = self._existing(volume.name)
        try:
            _qemu_img("convert", "-f", "raw", "-O", image.disk_format, source, image.path)
            self.checkpoint("to_image:after_create")
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(image.path)  # on failure leave no file
            raise


def list_opts() -> list[tuple[str, list[cfg.Opt]]]:
    return [("backend", OPTS)]



"""The LVM volume driver: thick logical volumes in one volume group, exported over iSCSI by tgt.

Cinder's reference driver, thick flavour: ``lvcreate -L``; snapshots are LVM snapshots the
size of their origin; clones and volumes from snapshots are new LVs filled with ``dd``;
extend is ``lvextend`` (then tgt refreshes the LUN); delete wipes the LV with zeros first
(``volume_clear = zero``) so a new volume never shows old data, and refuses an LV that still
has snapshots. Exports: :class:`~stackcore_drivers.volume.tgt.TgtTarget` (one target per
volume, LUN 1, generated CHAP, Cinder-style IQN). Stats come from ``vgs``.

Without device-mapper in the kernel LVM works on metadata only (no LV device nodes): the
driver then creates, extends and removes LVs with activation off, and reports snapshots,
clones, attach, data and image copy unavailable (:meth:`LvmDriver.unavailable_features`)
instead of failing obscurely.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, ClassVar

from stackcore import exception, lazy
from stackcore.volume import ImageFile, ModelUpdate, Snapshot, Volume, VolumeDriver
from stackcore_drivers.volume.processes import execute
from stackcore_drivers.volume.tgt import TgtTarget

if TYPE_CHECKING:
    from oslo_config import cfg



OPTS = lazy.options(lambda cfg: [
    cfg.StrOpt("volume_group", default="stackcore-volumes",
               help="Volume group holding the volumes."),
    cfg.StrOpt("volume_clear", default="zero", choices=["zero", "none"],
               help="Wipe a volume's data when it is deleted ('none' leaks data to the next "
               "volume on the same extents: only for backends that never reuse them)."),
    cfg.IntOpt("volume_clear_size", default=0, min=0,
               help="MiB wiped at the start of a deleted volume; 0 = all of it."),
    cfg.StrOpt("target_prefix", default="iqn.2010-10.org.openstack:",
               help="Prefix of the per-volume iSCSI target IQNs."),
    cfg.StrOpt("target_ip_address", default="127.0.0.1",
               help="IP address initiators reach the tgt portal on."),
    cfg.PortOpt("target_port", default=3260, help="Port of the tgt portal."),
    cfg.StrOpt("volumes_dir", default="$state_path/volumes",
               help="Where target definitions (with their CHAP secrets, mode 0600) are kept."),
    cfg.BoolOpt("iscsi_write_cache", default=True, help="tgt write cache on the LUNs."),
])

_NO_DM = "needs device-mapper, which this kernel lacks (LVM runs metadata-only here)"


def has_device_mapper() -> bool:
    """Whether the running kernel offers device-mapper (a block major in /proc/devices)."""
    try:
        with open("/proc/devices") as handle:
            return any(line.split()[-1:] == ["device-mapper"] for line in handle)
    except OSError:
        return False


class LvmDriver(VolumeDriver):
    """Thick LVs on one VG; iSCSI exports through tgt with per-volume targets and CHAP."""

    VERSION = "1.0.0"
    # Backend libraries, imported on first use; the loader checks they are installed.
    REQUIRES: ClassVar[Mapping[str, str]] = {
        "oslo_concurrency": "pip install 'stackcore-drivers[lvm]'",
    }
    VENDOR_NAME = "Open Source"
    STORAGE_PROTOCOL = "iSCSI"
    capabilities: ClassVar[Mapping[str, bool]] = {
        "thin_provisioning": False,
        "thick_provisioning": True,
        "multiattach": False,
        "online_extend": True,
        "zero_on_delete": True,
    }
    FAULT_POINTS: ClassVar[Mapping[str, tuple[str, ...]]] = {
        "create_cloned_volume": ("clone:after_temp_snapshot", "clone:after_create"),
        "create_volume_from_snapshot": ("from_snapshot:after_create",),
        "create_export": ("export:after_activate",),
    }

    def __init__(self, conf: cfg.ConfigOpts, backend: str, host: str) -> None:
        super().__init__(conf, backend, host)
        c = self.configuration
        self.vg = str(c.volume_group)
        self.dm = has_device_mapper()
        self.target = TgtTarget(str(c.volumes_dir), str(c.target_prefix),
                                f"{c.target_ip_address}:{c.target_port}",
                                bool(c.iscsi_write_cache))

    @classmethod
    def get_driver_options(cls) -> list[cfg.Opt]:
        return list(OPTS)

    def unavailable_features(self) -> dict[str, str]:
        if self.dm:
            return {}
        reason = f"LVM {_NO_DM}"
        return {"snapshot": reason, "clone": reason, "data": reason, "image": reason,
                "attach": f"no LV device node to export ({_NO_DM})"}

    # --- lvm helpers ---------------------------------------------------------------------

    def _lvm(self, *cmd: str) -> str:
        out, _ = execute(*cmd, env={"LC_ALL": "C"})
        return out

    def _device(self, name: str) -> str:
        return f"/dev/{self.vg}/{name}"

    def _lvs(self) -> dict[str, tuple[float, str]]:
        """LV name -> (size GiB, attributes)."""
        out = self._lvm("lvs", "--noheadings", "--units", "g", "--nosuffix", "--separator",
                        ":", "-o", "lv_name,lv_size,lv_attr", self.vg)
        lvs = {}
        for line in out.splitlines():
            parts = line.strip().split(":")
            if len(parts) == 3:
                lvs[parts[0]] = (float(parts[1]), parts[2])
        return lvs

    def _need_dm(self, what: str) -> None:
        if not self.dm:
            raise exception.DriverError(f"{what} {_NO_DM}")

    def _lvcreate(self, name: str, size_gb: int, *extra: str) -> None:
        args = ["lvcreate", "-n", name, "-L", f"{size_gb}g", "-y", *extra]
        if not self.dm:
            args += ["--activate", "n", "--zero", "n"]
        self._lvm(*args, self.vg)

    def _remove_lv(self, name: str) -> None:
        if name not in self._lvs():
            return
        self._lvm("lvremove", "-f", f"{self.vg}/{name}")

    def _dd(self, src: str, dst: str, size_mb: int) -> None:
        execute("dd", f"if={src}", f"of={dst}", "bs=1M", f"count={size_mb}", "oflag=direct",
                "conv=fdatasync", timeout=24 * 3600)

    # --- set-up and stats ------------------------------------------------------------------

    def do_setup(self) -> None:
        os.makedirs(self.configuration.volumes_dir, mode=0o700, exist_ok=True)

    def check_for_setup_error(self) -> None:
        out = self._lvm("vgs", "--noheadings", "-o", "vg_name", self.vg)
        if out.strip() != self.vg:
            raise exception.ConfigError(f"[{self.backend}] volume_group {self.vg!r} does not "
                                        "exist", section=self.backend, option="volume_group")

    def get_volume_stats(self, refresh: bool = False) -> dict[str, Any]:
        out = self._lvm("vgs", "--noheadings", "--units", "g", "--nosuffix", "--separator", ":",
                        "-o", "vg_size,vg_free,lv_count", self.vg)
        size, free, count = out.strip().split(":")
        total, free_gb = round(float(size), 2), round(float(free), 2)
        conf = self.configuration
        common = {
            "total_capacity_gb": total,
            "free_capacity_gb": free_gb,
            "provisioned_capacity_gb": round(total - free_gb, 2),
            "reserved_percentage": conf.reserved_percentage,
            "thin_provisioning_support": False,
            "thick_provisioning_support": True,
            "max_over_subscription_ratio": 1.0,
            "multiattach": False,
            "online_extend_support": True,
            "QoS_support": False,
        }
        return {
            "volume_backend_name": self.backend_name,
            "vendor_name": self.VENDOR_NAME,
            "driver_version": self.VERSION,
            "storage_protocol": self.STORAGE_PROTOCOL,
            "location_info": f"LvmDriver:{self.host}:{self.vg}:default:0",
            "total_volumes": int(count),
            "backend_state": "up",
            "pools": [{"pool_name": self.backend_name, **common}],
            **common,
        }

    def list_backend_objects(self) -> list[str]:
        names = [n for n in self._lvs() if n.startswith(("volume-", "snapshot-", "_snapshot-",
                                                         "clone-snap-"))]
        names += [f"target:{iqn}" for iqn in self.target.targets()
                  if iqn.startswith(self.target.prefix + "volume-")]
        return sorted(names)

    # --- volumes ---------------------------------------------------------------------------

    def create_volume(self, volume: Volume) -> ModelUpdate:
        if volume.name in self._lvs():
            raise exception.Conflict(f"{volume.name} already exists in {self.vg}")
        self._lvcreate(volume.name, volume.size)
        return None

    def _clear(self, name: str, size_gb: float) -> None:
        if self.configuration.volume_clear != "zero" or not self.dm:
            return  # without device-mapper an LV has no device: nothing was ever written
        size_mb = self.configuration.volume_clear_size or int(size_gb * 1024)
        self._dd("/dev/zero", self._device(name), size_mb)

    def delete_volume(self, volume: Volume) -> None:
        lvs = self._lvs()
        if volume.name not in lvs:
            return
        if lvs[volume.name][1][:1] in ("o", "O"):
            raise exception.InvalidState(f"{volume.name} has snapshots; delete them first")
        self._clear(volume.name, lvs[volume.name][0])
        self._remove_lv(volume.name)

    def _snapshot_lv(self, name: str) -> str:
        return f"_{name}"  # names starting with "snapshot" are reserved by LVM

    def create_volume_from_snapshot(self, volume: Volume, snapshot: Snapshot) -> ModelUpdate:
        self._need_dm("a volume from a snapshot")
        self._lvcreate(volume.name, max(volume.size, snapshot.volume_size))
        self.checkpoint("from_snapshot:after_create")
        self._dd(self._device(self._snapshot_lv(snapshot.name)), self._device(volume.name),
                 snapshot.volume_size * 1024)
        return None

    def create_cloned_volume(self, volume: Volume, src_volume: Volume) -> ModelUpdate:
        self._need_dm("a clone")
        temp = f"clone-snap-{volume.id}"
        self._lvm("lvcreate", "--name", temp, "--snapshot", f"{self.vg}/{src_volume.name}",
                  "-L", f"{src_volume.size}g")
        try:
            self.checkpoint("clone:after_temp_snapshot")
            self._lvcreate(volume.name, max(volume.size, src_volume.size))
            self.checkpoint("clone:after_create")
            self._dd(self._device(temp), self._device(volume.name), src_volume.size * 1024)
        finally:
            self._remove_lv(temp)
        return None

    def extend_volume(self, volume: Volume, new_size: int) -> None:
        if volume.name not in self._lvs():
            raise exception.NotFound("volume", volume.id, f"{volume.name} is not in {self.vg}")
        self._lvm("lvextend", "-L", f"{new_size}g", f"{self.vg}/{volume.name}")
        self.target.update(volume.name)

    # --- snapshots -------------------------------------------------------------------------

    def create_snapshot(self, snapshot: Snapshot) -> ModelUpdate:
        self._need_dm("an LVM snapshot")
        self._lvm("lvcreate", "--name", self._snapshot_lv(snapshot.name), "--snapshot",
                  f"{self.vg}/{snapshot.volume_name}", "-L", f"{snapshot.volume_size}g")
        return None

    def delete_snapshot(self, snapshot: Snapshot) -> None:
        name = self._snapshot_lv(snapshot.name)
        lvs = self._lvs()
        if name not in lvs:
            return
        self._clear(name, lvs[name][0])  # Cinder wipes thick snapshots too (their COW)
        self._remove_lv(name)

    # --- attach / detach -------------------------------------------------------------------

    def create_export(self, volume: Volume, connector: Mapping[str, Any]) -> ModelUpdate:
        self._need_dm("an iSCSI export of an LV (no device node)")
        self._lvm("lvchange", "-a", "y", f"{self.vg}/{volume.name}")
        self.checkpoint("export:after_activate")
        return self.target.create(volume.name, self._device(volume.name), volume.provider_auth)

    def ensure_export(self, volume: Volume) -> ModelUpdate:
        self._need_dm("an iSCSI export of an LV (no device node)")
        self.target.ensure(volume.name)
        return None

    def remove_export(self, volume: Volume) -> None:
        self.target.remove(volume.name)

    def initialize_connection(
        self, volume: Volume, connector: Mapping[str, Any]
    ) -> dict[str, Any]:
        if not volume.provider_location:
            raise exception.DriverError(f"{volume.name} is not exported")
        return {"driver_volume_type": "iscsi",
                "data": TgtTarget.properties(volume.id, volume.provider_location,
                                             volume.provider_auth)}

    def terminate_connection(
        self, volume: Volume, connector: Mapping[str, Any] | None
    ) -> None:
        return None  # no per-initiator ACL with tgt: access is CHAP (Cinder's TgtAdm)

    # --- images ----------------------------------------------------------------------------

    def copy_image_to_volume(self, volume: Volume, image: ImageFile) -> None:
        self._need_dm("writing an image to an LV")
        execute("qemu-img", "convert", "-n", "-f", image.disk_format, "-O", "raw",
                "-t", "none", image.path, self._device(volume.name), timeout=24 * 3600)

    def copy_volume_to_image(self, volume: Volume, image: ImageFile) -> None:
        self._need_dm("reading an LV")
        try:
            execute("qemu-img", "convert", "-f", "raw", "-O", image.disk_format,
                    self._device(volume.name), image.path, timeout=24 * 3600)
        except BaseException:
            if os.path.exists(image.path):
                os.unlink(image.path)
            raise


"""``jsonfile``: a hypervisor whose "instances" are JSON files in a directory.

It exists to show what a third party writes - nothing more than this module and an entry point
- and it is honest about what it supports: it implements pause/unpause and declares it, and
declares every other optional capability unsupported (the conformance kit confirms each one
fails, and would flag a capability declared unsupported that passes).

Because its state lives on disk, a new driver object (a restarted compute service) sees the
instances the previous one made, which the suite checks.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from oslo_config import cfg

from stackcore import exception
from stackcore.compute import (
    HypervisorDriver,
    Image,
    Instance,
    InstanceInfo,
    PowerState,
    RebootType,
)

OPTS = [
    cfg.StrOpt("instances_dir", default="jsonfile-instances",
               help="Directory of instance files; relative paths are under state_path."),
    cfg.IntOpt("vcpus", default=4, min=1, help="vCPUs the host reports."),
    cfg.IntOpt("memory_mb", default=8192, min=1, help="Memory the host reports (MiB)."),
]


def list_opts() -> list[tuple[str, Sequence[cfg.Opt]]]:
    return [("jsonfile", OPTS)]


class JsonFileDriver(HypervisorDriver):
    VERSION = "1.0.0"
    capabilities: ClassVar[Mapping[str, bool]] = {
        "pause": True,
        "suspend": False,
        "snapshot": False,
        "console_output": False,
        "attach_volume": False,
        "plug_vifs": False,
    }

    def __init__(self, conf: cfg.ConfigOpts, host: str) -> None:
        super().__init__(conf, host)
        directory = conf.jsonfile.instances_dir
        if not os.path.isabs(directory):
            directory = os.path.join(conf.state_path, directory)
        self.directory = os.path.join(directory, host)

    @classmethod
    def list_opts(cls) -> list[tuple[str, Sequence[cfg.Opt]]]:
        return list_opts()

    # --- storage: one JSON file per instance, written atomically --------------------------

    def _path(self, uuid: str) -> str:
        return os.path.join(self.directory, f"{uuid}.json")

    def _read(self, instance: Instance) -> dict[str, Any]:
        try:
            with open(self._path(instance.uuid), encoding="utf-8") as handle:
                data: dict[str, Any] = json.load(handle)
                return data
        except FileNotFoundError:
            raise exception.NotFound("instance", instance.uuid) from None

    def _write(self, uuid: str, data: dict[str, Any]) -> None:
        fd, tmp = tempfile.mkstemp(dir=self.directory)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(data, handle)
        os.replace(tmp, self._path(uuid))

    def _set_power(self, instance: Instance, state: PowerState) -> None:
        data = self._read(instance)
        data["power_state"] = int(state)
        self._write(instance.uuid, data)

    # --- the contract ---------------------------------------------------------------------

    def init_host(self, host: str) -> None:
        os.makedirs(self.directory, exist_ok=True)

    def get_available_resource(self) -> dict[str, Any]:
        count = len(self.list_instances())
        return {
            "vcpus": self.conf.jsonfile.vcpus, "memory_mb": self.conf.jsonfile.memory_mb,
            "local_gb": 10, "vcpus_used": count, "memory_mb_used": 64 * count,
            "local_gb_used": 0, "hypervisor_type": "jsonfile", "hypervisor_version": 1000000,
            "hypervisor_hostname": self.host,
            "cpu_info": {"arch": "x86_64", "model": "json", "vendor": "example",
                         "topology": {"sockets": 1, "cores": 4, "threads": 1}, "features": []},
            "supported_instances": [["x86_64", "jsonfile", "hvm"]],
        }

    def list_instances(self) -> list[str]:
        return sorted(n[:-5] for n in os.listdir(self.directory) if n.endswith(".json"))

    def spawn(self, instance: Instance, image: Image, network_info: Sequence[Mapping[str, Any]],
              block_device_info: Sequence[Mapping[str, Any]]) -> None:
        if os.path.exists(self._path(instance.uuid)):
            raise exception.Conflict(f"instance {instance.uuid} already exists")
        if not os.path.isfile(image.path):  # nothing to boot: fail before making anything
            raise exception.Invalid("image.path", f"{image.path} does not exist", image.path)
        self._write(instance.uuid, {"name": instance.name, "power_state": int(PowerState.RUNNING)})

    def destroy(self, instance: Instance, network_info: Sequence[Mapping[str, Any]],
                block_device_info: Sequence[Mapping[str, Any]], destroy_disks: bool = True) -> None:
        try:
            os.unlink(self._path(instance.uuid))
        except FileNotFoundError:
            pass  # destroying an unknown instance succeeds

    def get_info(self, instance: Instance) -> InstanceInfo:
        return InstanceInfo(PowerState(self._read(instance)["power_state"]))

    def reboot(self, instance: Instance, reboot_type: RebootType) -> None:
        self._set_power(instance, PowerState.RUNNING)

    def power_off(self, instance: Instance, timeout: int = 0) -> None:
        self._set_power(instance, PowerState.SHUTDOWN)

    def power_on(self, instance: Instance) -> None:
        self._set_power(instance, PowerState.RUNNING)

    def pause(self, instance: Instance) -> None:
        self._set_power(instance, PowerState.PAUSED)

    def unpause(self, instance: Instance) -> None:
        self._set_power(instance, PowerState.RUNNING)

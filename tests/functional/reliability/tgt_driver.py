"""A volume driver for the tgtd fault test: the core fake's sparse files, exported through a
real tgtd by the lvm driver's own export helper (:class:`TgtTarget`, Cinder's TgtAdm).

The lvm driver exports LVs, whose device nodes need device-mapper, which this kernel lacks;
tgt exports a file just as well, so this driver gives the volume manager the same export
path (create / ensure / remove a target, CHAP) on files. tgtadm reaches the daemon named by
``TGT_IPC_SOCKET`` in the environment (a private tgtd). Registered as the
``stackcore.volume.drivers`` entry point ``tgtfile`` by the test only."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from stackcore_drivers.volume.tgt import TgtTarget

from stackcore import exception
from stackcore.volume.driver import ModelUpdate
from stackcore.volume.fake import FakeVolumeDriver
from stackcore.volume.objects import Volume

if TYPE_CHECKING:
    from oslo_config import cfg

PREFIX = "iqn.2010-10.org.openstack:"
#: the portal the targets are reached on (the test sets it to its private tgtd's)
PORTAL_ENV = "STACKCORE_TEST_TGTFILE_PORTAL"


class TgtFileDriver(FakeVolumeDriver):
    """Sparse files, each attached volume a tgt target (one LUN, CHAP)."""

    STORAGE_PROTOCOL = "iSCSI"

    def __init__(self, conf: cfg.ConfigOpts, backend: str, host: str) -> None:
        super().__init__(conf, backend, host)
        self.target = TgtTarget(os.path.join(conf.state_path, "tgt-targets", backend), PREFIX,
                                os.environ.get(PORTAL_ENV, "127.0.0.1:3260"))

    def list_backend_objects(self) -> list[str]:
        names = [e.name for e in os.scandir(self.root) if e.name != "exports.json"]
        names += [f"target:{iqn}" for iqn in self.target.targets()
                  if iqn.startswith(PREFIX + "volume-")]
        return sorted(names)

    def create_export(self, volume: Volume, connector: Mapping[str, Any]) -> ModelUpdate:
        return self.target.create(volume.name, self._require(volume.name),
                                  volume.provider_auth)

    def ensure_export(self, volume: Volume) -> ModelUpdate:
        # a running target is kept; a lost one (tgtd restarted) is made again, same CHAP
        return self.target.create(volume.name, self._require(volume.name),
                                  volume.provider_auth)

    def remove_export(self, volume: Volume) -> None:
        self.target.remove(volume.name)

    def initialize_connection(self, volume: Volume, connector: Mapping[str, Any]
                              ) -> dict[str, Any]:
        if not volume.provider_location:
            raise exception.DriverError(f"{volume.name} is not exported")
        return {"driver_volume_type": "iscsi",
                "data": TgtTarget.properties(volume.id, volume.provider_location,
                                             volume.provider_auth)}

    def terminate_connection(self, volume: Volume, connector: Mapping[str, Any] | None
                             ) -> None:
        return None  # no per-initiator ACL with tgt: access is CHAP

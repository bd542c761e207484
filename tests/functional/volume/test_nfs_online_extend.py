"""Extending an attached NFS volume on the real nfs-ganesha: a raw file grows (safe under an
open QEMU, which learns the size from the hypervisor's block resize); a qcow2 one is refused
before anything changes, since rewriting the header and L1 table a running QEMU caches would
corrupt the image - and grows once detached."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

import stackcore
from stackcore import exception
from tests.conftest import backend_env, wait_until

pytestmark = pytest.mark.real

GiB = 1024**3
CONNECTOR = {"host": "extend-host", "initiator": "iqn.1993-08.org.debian:01:extend"}


def _cloud(tmp_path: Path, qcow2: bool) -> stackcore.Cloud:
    server = backend_env("STACKCORE_TEST_NFS_SERVER", "nfs")
    export = backend_env("STACKCORE_TEST_NFS_EXPORT", "nfs")
    return stackcore.Cloud(services=("scheduler", "volume"), overrides={
        "DEFAULT": {"state_path": str(tmp_path / "state")},
        "volume": {"enabled_backends": ["nfs"]},
        "nfs": {"volume_backend_name": "nfs", "volume_driver": "nfs", "nfs_access": "qemu",
                "nfs_shares": [f"{server}:{export}"], "nfs_qcow2_volumes": qcow2},
    })


def _file_info(volume_id: str) -> dict[str, Any]:
    """qemu-img info of the volume's file, read on the export's directory."""
    path = os.path.join(backend_env("STACKCORE_TEST_NFS_DIR", "nfs"), f"volume-{volume_id}")
    out = subprocess.run(["qemu-img", "info", "--output=json", "-U", path], check=True,
                         capture_output=True, text=True).stdout
    info: dict[str, Any] = json.loads(out)
    return info


@pytest.mark.parametrize("qcow2", [False, True], ids=["raw", "qcow2"])
def test_extend_of_an_attached_nfs_volume(tmp_path: Path, qcow2: bool) -> None:
    cloud = _cloud(tmp_path, qcow2)
    try:
        wait_until(lambda: [p for p in cloud.volume.list_pools() if p.up and p.reporting], 60,
                   "the nfs pool reporting")
        volume = cloud.volume.create(1, name="extend <me> & 'you'", timeout=120)
        assert volume.status == "available", (volume.status, volume.fault)
        fmt = _file_info(volume.id)["format"]
        assert fmt == ("qcow2" if qcow2 else "raw"), fmt
        info = cloud.volume.attach(volume.id, CONNECTOR)
        if qcow2:
            with pytest.raises(exception.InvalidState) as caught:
                cloud.volume.extend(volume.id, 2)
            message = str(caught.value)
            assert "attached" in message and "qcow2" in message and volume.id in message, \
                message
            view = cloud.volume.get(volume.id)
            assert (view.status, view.size) == ("in-use", 1), (view.status, view.size)
            size = _file_info(volume.id)["virtual-size"]
            assert size == GiB, f"the refused extend changed the file: {size} bytes"
            cloud.volume.detach(volume.id, info["attachment_id"])
        grown = cloud.volume.extend(volume.id, 2)
        assert (grown.size, grown.status) == (2, "available" if qcow2 else "in-use"), \
            (grown.size, grown.status, grown.fault)
        size = _file_info(volume.id)["virtual-size"]
        assert size == 2 * GiB, f"after extend to 2 GiB the file is {size} bytes"
        assert cloud.volume.list_pools()[0].allocated_capacity_gb == 2
        if not qcow2:
            cloud.volume.detach(volume.id, info["attachment_id"])
        cloud.volume.delete(volume.id)
    finally:
        cloud.close()

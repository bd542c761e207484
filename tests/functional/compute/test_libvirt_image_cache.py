"""A real KVM server of an image uploaded into the Ceph (rbd) image store: the compute host
fetches it into its image cache and the server's overlay backs onto that cached file, not onto
anything of the store (reuse by later boots: tests/unit/image/test_image_cache.py)."""

from __future__ import annotations

import json
import os
import subprocess
from typing import Any

import pytest

import stackcore

from .conftest import backend_env, libvirt_cloud_overrides, run

pytestmark = pytest.mark.real


@pytest.fixture
def cloud(tmp_path: Any) -> Any:
    with stackcore.Cloud(overrides=libvirt_cloud_overrides(
        tmp_path,
        image={"stores": ["file", "rbd"], "default_store": "rbd"},
        image_store_rbd={
            "rbd_store_ceph_conf": backend_env("STACKCORE_TEST_CEPH_CONF", "ceph"),
            "rbd_store_pool": backend_env("STACKCORE_TEST_CEPH_POOL", "ceph"),
        },
    )) as made:
        yield made


def test_rbd_image_boots_from_the_host_cache(cloud: Any, tmp_path: Any) -> None:
    base = tmp_path / "base.qcow2"
    run("qemu-img", "create", "-q", "-f", "qcow2", str(base), "32M")
    cloud.compute.create_flavor("kvm.tiny", vcpus=1, ram_mb=128, disk_gb=1)
    image = cloud.image.create("on-ceph", disk_format="qcow2",
                               properties={"architecture": "x86_64"})
    with base.open("rb") as data:
        image = cloud.image.upload(image.id, data)
    assert image.store == "rbd", image
    manager = next(s.manager for s in cloud.services if s.binary == "stackcore-compute")
    cached = manager.image_cache.path(image.id)
    servers = []
    try:
        for name in ("first",):  # one real boot: CI time
            server = cloud.compute.create_server(name, "kvm.tiny", image.id)
            servers.append(server)
            assert server.status == "ACTIVE", server.fault
            overlay = os.path.join(manager.driver.instances_path, server.id, "disk")
            info = json.loads(subprocess.run(
                ["qemu-img", "info", "-U", "--output=json", overlay], check=True,
                capture_output=True, text=True).stdout)
            assert info.get("full-backing-filename") == cached, info
        assert open(cached, "rb").read() == base.read_bytes()
        assert manager.image_cache.entries()[0][0] == image.id
    finally:
        for server in servers:
            cloud.compute.delete_server(server.id)
            assert cloud.compute.get_server(server.id, include_deleted=True).status == "DELETED"
        cloud.image.delete(image.id)  # nothing left in the Ceph pool

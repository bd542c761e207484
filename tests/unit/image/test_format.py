"""Image format inspection (stackcore.image.format) on files qemu-img really makes: the declared
format must be the content's, and nothing that makes qemu open another file gets in - at
registration, before a volume is filled from the image, before the libvirt driver builds an
overlay on it."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
from stackcore_drivers.libvirt import images as libvirt_images

from stackcore import exception, image
from tests.conftest import wait_until
from tests.unit.volume.conftest import manager_of

MiB = 1024 * 1024


def qemu_img(*args: str) -> None:
    subprocess.run(["qemu-img", *args], check=True, capture_output=True, timeout=60)


@pytest.fixture
def qcow2(tmp_path: Path) -> str:
    path = str(tmp_path / "good.qcow2")
    qemu_img("create", "-q", "-f", "qcow2", path, "3M")
    return path


@pytest.fixture
def backed_by_host_file(tmp_path: Path) -> str:
    """A qcow2 whose backing file is a host file no image owner should reach."""
    secret = tmp_path / "host-secret"
    secret.write_bytes(b"root:x:0:0\n" * 1000)
    path = str(tmp_path / "hostile-backing.qcow2")
    qemu_img("create", "-q", "-f", "qcow2", "-b", str(secret), "-F", "raw", path)
    return path


def test_a_real_qcow2_and_raw_pass_with_their_virtual_size(qcow2: str, image_file: str) -> None:
    found = image.inspect(qcow2, "qcow2")
    assert (found.format, found.virtual_size) == ("qcow2", 3 * MiB), found
    found = image.inspect(image_file, "raw")
    assert (found.format, found.virtual_size) == ("raw", 1 * MiB), found


def test_a_declared_format_that_is_not_the_content_is_refused(qcow2: str,
                                                              image_file: str) -> None:
    with pytest.raises(exception.Invalid) as caught:
        image.inspect(qcow2, "raw")
    assert caught.value.field == "disk_format" and "content is qcow2" in str(caught.value), \
        str(caught.value)
    with pytest.raises(exception.Invalid) as caught:
        image.inspect(image_file, "vmdk")
    assert caught.value.field == "disk_format" and "content is raw" in str(caught.value), \
        str(caught.value)


@pytest.mark.parametrize("kind", ["backing_file", "data_file", "vmdk_extent"])
def test_images_that_open_other_files_are_refused(tmp_path: Path, kind: str) -> None:
    other = tmp_path / "elsewhere.raw"
    other.write_bytes(b"\0" * MiB)
    if kind == "backing_file":
        path, fmt = str(tmp_path / "x.qcow2"), "qcow2"
        qemu_img("create", "-q", "-f", "qcow2", "-b", str(other), "-F", "raw", path)
        expected = "backing_file"
    elif kind == "data_file":
        path, fmt = str(tmp_path / "x.qcow2"), "qcow2"
        qemu_img("create", "-q", "-f", "qcow2", "-o", f"data_file={other}", path, "1M")
        expected = "data_file"
    else:
        # a descriptor whose extent is a separate flat file: qemu would read that file
        path, fmt = str(tmp_path / "x.vmdk"), "vmdk"
        qemu_img("create", "-q", "-f", "vmdk", "-o", "subformat=monolithicFlat", path, "1M")
        expected = "descriptor"
    with pytest.raises(exception.Invalid) as caught:
        image.inspect(path, fmt)
    message = str(caught.value)
    assert caught.value.field == "path" and expected in message, message


def test_register_image_refuses_a_backing_file_and_persists_nothing(
        cloud, backed_by_host_file: str) -> None:
    before = [i.id for i in cloud.compute.list_images()]
    with pytest.raises(exception.Invalid) as caught:
        cloud.compute.register_image("evil", backed_by_host_file, "qcow2")
    assert caught.value.field == "path" and "backing_file" in str(caught.value), \
        str(caught.value)
    assert [i.id for i in cloud.compute.list_images()] == before


def test_volume_from_an_image_swapped_after_registration_ends_in_error(
        make_cloud, qcow2: str, backed_by_host_file: str) -> None:
    """The file on a registered image's path is replaced by a hostile one: the volume manager
    checks again before the driver reads it - the volume ends in ERROR with a fault naming the
    image, and the backend keeps nothing of it."""
    cloud = make_cloud(services=("volume",))
    registered = cloud.compute.register_image("golden", qcow2, "qcow2")
    shutil.copyfile(backed_by_host_file, qcow2)
    volume = cloud.volume.create(1, image_id=registered.id)
    wait_until(lambda: cloud.volume.get(volume.id).status == "error", 30,
               f"volume {volume.id} in error")
    view = cloud.volume.get(volume.id)
    assert view.fault is not None and f"image {registered.id}" in view.fault.message \
        and "backing_file" in view.fault.message, view.fault
    leftover = manager_of(cloud).driver._path(f"volume-{volume.id}")
    assert not os.path.exists(leftover), f"{leftover} left on the backend"


def test_libvirt_overlay_refuses_a_hostile_base_and_leaves_no_overlay(
        tmp_path: Path, backed_by_host_file: str, qcow2: str) -> None:
    overlay = str(tmp_path / "disk")
    with pytest.raises(exception.Invalid) as caught:
        libvirt_images.create_overlay(backed_by_host_file, "qcow2", overlay, MiB)
    assert "backing_file" in str(caught.value), str(caught.value)
    assert sorted(os.listdir(tmp_path)) == sorted(
        ["good.qcow2", "hostile-backing.qcow2", "host-secret"]), os.listdir(tmp_path)
    libvirt_images.create_overlay(qcow2, "qcow2", overlay, MiB)
    info = subprocess.run(["qemu-img", "info", "--output=json", overlay], check=True,
                          capture_output=True, text=True, timeout=60).stdout
    assert '"virtual-size": 3145728' in info and os.path.basename(qcow2) in info, info

"""``images_type = rbd`` pieces that need no cluster: the ``<disk>`` element (cephx included:
the test cluster runs without auth, so this is where the auth XML is checked), the option
checks at construction, clone-or-import, the monitor map, qemu-img's ``json:`` filename.
(On the real cluster: tests/functional/compute/test_libvirt_rbd_root.py.)"""

from __future__ import annotations

import json
import uuid
import xml.etree.ElementTree as ET

import pytest
from stackcore_drivers.libvirt import domain_xml, rbd_disk

from stackcore import exception

FSID = "06510e29-385c-406b-aa94-421ceb73032e"
SECRET = "9d6c1e8e-3a55-4a0a-8e57-0f1b5c7e2d11"


def _disks(**kwargs: object) -> rbd_disk.RbdDisks:
    settings: dict[str, object] = {"pool": "vms", "ceph_conf": "", "user": None,
                                   "secret_uuid": None, "connect_timeout": 5, **kwargs}
    return rbd_disk.RbdDisks(**settings)  # type: ignore[arg-type]


def test_disk_element_without_auth() -> None:
    instance = str(uuid.uuid4())
    spec = rbd_disk.RbdDiskSpec("vms", rbd_disk.disk_name(instance),
                                (("10.0.0.1", "6789"), ("fd00::2", "6789")))
    disk = ET.fromstring(domain_xml.to_string(spec.element()))
    assert (disk.get("type"), disk.get("device")) == ("network", "disk")
    driver = disk.find("driver")
    assert driver is not None and driver.get("type") == "raw"
    source = disk.find("source")
    assert source is not None
    assert (source.get("protocol"), source.get("name")) == ("rbd", f"vms/{instance}_disk")
    assert [(h.get("name"), h.get("port")) for h in source.findall("host")] == [
        ("10.0.0.1", "6789"), ("fd00::2", "6789")]
    assert disk.find(".//auth") is None
    target = disk.find("target")
    assert target is not None and (target.get("dev"), target.get("bus")) == ("vda", "virtio")
    assert rbd_disk.rbd_source(disk) == ("vms", f"{instance}_disk")


def test_disk_element_with_cephx_secret() -> None:
    spec = rbd_disk.RbdDiskSpec("vms", "x_disk", (("10.0.0.1", "6789"),), user="nova & co",
                                secret_uuid=SECRET)
    text = domain_xml.to_string(spec.element())
    assert "nova &amp; co" in text, text  # ElementTree escapes: no name can break the XML
    auth = ET.fromstring(text).find("source/auth")
    assert auth is not None and auth.get("username") == "nova & co"
    secret = auth.find("secret")
    assert secret is not None and (secret.get("type"), secret.get("uuid")) == ("ceph", SECRET)


def test_rbd_source_only_for_rbd_network_disks() -> None:
    file_disk = domain_xml.file_disk("/i/disk", "qcow2", "vda", "virtio")
    assert rbd_disk.rbd_source(file_disk) is None
    assert rbd_disk.rbd_source(None) is None
    iscsi = ET.Element("disk", type="network")
    ET.SubElement(iscsi, "source", protocol="iscsi", name="iqn.x/1")
    assert rbd_disk.rbd_source(iscsi) is None


@pytest.mark.parametrize("pool", ["", "a/b", "a@b", "a:b", "a b", "-x", "x" * 129])
def test_a_pool_name_an_rbd_spec_would_misread_is_a_config_error(pool: str) -> None:
    with pytest.raises(exception.ConfigError, match="images_rbd_pool"):
        _disks(pool=pool)


def test_secret_options_are_checked() -> None:
    with pytest.raises(exception.ConfigError, match="rbd_secret_uuid = 'nope'"):
        _disks(user="nova", secret_uuid="nope")
    with pytest.raises(exception.ConfigError, match="rbd_user is not"):
        _disks(secret_uuid=SECRET)
    assert _disks(user="nova", secret_uuid=SECRET).secret_uuid == SECRET


def test_disk_name_is_the_uuid_only() -> None:
    instance = str(uuid.uuid4())
    assert rbd_disk.disk_name(instance) == f"{instance}_disk"
    with pytest.raises(ValueError):
        rbd_disk.disk_name("../etc")


@pytest.mark.parametrize(("location", "disk_format", "clone"), [
    (f"rbd://{FSID}/images/image-1/snap", "raw", rbd_disk.Clone("images", "image-1", "snap")),
    (f"rbd://{FSID}/images/image-1/snap", "qcow2", None),  # qcow2 bytes as a raw disk: import
    ("rbd://another-cluster/images/image-1/snap", "raw", None),
    ("file:///var/lib/images/1", "raw", None),
    ("", "raw", None),
    (f"rbd://{FSID}/images/image-1", "raw", None),  # no snapshot to clone from
])
def test_clone_or_import(location: str, disk_format: str, clone: rbd_disk.Clone | None) -> None:
    assert rbd_disk.clone_source(location, disk_format, FSID) == clone


def test_monitor_addresses_prefer_v1() -> None:
    monmap = {"mons": [
        {"name": "a", "addr": "127.0.0.1:6789/0", "public_addrs": {"addrvec": [
            {"type": "v2", "addr": "127.0.0.1:3300", "nonce": 0},
            {"type": "v1", "addr": "127.0.0.1:6789", "nonce": 0}]}},
        {"name": "b", "addr": "[fd00::5]:6789/0"},
        {"name": "c"},
    ]}
    assert rbd_disk.mon_addresses(monmap) == (("127.0.0.1", "6789"), ("fd00::5", "6789"))


def test_qemu_filename_is_json_whatever_the_paths_hold() -> None:
    disks = _disks(ceph_conf="/etc/ceph/a:b,c \"d\".conf", user="nova")
    name = disks.qemu_filename("x_disk")
    assert name.startswith("json:")
    assert json.loads(name[len("json:"):]) == {"driver": "raw", "file": {
        "driver": "rbd", "pool": "vms", "image": "x_disk",
        "conf": "/etc/ceph/a:b,c \"d\".conf", "user": "nova"}}

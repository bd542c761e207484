"""Domain, disk and interface XML of the libvirt driver: escaping, shape, ownership."""

from __future__ import annotations

import uuid
import xml.etree.ElementTree as ET

import pytest

from stackcore import exception
from stackcore.compute.objects import Flavor, Image, Instance

try:
    import libvirt  # noqa: F401
except ImportError as err:  # a missing extra is a broken test environment, not a skip
    raise ImportError(f"{err}: install the driver extra: pip install -e 'drivers[libvirt]'") from err

from stackcore_drivers.libvirt import domain_xml, vif, volume

HOSTILE = "a <b> & 'c' \"d\" ]]> $HOME; rm -rf /\n second line \x00\x07 end"


def _instance(name: str = HOSTILE, **metadata: str) -> Instance:
    return Instance(
        uuid=str(uuid.uuid4()), name=name, host="h1",
        flavor=Flavor("m1 <tiny>", vcpus=2, ram_mb=256, disk_gb=1),
        image=Image("img-1", "cirros & co", "/images/base.qcow2", "qcow2"),
        metadata=metadata,
    )


def _kvm(ports: int = 4) -> domain_xml.DomainSettings:
    return domain_xml.DomainSettings(domain_type="kvm", arch="x86_64", machine_type="q35",
                                     pcie_root_ports=ports, virtio_scsi=True)


def _build(instance: Instance, settings: domain_xml.DomainSettings | None = None) -> str:
    root = domain_xml.file_disk("/i/disk", "qcow2", "vda", "virtio")
    element = domain_xml.build_domain(instance, "h1", settings or _kvm(), root_disk=root,
                                      console_log="/i/console.log", devices=[])
    return domain_xml.to_string(element)


def test_hostile_name_and_metadata_give_valid_escaped_xml() -> None:
    instance = _instance(**{"k<&>'\"": "v <&> 'x' \"y\"", "plain": HOSTILE})
    document = _build(instance)
    parsed = ET.fromstring(document)  # well-formed, or this raises
    record = parsed.find(f"metadata/{{{domain_xml.NS}}}instance")
    assert record is not None
    name = record.findtext(f"{{{domain_xml.NS}}}name")
    # Only the characters XML cannot carry at all were replaced; everything else survives.
    assert name == HOSTILE.replace("\x00", "\ufffd").replace("\x07", "\ufffd")
    metas = {m.get("key"): m.text for m in record.findall(f"{{{domain_xml.NS}}}meta")}
    assert metas["k<&>'\""] == "v <&> 'x' \"y\""
    assert "<b>" not in document and "&lt;b&gt;" in document
    title = parsed.findtext("title") or ""
    assert "\n" not in title and title.startswith("a <b> & 'c'")


def test_domain_is_named_after_the_uuid_never_the_display_name() -> None:
    instance = _instance(name="instance-evil")
    parsed = ET.fromstring(_build(instance))
    assert parsed.findtext("name") == f"instance-{instance.uuid}"
    assert parsed.findtext("uuid") == instance.uuid
    owner = domain_xml.ownership(parsed)
    assert owner == domain_xml.Ownership(uuid=instance.uuid, host="h1")


def test_flavor_sizes_machine_and_hotplug_controllers() -> None:
    parsed = ET.fromstring(_build(_instance(), _kvm(ports=5)))
    assert parsed.get("type") == "kvm"
    assert parsed.findtext("vcpu") == "2"
    memory = parsed.find("memory")
    assert memory is not None and memory.text == "256" and memory.get("unit") == "MiB"
    os_type = parsed.find("os/type")
    assert os_type is not None and os_type.get("machine") == "q35"
    models = [c.get("model") for c in parsed.findall("devices/controller")]
    assert models.count("pcie-root-port") == 5 and "pcie-root" in models
    assert "virtio-scsi" in models
    log = parsed.find("devices/serial/log")
    assert log is not None and log.get("file") == "/i/console.log"


def test_test_driver_domains_have_no_qemu_only_devices() -> None:
    parsed = ET.fromstring(_build(_instance(), domain_xml.DomainSettings(domain_type="test")))
    assert parsed.get("type") == "test"
    assert parsed.find("features") is None
    assert not parsed.findall("devices/controller")


def test_a_foreign_domain_is_not_ours() -> None:
    foreign = ET.fromstring("<domain type='kvm'><name>instance-x</name></domain>")
    assert domain_xml.ownership(foreign) is None
    instance = _instance()
    parsed = ET.fromstring(_build(instance))
    name = parsed.find("name")
    assert name is not None
    name.text = "instance-" + str(uuid.uuid4())  # record says another uuid: not ours either
    assert domain_xml.ownership(parsed) is None


# --- volumes -------------------------------------------------------------------------------

ISCSI = {
    "driver_volume_type": "iscsi",
    "data": {"target_portal": "192.0.2.10:3260", "target_iqn": "iqn.2010-10.org.x:vol-1",
             "target_lun": 1, "auth_method": "CHAP", "auth_username": "joe",
             "auth_password": "s3cr3t-chap", "volume_id": "0f0e0d0c-aaaa-bbbb-cccc-000000000001"},
}


def test_iscsi_becomes_a_network_disk_with_a_secret_reference() -> None:
    spec = volume.parse(ISCSI, "inst-1", "/dev/sdb")
    assert spec.secret is not None and spec.secret.usage_id == "stackcore/inst-1/sdb"
    disk = spec.element("11111111-2222-3333-4444-555555555555")
    source = disk.find("source")
    assert disk.get("type") == "network" and source is not None
    assert source.get("protocol") == "iscsi"
    assert source.get("name") == "iqn.2010-10.org.x:vol-1/1"
    host = source.find("host")
    assert host is not None and (host.get("name"), host.get("port")) == ("192.0.2.10", "3260")
    secret = source.find("auth/secret")
    assert secret is not None and secret.get("type") == "iscsi"
    assert secret.get("uuid") == "11111111-2222-3333-4444-555555555555"
    target = disk.find("target")
    assert target is not None and (target.get("dev"), target.get("bus")) == ("sdb", "scsi")
    # The password is in the secret's value only: never in XML, repr or the secret's XML.
    assert "s3cr3t-chap" not in domain_xml.to_string(disk)
    assert "s3cr3t-chap" not in repr(spec)
    assert "s3cr3t-chap" not in domain_xml.to_string(spec.secret.element())
    assert spec.secret.value == b"s3cr3t-chap"


def test_nfs_network_disk_and_mounted_file() -> None:
    info = {"driver_volume_type": "nfs",
            "data": {"export": "192.0.2.5:/srv/export/", "name": "volume-1", "format": "qcow2"}}
    disk = volume.parse(info, "i", "/dev/vdc").element()
    source = disk.find("source")
    assert source is not None and source.get("protocol") == "nfs"
    assert source.get("name") == "/srv/export/volume-1"
    driver = disk.find("driver")
    assert driver is not None and driver.get("type") == "qcow2"
    mounted = {"driver_volume_type": "nfs", "data": {"device_path": "/mnt/share/volume-1"}}
    disk = volume.parse(mounted, "i", "/dev/vdc").element()
    source = disk.find("source")
    assert disk.get("type") == "file" and source is not None
    assert source.get("file") == "/mnt/share/volume-1"


def test_rbd_with_monitors_and_cephx_key() -> None:
    info = {"driver_volume_type": "rbd",
            "data": {"name": "volumes/volume-1", "hosts": ["192.0.2.1", "2001:db8::1"],
                     "ports": ["6789", "3300"], "auth_enabled": True, "auth_username": "cinder",
                     "auth_key": "QVFCMTIzNDU2Nzg5MA=="}}
    spec = volume.parse(info, "i", "/dev/sdb")
    assert spec.secret is not None and spec.secret.usage_type == "ceph"
    assert spec.secret.value == b"AQB1234567890"
    disk = spec.element("aaaaaaaa-2222-3333-4444-555555555555")
    source = disk.find("source")
    assert source is not None and source.get("name") == "volumes/volume-1"
    hosts = [(h.get("name"), h.get("port")) for h in source.findall("host")]
    assert hosts == [("192.0.2.1", "6789"), ("2001:db8::1", "3300")]
    auth = source.find("auth")
    assert auth is not None and auth.get("username") == "cinder"
    existing = {"driver_volume_type": "rbd",
                "data": {"name": "p/i", "hosts": ["m"], "auth_enabled": True,
                         "auth_username": "u", "secret_uuid": "aaaaaaaa-2222-3333-4444-555555555555"}}
    spec = volume.parse(existing, "i", "/dev/sdb")
    assert spec.secret is None
    secret = spec.element().find("source/auth/secret")
    assert secret is not None and secret.get("uuid") == "aaaaaaaa-2222-3333-4444-555555555555"


@pytest.mark.parametrize(
    ("info", "mountpoint", "field"),
    [
        ({"driver_volume_type": "carrier-pigeon", "data": {}}, "/dev/vdb", "driver_volume_type"),
        ({"data": {}}, "/dev/vdb", "driver_volume_type"),
        ({"driver_volume_type": "iscsi", "data": "x"}, "/dev/vdb", "connection_info.data"),
        (ISCSI, "/dev/vda", "mountpoint"),
        (ISCSI, "/dev/hdb", "mountpoint"),
        (ISCSI, "/dev/vdb;reboot", "mountpoint"),
        ({**ISCSI, "data": {**ISCSI["data"], "target_portal": "h:99999"}}, "/dev/vdb",
         "connection_info.data.target_portal"),
        ({**ISCSI, "data": {**ISCSI["data"], "target_iqn": "nope"}}, "/dev/vdb",
         "connection_info.data.target_iqn"),
        ({**ISCSI, "data": {**ISCSI["data"], "auth_password": ""}}, "/dev/vdb",
         "connection_info.data.auth_password"),
        ({"driver_volume_type": "nfs", "data": {"export": "nohostpath", "name": "v"}},
         "/dev/vdb", "connection_info.data.export"),
        ({"driver_volume_type": "nfs", "data": {"export": "h:/e", "name": "../etc/passwd"}},
         "/dev/vdb", "connection_info.data.name"),
        ({"driver_volume_type": "nfs", "data": {"export": "h:/e", "name": "v", "format": "vmdk"}},
         "/dev/vdb", "connection_info.data.format"),
        ({"driver_volume_type": "rbd", "data": {"name": "noslash", "hosts": ["m"]}},
         "/dev/vdb", "connection_info.data.name"),
        ({"driver_volume_type": "rbd", "data": {"name": "p/i", "hosts": []}},
         "/dev/vdb", "connection_info.data.hosts"),
        ({"driver_volume_type": "rbd", "data": {"name": "p/i", "hosts": ["a", "b"],
                                                "ports": ["1"]}},
         "/dev/vdb", "connection_info.data.ports"),
        ({"driver_volume_type": "rbd", "data": {"name": "p/i", "hosts": ["m"],
                                                "auth_enabled": True, "auth_username": "u"}},
         "/dev/vdb", "connection_info.data.auth_key"),
        ({"driver_volume_type": "rbd", "data": {"name": "p/i", "hosts": ["m"],
                                                "auth_enabled": True, "auth_username": "u",
                                                "auth_key": "not base64!"}},
         "/dev/vdb", "connection_info.data.auth_key"),
    ],
)
def test_bad_connection_info_names_the_culprit(info: dict, mountpoint: str, field: str) -> None:
    with pytest.raises(exception.Invalid) as caught:
        volume.parse(info, "i", mountpoint)
    assert caught.value.kwargs["field"] == field
    assert "s3cr3t-chap" not in str(caught.value)


# --- VIFs ----------------------------------------------------------------------------------

PORT = {"id": "3f2a8b8c-1111-2222-3333-444455556666", "address": "FA:16:3E:00:00:01"}


def test_ovs_vif_has_openvswitch_virtualport_with_the_port_id() -> None:
    element = vif.parse({**PORT, "vif_type": "ovs", "vif_details": {}}).element()
    assert element.get("type") == "bridge"
    source, mac = element.find("source"), element.find("mac")
    assert source is not None and source.get("bridge") == "br-int"
    assert mac is not None and mac.get("address") == "fa:16:3e:00:00:01"
    virtualport = element.find("virtualport")
    assert virtualport is not None and virtualport.get("type") == "openvswitch"
    params = virtualport.find("parameters")
    assert params is not None and params.get("interfaceid") == PORT["id"]
    target = element.find("target")
    assert target is not None and target.get("dev") == "tap3f2a8b8c-11"


def test_bridge_vif_is_a_plain_bridge_interface() -> None:
    element = vif.parse({**PORT, "vif_type": "bridge",
                         "vif_details": {"bridge_name": "brq-1"}}).element()
    source = element.find("source")
    assert source is not None and source.get("bridge") == "brq-1"
    assert element.find("virtualport") is None


@pytest.mark.parametrize(
    ("port", "field"),
    [
        ({**PORT, "vif_type": "macvtap"}, "vif_type"),
        ({**PORT, "vif_type": "bridge"}, "vif.vif_details.bridge_name"),
        ({**PORT, "vif_type": "bridge", "vif_details": {"bridge_name": "br;x y"}},
         "vif.vif_details.bridge_name"),
        ({**PORT, "address": "zz:zz", "vif_type": "ovs"}, "vif.address"),
        ({"address": PORT["address"], "vif_type": "ovs"}, "vif.id"),
    ],
)
def test_bad_vif_names_the_culprit(port: dict, field: str) -> None:
    with pytest.raises(exception.Invalid) as caught:
        vif.parse(port)
    assert caught.value.kwargs["field"] == field


def test_a_boot_volume_is_vda_and_recorded_in_the_metadata() -> None:
    info = {"driver_volume_type": "rbd", "data": {"name": "volumes/volume-1",
                                                  "hosts": ["192.0.2.1"], "volume_id": "1"}}
    disk = volume.parse_root(info, str(uuid.uuid4()))
    assert (disk.target_dev, disk.bus) == ("vda", "virtio")
    with pytest.raises(exception.Invalid) as caught:
        volume.parse_root(info, str(uuid.uuid4()), "/dev/vdb")
    assert caught.value.kwargs["field"] == "block_device_info.mount_device"
    with pytest.raises(exception.Invalid) as caught:
        volume.parse(info, str(uuid.uuid4()), "/dev/vda")  # never a data volume's place
    assert caught.value.kwargs["field"] == "mountpoint"

    instance = _instance()
    element = domain_xml.build_domain(instance, "h1", _kvm(), root_disk=disk.element(),
                                      console_log="/i/console.log", devices=[],
                                      boot_volume="1")
    parsed = ET.fromstring(domain_xml.to_string(element))
    assert domain_xml.boot_volume(parsed) == "1"
    assert domain_xml.boot_volume(ET.fromstring(_build(instance))) is None

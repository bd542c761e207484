"""The libvirt driver against libvirt's in-process test driver (``test:///default``).

The test driver keeps its domains in process memory, shared by every connection to
``test:///default`` in this process, and ships one domain of its own (``test``) that the driver
must never list or touch.
"""

from __future__ import annotations

import dataclasses
import time
import uuid
import xml.etree.ElementTree as ET
from typing import Any

import pytest

from stackcore import conf as sc_conf
from stackcore import exception
from stackcore.compute import stats
from stackcore.compute.objects import Flavor, Image, Instance, PowerState, RebootType

try:
    import libvirt
except ImportError as err:  # a missing extra is a broken test environment, not a skip
    raise ImportError(f"{err}: install the driver extra: pip install -e 'drivers[libvirt]'") from err

from stackcore_drivers.libvirt import domain_xml
from stackcore_drivers.libvirt.driver import LibvirtDriver

HOSTILE = "web <1> & 'db' \"x\" $(reboot)"


def make_driver(tmp_path: Any, host: str = "h1", **options: Any) -> LibvirtDriver:
    conf = sc_conf.load(overrides={"DEFAULT": {"state_path": str(tmp_path)}})
    sc_conf.register(conf, LibvirtDriver.list_opts())
    settings = {"connection_uri": "test:///default", **options}
    for key, value in settings.items():
        sc_conf.set_override(conf, "libvirt", key, value)
    sc_conf.validate_all(conf)
    driver = LibvirtDriver(conf, host)
    driver.init_host(host)
    return driver


@pytest.fixture
def image(tmp_path: Any) -> Image:
    path = tmp_path / "base.raw"
    path.write_bytes(b"\0" * 4096)
    return Image(id="img", name="base", path=str(path), disk_format="raw")


@pytest.fixture
def driver(tmp_path: Any) -> Any:
    made = make_driver(tmp_path)
    yield made
    for instance_uuid in made.list_instances():
        made._remove(made.connection.get(), instance_uuid, destroy_disks=True)


def instance_of(image: Image, name: str = HOSTILE, host: str = "h1", **meta: str) -> Instance:
    return Instance(uuid=str(uuid.uuid4()), name=name, host=host,
                    flavor=Flavor("small", vcpus=1, ram_mb=64, disk_gb=1), image=image,
                    metadata={"role": "<db> & 'primary'", **meta})


def domain_document(driver: LibvirtDriver, instance: Instance) -> ET.Element:
    dom = driver.connection.get().lookupByName(domain_xml.domain_name(instance.uuid))
    return ET.fromstring(dom.XMLDesc(0))


def test_spawn_stores_escaped_name_and_metadata(driver: LibvirtDriver, image: Image) -> None:
    instance = instance_of(image)
    driver.spawn(instance, image, [], [])
    document = domain_document(driver, instance)
    record = document.find(f"metadata/{{{domain_xml.NS}}}instance")
    assert record is not None
    assert record.findtext(f"{{{domain_xml.NS}}}name") == HOSTILE
    assert record.findtext(f"{{{domain_xml.NS}}}host") == "h1"
    meta = record.find(f"{{{domain_xml.NS}}}meta")
    assert meta is not None and (meta.get("key"), meta.text) == ("role", "<db> & 'primary'")
    assert document.findtext("title") == HOSTILE
    assert document.findtext("name") == f"instance-{instance.uuid}"


def test_list_instances_only_lists_our_domains_of_this_host(
    tmp_path: Any, driver: LibvirtDriver, image: Image
) -> None:
    other_host = make_driver(tmp_path, host="h2")
    mine, theirs = instance_of(image), instance_of(image, host="h2")
    driver.spawn(mine, image, [], [])
    other_host.spawn(theirs, image, [], [])
    try:
        names = {d.name() for d in driver.connection.get().listAllDomains(0)}
        assert "test" in names  # the test driver's own domain exists ...
        assert driver.list_instances() == [mine.uuid]  # ... and is not ours
        assert other_host.list_instances() == [theirs.uuid]
    finally:
        other_host.destroy(theirs, [], [], True)


def test_foreign_domain_with_our_name_is_a_conflict_and_survives_destroy(
    driver: LibvirtDriver, image: Image
) -> None:
    instance = instance_of(image)
    conn = driver.connection.get()
    foreign = ET.Element("domain", type="test")
    ET.SubElement(foreign, "name").text = domain_xml.domain_name(instance.uuid)
    ET.SubElement(foreign, "memory").text = "65536"
    os_element = ET.SubElement(foreign, "os")
    ET.SubElement(os_element, "type").text = "hvm"
    dom = conn.defineXML(ET.tostring(foreign, encoding="unicode"))
    try:
        with pytest.raises(exception.Conflict) as caught:
            driver.spawn(instance, image, [], [])
        assert instance.uuid in str(caught.value)
        assert instance.uuid not in driver.list_instances()
        with pytest.raises(exception.NotFound):
            driver.get_info(instance)  # not ours: unknown to the driver
        driver.destroy(instance, [], [], True)  # the manager's cleanup after the failure
        assert conn.lookupByName(domain_xml.domain_name(instance.uuid)).name()  # untouched
    finally:
        dom.undefine()


def test_invalid_vif_or_volume_at_spawn_makes_nothing(
    driver: LibvirtDriver, image: Image, tmp_path: Any
) -> None:
    instance = instance_of(image)
    with pytest.raises(exception.Invalid) as caught:
        driver.spawn(instance, image, [{"id": "p1", "address": "fa:16:3e:00:00:01",
                                        "vif_type": "hostdev"}], [])
    assert caught.value.kwargs["field"] == "vif_type"
    with pytest.raises(exception.Invalid) as caught:
        driver.spawn(instance, image, [], [{"connection_info": {"driver_volume_type": "fc"},
                                            "mount_device": "/dev/vdb"}])
    assert caught.value.kwargs["field"] == "driver_volume_type"
    assert instance.uuid not in driver.list_instances()
    assert not (tmp_path / "instances" / instance.uuid).exists()


def test_spawn_with_vifs_defines_interfaces(driver: LibvirtDriver, image: Image) -> None:
    instance = instance_of(image)
    port = {"id": str(uuid.uuid4()), "address": "fa:16:3e:aa:bb:cc", "vif_type": "ovs",
            "vif_details": {"bridge_name": "br-int"}}
    driver.spawn(instance, image, [port], [])
    interface = domain_xml.find_interface(domain_document(driver, instance), "fa:16:3e:aa:bb:cc")
    assert interface is not None
    params = interface.find("virtualport/parameters")
    assert params is not None and params.get("interfaceid") == port["id"]
    driver.unplug_vifs(instance, [{"address": "fa:16:3e:00:00:09"}])  # never plugged: no-op


def test_power_states_map(driver: LibvirtDriver, image: Image) -> None:
    instance = instance_of(image)
    driver.spawn(instance, image, [], [])
    info = driver.get_info(instance)
    assert info.power_state == PowerState.RUNNING
    assert info.extra["domain"] == f"instance-{instance.uuid}"
    driver.pause(instance)
    assert driver.get_info(instance).power_state == PowerState.PAUSED
    driver.pause(instance)  # already paused: succeeds
    driver.reboot(instance, RebootType.SOFT)  # paused: goes straight to a hard reboot
    assert driver.get_info(instance).power_state == PowerState.RUNNING
    driver.suspend(instance)
    assert driver.get_info(instance).power_state == PowerState.SUSPENDED
    driver.reboot(instance, RebootType.HARD)  # discards the saved state and boots
    assert driver.get_info(instance).power_state == PowerState.RUNNING
    dom = driver.connection.get().lookupByName(domain_xml.domain_name(instance.uuid))
    assert not dom.hasManagedSaveImage(0)


def test_suspended_instance_is_destroyed_with_its_saved_state(
    driver: LibvirtDriver, image: Image
) -> None:
    instance = instance_of(image)
    driver.spawn(instance, image, [], [])
    driver.suspend(instance)
    driver.destroy(instance, [], [], True)
    assert instance.uuid not in driver.list_instances()
    with pytest.raises(exception.NotFound):
        driver.get_info(instance)


def test_attach_on_the_test_driver_is_unsupported_and_leaves_nothing(
    driver: LibvirtDriver, image: Image
) -> None:
    instance = instance_of(image)
    driver.spawn(instance, image, [], [])
    info = {"driver_volume_type": "rbd", "data": {"name": "p/i", "hosts": ["127.0.0.1"]}}
    with pytest.raises(exception.CapabilityNotSupported):
        driver.attach_volume(instance, info, "/dev/sdb")
    assert "sdb" not in driver.attached_disks(instance)
    with pytest.raises(exception.NotFound):
        driver.attach_volume(instance_of(image), info, "/dev/sdb")


def test_snapshot_and_console_on_the_test_driver(
    driver: LibvirtDriver, image: Image, tmp_path: Any
) -> None:
    instance = instance_of(image)
    driver.spawn(instance, image, [], [])
    target = tmp_path / "snap.img"
    with pytest.raises(exception.InvalidState, match="cold snapshots only"):
        driver.snapshot(instance, str(target))  # running: never copied while it writes
    assert not target.exists()
    driver.suspend(instance)
    driver.snapshot(instance, str(target))
    driver.resume(instance)
    assert target.read_bytes() == (tmp_path / "base.raw").read_bytes()
    assert driver.get_console_output(instance) == ""
    with pytest.raises(exception.NotFound):
        driver.get_console_output(instance_of(image))


def test_stats_meet_the_schema_and_count_running_vcpus(
    driver: LibvirtDriver, image: Image
) -> None:
    before = stats.validate(driver.get_available_resource(), "libvirt test")
    instance = instance_of(image)
    driver.spawn(instance, image, [], [])
    after = stats.validate(driver.get_available_resource(), "libvirt test")
    assert after["vcpus_used"] == before["vcpus_used"] + 1
    assert after["hypervisor_type"].lower() == "test"
    assert after["cpu_info"]["arch"] == "i686"
    assert ["i686", "test", "hvm"] in after["supported_instances"]


def test_unreachable_daemon_is_backend_unavailable_after_backoff(tmp_path: Any) -> None:
    uri = f"qemu+unix:///system?socket={tmp_path}/no-such-libvirt-sock"
    started = time.monotonic()
    with pytest.raises(exception.BackendUnavailable) as caught:
        make_driver(tmp_path, connection_uri=uri, connection_retries=2,
                    connection_retry_interval=0.1)
    elapsed = time.monotonic() - started
    assert "3 attempt(s)" in str(caught.value) and uri in str(caught.value)
    assert elapsed >= 0.3  # 0.1 + 0.2: the back-off doubled


def test_a_dead_connection_is_replaced_before_the_next_call(
    driver: LibvirtDriver, image: Image
) -> None:
    # The test driver forgets its domains when its last connection closes: hold one.
    keep_state = libvirt.open("test:///default")
    try:
        instance = instance_of(image)
        driver.spawn(instance, image, [], [])
        stale = driver.connection.get()
        stale.close()  # as if the daemon had dropped us (the object is left stale)
        assert driver.get_info(instance).power_state == PowerState.RUNNING
        assert driver.connection.get() is not stale
    finally:
        keep_state.close()


def test_bad_options_are_config_errors(tmp_path: Any) -> None:
    with pytest.raises(exception.ConfigError):
        make_driver(tmp_path, virt_type="xen")


@pytest.mark.parametrize(
    ("code", "domain", "expected"),
    [
        ("VIR_ERR_NO_DOMAIN", "VIR_FROM_QEMU", exception.NotFound),
        ("VIR_ERR_OPERATION_INVALID", "VIR_FROM_QEMU", exception.InvalidState),
        ("VIR_ERR_NO_SUPPORT", "VIR_FROM_TEST", exception.CapabilityNotSupported),
        ("VIR_ERR_SYSTEM_ERROR", "VIR_FROM_RPC", exception.BackendUnavailable),
        ("VIR_ERR_INTERNAL_ERROR", "VIR_FROM_RPC", exception.BackendUnavailable),
        ("VIR_ERR_NO_CONNECT", "VIR_FROM_NONE", exception.BackendUnavailable),
        ("VIR_ERR_INTERNAL_ERROR", "VIR_FROM_QEMU", exception.DriverError),
    ],
)
def test_libvirt_errors_map_to_stackcore_exceptions(
    driver: LibvirtDriver, code: str, domain: str, expected: type
) -> None:
    err = libvirt.libvirtError("boom")
    err.err = (getattr(libvirt, code), getattr(libvirt, domain), "the message", 2,
               None, None, None, 0, 0)
    translated = driver.connection.translate(err, "spawn", "u-1")
    assert type(translated) is expected
    if expected is exception.BackendUnavailable:
        assert driver.connection._conn is None  # dropped: the next call reconnects


def test_a_lookup_error_without_its_cause_is_settled_by_the_domain_list(
    driver: LibvirtDriver, image: Image, monkeypatch: pytest.MonkeyPatch
) -> None:
    """libvirt-python reads the thread's last error after the call: a libvirt object freed by
    the garbage collector in between resets it, and the lookup fails with no error code. An
    absent domain is still absent (spawn goes on); an existing one is still found."""
    conn = driver.connection.get()
    real = conn.lookupByName

    def lookup_losing_the_error(name: str) -> Any:
        found = None
        try:
            found = real(name)
        except libvirt.libvirtError:
            pass
        if found is not None:
            return found
        libvirt.virResetLastError()
        raise libvirt.libvirtError("virDomainLookupByName() failed")

    monkeypatch.setattr(conn, "lookupByName", lookup_losing_the_error)
    instance = instance_of(image)
    driver.spawn(instance, image, [], [])
    assert driver.list_instances() == [instance.uuid]
    with pytest.raises(exception.Conflict, match="already has a domain"):
        driver.spawn(instance, image, [], [])
    driver.destroy(instance, [], [], True)
    assert driver.list_instances() == []
    driver.destroy(instance, [], [], True)  # idempotent, through the lost-error lookup too


# --- boot from volume -------------------------------------------------------------------------

VOLUME_BYTES = b"stackcore boot volume\n" * 200


@pytest.fixture
def bfv_image() -> Image:
    """What the manager passes for a volume-backed server: no file, raw."""
    return Image(id="img-the-volume-was-made-from", name="base", path="", disk_format="raw")


@pytest.fixture
def file_volume(tmp_path: Any) -> dict[str, Any]:
    """connection_info of an NFS-style volume on a mounted share (``device_path``)."""
    path = tmp_path / "share" / "volume-v1"
    path.parent.mkdir()
    path.write_bytes(VOLUME_BYTES)
    return {"driver_volume_type": "nfs",
            "data": {"device_path": str(path), "format": "raw", "volume_id": "v1"}}


def boot_bdm(connection_info: dict[str, Any], volume_id: str = "v1",
             **extra: Any) -> dict[str, Any]:
    return {"mount_device": "/dev/vda", "volume_id": volume_id, "boot_index": 0,
            "connection_info": connection_info, **extra}


RBD_VOLUME = {"driver_volume_type": "rbd",
              "data": {"name": "volumes/volume-v2", "hosts": ["192.0.2.1"], "ports": ["6789"],
                       "auth_enabled": False, "volume_id": "v2"}}


def _vda(driver: LibvirtDriver, instance: Instance) -> ET.Element:
    disk = domain_xml.find_disk(domain_document(driver, instance), "vda")
    assert disk is not None
    return disk


def _vda_file(driver: LibvirtDriver, instance: Instance) -> str | None:
    return domain_xml.root_disk_source(domain_document(driver, instance))


def test_volume_backed_spawn_boots_from_the_volume_and_destroy_keeps_it(
    driver: LibvirtDriver, bfv_image: Image, file_volume: dict[str, Any], tmp_path: Any
) -> None:
    instance = instance_of(bfv_image)
    data_volume = {"mount_device": "/dev/vdb", "volume_id": "v2", "connection_info": RBD_VOLUME}
    driver.spawn(instance, bfv_image, [], [boot_bdm(file_volume), data_volume])
    document = domain_document(driver, instance)
    vda = _vda(driver, instance)
    source = vda.find("source")
    assert vda.get("type") == "file" and source is not None
    assert source.get("file") == file_volume["data"]["device_path"]
    assert vda.findtext("serial") == "v1"
    assert domain_xml.boot_volume(document) == "v1"
    # the data volume is there as before; no other disk (nothing made from the image)
    assert [t.get("dev") for t in document.findall("devices/disk/target")] == ["vda", "vdb"]
    instance_dir = tmp_path / "instances" / instance.uuid
    assert not (instance_dir / "disk").exists()
    assert driver.get_info(instance).power_state == PowerState.RUNNING
    # power cycles restart the stored definition: the volume stays the root disk
    driver.power_off(instance)
    driver.power_on(instance)
    driver.reboot(instance, RebootType.HARD)
    driver.suspend(instance)
    driver.resume(instance)
    assert _vda_file(driver, instance) == file_volume["data"]["device_path"]

    driver.destroy(instance, [], [{"mount_device": "/dev/vda", "volume_id": "v1",
                                   "boot_index": 0}], True)
    assert instance.uuid not in driver.list_instances()
    assert not instance_dir.exists()
    with open(file_volume["data"]["device_path"], "rb") as handle:
        assert handle.read() == VOLUME_BYTES  # the volume service's: untouched


def test_rbd_boot_volume_is_a_network_root_disk_never_removed(
    driver: LibvirtDriver, bfv_image: Image, caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch
) -> None:
    instance = instance_of(bfv_image)
    # no mount_device: the boot volume goes to /dev/vda
    bdm = boot_bdm(RBD_VOLUME, "v2")
    del bdm["mount_device"]
    driver.spawn(instance, bfv_image, [], [bdm])
    vda = _vda(driver, instance)
    source = vda.find("source")
    assert vda.get("type") == "network" and source is not None
    assert (source.get("protocol"), source.get("name")) == ("rbd", "volumes/volume-v2")
    assert [(h.get("name"), h.get("port")) for h in source.findall("host")] == \
        [("192.0.2.1", "6789")]

    # destroy with [libvirt] images_type = rbd: only the instance's own <uuid>_disk is
    # removed, never the domain's vda (the volume), in whatever pool it is
    removed: list[tuple[str, str | None]] = []

    class Disks:
        pool = "volumes"

        def remove(self, instance_uuid: str, pool: str | None = None) -> bool:
            removed.append((instance_uuid, pool))
            return False

    monkeypatch.setattr(driver, "rbd_disks", Disks())
    monkeypatch.setattr(LibvirtDriver, "is_test_driver", property(lambda self: False))
    monkeypatch.setattr(driver, "_remove_secrets", lambda conn, prefix: None)  # no secret driver
    caplog.set_level("WARNING", logger="stackcore_drivers.libvirt.driver")
    driver.destroy(instance, [], [], True)
    assert removed == [(instance.uuid, None)]  # <uuid>_disk of the configured pool only
    assert "left in Ceph" not in caplog.text
    assert instance.uuid not in driver.list_instances()


@pytest.mark.parametrize(
    ("entries", "field"),
    [
        ("two-roots", "block_device_info.boot_index"),
        ("root-at-vdb", "block_device_info.mount_device"),
        ("string-index", "block_device_info.boot_index"),
        ("data-at-vda", "mountpoint"),
        ("bad-root-type", "driver_volume_type"),
    ],
)
def test_bad_boot_volume_mappings_are_refused_before_anything_is_made(
    driver: LibvirtDriver, bfv_image: Image, file_volume: dict[str, Any], tmp_path: Any,
    entries: str, field: str
) -> None:
    bdms = {
        "two-roots": [boot_bdm(file_volume), boot_bdm(RBD_VOLUME, "v2")],
        "root-at-vdb": [boot_bdm(file_volume, mount_device="/dev/vdb")],
        "string-index": [boot_bdm(file_volume, boot_index="0")],
        "data-at-vda": [{"mount_device": "/dev/vda", "connection_info": file_volume}],
        "bad-root-type": [boot_bdm({"driver_volume_type": "fc", "data": {}})],
    }[entries]
    instance = instance_of(bfv_image)
    with pytest.raises(exception.Invalid) as caught:
        driver.spawn(instance, bfv_image, [], bdms)
    assert caught.value.kwargs["field"] == field, caught.value
    assert instance.uuid not in driver.list_instances()
    assert not (tmp_path / "instances" / instance.uuid).exists()


def test_snapshot_of_a_volume_backed_instance_is_refused_and_rescue_keeps_the_volume(
    driver: LibvirtDriver, bfv_image: Image, image: Image, file_volume: dict[str, Any],
    tmp_path: Any
) -> None:
    instance = instance_of(bfv_image)
    bdms = [boot_bdm(file_volume)]
    driver.spawn(instance, bfv_image, [], bdms)
    target = tmp_path / "snap.img"
    driver.power_off(instance)
    with pytest.raises(exception.Invalid, match="boots from volume v1: snapshot is not"):
        driver.snapshot(instance, str(target))
    assert not target.exists()
    driver.power_on(instance)

    root = domain_document(driver, instance).find("devices/disk/target[@dev='vda']/..")
    assert root is not None
    driver.rescue(instance, image)
    assert driver.get_info(instance).rescued is True
    rescued = domain_document(driver, instance)
    disks = {d.find("target").get("dev"): d for d in rescued.findall("devices/disk")}
    assert sorted(disks) == ["vda", "vdb"], sorted(disks)
    def shape(disk: ET.Element) -> list[tuple[str, dict[str, str]]]:
        return [(e.tag, dict(e.attrib)) for e in disk.iter()]

    assert shape(disks["vda"]) == shape(root), "the root volume stays as it was"
    assert disks["vdb"].find("boot").get("order") == "1", ET.tostring(disks["vdb"])
    driver.unrescue(instance)
    assert driver.get_info(instance).rescued is False
    assert [d.find("target").get("dev") for d in
            domain_document(driver, instance).findall("devices/disk")] == ["vda"]


def _vcpus(driver: LibvirtDriver, instance: Instance) -> int:
    return int(domain_document(driver, instance).findtext("vcpu") or 0)


@pytest.mark.parametrize("source_bdms", ["with boot_index", "without"])
def test_a_volume_backed_instance_resizes_and_reverts_booting_from_its_volume(
    driver: LibvirtDriver, bfv_image: Image, file_volume: dict[str, Any], source_bdms: str
) -> None:
    """The flavor's disk is not the root: a smaller one is allowed; the instance is defined
    again from the volume in the destination's block_device_info, and a revert puts the old
    flavor back with the same volume root. The source finds out it is volume-backed from the
    bdms, or - when they carry no boot_index - from the definition."""
    instance = instance_of(bfv_image)
    bdms = [boot_bdm(file_volume)]
    driver.spawn(instance, bfv_image, [], bdms)
    smaller = Flavor("smaller-disk", vcpus=2, ram_mb=128, disk_gb=0)
    given = [{"mount_device": "/dev/vda", "volume_id": "v1", "boot_index": 0}] \
        if source_bdms == "with boot_index" else []

    disk_info = driver.migrate_disk_and_power_off(instance, driver.host, smaller, [], given)
    assert driver.get_info(instance).power_state == PowerState.SHUTDOWN
    resized = dataclasses.replace(instance, flavor=smaller)
    driver.finish_migration(resized, disk_info, [], bdms, True, True)

    assert driver.get_info(resized).power_state == PowerState.RUNNING
    assert (_vcpus(driver, resized), _vda_file(driver, resized)) == \
        (2, file_volume["data"]["device_path"])
    assert domain_xml.boot_volume(domain_document(driver, resized)) == "v1"

    driver.revert_migration(resized, [], bdms)
    driver.finish_revert_migration(instance, [], bdms, True)
    assert driver.get_info(instance).power_state == PowerState.RUNNING
    assert (_vcpus(driver, instance), _vda_file(driver, instance)) == \
        (instance.flavor.vcpus, file_volume["data"]["device_path"])
    assert domain_xml.boot_volume(domain_document(driver, instance)) == "v1"
    with open(file_volume["data"]["device_path"], "rb") as handle:
        assert handle.read() == VOLUME_BYTES, "the volume's data changed"


def test_extend_of_the_boot_volume_and_not_of_an_own_root_disk(
    driver: LibvirtDriver, bfv_image: Image, image: Image, file_volume: dict[str, Any]
) -> None:
    volume_backed, image_backed = instance_of(bfv_image), instance_of(image)
    driver.spawn(volume_backed, bfv_image, [], [boot_bdm(file_volume)])
    driver.spawn(image_backed, image, [], [])
    driver.power_off(volume_backed)  # the test driver cannot resize a running disk
    driver.extend_volume(volume_backed, "/dev/vda", 2 * 1024 ** 3)
    with pytest.raises(exception.Invalid, match="own root disk"):
        driver.extend_volume(image_backed, "/dev/vda", 2 * 1024 ** 3)


def test_capability_is_declared() -> None:
    assert LibvirtDriver.capabilities["boot_from_volume"] is True


def test_a_destination_sharing_the_daemon_and_directory_never_touches_the_source(
    tmp_path: Any, driver: LibvirtDriver, image: Image
) -> None:
    """Two compute hosts on one libvirtd and one instances_path (a misconfiguration): the
    destination's preparation is refused (the daemon has the domain) and the rollback the
    manager runs after any failed preparation leaves the source's guest running, its
    secrets-free definition and its directory as they were."""
    dest = make_driver(tmp_path, host="h2")
    instance = instance_of(image)
    driver.spawn(instance, image, [], [])
    kept = tmp_path / "instances" / instance.uuid / "keep"
    kept.write_text("the source's data")
    with pytest.raises(exception.Invalid, match="already has a domain"):
        dest.pre_live_migration(instance, [], [], None)
    dest.rollback_live_migration_at_destination(instance, [], [], {})
    assert driver.get_info(instance).power_state == PowerState.RUNNING
    assert driver.list_instances() == [instance.uuid]
    assert kept.read_text() == "the source's data"


def test_a_directory_the_destination_did_not_make_is_refused_and_left_alone(
    tmp_path: Any, image: Image
) -> None:
    """The instance's directory exists on the destination (an instances_path shared with the
    source on another daemon, or a leftover): never written over, never removed."""
    dest = make_driver(tmp_path, host="h2")
    instance = instance_of(image)
    disk = tmp_path / "instances" / instance.uuid / "disk"
    disk.parent.mkdir(parents=True)
    disk.write_text("the source's live disk")
    with pytest.raises(exception.Invalid, match="shared with the source"):
        dest.pre_live_migration(instance, [], [], None)
    dest.rollback_live_migration_at_destination(instance, [], [], {})
    assert disk.read_text() == "the source's live disk"


def test_a_prepared_arrival_is_removed_by_the_rollback_and_kept_once_arrived(
    tmp_path: Any, image: Image
) -> None:
    """What pre_live_migration made (its directory, marked) goes with the rollback."""
    dest = make_driver(tmp_path, host="h2")
    instance = instance_of(image)
    data = dest.pre_live_migration(instance, [], [], None)
    directory = tmp_path / "instances" / instance.uuid
    assert data["instance_dir"] == str(directory) and (directory / "arriving.json").is_file()
    dest.rollback_live_migration_at_destination(instance, [], [], dict(data))
    assert not directory.exists()
    dest.rollback_live_migration_at_destination(instance, [], [], dict(data))  # idempotent

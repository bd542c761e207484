"""The libvirt driver against libvirt's in-process test driver (``test:///default``).

The test driver keeps its domains in process memory, shared by every connection to
``test:///default`` in this process, and ships one domain of its own (``test``) that the driver
must never list or touch.
"""

from __future__ import annotations

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

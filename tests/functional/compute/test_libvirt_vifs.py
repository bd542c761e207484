"""A real KVM domain gets live VIFs: ``ovs`` (openvswitch virtualport on an OVS bridge of the
test ovsdb-server) and ``bridge`` (a kernel Linux bridge); QEMU has the NIC and the tap sits on
the bridge. Unplugging removes both.

The test guests run no OS (firmware only), and a live PCI unplug needs the guest OS to
acknowledge it; so unplug is proven on a powered-off instance, and the live case is proven to
fail cleanly (DriverError after ``device_detach_timeout``, the NIC already gone from the
persistent definition so the next power cycle drops it)."""

from __future__ import annotations

import json
import os
import subprocess
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from stackcore import exception

from .conftest import backend_env, domain_of, libvirt_qemu, run

pytestmark = pytest.mark.real


def _port(vif_type: str, bridge: str) -> dict[str, Any]:
    mac = "fa:16:3e:" + ":".join(f"{b:02x}" for b in os.urandom(3))
    return {"id": str(uuid.uuid4()), "address": mac, "vif_type": vif_type,
            "vif_details": {"bridge_name": bridge}}


def _qemu_nic_macs(dom: Any) -> list[str]:
    """MACs of the NICs QEMU has (HMP 'info network')."""
    text = libvirt_qemu.qemuMonitorCommand(
        dom, "info network", libvirt_qemu.VIR_DOMAIN_QEMU_MONITOR_COMMAND_HMP)
    return [part.split("=", 1)[1].strip() for line in text.splitlines()
            for part in line.split(",") if part.strip().startswith("macaddr=")]


@pytest.fixture
def ovs_bridge() -> Iterator[tuple[str, list[str]]]:
    db = backend_env("STACKCORE_TEST_OVSDB", "ovs")
    vsctl = ["ovs-vsctl", f"--db={db}", "--timeout=10"]
    name = f"br-sc-{uuid.uuid4().hex[:6]}"
    run(*vsctl, "add-br", name, "--", "set", "bridge", name, "datapath_type=netdev")
    try:
        yield name, vsctl
    finally:
        subprocess.run([*vsctl, "--if-exists", "del-br", name], check=False,
                       capture_output=True)


@pytest.fixture
def linux_bridge() -> Iterator[str]:
    backend_env("STACKCORE_TEST_LIBVIRT_URI", "libvirt")
    name = f"brq-{uuid.uuid4().hex[:8]}"
    run("ip", "link", "add", "name", name, "type", "bridge")
    try:
        run("ip", "link", "set", name, "up")
        yield name
    finally:
        subprocess.run(["ip", "link", "del", name], check=False, capture_output=True)


def test_ovs_vif_plug_sets_iface_id_and_unplug_removes_the_port(
    kvm_driver: Any, booted: Any, ovs_bridge: tuple[str, list[str]]
) -> None:
    bridge, vsctl = ovs_bridge
    instance = booted()
    port = _port("ovs", bridge)
    tap = ("tap" + port["id"])[:14]

    kvm_driver.plug_vifs(instance, [port])
    kvm_driver.plug_vifs(instance, [port])  # already plugged: no second NIC

    assert run(*vsctl, "list-ports", bridge).split() == [tap]
    external_ids = json.loads(run(*vsctl, "--format=json", "--columns=external_ids", "list",
                                  "Interface", tap))["data"][0][0][1]
    ids = dict(external_ids)
    assert ids["iface-id"] == port["id"]
    assert ids["attached-mac"] == port["address"]
    assert ids["vm-id"] == instance.uuid
    assert _qemu_nic_macs(domain_of(kvm_driver, instance)) == [port["address"]]

    kvm_driver.power_off(instance)
    assert run(*vsctl, "list-ports", bridge).split() == []  # tap gone with QEMU
    kvm_driver.unplug_vifs(instance, [port])
    kvm_driver.unplug_vifs(instance, [port])  # idempotent
    kvm_driver.power_on(instance)

    assert run(*vsctl, "list-ports", bridge).split() == []
    assert _qemu_nic_macs(domain_of(kvm_driver, instance)) == []


def test_bridge_vif_puts_the_tap_on_the_linux_bridge(
    kvm_driver: Any, booted: Any, linux_bridge: str
) -> None:
    instance = booted()
    port = _port("bridge", linux_bridge)
    tap = ("tap" + port["id"])[:14]

    kvm_driver.plug_vifs(instance, [port])

    master = os.path.basename(os.readlink(f"/sys/class/net/{tap}/master"))
    assert master == linux_bridge
    assert _qemu_nic_macs(domain_of(kvm_driver, instance)) == [port["address"]]

    kvm_driver.power_off(instance)
    kvm_driver.unplug_vifs(instance, [port])
    kvm_driver.power_on(instance)

    assert not os.path.exists(f"/sys/class/net/{tap}")
    assert _qemu_nic_macs(domain_of(kvm_driver, instance)) == []


def test_live_unplug_the_guest_cannot_acknowledge_fails_cleanly(
    tmp_path: Any, base_image: Any, linux_bridge: str
) -> None:
    from stackcore.compute.objects import Flavor, Instance, RebootType

    from .conftest import make_driver

    driver = make_driver(tmp_path, device_detach_timeout=2)
    instance = Instance(uuid=str(uuid.uuid4()), name="no os", host="functional-host",
                        flavor=Flavor("f", 1, 128, 1), image=base_image)
    port = _port("bridge", linux_bridge)
    try:
        driver.spawn(instance, base_image, [port], [])
        assert _qemu_nic_macs(domain_of(driver, instance)) == [port["address"]]
        with pytest.raises(exception.DriverError) as caught:
            driver.unplug_vifs(instance, [port])
        assert "did not release" in str(caught.value)
        driver.reboot(instance, RebootType.HARD)  # the power cycle drops the NIC for good
        assert _qemu_nic_macs(domain_of(driver, instance)) == []
    finally:
        driver.destroy(instance, [], [], True)


def test_vif_on_a_missing_bridge_fails_and_plugs_nothing(kvm_driver: Any, booted: Any) -> None:
    instance = booted()
    port = _port("bridge", f"brq-{uuid.uuid4().hex[:8]}")
    with pytest.raises(exception.DriverError):
        kvm_driver.plug_vifs(instance, [port])
    assert _qemu_nic_macs(domain_of(kvm_driver, instance)) == []

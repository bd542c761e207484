"""Bad input never leaks and never sticks: each class of defect the fuzzing of issue 21 found,
refused with one stackcore error naming the field, and nothing left transient when the work
cannot be handed on (the transport refuses a message)."""

from __future__ import annotations

import os

import pytest

from stackcore import exception


def _invalid(call, field: str) -> exception.Invalid:
    with pytest.raises(exception.Invalid) as caught:
        call()
    assert caught.value.kwargs["field"] == field, \
        f"expected the error to name {field!r}: {caught.value} ({caught.value.kwargs})"
    return caught.value


def test_wrong_types_never_reach_the_database(cloud) -> None:
    _invalid(lambda: cloud.compute.get_flavor(["small"]), "name_or_id")
    _invalid(lambda: cloud.compute.get_image({"id": 1}), "name_or_id")
    _invalid(lambda: cloud.compute.get_aggregate(object()), "name_or_id")
    _invalid(lambda: cloud.volume.create(1, image_id=["x"]), "image_id")
    net = cloud.network.create_network("n")
    deep: dict = {}
    for _ in range(2000):
        deep = {"k": deep}
    _invalid(lambda: cloud.network.create_port(net.id, profile=deep), "profile")
    assert cloud.network.list_ports() == []


@pytest.mark.parametrize("text", ["\ud800", "red\x9b31m", "bell\x07", "nul\x00"])
def test_unencodable_and_control_text_is_refused(cloud, text: str) -> None:
    _invalid(lambda: cloud.compute.create_flavor(text, 1, 1, 1), "name")
    _invalid(lambda: cloud.compute.create_aggregate("a", availability_zone=text),
             "availability_zone")
    _invalid(lambda: cloud.compute.set_host_enabled(text, True), "host")
    _invalid(lambda: cloud.volume.create(1, name=text), "name")
    net = cloud.network.create_network("n2")
    _invalid(lambda: cloud.network.create_port(net.id, device_owner=text), "device_owner")
    assert [f.name for f in cloud.compute.list_flavors()] == ["small"]


def test_strings_are_not_booleans(cloud) -> None:
    _invalid(lambda: cloud.compute.set_host_enabled("compute-1", "false"), "enabled")
    _invalid(lambda: cloud.compute.set_host_enabled("compute-1", None), "enabled")
    assert not next(h for h in cloud.compute.list_hosts() if h.host == "compute-1").disabled
    vol = cloud.volume.create(1)
    _invalid(lambda: cloud.volume.detach(vol.id, force="false"), "force")
    _invalid(lambda: cloud.volume.create_snapshot(vol.id, force="false"), "force")
    assert cloud.volume.list_snapshots() == []


def test_rejected_calls_leave_nothing(cloud) -> None:
    _invalid(lambda: cloud.compute.create_server("s", "small", "img", timeout=-1), "timeout")
    _invalid(lambda: cloud.compute.create_server("s", "small", "img",
                                                 networks=[{"network_id": "x"}]),
             "networks[0].network_id")
    net = cloud.network.create_network("n3")
    _invalid(lambda: cloud.compute.create_server("s", "small", "img",
                                                 networks=[{"network_id": net.id,
                                                            "fixed_ips": [{}]}]),
             "networks[0].fixed_ips[0]")
    assert cloud.compute.list_servers() == []
    vol = cloud.volume.create(1)
    _invalid(lambda: cloud.volume.upload_to_image(vol.id, "\ud800"), "image_name")
    assert cloud.volume.get(vol.id).status == "available"
    cloud.volume.delete(vol.id)


@pytest.mark.parametrize(("device", "field"), [("/dev/../vdc", "mountpoint"),
                                                 ("/dev/xvA", "mountpoint")])
def test_device_names(cloud, device: str, field: str) -> None:
    server = cloud.compute.create_server("s", "small", "img")
    vol = cloud.volume.create(1)
    _invalid(lambda: cloud.compute.attach_volume(server.id, vol.id, device), field)
    assert cloud.compute.list_server_volumes(server.id) == []


def test_volume_type_zero_is_not_no_type(cloud) -> None:
    _invalid(lambda: cloud.volume.create(1, volume_type=0), "volume_type")
    assert cloud.volume.list_volumes() == []


@pytest.mark.parametrize(("key", "value"), [("hypervisor_type", "teleporter"),
                                            ("hw_architecture", "z80"), ("hw_vm_mode", "dos")])
def test_image_properties_no_driver_knows(cloud, image_file: str, key: str, value: str) -> None:
    _invalid(lambda: cloud.compute.register_image("i", image_file, "raw", {key: value}),
             f"properties[{key!r}]")
    assert [i.name for i in cloud.compute.list_images()] == ["img"]


def test_volume_from_an_image_whose_file_is_gone(cloud, tmp_path) -> None:
    path = tmp_path / "gone.raw"
    path.write_bytes(b"\0" * 1024)
    image = cloud.compute.register_image("gone", str(path), "raw")
    os.unlink(path)
    with pytest.raises(exception.InvalidState, match="is gone"):
        cloud.volume.create(1, image_id=image.id)
    assert cloud.volume.list_volumes() == []


def test_ipv6_subnet_near_the_zero_address_gets_ipv6_addresses(cloud) -> None:
    net = cloud.network.create_network("v6")
    subnet = cloud.network.create_subnet(net.id, "::/64")
    assert (subnet.gateway_ip, subnet.allocation_pools[0]["start"]) == ("::1", "::2"), subnet
    port = cloud.network.create_port(net.id)
    assert [ip.ip_address for ip in port.fixed_ips] == ["::2"], port.fixed_ips


# --- nothing sticks when the downstream refuses the work ------------------------------------

def _refuse(*_args, **_kwargs):
    raise exception.RPCError("transport refused the message")


def test_server_whose_build_cannot_be_sent_is_error_with_its_claim_back(cloud,
                                                                        monkeypatch) -> None:
    monkeypatch.setattr(cloud.compute.compute_rpc, "build_and_run_instance", _refuse)
    server = cloud.compute.create_server("s", "small", "img")
    assert (server.status, server.task_state) == ("ERROR", None), server
    assert server.fault is not None and "transport refused" in server.fault.message
    allocated = {h.host: h.allocated["vcpus"] for h in cloud.compute.list_hosts()}
    assert set(allocated.values()) == {0}, f"a claim outlived the failed build: {allocated}"


@pytest.mark.parametrize("operation", ["create_volume", "create_snapshot", "extend_volume"])
def test_volume_work_that_cannot_be_sent_never_stays_transient(cloud, monkeypatch,
                                                               operation: str) -> None:
    vol = cloud.volume.create(1)
    monkeypatch.setattr(cloud.volume.rpc, operation, _refuse)
    with pytest.raises(exception.RPCError):
        if operation == "create_volume":
            cloud.volume.create(1, name="second")
        elif operation == "create_snapshot":
            cloud.volume.create_snapshot(vol.id)
        else:
            cloud.volume.extend(vol.id, 2)
    monkeypatch.undo()
    transient = {"creating", "deleting", "extending", "attaching", "detaching", "uploading",
                 "downloading"}
    stuck = [(v.id, v.status) for v in cloud.volume.list_volumes() if v.status in transient]
    stuck += [(s.id, s.status) for s in cloud.volume.list_snapshots() if s.status in transient]
    assert stuck == [], f"left transient after {operation} could not be sent: {stuck}"
    if operation == "extend_volume":
        assert (cloud.volume.get(vol.id).status, cloud.volume.get(vol.id).size) == \
            ("available", 1)
    pools = cloud.volume.list_pools()
    held = sum(p.allocated_capacity_gb for p in pools)
    expected = sum(v.size for v in cloud.volume.list_volumes() if v.status != "error")
    assert held == expected, f"pools hold {held} GiB, live volumes {expected} GiB"

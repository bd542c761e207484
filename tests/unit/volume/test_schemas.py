"""Stats and connection_info schemas: what is accepted, what is refused and how it is named."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from stackcore import exception
from stackcore.volume import connection_info, stats


def report(**changes: Any) -> dict[str, Any]:
    pool = {"pool_name": "p1", "total_capacity_gb": 100, "free_capacity_gb": 50.5,
            "reserved_percentage": 0, "thin_provisioning_support": True,
            "thick_provisioning_support": False, "provisioned_capacity_gb": 10,
            "max_over_subscription_ratio": 20.0}
    base = {"volume_backend_name": "b", "vendor_name": "v", "driver_version": "1.0",
            "storage_protocol": "iSCSI", "total_capacity_gb": 100, "free_capacity_gb": 50.5,
            "reserved_percentage": 0, "thin_provisioning_support": True,
            "thick_provisioning_support": False, "provisioned_capacity_gb": 10,
            "max_over_subscription_ratio": 20.0, "multiattach": False,
            "online_extend_support": True, "pools": [pool]}
    base.update(changes)
    return copy.deepcopy(base)


def test_valid_report_passes() -> None:
    assert stats.validate(report(), "t")["vendor_name"] == "v"


@pytest.mark.parametrize("key", ["total_capacity_gb", "free_capacity_gb"])
@pytest.mark.parametrize("keyword", ["infinite", "unknown"])
def test_keywords_accepted_on_capacity_keys(key: str, keyword: str) -> None:
    stats.validate(report(**{key: keyword}), "t")
    r = report()
    r["pools"][0][key] = keyword
    stats.validate(r, "t")


@pytest.mark.parametrize("key", ["provisioned_capacity_gb", "reserved_percentage",
                                 "max_over_subscription_ratio", "driver_version"])
def test_keywords_refused_elsewhere(key: str) -> None:
    with pytest.raises(exception.StatsSchemaError) as caught:
        stats.validate(report(**{key: "infinite" if key != "driver_version" else 1}), "t")
    assert caught.value.field == key


def test_keyword_refused_in_pool_figure() -> None:
    r = report()
    r["pools"][0]["provisioned_capacity_gb"] = "unknown"
    with pytest.raises(exception.StatsSchemaError) as caught:
        stats.validate(r, "t")
    assert caught.value.field == "pools.0.provisioned_capacity_gb"


@pytest.mark.parametrize("missing", [f for f, _, _, req in stats.FIELDS if req])
def test_each_required_field_is_required(missing: str) -> None:
    r = report()
    del r[missing]
    with pytest.raises(exception.StatsSchemaError) as caught:
        stats.validate(r, "driver x")
    assert caught.value.field == missing
    assert "driver x" in str(caught.value)


def test_protocol_from_fixed_set_and_pools_nonempty_unique() -> None:
    with pytest.raises(exception.StatsSchemaError):
        stats.validate(report(storage_protocol="iscsi"), "t")
    with pytest.raises(exception.StatsSchemaError):
        stats.validate(report(pools=[]), "t")
    r = report()
    r["pools"].append(dict(r["pools"][0]))
    with pytest.raises(exception.StatsSchemaError) as caught:
        stats.validate(r, "t")
    assert caught.value.field == "pools"
    with pytest.raises(exception.StatsSchemaError):
        stats.validate(report(max_over_subscription_ratio=0.5), "t")
    stats.validate(report(max_over_subscription_ratio="auto"), "t")


ISCSI = {"driver_volume_type": "iscsi", "data": {
    "target_discovered": False, "target_iqn": "iqn.2010-10.org.openstack:volume-1",
    "target_portal": "127.0.0.1:3260", "target_lun": 1, "volume_id": "1",
    "auth_method": "CHAP", "auth_username": "u", "auth_password": "topsecret"}}
NFS = {"driver_volume_type": "nfs", "mount_point_base": "/mnt", "data": {
    "export": "127.0.0.1:/srv/share", "name": "volume-1", "options": None, "format": "raw"}}
RBD = {"driver_volume_type": "rbd", "data": {
    "name": "pool/volume-1", "hosts": ["127.0.0.1"], "ports": ["6789"], "cluster_name": "ceph",
    "auth_enabled": False, "auth_username": None, "secret_type": "ceph", "secret_uuid": None,
    "volume_id": "1", "discard": True}}


@pytest.mark.parametrize("info", [ISCSI, NFS, RBD])
def test_valid_connection_info(info: dict[str, Any]) -> None:
    assert connection_info.validate(copy.deepcopy(info), "t") == info


@pytest.mark.parametrize("info,key", [(ISCSI, "target_iqn"), (NFS, "format"), (RBD, "hosts")])
def test_missing_key_named(info: dict[str, Any], key: str) -> None:
    broken = copy.deepcopy(info)
    del broken["data"][key]
    with pytest.raises(exception.DriverError) as caught:
        connection_info.validate(broken, "t")
    assert caught.value.field == f"data.{key}"


def test_bad_secret_is_named_not_shown() -> None:
    broken = copy.deepcopy(ISCSI)
    broken["data"]["auth_password"] = 12345678
    with pytest.raises(exception.DriverError) as caught:
        connection_info.validate(broken, "t")
    assert "auth_password" in str(caught.value) and "12345678" not in str(caught.value)
    assert "topsecret" not in str(connection_info.redacted(ISCSI))


def test_chap_needs_credentials_and_nfs_needs_mount_base() -> None:
    broken = copy.deepcopy(ISCSI)
    del broken["data"]["auth_password"]
    with pytest.raises(exception.DriverError):
        connection_info.validate(broken, "t")
    nfs = copy.deepcopy(NFS)
    del nfs["mount_point_base"]
    with pytest.raises(exception.DriverError) as caught:
        connection_info.validate(nfs, "t")
    assert caught.value.field == "mount_point_base"
    with pytest.raises(exception.DriverError):
        connection_info.validate({"driver_volume_type": "fc", "data": {}}, "t")

"""Filter, weigher and operator semantics on synthetic hosts and pools (no database)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from stackcore import conf as sc_conf
from stackcore.compute import placement as compute_placement
from stackcore.compute.placement import filters as cf
from stackcore.compute.placement.hosts import HostSet, HostState
from stackcore.compute.placement.request import ComputeRequest
from stackcore.scheduler import extra_specs_ops
from stackcore.scheduler.weighers import base as wbase
from stackcore.testing.suites import scheduler as suite
from stackcore.volume import placement as volume_placement
from stackcore.volume.placement import capacity
from stackcore.volume.placement import filters as vf
from stackcore.volume.placement import weighers as vw
from stackcore.volume.placement.pools import PoolSet, PoolState
from stackcore.volume.placement.request import VolumeRequest


@pytest.fixture
def conf() -> Any:
    return sc_conf.load([])


@pytest.mark.parametrize(("value", "req", "ok"), [
    ("10", "= 5", True), ("4", "= 5", False), ("5", "== 5.0", True), ("5", "!= 5", False),
    ("6", ">= 6", True), ("7", "<= 6", False), ("abc", "s== abc", True), ("abc", "s!= abc", False),
    ("a", "s< b", True), ("b", "s<= a", False), ("b", "s> a", True), ("a", "s>= b", False),
    ("iSCSI", "<in> SCSI", True), (["avx2", "aes"], "<in> aes", True),
    (["avx2", "aes"], "<all-in> aes avx2", True), (["aes"], "<all-in> aes avx2", False),
    (True, "<is> True", True), ("false", "<is> True", False), ("nfs", "<or> lvm <or> nfs", True),
    ("ceph", "<or> lvm <or> nfs", False), ("x", "x", True), ("x", "y", False),
    ("n/a", "= 5", False), (None, "x", False),
])
def test_extra_spec_operators(value: Any, req: str, ok: bool) -> None:
    assert extra_specs_ops.match(value, req) is ok


def test_list_capability_matches_if_any_element_does() -> None:
    assert extra_specs_ops.match_any(["lvm", "nfs"], "nfs")
    assert not extra_specs_ops.match_any(["lvm", "nfs"], "ceph")


def _pool(**kwargs: Any) -> PoolState:
    return PoolState(name="h@b#p", up=True, reporting=True, capacity=capacity.Pool(**kwargs),
                     default_mosr=20.0)


def test_capacity_filter_and_weigher_use_cinder_thin_example(conf: Any) -> None:
    # total 100, reserved 10 %, mosr 20, provisioned 500 -> virtual free 1300 (cinder.md s7)
    pool = _pool(total_capacity_gb=100, free_capacity_gb=50, reserved_percentage=10,
                 provisioned_capacity_gb=500, thin_provisioning_support=True,
                 max_over_subscription_ratio=20.0)
    flt, weigher = vf.CapacityFilter(conf), vw.CapacityWeigher(conf)
    assert flt.host_passes(pool, VolumeRequest(1300))
    assert not flt.host_passes(pool, VolumeRequest(1301))
    assert weigher.weigh_object(pool, VolumeRequest(1)) == 1300
    assert weigher.weigh_object(pool, VolumeRequest(1)) == capacity.weight(
        pool.capacity, True, 20.0)
    assert "virtual free is 1300.00 GiB" in flt.reason(pool, VolumeRequest(2000))


def test_capacity_filter_thick_example_and_claims_since_report(conf: Any) -> None:
    # thick LVM: total 100, free 40, provisioned 60, reserved 10 % -> min(30, 40) = 30
    cap = dict(total_capacity_gb=100, free_capacity_gb=40, reserved_percentage=10,
               provisioned_capacity_gb=60)
    thick = VolumeRequest(30, {"provisioning:type": "thick"})
    flt = vf.CapacityFilter(conf)
    assert flt.host_passes(_pool(**cap), thick)
    consumed = PoolState(name="h@b#p", capacity=capacity.Pool(**cap), consumed_gb=1)
    assert not flt.host_passes(consumed, thick)


@pytest.mark.parametrize("keyword", ["infinite", "unknown"])
def test_keyword_capacities(conf: Any, keyword: str) -> None:
    flt, weigher = vf.CapacityFilter(conf), vw.CapacityWeigher(conf)
    free_kw = _pool(total_capacity_gb=100, free_capacity_gb=keyword)
    assert flt.host_passes(free_kw, VolumeRequest(10**6))
    total_kw = _pool(total_capacity_gb=keyword, free_capacity_gb=keyword)
    assert flt.host_passes(total_kw, VolumeRequest(10))
    reserved = _pool(total_capacity_gb=keyword, free_capacity_gb=10, reserved_percentage=5)
    assert not flt.host_passes(reserved, VolumeRequest(1))
    assert weigher.weigh_object(total_kw, VolumeRequest(1)) == -1
    conf.set_override("capacity_weight_multiplier", -1.0, group="scheduler")
    assert weigher.weigh_object(total_kw, VolumeRequest(1)) == float("inf")


def test_stacking_still_puts_keyword_pools_last(conf: Any) -> None:
    conf.set_override("capacity_weight_multiplier", -1.0, group="scheduler")
    pools = PoolSet.from_states([
        PoolState(name="a@b#kw", up=True, reporting=True,
                  capacity=capacity.Pool("infinite", "infinite")),
        PoolState(name="b@b#small", up=True, reporting=True, capacity=capacity.Pool(10, 10)),
        PoolState(name="c@b#big", up=True, reporting=True, capacity=capacity.Pool(100, 100)),
    ])
    decision = volume_placement.load_handler(conf).run(pools, VolumeRequest(1))
    assert decision.names == ["b@b#small", "c@b#big", "a@b#kw"]


def test_volume_capabilities_filter_scopes(conf: Any) -> None:
    pool = PoolState(name="h@b#p", capabilities={"volume_backend_name": "lvm",
                                                 "storage_protocol": "iSCSI"})
    flt = vf.CapabilitiesFilter(conf)
    assert flt.host_passes(pool, VolumeRequest(1, {"volume_backend_name": "lvm",
                                                   "provisioning:type": "thick",
                                                   "capabilities:storage_protocol": "<in> SCSI"}))
    assert not flt.host_passes(pool, VolumeRequest(1, {"replication_enabled": "<is> True"}))
    assert flt.reason(pool, VolumeRequest(1, {"volume_backend_name": "nfs"})) == \
        "wants volume_backend_name 'nfs', it is 'lvm'"


def _host(name: str, **kwargs: Any) -> HostState:
    base: dict[str, Any] = dict(up=True, reporting=True, vcpus=16, memory_mb=8192, local_gb=100)
    base.update(kwargs)
    return HostState(host=name, **base)


def test_ram_filter_summary_names_the_best_rejected_host(conf: Any) -> None:
    hosts = HostSet.from_states([_host("a", alloc_memory_mb=7000), _host("b", memory_mb=2048),
                                 _host("c", memory_mb=65536)])
    decision = compute_placement.load_handler(conf).run(hosts, ComputeRequest(1, 4096, 1))
    assert decision.names == ["c"]
    assert decision.reasons() == ["RamFilter rejected 2 host(s): needs 4096 MB, the best had "
                                  "2048 MB free"]


def test_image_and_capability_filters(conf: Any) -> None:
    caps = {"hypervisor_type": "QEMU", "hypervisor_version": 7002000,
            "cpu_info": {"arch": "x86_64", "features": ["avx2"]},
            "supported_instances": [["x86_64", "qemu", "hvm"]]}
    host = _host("a", capabilities=caps)
    image = cf.ImagePropertiesFilter(conf)
    assert image.host_passes(host, ComputeRequest(1, 1, 0, image_properties={
        "architecture": "x86_64", "img_hv_requested_version": ">= 7000000"}))
    assert not image.host_passes(host, ComputeRequest(1, 1, 0, image_properties={
        "hw_architecture": "aarch64"}))
    assert not image.host_passes(_host("b"), ComputeRequest(1, 1, 0, image_properties={
        "architecture": "x86_64"}))
    capf = cf.ComputeCapabilitiesFilter(conf)
    assert capf.host_passes(host, ComputeRequest(1, 1, 0, extra_specs={
        "capabilities:cpu_info:features": "<in> avx2", "hypervisor_version": ">= 7000000",
        "hw:cpu_policy": "dedicated", "unknown_bare_key": "ignored"}))
    assert not capf.host_passes(host, ComputeRequest(1, 1, 0, extra_specs={
        "capabilities:cpu_info:vendor": "Intel"}))


def test_aggregate_multiplier_override(conf: Any) -> None:
    hosts = HostSet.from_states([
        _host("a", memory_mb=8192), _host("b", memory_mb=4096,
                                          aggregate_metadata={"ram_weight_multiplier":
                                                              frozenset({"100"})})])
    weighers = compute_placement.load_handler(conf)
    assert weighers.run(hosts, ComputeRequest(1, 512, 1)).names == ["b", "a"]


def test_normalize() -> None:
    assert list(wbase.normalize(np.array([1.0, 3.0, 2.0]))) == [0.0, 1.0, 0.5]
    assert list(wbase.normalize(np.array([5.0, 5.0]))) == [0.0, 0.0]
    assert list(wbase.normalize(np.array([0.0, np.inf, 10.0]))) == [0.0, 1.0, 10 / 1010]


class _LyingFilter(cf.RamFilter):
    """Declares a whole-set path that disagrees with its per-host path."""

    def filter_all(self, hosts: Any, request: Any) -> Any:
        return np.ones(len(hosts), bool)


def test_conformance_suite_catches_disagreeing_paths(conf: Any) -> None:
    test = suite.TestComputeFilterConformance()
    test.test_same_input_same_answer(cf.RamFilter(conf))
    with pytest.raises(AssertionError, match="paths disagree"):
        test.test_whole_set_agrees_with_per_host(_LyingFilter(conf))


class _MutatingFilter(cf.RamFilter):
    def filter_all(self, hosts: Any, request: Any) -> Any:
        hosts.alloc_memory_mb[:] = 0
        return super().filter_all(hosts, request)


def test_conformance_suite_catches_side_effects(conf: Any) -> None:
    with pytest.raises(AssertionError, match="candidates changed"):
        suite.TestComputeFilterConformance().test_inputs_unchanged(_MutatingFilter(conf))

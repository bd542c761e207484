"""Scheduler filter and weigher conformance suite (families ``scheduler.compute_filters``,
``scheduler.compute_weighers``, ``scheduler.volume_filters``, ``scheduler.volume_weighers``).

Run it from a plugin package's test module (``from stackcore.testing.suites.scheduler import
*``) with ``--stackcore-driver scheduler.compute_filters:<name>`` (or one of the other three
families). No backend is needed: candidates are random synthetic host or pool sets, seeded so
a failure can be replayed, including hosts that never reported and pools reporting
``infinite``/``unknown`` capacity.

Checks, for every plugin:

* deterministic - the same set and request give the same answer, on a rebuilt copy too;
* side-effect free - the candidate set and the request are unchanged afterwards;
* tolerant - never-reported hosts, empty capabilities and keyword capacities give an answer
  (a bool, a float), never an exception; a rejection always has a reason in words;
* ``whole_set`` capability - the whole-set path and the per-host path agree on random sets
  (filters: identical masks; weighers: equal raw weights, ``inf`` included).
"""

from __future__ import annotations

import copy
import random
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from stackcore.compute.placement.hosts import HostSet, HostState
from stackcore.compute.placement.request import ComputeRequest, ServerGroupInfo
from stackcore.testing import check
from stackcore.testing.harness import DriverUnderTest
from stackcore.volume.placement import capacity
from stackcore.volume.placement.pools import PoolSet, PoolState
from stackcore.volume.placement.request import VolumeRequest

__all__ = [
    "TestComputeFilterConformance",
    "TestComputeWeigherConformance",
    "TestVolumeFilterConformance",
    "TestVolumeWeigherConformance",
    "random_compute_request",
    "random_hosts",
    "random_pools",
    "random_volume_request",
]

SEEDS = (1, 2, 3, 5, 8, 13, 21, 34)
ZONES = ("nova", "az2", "edge")
TRIPLES = (("x86_64", "qemu", "hvm"), ("x86_64", "kvm", "hvm"), ("aarch64", "qemu", "hvm"),
           ("i686", "qemu", "hvm"))


def _capabilities(rng: random.Random) -> dict[str, Any]:
    if rng.random() < 0.1:
        return {}  # never reported
    caps: dict[str, Any] = {
        "hypervisor_type": rng.choice(("QEMU", "KVM", "fake")),
        "hypervisor_version": rng.choice((6002000, 7002000, 8000000)),
        "cpu_info": {"arch": rng.choice(("x86_64", "aarch64")), "model": "m",
                     "vendor": rng.choice(("Intel", "AMD")),
                     "topology": {"sockets": 1, "cores": rng.choice((4, 8)), "threads": 2},
                     "features": rng.sample(["vmx", "sse4_2", "avx2", "aes"], 2)},
        "supported_instances": [list(t) for t in rng.sample(TRIPLES, rng.randint(0, 3))],
    }
    if rng.random() < 0.3:
        caps["gpu"] = rng.choice(("unknown", "1", "2", "<bad>"))
    return caps


def random_hosts(seed: int, n: int = 60) -> HostSet:
    """A random compute host set: a few down, disabled or silent hosts, varied load,
    capabilities, zones, aggregates."""
    rng = random.Random(seed)
    states = []
    for i in range(n):
        vcpus = rng.choice((0, 8, 16, 64))
        memory = rng.choice((0, 8192, 32768, 262144))
        disk = rng.choice((0, 100, 500, 2000))
        meta: dict[str, frozenset[str]] = {}
        if rng.random() < 0.4:
            meta["ssd"] = frozenset({rng.choice(("true", "false"))})
        if rng.random() < 0.2:
            meta["ram_weight_multiplier"] = frozenset({rng.choice(("2.0", "-1", "x"))})
        states.append(HostState(
            host=f"host-{i:04d}",
            availability_zone=rng.choice(ZONES),
            up=rng.random() > 0.05,
            disabled=rng.random() < 0.05,
            disabled_reason=rng.choice((None, "maintenance")),
            reporting=rng.random() > 0.05,
            vcpus=vcpus, memory_mb=memory, local_gb=disk,
            alloc_vcpus=rng.randint(0, vcpus * 2), alloc_memory_mb=rng.randint(0, memory),
            alloc_disk_gb=rng.randint(0, disk),
            num_instances=rng.randint(0, 60), num_io_ops=rng.randint(0, 10),
            cpu_allocation_ratio=rng.choice((1.0, 4.0, 16.0)),
            ram_allocation_ratio=rng.choice((1.0, 1.5)),
            disk_allocation_ratio=1.0,
            capabilities=_capabilities(rng),
            aggregate_metadata=meta,
        ))
    return HostSet.from_states(states)


_EXTRA_SPECS: tuple[dict[str, str], ...] = (
    {}, {"capabilities:hypervisor_type": "QEMU"}, {"capabilities:cpu_info:arch": "x86_64"},
    {"capabilities:hypervisor_version": ">= 7000000"}, {"hypervisor_type": "s== KVM"},
    {"capabilities:cpu_info:features": "<in> avx2"}, {"capabilities:gpu": "= 2"},
    {"capabilities:cpu_info:topology:cores": "<or> 4 <or> 16"},
    {"aggregate_instance_extra_specs:ssd": "true"}, {"ssd": "<is> True"},
    {"hw:cpu_policy": "dedicated"}, {"capabilities:missing": "1"},
)
_IMAGES: tuple[dict[str, str], ...] = (
    {}, {"architecture": "x86_64"}, {"hw_architecture": "aarch64", "img_hv_type": "qemu"},
    {"hw_vm_mode": "hvm", "img_hv_requested_version": ">= 7000000"}, {"vm_mode": "xen"},
)


def random_compute_request(seed: int, hosts: HostSet) -> ComputeRequest:
    rng = random.Random(seed * 7919)
    group = None
    if rng.random() < 0.6:
        placed = rng.sample(hosts.names, min(len(hosts.names), rng.randint(0, 5)))
        group = ServerGroupInfo(
            id="g", policy=rng.choice(("affinity", "anti-affinity", "soft-affinity",
                                       "soft-anti-affinity")),
            hosts={h: rng.randint(1, 3) for h in placed},
            max_server_per_host=rng.choice((1, 2)))
    return ComputeRequest(
        vcpus=rng.choice((1, 2, 8, 64)), memory_mb=rng.choice((512, 4096, 65536)),
        disk_gb=rng.choice((0, 10, 400)), availability_zone=rng.choice((None, *ZONES)),
        extra_specs=dict(rng.choice(_EXTRA_SPECS)), image_properties=dict(rng.choice(_IMAGES)),
        server_group=group)


def _capacity_pair(rng: random.Random) -> tuple[float | str, float | str]:
    roll = rng.random()
    if roll < 0.1:
        return rng.choice(capacity.KEYWORDS), rng.choice(capacity.KEYWORDS)
    total = float(rng.choice((0, 10, 100, 1000)))
    if roll < 0.2:
        return total, rng.choice(capacity.KEYWORDS)
    if roll < 0.3:
        return rng.choice(capacity.KEYWORDS), total
    return total, float(rng.randint(0, int(total)))


def random_pools(seed: int, n: int = 40) -> PoolSet:
    """A random pool set: thin and thick pools, reserved percentages, fixed and ``auto``
    over-subscription, ``infinite``/``unknown`` capacities, down and silent backends."""
    rng = random.Random(seed)
    states = []
    for i in range(n):
        total, free = _capacity_pair(rng)
        allocated = float(rng.randint(0, 500))
        pool = capacity.Pool(
            total_capacity_gb=total, free_capacity_gb=free,
            reserved_percentage=rng.choice((0, 0, 5, 10)),
            allocated_capacity_gb=allocated,
            provisioned_capacity_gb=rng.choice((None, allocated, allocated * 2)),
            thin_provisioning_support=rng.random() < 0.6,
            thick_provisioning_support=rng.random() < 0.6,
            max_over_subscription_ratio=rng.choice((None, 1.0, 20.0, "auto")))
        caps: dict[str, Any] = {"volume_backend_name": rng.choice(("lvm", "nfs", "ceph")),
                                "storage_protocol": rng.choice(("iSCSI", "NFS", "ceph")),
                                "multiattach": rng.random() < 0.5,
                                "thin_provisioning_support": pool.thin_provisioning_support}
        if rng.random() < 0.1:
            caps = {}
        states.append(PoolState(
            name=f"host-{i // 3}@b{i % 3}#pool{i}", backend=f"host-{i // 3}@b{i % 3}",
            availability_zone=rng.choice(ZONES), up=rng.random() > 0.05,
            reporting=rng.random() > 0.05, capacity=pool,
            consumed_gb=float(rng.choice((0, 0, 5, 50))), allocated_capacity_gb=allocated,
            volumes=rng.randint(0, 30), capabilities=caps,
            default_mosr=rng.choice((20.0, "auto"))))
    return PoolSet.from_states(states)


_VOLUME_SPECS: tuple[dict[str, str], ...] = (
    {}, {"volume_backend_name": "lvm"}, {"provisioning:type": "thick"},
    {"capabilities:storage_protocol": "<in> SCSI"}, {"multiattach": "<is> True"},
    {"volume_backend_name": "<or> nfs <or> ceph", "provisioning:type": "thin"},
    {"capabilities:thin_provisioning_support": "<is> False"}, {"qos:iops": "100"},
)


def random_volume_request(seed: int) -> VolumeRequest:
    rng = random.Random(seed * 104729)
    return VolumeRequest(size=rng.choice((0, 1, 10, 100, 5000)),
                         extra_specs=dict(rng.choice(_VOLUME_SPECS)),
                         availability_zone=rng.choice((None, *ZONES)))


def _snapshot(candidates: Any) -> list[Any]:
    return [candidates.state(i) for i in range(len(candidates))]


def _expect_unchanged(hosts: Any, before: list[Any], request: Any, request_before: Any,
                      seed: int) -> None:
    after = _snapshot(hosts)
    changed = [hosts.names[i] for i in range(len(before)) if before[i] != after[i]]
    check.empty(changed[:5], f"seed {seed}: candidates changed by the plugin")
    check.equal(request, request_before, f"seed {seed}: the request after the plugin ran")


def _suite(family: str, make_set: Callable[[int], Any],
           make_request: Callable[[int, Any], Any]) -> Any:
    mark = pytest.mark.family(family)

    @mark
    class Filters:
        @pytest.fixture
        def plugin(self, stackcore_target: DriverUnderTest) -> Any:
            return stackcore_target.new()

        @pytest.mark.feature("deterministic")
        def test_same_input_same_answer(self, plugin: Any) -> None:
            for seed in SEEDS:
                hosts, again = make_set(seed), make_set(seed)
                request = make_request(seed, hosts)
                first = [plugin.host_passes(hosts.state(i), request) for i in range(len(hosts))]
                second = [plugin.host_passes(again.state(i), request) for i in range(len(again))]
                diff = [hosts.names[i] for i in range(len(first)) if first[i] != second[i]]
                check.empty(diff[:5], f"seed {seed}: candidates whose host_passes() answer "
                            "changed on the same input")
                odd = [v for v in first if not isinstance(v, (bool, np.bool_))]
                check.empty(odd[:3], f"seed {seed}: host_passes() answers that are not bool")

        @pytest.mark.feature("side-effect free")
        def test_inputs_unchanged(self, plugin: Any) -> None:
            for seed in SEEDS:
                hosts = make_set(seed)
                request = make_request(seed, hosts)
                before, request_before = _snapshot(hosts), copy.deepcopy(request)
                for i in range(len(hosts)):
                    plugin.host_passes(hosts.state(i), request)
                plugin.filter_all(hosts, request)
                _expect_unchanged(hosts, before, request, request_before, seed)

        @pytest.mark.feature("explains rejections")
        def test_rejections_have_reasons(self, plugin: Any) -> None:
            for seed in SEEDS:
                hosts = make_set(seed)
                request = make_request(seed, hosts)
                rejected = [hosts.state(i) for i in range(len(hosts))
                            if not plugin.host_passes(hosts.state(i), request)]
                for state in rejected[:20]:
                    reason = plugin.reason(state, request)
                    check.that(isinstance(reason, str) and bool(reason.strip()),
                               f"seed {seed}: reason() for a rejected candidate",
                               "a sentence", reason)
                if rejected:
                    summary = plugin.summarize(rejected, request)
                    check.that(isinstance(summary, str) and bool(summary.strip()),
                               f"seed {seed}: summarize() of the rejected candidates",
                               "a sentence", summary)

        @pytest.mark.capability("whole_set")
        def test_whole_set_agrees_with_per_host(self, plugin: Any) -> None:
            for seed in (*SEEDS, *range(100, 120)):
                hosts = make_set(seed)
                request = make_request(seed, hosts)
                mask = plugin.filter_all(hosts, request)
                check.that(mask is not None, "filter_all()", "a mask (the whole-set path)",
                           "None (no whole-set path)")
                per_host = [bool(plugin.host_passes(hosts.state(i), request))
                            for i in range(len(hosts))]
                got = [bool(v) for v in mask]
                diff = [hosts.names[i] for i in range(len(hosts)) if got[i] != per_host[i]]
                check.empty(diff[:5], f"seed {seed}: candidates where the paths disagree "
                            "(filter_all() vs host_passes())")

    @mark
    class Weighers:
        @pytest.fixture
        def plugin(self, stackcore_target: DriverUnderTest) -> Any:
            return stackcore_target.new()

        @pytest.mark.feature("deterministic")
        def test_same_input_same_answer(self, plugin: Any) -> None:
            for seed in SEEDS:
                hosts, again = make_set(seed), make_set(seed)
                request = make_request(seed, hosts)
                first = [plugin.weigh_object(hosts.state(i), request) for i in range(len(hosts))]
                second = [plugin.weigh_object(again.state(i), request)
                          for i in range(len(again))]
                diff = [hosts.names[i] for i in range(len(first)) if first[i] != second[i]]
                check.empty(diff[:5], f"seed {seed}: candidates whose weigh_object() changed "
                            "on the same input")
                odd = [v for v in first if not isinstance(v, (int, float)) or np.isnan(v)]
                check.empty(odd[:3], f"seed {seed}: weights that are not numbers")
                check.instance(plugin.weight_multiplier(), float, "weight_multiplier()")

        @pytest.mark.feature("side-effect free")
        def test_inputs_unchanged(self, plugin: Any) -> None:
            for seed in SEEDS:
                hosts = make_set(seed)
                request = make_request(seed, hosts)
                before, request_before = _snapshot(hosts), copy.deepcopy(request)
                for i in range(len(hosts)):
                    plugin.weigh_object(hosts.state(i), request)
                plugin.weigh_all(hosts, request)
                _expect_unchanged(hosts, before, request, request_before, seed)

        @pytest.mark.capability("whole_set")
        def test_whole_set_agrees_with_per_host(self, plugin: Any) -> None:
            for seed in (*SEEDS, *range(100, 120)):
                hosts = make_set(seed)
                request = make_request(seed, hosts)
                raw = plugin.weigh_all(hosts, request)
                check.that(raw is not None, "weigh_all()", "weights (the whole-set path)",
                           "None (no whole-set path)")
                per_host = np.array([plugin.weigh_object(hosts.state(i), request)
                                     for i in range(len(hosts))], np.float64)
                got = np.asarray(raw, np.float64)
                diff = [(hosts.names[i], float(got[i]), float(per_host[i]))
                        for i in range(len(per_host)) if not (
                            got[i] == per_host[i] or (np.isnan(got[i]) and np.isnan(per_host[i])))]
                check.empty(diff[:5], f"seed {seed}: (candidate, weigh_all(), weigh_object()) "
                            "where the paths disagree")

    return Filters, Weighers


def _compute_request(seed: int, hosts: Any) -> ComputeRequest:
    return random_compute_request(seed, hosts)


def _volume_request(seed: int, hosts: Any) -> VolumeRequest:
    return random_volume_request(seed)


TestComputeFilterConformance, _ = _suite("scheduler.compute_filters", random_hosts,
                                         _compute_request)
_, TestComputeWeigherConformance = _suite("scheduler.compute_weighers", random_hosts,
                                          _compute_request)
TestVolumeFilterConformance, _ = _suite("scheduler.volume_filters", random_pools,
                                        _volume_request)
_, TestVolumeWeigherConformance = _suite("scheduler.volume_weighers", random_pools,
                                         _volume_request)
del _

"""The core compute host weighers (entry points in ``stackcore.scheduler.weighers.compute``).

Raw weights are normalised 0..1 across the candidates and multiplied by the ``[scheduler]``
option each weigher names (overridable per aggregate through metadata of the same name).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from stackcore.compute.placement.hosts import HostSet, HostState
from stackcore.compute.placement.request import ComputeRequest
from stackcore.scheduler.weighers.base import BaseWeigher, contract

if TYPE_CHECKING:
    from stackcore.scheduler.arrays import FloatArray

NAMESPACE = "stackcore.scheduler.weighers.compute"


class HostWeigher(BaseWeigher):
    """A compute host weigher (namespace ``stackcore.scheduler.weighers.compute``)."""


CONTRACT = contract("scheduler.compute_weighers", HostWeigher, "compute host weigher")

_WHOLE_SET: Mapping[str, bool] = {"whole_set": True}


class RAMWeigher(HostWeigher):
    """Free RAM under the allocation ratio (MB). Option ``ram_weight_multiplier`` (1.0:
    spread; negative: stack)."""

    capabilities = _WHOLE_SET
    minval = 0.0
    multiplier_option = "ram_weight_multiplier"

    def weigh_object(self, host_state: HostState, request: ComputeRequest) -> float:
        return host_state.free_ram_mb

    def weigh_all(self, hosts: HostSet, request: ComputeRequest) -> FloatArray:
        return hosts.free_ram_mb


class CPUWeigher(HostWeigher):
    """Free vCPUs under the allocation ratio. Option ``cpu_weight_multiplier``."""

    capabilities = _WHOLE_SET
    minval = 0.0
    multiplier_option = "cpu_weight_multiplier"

    def weigh_object(self, host_state: HostState, request: ComputeRequest) -> float:
        return host_state.free_vcpus

    def weigh_all(self, hosts: HostSet, request: ComputeRequest) -> FloatArray:
        return hosts.free_vcpus


class DiskWeigher(HostWeigher):
    """Free local disk under the allocation ratio (GB). Option ``disk_weight_multiplier``."""

    capabilities = _WHOLE_SET
    minval = 0.0
    multiplier_option = "disk_weight_multiplier"

    def weigh_object(self, host_state: HostState, request: ComputeRequest) -> float:
        return host_state.free_disk_gb

    def weigh_all(self, hosts: HostSet, request: ComputeRequest) -> FloatArray:
        return hosts.free_disk_gb


class IoOpsWeigher(HostWeigher):
    """Instances in an I/O-heavy task on the host. Option ``io_ops_weight_multiplier``
    (-1.0: prefer idle hosts)."""

    capabilities = _WHOLE_SET
    minval = 0.0
    multiplier_option = "io_ops_weight_multiplier"

    def weigh_object(self, host_state: HostState, request: ComputeRequest) -> float:
        return float(host_state.num_io_ops)

    def weigh_all(self, hosts: HostSet, request: ComputeRequest) -> FloatArray:
        return hosts.num_io_ops


class NumInstancesWeigher(HostWeigher):
    """Instances on the host. Option ``num_instances_weight_multiplier`` (0.0: off; > 0
    packs, < 0 spreads by count)."""

    capabilities = _WHOLE_SET
    multiplier_option = "num_instances_weight_multiplier"

    def weigh_object(self, host_state: HostState, request: ComputeRequest) -> float:
        return float(host_state.num_instances)

    def weigh_all(self, hosts: HostSet, request: ComputeRequest) -> FloatArray:
        return hosts.num_instances


class _GroupWeigher(HostWeigher):
    capabilities = _WHOLE_SET
    policy = ""
    sign = 1.0

    def weigh_object(self, host_state: HostState, request: ComputeRequest) -> float:
        group = request.server_group
        if group is None or group.policy != self.policy:
            return 0.0
        return self.sign * group.hosts.get(host_state.host, 0)

    def weigh_all(self, hosts: HostSet, request: ComputeRequest) -> FloatArray:
        import numpy as np
        group = request.server_group
        if group is None or group.policy != self.policy:
            return np.zeros(len(hosts), np.float64)
        result: FloatArray = self.sign * hosts.counts_by_host(group.hosts)
        return result


class ServerGroupSoftAffinityWeigher(_GroupWeigher):
    """Policy ``soft-affinity``: members of the server's group already on the host (more is
    better). Option ``soft_affinity_weight_multiplier``."""

    policy = "soft-affinity"
    multiplier_option = "soft_affinity_weight_multiplier"


class ServerGroupSoftAntiAffinityWeigher(_GroupWeigher):
    """Policy ``soft-anti-affinity``: minus the members of the server's group already on the
    host (fewer is better). Option ``soft_anti_affinity_weight_multiplier``."""

    policy = "soft-anti-affinity"
    sign = -1.0
    multiplier_option = "soft_anti_affinity_weight_multiplier"

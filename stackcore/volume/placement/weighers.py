"""The core volume pool weighers (entry points in ``stackcore.scheduler.weighers.volume``),
with Cinder's semantics (``cinder/scheduler/weights``)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from stackcore.scheduler.weighers.base import BaseWeigher, contract
from stackcore.volume.placement.pools import PoolSet, PoolState
from stackcore.volume.placement.request import VolumeRequest

if TYPE_CHECKING:
    from stackcore.scheduler.arrays import FloatArray

NAMESPACE = "stackcore.scheduler.weighers.volume"


class PoolWeigher(BaseWeigher):
    """A volume pool weigher (namespace ``stackcore.scheduler.weighers.volume``)."""


CONTRACT = contract("scheduler.volume_weighers", PoolWeigher, "volume pool weigher")

_WHOLE_SET: Mapping[str, bool] = {"whole_set": True}


class CapacityWeigher(PoolWeigher):
    """Virtual free capacity by the shared formula
    (:func:`stackcore.volume.placement.capacity.weight`,
    thin or thick as the volume type asks), minus claims since the last report. Pools with an
    ``infinite``/``unknown`` capacity get the lowest weight: -1 when spreading, and when
    stacking (negative multiplier) a weight above every other so they still lose (Cinder).
    Option ``capacity_weight_multiplier`` (1.0: spread)."""

    capabilities = _WHOLE_SET
    multiplier_option = "capacity_weight_multiplier"

    def weigh_object(self, host_state: PoolState, request: VolumeRequest) -> float:
        if host_state.capacity.has_keyword and self.weight_multiplier() < 0:
            return float("inf")
        return host_state.weight(request.thin)

    def weigh_all(self, hosts: PoolSet, request: VolumeRequest) -> FloatArray:
        import numpy as np
        raw = hosts.weight(request.thin).copy()
        if self.weight_multiplier() < 0:
            raw[hosts.keyword] = np.inf
        return raw


class AllocatedCapacityWeigher(PoolWeigher):
    """GiB allocated on the pool (claimed by volumes). Option
    ``allocated_capacity_weight_multiplier`` (-1.0: the least allocated pool wins)."""

    capabilities = _WHOLE_SET
    multiplier_option = "allocated_capacity_weight_multiplier"

    def weigh_object(self, host_state: PoolState, request: VolumeRequest) -> float:
        return float(host_state.allocated_capacity_gb)

    def weigh_all(self, hosts: PoolSet, request: VolumeRequest) -> FloatArray:
        return hosts.allocated_capacity_gb


class VolumeNumberWeigher(PoolWeigher):
    """Volumes on the pool. Option ``volume_number_multiplier`` (-1.0: the pool with fewer
    volumes wins)."""

    capabilities = _WHOLE_SET
    multiplier_option = "volume_number_multiplier"

    def weigh_object(self, host_state: PoolState, request: VolumeRequest) -> float:
        return float(host_state.volumes)

    def weigh_all(self, hosts: PoolSet, request: VolumeRequest) -> FloatArray:
        return hosts.volumes

"""Volume pool filters: their contract (:class:`PoolFilter`, :data:`CONTRACT`) and the core's
filters (entry points in ``stackcore.scheduler.filters.volume``), with Cinder's semantics
(``cinder/scheduler/filters``). Capacity uses the one shared formula of
:mod:`stackcore.volume.placement.capacity`."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from stackcore.scheduler import extra_specs_ops
from stackcore.scheduler.filters.base import BaseFilter, by_code, contract
from stackcore.volume.placement.pools import PoolSet, PoolState
from stackcore.volume.placement.request import VolumeRequest

if TYPE_CHECKING:
    from stackcore.scheduler.arrays import BoolArray

NAMESPACE = "stackcore.scheduler.filters.volume"


class PoolFilter(BaseFilter):
    """A volume pool filter (namespace ``stackcore.scheduler.filters.volume``): candidates are
    :class:`~stackcore.volume.placement.pools.PoolState` / ``PoolSet``, requests
    :class:`~stackcore.volume.placement.request.VolumeRequest`."""


CONTRACT = contract("scheduler.volume_filters", PoolFilter, "volume pool filter")

_WHOLE_SET: Mapping[str, bool] = {"whole_set": True}


class BackendStateFilter(PoolFilter):
    """The pool's volume service is up and enabled and its driver's last stats report was
    valid (Cinder drops such backends from its map before filtering; here it is a filter so
    the rejection shows in the explanation)."""

    capabilities = _WHOLE_SET
    run_filter_once_per_request = True

    def host_passes(self, host_state: PoolState, request: VolumeRequest) -> bool:
        return host_state.up and host_state.reporting

    def filter_all(self, hosts: PoolSet, request: VolumeRequest) -> BoolArray:
        result: BoolArray = hosts.up & hosts.reporting
        return result

    def reason(self, host_state: PoolState, request: VolumeRequest) -> str:
        if not host_state.up:
            return "volume service down or disabled"
        return "driver not reporting valid stats"


class AvailabilityZoneFilter(PoolFilter):
    """The pool's backend is in the requested availability zone (``backend_availability_zone``,
    else ``[volume] storage_availability_zone``). No zone requested: all pass."""

    capabilities = _WHOLE_SET
    run_filter_once_per_request = True

    def host_passes(self, host_state: PoolState, request: VolumeRequest) -> bool:
        zone = request.availability_zone
        return not zone or host_state.availability_zone == zone

    def filter_all(self, hosts: PoolSet, request: VolumeRequest) -> BoolArray:
        import numpy as np
        zone = request.availability_zone
        if not zone:
            return np.ones(len(hosts), bool)
        return by_code(hosts.zone_code, hosts.zones, lambda z: z == zone)

    def reason(self, host_state: PoolState, request: VolumeRequest) -> str:
        return (f"wants zone {request.availability_zone!r}, it is in "
                f"{host_state.availability_zone!r}")


class CapacityFilter(PoolFilter):
    """The volume fits the pool by Cinder's capacity rules (one shared formula,
    :func:`stackcore.volume.placement.capacity.headroom`): thin unless the volume type says
    ``provisioning:type = thick``; ``reserved_percentage`` kept free; thin pools
    over-subscribe up to ``max_over_subscription_ratio`` (a number or ``auto``); free capacity
    ``infinite``/``unknown`` passes; total ``infinite``/``unknown`` passes only with 0 %
    reserved. Claims made since the pool's last report count as used. Size 0 passes."""

    capabilities = _WHOLE_SET

    def host_passes(self, host_state: PoolState, request: VolumeRequest) -> bool:
        if request.size <= 0:
            return True
        room = host_state.headroom(request.thin)
        return room is None or room >= request.size

    def filter_all(self, hosts: PoolSet, request: VolumeRequest) -> BoolArray:
        import numpy as np
        if request.size <= 0:
            return np.ones(len(hosts), bool)
        room = hosts.headroom(request.thin)
        with np.errstate(invalid="ignore"):
            result: BoolArray = np.isnan(room) | (room >= request.size)
        return result

    def _kind(self, host_state: PoolState, request: VolumeRequest) -> str:
        thin = request.thin and host_state.capacity.thin_provisioning_support
        return "thin" if thin else "thick"

    def reason(self, host_state: PoolState, request: VolumeRequest) -> str:
        pool = host_state.capacity
        if pool.total_capacity_gb in ("infinite", "unknown"):
            return (f"total capacity is {pool.total_capacity_gb!r} with reserved "
                    f"{pool.reserved_percentage}%")
        room = host_state.headroom(request.thin) or 0.0
        return (f"needs {request.size} GiB ({self._kind(host_state, request)}), virtual free "
                f"is {max(room, 0.0):.2f} GiB")

    def summarize(self, rejected: Sequence[PoolState], request: VolumeRequest) -> str:
        numeric = [p for p in rejected if p.headroom(request.thin) is not None
                   and p.capacity.total_capacity_gb not in ("infinite", "unknown")]
        if not numeric:
            return super().summarize(rejected, request)
        best = max(numeric, key=lambda p: p.headroom(request.thin) or 0.0)
        room = max(best.headroom(request.thin) or 0.0, 0.0)
        return (f"needs {request.size} GiB ({self._kind(best, request)}), virtual free is "
                f"{room:.2f} GiB at best")


def _volume_checks(extra_specs: Mapping[str, str]) -> list[tuple[str, list[str], str]]:
    checks = []
    for key, requirement in extra_specs.items():
        scope = key.split(":")
        if len(scope) > 1:
            if scope[0] != "capabilities":
                continue  # another scope (provisioning:, qos:, ...): not a capability
            scope = scope[1:]
        checks.append((key, scope, requirement))
    return checks


def _volume_caps_ok(caps: Mapping[str, Any], checks: list[tuple[str, list[str], str]],
                    ) -> str | None:
    for key, path, requirement in checks:
        value = extra_specs_ops.lookup(caps, path)
        if value is None:
            return f"{key} is not reported"
        if not extra_specs_ops.match_any(value, requirement):
            return f"wants {key} {requirement!r}, it is {value!r}"
    return None


class CapabilitiesFilter(PoolFilter):
    """Every volume-type extra spec that is unscoped or scoped ``capabilities:`` matches the
    pool's capabilities (``volume_backend_name``, ``storage_protocol``, ``vendor_name``,
    ``thin_provisioning_support``, ``multiattach``, driver extras...; ``:`` walks nested
    values; a list matches if any element does) with Cinder's operators (``=`` numeric >=,
    ``==``, ``!=``, ``>=``, ``<=``, ``s==`` ``s!=`` ``s<`` ``s<=`` ``s>`` ``s>=``, ``<in>``,
    ``<is>``, ``<or>``). A capability the pool does not report fails; keys in any other scope
    are ignored."""

    capabilities = _WHOLE_SET
    run_filter_once_per_request = True

    def host_passes(self, host_state: PoolState, request: VolumeRequest) -> bool:
        return _volume_caps_ok(host_state.capabilities,
                               _volume_checks(request.extra_specs)) is None

    def filter_all(self, hosts: PoolSet, request: VolumeRequest) -> BoolArray:
        import numpy as np
        checks = _volume_checks(request.extra_specs)
        if not checks:
            return np.ones(len(hosts), bool)
        return by_code(hosts.caps_code, hosts.caps, lambda c: _volume_caps_ok(c, checks) is None)

    def reason(self, host_state: PoolState, request: VolumeRequest) -> str:
        checks = _volume_checks(request.extra_specs)
        return _volume_caps_ok(host_state.capabilities, checks) or "did not pass"

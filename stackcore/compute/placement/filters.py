"""Compute host filters: their contract (:class:`HostFilter`, :data:`CONTRACT`) and the core's
filters (entry points in ``stackcore.scheduler.filters.compute``).

Each class docstring says what it checks and which options it reads; the docs' filter
reference is generated from them. All implement both the per-host path (``host_passes``) and
the whole-set path (``filter_all``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

from stackcore.compute.placement.hosts import HostSet, HostState
from stackcore.compute.placement.request import ComputeRequest
from stackcore.scheduler import extra_specs_ops
from stackcore.scheduler.filters.base import BaseFilter, by_code, contract

if TYPE_CHECKING:
    from stackcore.scheduler.arrays import BoolArray

NAMESPACE = "stackcore.scheduler.filters.compute"


class HostFilter(BaseFilter):
    """A compute host filter (namespace ``stackcore.scheduler.filters.compute``): candidates are
    :class:`~stackcore.compute.placement.hosts.HostState` / ``HostSet``, requests
    :class:`~stackcore.compute.placement.request.ComputeRequest`."""


CONTRACT = contract("scheduler.compute_filters", HostFilter, "compute host filter")

_WHOLE_SET: Mapping[str, bool] = {"whole_set": True}


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


class ComputeFilter(HostFilter):
    """The host's compute service is enabled, recently seen, and reporting valid stats.

    "Recently" means within ``[DEFAULT] service_down_time`` seconds."""

    capabilities = _WHOLE_SET
    run_filter_once_per_request = True

    def host_passes(self, host_state: HostState, request: ComputeRequest) -> bool:
        return host_state.up and not host_state.disabled and host_state.reporting

    def filter_all(self, hosts: HostSet, request: ComputeRequest) -> BoolArray:
        result: BoolArray = hosts.up & ~hosts.disabled & hosts.reporting
        return result

    def reason(self, host_state: HostState, request: ComputeRequest) -> str:
        if host_state.disabled:
            why = f" ({host_state.disabled_reason})" if host_state.disabled_reason else ""
            return f"service disabled{why}"
        if not host_state.up:
            return f"service down (no report for over {self.conf.service_down_time} s)"
        # the driver's own error names what it could not reach (a hypervisor restarting)
        why = f": {host_state.report_error}" if host_state.report_error else ""
        return f"driver not reporting valid stats{why}"


class _ResourceFilter(HostFilter):
    """Shared shape of the RAM / CPU / disk filters: free = total x ratio - claimed."""

    capabilities = _WHOLE_SET
    unit: ClassVar[str] = ""
    label: ClassVar[str] = ""

    def wanted(self, request: ComputeRequest) -> float:
        raise NotImplementedError

    def free(self, host_state: HostState) -> float:
        raise NotImplementedError

    def free_all(self, hosts: HostSet) -> Any:
        raise NotImplementedError

    def host_passes(self, host_state: HostState, request: ComputeRequest) -> bool:
        return self.free(host_state) >= self.wanted(request)

    def filter_all(self, hosts: HostSet, request: ComputeRequest) -> BoolArray:
        result: BoolArray = self.free_all(hosts) >= self.wanted(request)
        return result

    def reason(self, host_state: HostState, request: ComputeRequest) -> str:
        return (f"needs {self.wanted(request):.0f} {self.unit}, it had "
                f"{max(self.free(host_state), 0):.0f} {self.unit} free")

    def summarize(self, rejected: Sequence[HostState], request: ComputeRequest) -> str:
        best = max(self.free(h) for h in rejected)
        return (f"needs {self.wanted(request):.0f} {self.unit}, the best had "
                f"{max(best, 0):.0f} {self.unit} free")


class RamFilter(_ResourceFilter):
    """Free RAM under the allocation ratio covers the flavor.

    ``memory_mb x [scheduler] ram_allocation_ratio - claimed MB >= flavor RAM``."""

    unit = "MB"

    def wanted(self, request: ComputeRequest) -> float:
        return request.memory_mb

    def free(self, host_state: HostState) -> float:
        return host_state.free_ram_mb

    def free_all(self, hosts: HostSet) -> Any:
        return hosts.free_ram_mb


class CoreFilter(_ResourceFilter):
    """Free vCPUs under the allocation ratio cover the flavor.

    ``vcpus x [scheduler] cpu_allocation_ratio - claimed vCPUs >= flavor vCPUs``."""

    unit = "vCPUs"

    def wanted(self, request: ComputeRequest) -> float:
        return request.vcpus

    def free(self, host_state: HostState) -> float:
        return host_state.free_vcpus

    def free_all(self, hosts: HostSet) -> Any:
        return hosts.free_vcpus


class DiskFilter(_ResourceFilter):
    """Free local disk under the allocation ratio covers the flavor.

    ``local_gb x [scheduler] disk_allocation_ratio - claimed GB >= flavor disk``."""

    unit = "GB"

    def wanted(self, request: ComputeRequest) -> float:
        return request.disk_gb

    def free(self, host_state: HostState) -> float:
        return host_state.free_disk_gb

    def free_all(self, hosts: HostSet) -> Any:
        return hosts.free_disk_gb


class AvailabilityZoneFilter(HostFilter):
    """The host is in the requested availability zone (its compute service's zone, or the
    ``availability_zone`` metadata of an aggregate holding it). No zone requested: all pass."""

    capabilities = _WHOLE_SET
    run_filter_once_per_request = True

    def host_passes(self, host_state: HostState, request: ComputeRequest) -> bool:
        zone = request.availability_zone
        return not zone or host_state.availability_zone == zone

    def filter_all(self, hosts: HostSet, request: ComputeRequest) -> BoolArray:
        import numpy as np
        zone = request.availability_zone
        if not zone:
            return np.ones(len(hosts), bool)
        return by_code(hosts.zone_code, hosts.zones, lambda z: z == zone)

    def reason(self, host_state: HostState, request: ComputeRequest) -> str:
        return (f"wants zone {request.availability_zone!r}, it is in "
                f"{host_state.availability_zone!r}")


_IMAGE_KEYS = {
    "architecture": ("hw_architecture", "architecture"),
    "hypervisor_type": ("img_hv_type", "hypervisor_type"),
    "vm_mode": ("hw_vm_mode", "vm_mode"),
}


def _image_wants(props: Mapping[str, str]) -> tuple[str | None, str | None, str | None]:
    found: list[str | None] = []
    for keys in _IMAGE_KEYS.values():
        value = next((props[k] for k in keys if props.get(k)), None)
        found.append(value.lower() if value else None)
    return found[0], found[1], found[2]


def _version_ok(requirement: str | None, caps: Mapping[str, Any]) -> bool:
    if not requirement:
        return True
    return extra_specs_ops.match(caps.get("hypervisor_version"), requirement)


class ImagePropertiesFilter(HostFilter):
    """The image's architecture (``hw_architecture``/``architecture``), hypervisor type
    (``img_hv_type``/``hypervisor_type``) and VM mode (``hw_vm_mode``/``vm_mode``) together
    match one of the ``supported_instances`` triples the host's driver reports, and the host's
    ``hypervisor_version`` satisfies ``img_hv_requested_version`` (an extra-spec operator
    expression such as ``>= 6000000``). An image asking for none of these passes everywhere; a
    host reporting no supported instances fails any image that asks."""

    capabilities = _WHOLE_SET
    run_filter_once_per_request = True

    def _passes_caps(self, caps: Mapping[str, Any], request: ComputeRequest) -> bool:
        arch, hv_type, vm_mode = _image_wants(request.image_properties)
        if not _version_ok(request.image_properties.get("img_hv_requested_version"), caps):
            return False
        if arch is None and hv_type is None and vm_mode is None:
            return True
        for triple in caps.get("supported_instances") or ():
            if not isinstance(triple, (list, tuple)) or len(triple) != 3:
                continue
            have = [str(p).lower() for p in triple]
            if all(w is None or w == h for w, h in zip((arch, hv_type, vm_mode), have,
                                                       strict=True)):
                return True
        return False

    def host_passes(self, host_state: HostState, request: ComputeRequest) -> bool:
        return self._passes_caps(host_state.capabilities, request)

    def filter_all(self, hosts: HostSet, request: ComputeRequest) -> BoolArray:
        return by_code(hosts.caps_code, hosts.caps, lambda c: self._passes_caps(c, request))

    def reason(self, host_state: HostState, request: ComputeRequest) -> str:
        arch, hv_type, vm_mode = _image_wants(request.image_properties)
        wants = "/".join(w or "*" for w in (arch, hv_type, vm_mode))
        have = ", ".join("/".join(t) for t in host_state.supported_instances) or "nothing"
        return f"image needs {wants}, it supports {have}"


def _capability_checks(extra_specs: Mapping[str, str],
                       ) -> list[tuple[str, list[str], str, bool]]:
    """(key, path, requirement, bare) for each extra spec the capabilities filter reads."""
    checks = []
    for key, requirement in extra_specs.items():
        scope = key.split(":")
        if len(scope) == 1:
            checks.append((key, scope, requirement, True))
        elif scope[0] == "capabilities":
            checks.append((key, scope[1:], requirement, False))
    return checks


def _capabilities_ok(caps: Mapping[str, Any], checks: list[tuple[str, list[str], str, bool]],
                     ) -> str | None:
    """None when ``caps`` satisfies every check, else the first failure in words."""
    for key, path, requirement, bare in checks:
        if bare and path[0] not in caps:
            continue  # Nova: an unscoped key the host does not have is not a capability
        value = extra_specs_ops.lookup(caps, path)
        if value is None:
            return f"{key} is not reported"
        if not extra_specs_ops.match_any(value, requirement):
            return f"{key} is {value!r}, wants {requirement!r}"
    return None


class ComputeCapabilitiesFilter(HostFilter):
    """Flavor extra specs ``capabilities:<path>`` (``:`` walks into nested values such as
    ``capabilities:cpu_info:arch``), and unscoped keys naming a reported capability, match the
    host's capabilities (``hypervisor_type``, ``hypervisor_version``, ``cpu_info``,
    ``supported_instances`` and any driver extras) with the extra-spec operators of
    :mod:`stackcore.scheduler.extra_specs_ops`. Keys in another scope (``hw:``,
    ``aggregate_instance_extra_specs:``...) are ignored."""

    capabilities = _WHOLE_SET
    run_filter_once_per_request = True

    def host_passes(self, host_state: HostState, request: ComputeRequest) -> bool:
        checks = _capability_checks(request.extra_specs)
        return _capabilities_ok(host_state.capabilities, checks) is None

    def filter_all(self, hosts: HostSet, request: ComputeRequest) -> BoolArray:
        import numpy as np
        checks = _capability_checks(request.extra_specs)
        if not checks:
            return np.ones(len(hosts), bool)
        return by_code(hosts.caps_code, hosts.caps,
                       lambda c: _capabilities_ok(c, checks) is None)

    def reason(self, host_state: HostState, request: ComputeRequest) -> str:
        checks = _capability_checks(request.extra_specs)
        return _capabilities_ok(host_state.capabilities, checks) or "did not pass"


_AGG_SCOPE = "aggregate_instance_extra_specs"


def _aggregate_checks(extra_specs: Mapping[str, str]) -> list[tuple[str, str, str]]:
    checks = []
    for key, requirement in extra_specs.items():
        scope = key.split(":", 1)
        if len(scope) == 1:
            checks.append((key, key, requirement))
        elif scope[0] == _AGG_SCOPE:
            checks.append((key, scope[1], requirement))
    return checks


def _aggregates_ok(meta: Mapping[str, frozenset[str]], checks: list[tuple[str, str, str]],
                   ) -> str | None:
    for _key, meta_key, requirement in checks:
        values = meta.get(meta_key)
        if not values:
            return f"no aggregate of the host sets {meta_key!r}"
        if not any(extra_specs_ops.match(v, requirement) for v in values):
            return f"aggregate {meta_key!r} is {sorted(values)}, wants {requirement!r}"
    return None


class AggregateInstanceExtraSpecsFilter(HostFilter):
    """Flavor extra specs that are unscoped or scoped ``aggregate_instance_extra_specs:`` match
    the metadata of the host's aggregates (any aggregate's value may match; operators as in
    :mod:`stackcore.scheduler.extra_specs_ops`). A host in no aggregate setting the key fails."""

    capabilities = _WHOLE_SET
    run_filter_once_per_request = True

    def host_passes(self, host_state: HostState, request: ComputeRequest) -> bool:
        return _aggregates_ok(host_state.aggregate_metadata,
                              _aggregate_checks(request.extra_specs)) is None

    def filter_all(self, hosts: HostSet, request: ComputeRequest) -> BoolArray:
        import numpy as np
        checks = _aggregate_checks(request.extra_specs)
        if not checks:
            return np.ones(len(hosts), bool)
        return by_code(hosts.agg_code, hosts.aggs, lambda m: _aggregates_ok(m, checks) is None)

    def reason(self, host_state: HostState, request: ComputeRequest) -> str:
        checks = _aggregate_checks(request.extra_specs)
        return _aggregates_ok(host_state.aggregate_metadata, checks) or "did not pass"


class ServerGroupAffinityFilter(HostFilter):
    """Server group policy ``affinity``: once a member is placed, every further member goes to
    a host already holding members. Other policies, or no member placed yet: all pass."""

    capabilities = _WHOLE_SET

    def _active(self, request: ComputeRequest) -> bool:
        group = request.server_group
        return group is not None and group.policy == "affinity" and bool(group.hosts)

    def host_passes(self, host_state: HostState, request: ComputeRequest) -> bool:
        if not self._active(request):
            return True
        assert request.server_group is not None
        return request.server_group.hosts.get(host_state.host, 0) > 0

    def filter_all(self, hosts: HostSet, request: ComputeRequest) -> BoolArray:
        import numpy as np
        if not self._active(request):
            return np.ones(len(hosts), bool)
        assert request.server_group is not None
        result: BoolArray = hosts.counts_by_host(request.server_group.hosts) > 0
        return result

    def reason(self, host_state: HostState, request: ComputeRequest) -> str:
        group = request.server_group
        held = sorted(group.hosts) if group else []
        return f"affinity group {group.id if group else '?'} lives on {', '.join(held)}"


class ServerGroupAntiAffinityFilter(HostFilter):
    """Server group policy ``anti-affinity``: a host takes a member only while it holds fewer
    than the group's ``max_server_per_host`` rule (default 1) members."""

    capabilities = _WHOLE_SET

    def host_passes(self, host_state: HostState, request: ComputeRequest) -> bool:
        group = request.server_group
        if group is None or group.policy != "anti-affinity":
            return True
        return group.hosts.get(host_state.host, 0) < group.max_server_per_host

    def filter_all(self, hosts: HostSet, request: ComputeRequest) -> BoolArray:
        import numpy as np
        group = request.server_group
        if group is None or group.policy != "anti-affinity":
            return np.ones(len(hosts), bool)
        result: BoolArray = hosts.counts_by_host(group.hosts) < group.max_server_per_host
        return result

    def reason(self, host_state: HostState, request: ComputeRequest) -> str:
        group = request.server_group
        limit = group.max_server_per_host if group else 1
        return f"already holds {_plural(limit, 'member')} of anti-affinity group " \
               f"{group.id if group else '?'}"


class NumInstancesFilter(HostFilter):
    """The host holds fewer than ``[scheduler] max_instances_per_host`` instances."""

    capabilities = _WHOLE_SET

    def host_passes(self, host_state: HostState, request: ComputeRequest) -> bool:
        return bool(host_state.num_instances < self.conf.scheduler.max_instances_per_host)

    def filter_all(self, hosts: HostSet, request: ComputeRequest) -> BoolArray:
        result: BoolArray = hosts.num_instances < self.conf.scheduler.max_instances_per_host
        return result

    def reason(self, host_state: HostState, request: ComputeRequest) -> str:
        return (f"holds {host_state.num_instances} instances, the limit is "
                f"{self.conf.scheduler.max_instances_per_host}")


class IoOpsFilter(HostFilter):
    """The host has fewer than ``[scheduler] max_io_ops_per_host`` instances in an I/O-heavy
    task (building, rebuilding, evacuating, resizing or migrating, snapshotting, rescuing,
    deleting, rebooting, powering on/off): the task states of
    :data:`stackcore.compute.placement.manager.IO_TASKS`."""

    capabilities = _WHOLE_SET

    def host_passes(self, host_state: HostState, request: ComputeRequest) -> bool:
        return bool(host_state.num_io_ops < self.conf.scheduler.max_io_ops_per_host)

    def filter_all(self, hosts: HostSet, request: ComputeRequest) -> BoolArray:
        result: BoolArray = hosts.num_io_ops < self.conf.scheduler.max_io_ops_per_host
        return result

    def reason(self, host_state: HostState, request: ComputeRequest) -> str:
        return (f"has {host_state.num_io_ops} I/O operations in flight, the limit is "
                f"{self.conf.scheduler.max_io_ops_per_host}")

"""Compute host states: one frozen :class:`HostState` per host, and the columnar
:class:`HostSet` of all hosts that the whole-set filter and weigher paths read.

A ``HostSet`` keeps every numeric field as a numpy column and every structured field (zone,
capabilities, aggregate metadata) as a small integer code into a table of the distinct values,
so a whole-set filter evaluates its check once per *distinct* value and broadcasts it - no
Python object is touched per host per filter. :meth:`HostSet.state` gives the per-host view the
``host_passes`` path reads; both are built from the same columns, so both paths see the same
facts.

Missing or not-yet-reported fields are tolerated everywhere: a host that never reported has 0
resources, no hypervisor type, no supported instances and empty capabilities.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from stackcore.scheduler.columns import encode, json_key

if TYPE_CHECKING:
    from stackcore.scheduler.arrays import BoolArray, FloatArray

#: stats keys that change with load (or name the host): not capabilities
VOLATILE_STATS = frozenset({
    "vcpus", "memory_mb", "local_gb", "vcpus_used", "memory_mb_used", "local_gb_used",
    "hypervisor_hostname", "unknown_instances",
})


@dataclasses.dataclass(frozen=True)
class HostState:
    """What the scheduler knows of one compute host (the per-host filter path reads this)."""

    host: str
    availability_zone: str = "nova"
    up: bool = False
    disabled: bool = False
    disabled_reason: str | None = None
    reporting: bool = False
    #: why the driver's last report was refused (the backend it could not reach, ...)
    report_error: str | None = None
    vcpus: int = 0
    memory_mb: int = 0
    local_gb: int = 0
    alloc_vcpus: int = 0
    alloc_memory_mb: int = 0
    alloc_disk_gb: int = 0
    num_instances: int = 0
    num_io_ops: int = 0
    cpu_allocation_ratio: float = 1.0
    ram_allocation_ratio: float = 1.0
    disk_allocation_ratio: float = 1.0
    #: hypervisor_type, hypervisor_version, cpu_info, supported_instances and driver extras
    capabilities: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    #: merged metadata of the host's aggregates: key -> every value any aggregate gives it
    aggregate_metadata: Mapping[str, frozenset[str]] = dataclasses.field(default_factory=dict)

    @property
    def free_ram_mb(self) -> float:
        return self.memory_mb * self.ram_allocation_ratio - self.alloc_memory_mb

    @property
    def free_vcpus(self) -> float:
        return self.vcpus * self.cpu_allocation_ratio - self.alloc_vcpus

    @property
    def free_disk_gb(self) -> float:
        return self.local_gb * self.disk_allocation_ratio - self.alloc_disk_gb

    @property
    def hypervisor_type(self) -> str | None:
        value = self.capabilities.get("hypervisor_type")
        return value if isinstance(value, str) else None

    @property
    def supported_instances(self) -> tuple[tuple[str, ...], ...]:
        triples = self.capabilities.get("supported_instances") or ()
        return tuple(tuple(str(p) for p in t) for t in triples if isinstance(t, (list, tuple)))


_NUMERIC = (
    "vcpus", "memory_mb", "local_gb", "alloc_vcpus", "alloc_memory_mb", "alloc_disk_gb",
    "num_instances", "num_io_ops", "cpu_allocation_ratio", "ram_allocation_ratio",
    "disk_allocation_ratio",
)


class HostSet:
    """Every candidate host as columns (see the module docstring).

    Build one with :meth:`from_states`. Numeric columns are float64 numpy arrays named like the
    :class:`HostState` fields; ``zone_code``/``zones``, ``caps_code``/``caps`` and
    ``agg_code``/``aggs`` are code columns with their tables of distinct values.
    """

    def __init__(self, states: Sequence[HostState]) -> None:
        import numpy as np
        n = len(states)
        self.names: list[str] = [s.host for s in states]
        self.index: dict[str, int] = {name: i for i, name in enumerate(self.names)}
        self.up: BoolArray = np.fromiter((s.up for s in states), bool, n)
        self.disabled: BoolArray = np.fromiter((s.disabled for s in states), bool, n)
        self.reporting: BoolArray = np.fromiter((s.reporting for s in states), bool, n)
        self.disabled_reason: list[str | None] = [s.disabled_reason for s in states]
        self.report_error: list[str | None] = [s.report_error for s in states]
        for field in _NUMERIC:
            setattr(self, field, np.fromiter((getattr(s, field) for s in states), np.float64, n))
        self.zone_code, self.zones = encode([s.availability_zone for s in states])
        self.caps_code, self.caps = encode([s.capabilities for s in states], json_key)
        self.agg_code, self.aggs = encode(
            [s.aggregate_metadata for s in states],
            lambda meta: repr(sorted((k, sorted(v)) for k, v in meta.items())))

    # typed declarations of the numeric columns set in __init__
    vcpus: FloatArray
    memory_mb: FloatArray
    local_gb: FloatArray
    alloc_vcpus: FloatArray
    alloc_memory_mb: FloatArray
    alloc_disk_gb: FloatArray
    num_instances: FloatArray
    num_io_ops: FloatArray
    cpu_allocation_ratio: FloatArray
    ram_allocation_ratio: FloatArray
    disk_allocation_ratio: FloatArray

    @classmethod
    def from_states(cls, states: Iterable[HostState]) -> HostSet:
        return cls(sorted(states, key=lambda s: s.host))

    def __len__(self) -> int:
        return len(self.names)

    @property
    def free_ram_mb(self) -> FloatArray:
        result: FloatArray = self.memory_mb * self.ram_allocation_ratio - self.alloc_memory_mb
        return result

    @property
    def free_vcpus(self) -> FloatArray:
        result: FloatArray = self.vcpus * self.cpu_allocation_ratio - self.alloc_vcpus
        return result

    @property
    def free_disk_gb(self) -> FloatArray:
        result: FloatArray = self.local_gb * self.disk_allocation_ratio - self.alloc_disk_gb
        return result

    def state(self, i: int) -> HostState:
        """The per-host view of host ``i`` (what ``host_passes`` receives)."""
        return HostState(
            host=self.names[i],
            availability_zone=self.zones[int(self.zone_code[i])],
            up=bool(self.up[i]),
            disabled=bool(self.disabled[i]),
            disabled_reason=self.disabled_reason[i],
            reporting=bool(self.reporting[i]),
            report_error=self.report_error[i],
            vcpus=int(self.vcpus[i]),
            memory_mb=int(self.memory_mb[i]),
            local_gb=int(self.local_gb[i]),
            alloc_vcpus=int(self.alloc_vcpus[i]),
            alloc_memory_mb=int(self.alloc_memory_mb[i]),
            alloc_disk_gb=int(self.alloc_disk_gb[i]),
            num_instances=int(self.num_instances[i]),
            num_io_ops=int(self.num_io_ops[i]),
            cpu_allocation_ratio=float(self.cpu_allocation_ratio[i]),
            ram_allocation_ratio=float(self.ram_allocation_ratio[i]),
            disk_allocation_ratio=float(self.disk_allocation_ratio[i]),
            capabilities=self.caps[int(self.caps_code[i])],
            aggregate_metadata=self.aggs[int(self.agg_code[i])],
        )

    def states(self) -> list[HostState]:
        return [self.state(i) for i in range(len(self))]

    def counts_by_host(self, per_host: Mapping[str, int]) -> FloatArray:
        """A column from a small ``{host: count}`` mapping (server-group members); 0 elsewhere."""
        import numpy as np
        column = np.zeros(len(self), np.float64)
        for host, count in per_host.items():
            i = self.index.get(host)
            if i is not None:
                column[i] = count
        return column


def capabilities_from_stats(stats: Mapping[str, Any]) -> dict[str, Any]:
    """The capability part of a validated hypervisor stats report (load figures removed)."""
    return {k: v for k, v in stats.items() if k not in VOLATILE_STATS}


def merge_aggregate_metadata(
    metadata: Iterable[Mapping[str, Any]],
) -> dict[str, frozenset[str]]:
    """Merge the metadata of a host's aggregates: each key maps to every value given to it."""
    merged: dict[str, set[str]] = {}
    for meta in metadata:
        for key, value in meta.items():
            merged.setdefault(str(key), set()).add(str(value))
    return {k: frozenset(v) for k, v in merged.items()}
